/**
 * The ebpf source's executable origin (drift), for real: an overlayfs mount in a private mount
 * namespace (`unshare -m`, as a container runtime makes one), a binary of its lower layer run (the
 * image), a binary copied into the merged tree after the mount run (written after start: the upper
 * layer), a binary run from a memfd (python3 os.memfd_create + execv of /proc/self/fd/N) and one run
 * from a file deleted before its exec. Plus the decoder on recorded O lines.
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, copyFileSync, readFileSync, realpathSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEbpfDecoder, originOf, type ProcessResolver } from '../../agent/sources/ebpf/decode.js';
import { EBPF_PROGRAM } from '../../agent/sources/ebpf/program.js';
import { cgroupV2Root } from '../../cli/verify/run-command.js';
import { findBpftrace, missingPrerequisites, REAL_HOST } from '../../agent/sources/ebpf/prerequisites.js';
import { isDrift } from '../../core/event.js';
import { captureEbpf } from '../helpers/ebpf-capture.js';
import { testSourceContext } from '../helpers/source-context.js';

const hexOf = (s: string | Buffer, pad = 0) => {
  const b = Buffer.concat([Buffer.from(s), Buffer.alloc(Math.max(0, pad - Buffer.byteLength(s)))]);
  return [...b].map((x) => `\\x${x.toString(16).padStart(2, '0')}`).join('');
};
const printf = (data: string) => JSON.stringify({ type: 'printf', data: `${data}\n` });

test('originOf: links 0 is memfd (by its memfd: name) or deleted; overlay upper/lower; anything else unknown', (t) => {
  const OVL = 0x794c7630;
  const o = (magic: number, links: number, upper: number, name: string, parentOutside: boolean | null = false) => ({ magic, links, upper, name, parentOutside });
  t.is(originOf(o(OVL, 1, 1, 'dropped'), '/tmp/dropped'), 'upper-layer');
  t.is(originOf(o(OVL, 1, 0, 'nginx'), '/usr/sbin/nginx'), 'image');
  t.is(originOf(o(OVL, 1, 2, 'nginx'), '/usr/sbin/nginx'), 'unknown', 'the ovl_inode layout check failed');
  t.is(originOf(o(0xef53, 1, 2, 'true'), '/bin/true'), 'unknown', 'ext4: not a container layer');
  t.is(originOf(o(0x01021994, 0, 2, 'memfd:payload'), '/proc/self/fd/3'), 'memfd');
  t.is(originOf(o(0xef53, 0, 2, 'dropped'), '/tmp/dropped'), 'deleted');
  t.is(originOf(o(OVL, 0, 1, 'dropped'), '/tmp/dropped'), 'deleted', 'a dropped binary deleted before it ran');
  t.is(originOf(o(OVL, 1, 0, 'averyverylongnam'), '/opt/averyverylongname'), 'image', 'the name is cut at 16 bytes');
});

test('originOf: runc\'s cloned self is plumbing only when its parent runs on the host side (printed by the program); a memfd named so from inside is drift', (t) => {
  const clone = (parentOutside: boolean | null) => ({ magic: 0x01021994, links: 0, upper: 2, name: 'memfd:runc_clone', parentOutside });
  t.is(originOf(clone(true), '/proc/self/exe'), 'unknown', 'exec\'d by runc or the shim from the host side');
  t.is(originOf(clone(false), '/proc/self/fd/3'), 'memfd', 'a process of the container naming its memfd runc_cloned');
  t.is(originOf(clone(null), '/proc/self/exe'), 'memfd', 'not printed (an older recording): not provable, so drift');
});

test('originOf: the O record names the interpreter of a script (mm->exe_file): an image interpreter never makes the script the image', (t) => {
  const OVL = 0x794c7630;
  const o = (upper: number, name: string) => ({ magic: OVL, links: 1, upper, name, parentOutside: false });
  t.is(originOf(o(0, 'dash'), '/tmp/x'), 'unknown', 'a #! script dropped in /tmp, run by the image\'s sh');
  t.is(originOf(o(0, 'ld-linux-x86-64'), '/tmp/x'), 'unknown', 'ld.so /tmp/x');
  t.is(originOf(o(1, 'python3'), '/app/run.py'), 'upper-layer', 'an interpreter written after start is drift whatever it runs');
  t.is(originOf({ magic: OVL, links: 0, upper: 2, name: 'memfd:x', parentOutside: false }, '/tmp/x'), 'memfd');
});

test('decoder: the O record (after the argv) gives the exec its origin; a malformed one is rejected; an exec without it waits, then has none', (t) => {
  const ctx = testSourceContext();
  const resolver: ProcessResolver = { owner: () => ({ kind: 'host' }), exe: () => '' };
  const d = createEbpfDecoder({ ctx, source: 'ebpf', clock: (ns) => ns / 1e6, resolver, now: () => 0 });
  const exec = (ns: number, pid: number, origin: string | null, file: string) => {
    d.line(printf(`X ${ns} ${pid} 1 0 1 0 ${hexOf('sh', 16)}`));
    if (origin !== null) d.line(printf(`O ${ns} ${pid} ${origin}`));
    d.line(printf(`C ${ns} ${pid} ${hexOf('', 128)}`));
    d.line(printf(`F ${ns} ${pid} ${hexOf(file, 200)}`));
  };
  exec(1_000_000, 10, `794c7630 1 1 ${hexOf('dropped', 16)}`, '/tmp/dropped');
  exec(2_000_000, 11, `1021994 0 2 ${hexOf('memfd:x', 16)}`, '/proc/self/fd/3');
  exec(2_100_000, 14, `1021994 0 2 ${hexOf('memfd:runc_clone', 16)} 0`, '/proc/self/fd/3');
  exec(2_200_000, 15, `1021994 0 2 ${hexOf('memfd:runc_clone', 16)} 1`, '/proc/self/exe');
  exec(3_000_000, 12, null, '/bin/true');
  d.line(printf(`O 4000000 13 zz 1 1 ${hexOf('x', 16)}`));
  d.line(printf(`O 4000000 13 794c7630 1 7 ${hexOf('x', 16)}`));
  d.line(printf(`O 4000000 13 794c7630 1 1 ${hexOf('x', 16)} 2`));
  t.deepEqual(d.take().map((e) => [e.process.exe, e.process.origin]), [['/tmp/dropped', 'upper-layer'], ['/proc/self/fd/3', 'memfd'], ['/proc/self/fd/3', 'memfd'], ['/proc/self/exe', 'unknown']]);
  // Once the program is known to print O records, an exec waits for its own; without it (lost), the
  // assembly window emits it with no origin: no drift is claimed on evidence that did not arrive.
  d.expire(1_000, false);
  t.deepEqual(d.take().map((e) => [e.process.exe, e.process.origin]), [['/bin/true', undefined]]);
  t.deepEqual(ctx.rejects, ['wrong_type', 'wrong_type', 'wrong_type']);
});

test('program: the periodic clear never empties @xns, which carries an exec\'s time between its two probes', (t) => {
  const tick = EBPF_PROGRAM.slice(EBPF_PROGRAM.indexOf('interval:s:60'), EBPF_PROGRAM.indexOf('END'));
  t.true(tick.includes('clear(@udp4)'), 'the interval block was found');
  t.false(/clear\(@xns\)/.test(tick));
  t.true(EBPF_PROGRAM.includes('delete(@xns[tid])'), 'the second probe empties it, one entry per exec');
});

/** Why the real test cannot run here, or null. */
function unavailable(): string | null {
  const missing = missingPrerequisites(findBpftrace('', REAL_HOST) ?? '', REAL_HOST);
  if (missing.length > 0) return missing.join('; ');
  if (process.getuid?.() !== 0) return 'not root (mount -t overlay needs it)';
  for (const tool of ['unshare', 'python3']) if (spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool]).status !== 0) return `${tool} is not installed`;
  return null;
}

