/**
 * `ebpf-file:` — a recording of the ebpf source's bpftrace output, read back: its argument, the events
 * it gives on the recording's own clock without looking at this host's /proc, real bpftrace output
 * recorded to a file, and a real agent process reading a recording into a real collector with the
 * images and pods named by a (fake) container runtime over the CRI.
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEbpfFileSource, parseEbpfFileArgument } from '../../agent/sources/ebpf/file.js';
import { findBpftrace, missingPrerequisites, REAL_HOST } from '../../agent/sources/ebpf/prerequisites.js';
import { ebpfProgram } from '../../agent/sources/ebpf/program.js';
import type { ActivityEvent } from '../../core/event.js';
import { startFakeCri } from '../helpers/cri-server.js';
import { eventually, getJson, spawnCli, spawnCollector } from '../helpers/processes.js';
import { testSourceContext } from '../helpers/source-context.js';

const hexOf = (s: string | Buffer, pad = 0) => {
  const b = Buffer.concat([Buffer.from(s), Buffer.alloc(Math.max(0, pad - Buffer.byteLength(s)))]);
  return [...b].map((x) => `\\x${x.toString(16).padStart(2, '0')}`).join('');
};
const printf = (data: string) => JSON.stringify({ type: 'printf', data: `${data}\n` });
const ID = 'fee1'.padEnd(64, 'd');
const LEAF = hexOf(`cri-containerd-${ID}.scope`, 128);
const BOOT = '2026-11-20T06:00:00Z';
const BOOT_MS = Date.parse(BOOT);

/** The lines bpftrace prints for one exec (`sec`: seconds after boot). */
function exec(sec: number, pid: number, ppid: number, parentComm: string, file: string, argv: string[], leaf = LEAF, uid = 0): string[] {
  const ns = `${sec}000000000`;
  const bytes = Buffer.from(`${argv.join('\0')}\0`);
  return [
    printf(`X ${ns} ${pid} ${ppid} ${uid} 77 ${bytes.length} ${hexOf(parentComm, 16)}`),
    printf(`C ${ns} ${pid} ${leaf}`),
    printf(`F ${ns} ${pid} ${hexOf(file, 200)}`),
    printf(`A ${ns} ${pid} 0 ${hexOf(bytes)}`),
  ];
}

/** A TCP connect from `pid` to 4-byte `peer`:`port`. */
function connect(sec: number, pid: number, peer: number[], port: number, comm: string, leaf = LEAF): string {
  return printf(`N ${sec}000000000 ${pid} 0 77 connect tcp ${hexOf(Buffer.from([10, 244, 1, 5]))} 0 ${hexOf(Buffer.from(peer))} ${port} ${hexOf(comm, 16)} ${leaf}`);
}

async function readAll(path: string, boot: number | null): Promise<{ events: ActivityEvent[]; rejects: string[] }> {
  const ctx = testSourceContext({ follow: false });
  const events: ActivityEvent[] = [];
  for await (const b of createEbpfFileSource(`ebpf-file:${path}`, path, boot, ctx).batches(new AbortController().signal)) events.push(...b.events);
  return { events, rejects: ctx.rejects };
}

test('argument: a file and an optional boot time (RFC 3339); anything else is refused, naming what is accepted', (t) => {
  t.deepEqual(parseEbpfFileArgument('/var/tmp/capture.jsonl'), { path: '/var/tmp/capture.jsonl', bootMs: null });
  t.deepEqual(parseEbpfFileArgument(`/c.jsonl?boot=${BOOT}`), { path: '/c.jsonl', bootMs: BOOT_MS });
  t.deepEqual(parseEbpfFileArgument('/c.jsonl?boot=2026-11-20T07:00:00.123456789+01:00'), { path: '/c.jsonl', bootMs: BOOT_MS + 123 }, 'an offset keeps its +, the fraction is cut to milliseconds');
  t.throws(() => parseEbpfFileArgument(''), { message: /ebpf-file needs a file/ });
  t.throws(() => parseEbpfFileArgument('/c.jsonl?speed=2'), { message: /unknown option "speed"; the one option is boot=TIME/ });
  t.throws(() => parseEbpfFileArgument('/c.jsonl?boot=yesterday'), { message: /boot must be an RFC 3339 time/ });
  t.throws(() => parseEbpfFileArgument('/c.jsonl?boot=1700000000'), { message: /boot must be an RFC 3339 time/ });
});

