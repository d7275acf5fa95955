import test from 'ava';
import { ownerOfCgroupPath, ownerOfProcCgroup } from '../../agent/attribution/cgroup.js';

const ID = 'a3f1c2d4e5b60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';
const UID = '1f2e3d4c-5b6a-4789-8abc-def012345678';
const UID_ = UID.replaceAll('-', '_');

const containers: [string, string, string, string][] = [
  ['containerd, systemd driver, cgroup v2', `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope`, 'containerd', UID],
  ['CRI-O, systemd driver', `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/crio-${ID}.scope`, 'cri-o', UID],
  ['Docker, systemd driver', `/system.slice/docker-${ID}.scope`, 'docker', ''],
  ['guaranteed pod, systemd driver', `/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope`, 'containerd', UID],
  ['cgroupfs driver, burstable', `/kubepods/burstable/pod${UID}/${ID}`, 'unknown', UID],
  ['cgroupfs driver, guaranteed', `/kubepods/pod${UID}/${ID}`, 'unknown', UID],
  ['cgroupfs driver, besteffort', `/kubepods/besteffort/pod${UID}/${ID}`, 'unknown', UID],
  ['Docker, cgroupfs driver', `/docker/${ID}`, 'unknown', ''],
  ['kind: slice:prefix:name under containerd.service', `/system.slice/containerd.service/kubepods-besteffort-pod${UID_}.slice:cri-containerd:${ID}`, 'containerd', UID],
  ['sub-cgroup inside a container (systemd in a container)', `/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope/init.scope`, 'containerd', UID],
  ['podman', `/machine.slice/libpod-${ID}.scope`, 'podman', ''],
];

for (const [what, path, runtime, podUid] of containers) {
  test(`container: ${what}`, (t) => {
    t.deepEqual(ownerOfCgroupPath(path), { kind: 'container', id: ID, runtime, podUid });
  });
}

const hosts: [string, string][] = [
  ['the root cgroup', '/'],
  ['a systemd service', '/system.slice/containerd.service'],
  ['a login session', '/user.slice/user-1000.slice/session-3.scope'],
  ["CRI-O's conmon (the runtime's monitor, not the container)", `/system.slice/crio-conmon-${ID}.scope`],
  ['a short hex name that is not an id', '/system.slice/abc123.scope'],
];
for (const [what, path] of hosts) {
  test(`host: ${what}`, (t) => {
    t.deepEqual(ownerOfCgroupPath(path), { kind: 'host' });
  });
}

test('a pod cgroup without a container below it is neither host nor a container', (t) => {
  t.is(ownerOfCgroupPath(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice`).kind, 'unknown');
  t.is(ownerOfCgroupPath(`/kubepods/burstable/pod${UID}`).kind, 'unknown');
});

test('hostile input: an over-long path, ids of the wrong length or case', (t) => {
  t.is(ownerOfCgroupPath(`/${'a/'.repeat(5000)}`).kind, 'unknown');
  t.is(ownerOfCgroupPath(`/system.slice/docker-${ID.slice(1)}.scope`).kind, 'host');
  t.is(ownerOfCgroupPath(`/system.slice/docker-${ID.toUpperCase()}.scope`).kind, 'host');
});

test('/proc/<pid>/cgroup, cgroup v2 only', (t) => {
  t.deepEqual(ownerOfProcCgroup(`0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope\n`), { kind: 'container', id: ID, runtime: 'containerd', podUid: UID });
  t.deepEqual(ownerOfProcCgroup('0::/system.slice/sshd.service\n'), { kind: 'host' });
});

test('/proc/<pid>/cgroup, cgroup v1 (cgroupfs driver): the container is on every controller line', (t) => {
  const text = [
    `12:pids:/kubepods/burstable/pod${UID}/${ID}`,
    `11:memory:/kubepods/burstable/pod${UID}/${ID}`,
    `4:cpu,cpuacct:/kubepods/burstable/pod${UID}/${ID}`,
    `1:name=systemd:/kubepods/burstable/pod${UID}/${ID}`,
    '0::/',
    '',
  ].join('\n');
  t.deepEqual(ownerOfProcCgroup(text), { kind: 'container', id: ID, runtime: 'unknown', podUid: UID });
});

test('/proc/<pid>/cgroup, hybrid: a container named only on the v1 lines still wins over the v2 root', (t) => {
  t.is(ownerOfProcCgroup(`5:memory:/docker/${ID}\n0::/\n`).kind, 'container');
  t.deepEqual(ownerOfProcCgroup('4:memory:/process_api/20fca440\n1:cpu:/\n0::/\n'), { kind: 'host' });
});

test('/proc/<pid>/cgroup: garbage is unknown, not host', (t) => {
  t.is(ownerOfProcCgroup('').kind, 'unknown');
  t.is(ownerOfProcCgroup('no colons here\n').kind, 'unknown');
});