/** Run `argv` and wait for its exit; rejects with its stderr on failure. */
function run(argv: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${argv.join(' ')} exited ${code}: ${err.slice(-500)}`))));
  });
}

test.serial('real bpftrace: a lower-layer binary is the image; one copied into the overlay after the mount is upper-layer; memfd (also one named runc_cloned) and deleted execs are drift; a dropped script is not the image', async (t) => {
  const why = unavailable();
  if (why !== null) {
    t.log(`SKIPPED: ${why}`);
    t.pass();
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'dw-drift-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const d of ['lower', 'upper', 'work', 'merged']) mkdirSync(join(dir, d));
  const tag = `dw${process.pid}`;
  // The image: a binary in the lower layer before the mount, and a shell (a script's interpreter).
  copyFileSync('/bin/true', join(dir, 'lower', `${tag}-image`));
  copyFileSync(realpathSync('/bin/sh'), join(dir, 'lower', `${tag}-sh`));
  chmodSync(join(dir, 'lower', `${tag}-sh`), 0o755);
  const merged = join(dir, 'merged');
  // What a container's life does, in one private mount namespace: the runtime mounts the overlay, the
  // image's binary runs, then something writes a new binary into the container and runs it. The
  // arguments are positional parameters of sh, never spliced into its script.
  const life = [
    'set -e',
    'mount -t overlay overlay -o "lowerdir=$1/lower,upperdir=$1/upper,workdir=$1/work" "$1/merged"',
    '"$1/merged/$2-image" "$2"',
    'cp /bin/true "$1/merged/$2-dropped"',
    '"$1/merged/$2-dropped" "$2"',
    // A script dropped after start, run by the image's shell: the kernel's exe_file is that shell.
    'printf "#!%s\\nexit 0\\n" "$1/merged/$2-sh" > "$1/merged/$2-script"',
    'chmod 755 "$1/merged/$2-script"',
    '"$1/merged/$2-script" "$2"',
  ].join('\n');
  // argv[1] names the memfd, argv[2] is what it runs with (the test finds it by that).
  const memfd = 'import os, sys\nfd = os.memfd_create(sys.argv[1])\nos.write(fd, open("/bin/true", "rb").read())\nos.execv("/proc/self/fd/%d" % fd, [sys.argv[2], sys.argv[2]])';
  const deleted = 'import os, sys\nfd = os.open(sys.argv[2], os.O_RDONLY)\nos.unlink(sys.argv[2])\nos.execv("/proc/self/fd/%d" % fd, [sys.argv[1], sys.argv[1]])';

  const ctx = testSourceContext();
  const capture = await captureEbpf(t, ctx, `${tag}-ready`, 90_000);
  const { events } = capture;

  await run(['unshare', '-m', '--propagation', 'private', 'sh', '-c', life, 'sh', dir, tag]);
  await run(['python3', '-c', memfd, `${tag}-memfd`, `${tag}-memfd`]);
  // runc's name, chosen by a process that is not runc (its parent, this test, shares its cgroup).
  await run(['python3', '-c', memfd, 'runc_cloned:/proc/self/exe', `${tag}-fakerunc`]);
  // runc's name from a process in a cgroup of its own: in the host's mount namespace, as runc re-exec'd
  // by the shim (plumbing), and in a mount namespace of its own, as a container's first process whose
  // parent is the shim (drift). The shell moves itself, then execs python.
  const v2 = cgroupV2Root(readFileSync('/proc/self/mountinfo', 'utf8'));
  const cg = v2 === null ? null : join(v2, `dw-drift-${process.pid}`);
  if (cg !== null) {
    mkdirSync(cg);
    t.teardown(() => rmdirSync(cg));
    const moved = 'echo $$ > "$1/cgroup.procs"; exec python3 -c "$2" runc_cloned:/proc/self/exe "$3"';
    await run(['sh', '-c', moved, 'sh', cg, memfd, `${tag}-hostrunc`]);
    await run(['unshare', '-m', 'sh', '-c', moved, 'sh', cg, memfd, `${tag}-initrunc`]);
  } else t.log('no cgroup v2 hierarchy: the host-side runc case is not run');
  copyFileSync('/bin/true', join(dir, `${tag}-deleted`));
  await run(['python3', '-c', deleted, `${tag}-deleted`, join(dir, `${tag}-deleted`)]);
  await run(['/bin/true', `${tag}-host`]);

  const find = () => ({
    image: events.find((e) => e.kind === 'exec' && e.process.exe === join(merged, `${tag}-image`)),
    dropped: events.find((e) => e.kind === 'exec' && e.process.exe === join(merged, `${tag}-dropped`)),
    memfd: events.find((e) => e.kind === 'exec' && e.process.args[0] === `${tag}-memfd`),
    fakeRunc: events.find((e) => e.kind === 'exec' && e.process.args[0] === `${tag}-fakerunc`),
    hostRunc: cg === null ? null : events.find((e) => e.kind === 'exec' && e.process.args[0] === `${tag}-hostrunc`),
    initRunc: cg === null ? null : events.find((e) => e.kind === 'exec' && e.process.args[0] === `${tag}-initrunc`),
    script: events.find((e) => e.kind === 'exec' && e.process.exe === join(merged, `${tag}-script`)),
    deleted: events.find((e) => e.kind === 'exec' && e.process.args[0] === `${tag}-deleted`),
    host: events.find((e) => e.kind === 'exec' && e.process.args[0] === `${tag}-host`),
  });
  const deadline = Date.now() + 60_000;
  let found = find();
  while (Object.values(found).some((v) => v === undefined) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    found = find();
  }
  await capture.stop();
  t.is(found.image?.process.origin, 'image', 'the lower layer is the image');
  t.is(found.dropped?.process.origin, 'upper-layer', 'copied in after the mount: written after start');
  t.is(found.memfd?.process.origin, 'memfd');
  t.like(found.memfd, { process: { exe: '/proc/self/fd/3' } });
  t.is(found.fakeRunc?.process.origin, 'memfd', 'a memfd named runc_cloned by a process of the same cgroup is drift');
  if (cg !== null) {
    t.is(found.hostRunc?.process.origin, 'unknown', 'another cgroup, the host\'s mount namespace: runc\'s plumbing');
    t.is(found.initRunc?.process.origin, 'memfd', 'another cgroup but a mount namespace of its own (a container\'s first process): drift');
  }
  t.not(found.script, undefined);
  t.not(found.script?.process.origin, 'image', 'a script dropped after start is not the image because its interpreter is');
  t.is(found.deleted?.process.origin, 'deleted');
  // The agent's own root: this machine's /bin/true is no drift (ext4 here: unknown; in a container, its image).
  t.not(found.host?.process.origin, undefined);
  t.false(isDrift(found.host?.process.origin), `host /bin/true: ${found.host?.process.origin}`);
});