test('a recording gives the events the live source would, on its own clock, without reading this host\'s /proc', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-ebpf-file-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'capture.jsonl');
  // A pid that is alive on this host (this test's own): the live source would read its /proc entries.
  const live = process.pid;
  const answer = Buffer.concat([
    Buffer.from('12348180000100010000000003617069076578616d706c6503636f6d0000010001', 'hex'),
    Buffer.from('c00c000100010000003c0004cb00710a', 'hex'),
  ]);
  const lines = [
    '{"type": "attached_probes", "data": {"probes": 18}}',
    ...exec(3600, 500, 400, 'containerd-shim', '/usr/local/bin/app', ['app', '--serve']),
    // Its child: the parent's executable is the one the recording's exec gave.
    ...exec(3601, 501, 500, 'app', '/bin/sh', ['sh', '-c', 'id']),
    // A connect by a process whose exec is not in the recording, after the DNS answer it received.
    printf(`Q 3601500000000 ${live} 0 77 ${answer.length} ${LEAF}`),
    printf(`R 3601500000000 ${live} 0 ${hexOf(answer)}`),
    connect(3602, live, [203, 0, 113, 10], 443, 'worker'),
    // A nested cgroup leaf that names no container: a host event (the live source would ask /proc).
    ...exec(3603, live, 1, 'systemd', '/usr/bin/true', ['true'], hexOf('init.scope', 128)),
    'not json',
    // An exec whose argv lines never came: emitted with what arrived at the end of the recording.
    printf(`X 3604000000000 502 500 1000 77 40 ${hexOf('app', 16)}`),
    printf(`C 3604000000000 502 ${LEAF}`),
    printf(`F 3604000000000 502 ${hexOf('/usr/bin/curl', 200)}`),
  ];
  writeFileSync(path, `${lines.join('\n')}\n`);
  const { events, rejects } = await readAll(path, BOOT_MS);
  t.deepEqual(rejects, ['not_json']);
  t.deepEqual(
    events.map((e) => [new Date(e.time).toISOString(), e.kind, e.container?.id ?? null, e.process.pid, e.process.exe, e.process.args.join(' '), e.process.parentExe, e.process.parentName]),
    [
      ['2026-11-20T07:00:00.000Z', 'exec', ID, 500, '/usr/local/bin/app', '--serve', '', 'containerd-shim'],
      ['2026-11-20T07:00:01.000Z', 'exec', ID, 501, '/bin/sh', '-c id', '/usr/local/bin/app', 'app'],
      ['2026-11-20T07:00:02.000Z', 'connect', ID, live, '', '', '', ''],
      ['2026-11-20T07:00:03.000Z', 'exec', null, live, '/usr/bin/true', '', '', 'systemd'],
      ['2026-11-20T07:00:04.000Z', 'exec', ID, 502, '/usr/bin/curl', '', '/usr/local/bin/app', 'app'],
    ],
  );
  t.like(events[2]?.network, { protocol: 'tcp', remoteAddress: '203.0.113.10', remotePort: 443, remoteName: 'api.example.com' });
  t.is(events[4]?.process.uid, 1000);

  // A recording that is not there is an error, not an empty replay.
  await t.throwsAsync(readAll(join(dir, 'missing.jsonl'), BOOT_MS), { code: 'ENOENT' });
});

const CGROUP_V2 = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'].find((p) => existsSync(`${p}/cgroup.procs`) && existsSync(`${p}/cgroup.controllers`));

test.serial('real bpftrace output, recorded to a file, replays to the exec it saw (this host\'s boot as the default clock)', async (t) => {
  const bpftrace = findBpftrace('', REAL_HOST);
  const missing = missingPrerequisites(bpftrace ?? '', REAL_HOST);
  if (missing.length > 0 || CGROUP_V2 === undefined) {
    t.log(`SKIPPED: eBPF is not possible here: ${missing.join('; ') || 'no cgroup v2 hierarchy mounted'}`);
    t.pass();
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'dw-ebpf-rec-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const id = `bead${Date.now().toString(16)}`.padEnd(64, 'c');
  const scope = `${CGROUP_V2}/dw-rec-${process.pid}.slice`;
  const leaf = `${scope}/cri-containerd-${id}.scope`;
  mkdirSync(leaf, { recursive: true });
  t.teardown(() => {
    for (const d of [leaf, scope]) try { rmdirSync(d); } catch { /* still busy: removed when empty */ }
  });
  // What an operator runs to record: the agent's program, JSON lines, line-buffered, into a file.
  const path = join(dir, 'capture.jsonl');
  const out = openSync(path, 'w');
  const child = spawn(bpftrace!, ['-B', 'line', '-f', 'json', '-e', ebpfProgram({ dns: false }), '0'], { stdio: ['ignore', out, 'ignore'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', BPFTRACE_STRLEN: '200' } });
  closeSync(out);
  const exited = new Promise((r) => child.once('exit', r));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      await exited;
    }
  });
  const tag = `dw-rec-${process.pid}`;
  const started = Date.now();
  // bpftrace says it attached as it starts attaching: run the exec in the container until the file holds it.
  // The tag's bytes as they stand in the file: `\xNN` each, JSON-escaped.
  const recorded = JSON.stringify(hexOf(tag)).slice(1, -1);
  while (!readFileSync(path, 'utf8').includes(recorded)) {
    if (Date.now() - started > 90_000) throw new Error('bpftrace recorded no exec of the tag within 90 s');
    spawnSync('/bin/sh', ['-c', 'echo $$ > "$1/cgroup.procs" && exec /bin/true "$2"', 'sh', leaf, tag]);
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill('SIGINT');
  await exited;

  const { events } = await readAll(path, null);
  const mine = events.filter((e) => e.kind === 'exec' && e.process.args[0] === tag);
  t.true(mine.length >= 1, `the recording's exec of the tag: ${events.length} events read`);
  t.like(mine[0], { container: { id }, process: { exe: '/bin/true', name: 'true', args: [tag], parentName: 'node' } });
  t.true(Math.abs((mine[0]?.time ?? 0) - Date.now()) < 120_000, 'recorded on this host since its boot: its own clock gives wall-clock time');
});

test('an agent process reads a recording into the collector: learned while the window is open, an alert after it, image and pod from the CRI', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-ebpf-agent-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const image = 'registry.example.com/team/worker';
  const cri = await startFakeCri([{ id: ID, sandbox: 'sb-rec', name: 'worker', image: `${image}:2.0`, imageRef: `${image}@sha256:${'a'.repeat(64)}`, pod: { name: 'worker-5d8c', namespace: 'batch', uid: '00000000-0000-0000-0000-0000000000aa', labels: { app: 'worker' } } }]);
  t.teardown(() => cri.cleanup());
  // 10 minutes of a worker (learning window 2 minutes, no quiet period), then a shell it never ran.
  const lines: string[] = [];
  for (let i = 0; i < 10; i++) {
    lines.push(...exec(3600 + i * 60, 1000 + i * 2, 400, 'containerd-shim', '/usr/bin/worker', ['worker', '--once']));
    lines.push(connect(3600 + i * 60 + 1, 1000 + i * 2, [10, 96, 0, 20], 5432, 'worker'));
  }
  lines.push(...exec(3600 + 600, 2000, 1018, 'worker', '/bin/sh', ['sh', '-c', 'id']));
  const path = join(dir, 'capture.jsonl');
  writeFileSync(path, `${lines.join('\n')}\n`);

  const collector = await spawnCollector(t, join(dir, 'collector.db'));
  const agent = spawnCli(t, [
    'agent', '--source', `ebpf-file:${path}?boot=${BOOT}`, '--collector', `127.0.0.1:${collector.grpcPort}`, '--node', 'node-rec',
    '--state-dir', join(dir, 'agent'), '--learning-window', '2m', '--quiet-period', '0s', '--cri-socket', cri.target, '--http-listen', '127.0.0.1:0', '--exit-when-done',
  ]);
  t.is(await agent.exited, 0, agent.stderr.slice(-500));

  type Alert = { baselineKey: string; kind: string; reason: string; pods: string[]; nodes: string[]; process: { exe: string } | null };
  const alerts = await eventually(async () => {
    const items = (await getJson<{ items: Alert[] }>(`${collector.url}/api/v1/alerts`)).items;
    return items.length > 0 ? items : undefined;
  }, 20_000, 'the alert in the collector');
  t.is(alerts.length, 1, JSON.stringify(alerts));
  t.like(alerts[0], { baselineKey: image, kind: 'exec', reason: 'new-executable', pods: ['batch/worker-5d8c'], nodes: ['node-rec'], process: { exe: '/bin/sh' } });
  const baseline = await getJson<{ state: string; images: { repository: string; tag: string }[]; entries: { summary: string }[] }>(`${collector.url}/api/v1/baselines/${encodeURIComponent(image)}`);
  t.is(baseline.state, 'enforcing');
  t.like(baseline.images, [{ repository: image, tag: '2.0' }]);
  t.deepEqual(baseline.entries.map((e) => e.summary).sort(), ['/usr/bin/worker --once (parent containerd-shim, root)', 'egress tcp cluster:5432'].sort());
  await collector.stop();
});
