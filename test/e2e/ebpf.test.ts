/**
 * The built-in eBPF source end to end: a real agent process running real bpftrace (`--source ebpf`)
 * and a real collector process. A process runs inside a containerd-shaped cgroup v2 folder while the
 * image learns; a fake CRI server names that container's image and pod. Once the learning window has
 * closed in event time, the same program runs again (learned: no alert) and a new one runs (alert).
 * The collector must show the learned baseline and one alert, for the right image and pod.
 */
import test from 'ava';
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findBpftrace, missingPrerequisites, REAL_HOST } from '../../agent/sources/ebpf/prerequisites.js';
import { startFakeCri } from '../helpers/cri-server.js';
import { eventually, getJson, spawnCli, spawnCollector } from '../helpers/processes.js';

const CGROUP_V2 = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'].find((p) => existsSync(`${p}/cgroup.procs`) && existsSync(`${p}/cgroup.controllers`));
const IMAGE = 'registry.example.com/team/worker';
const TRUE = ['/bin/true', '/usr/bin/true'].find((p) => existsSync(p)) ?? '/bin/true';
const ECHO = ['/bin/echo', '/usr/bin/echo'].find((p) => existsSync(p)) ?? '/bin/echo';
// bpftrace reports the path handed to execve; the agent resolves it in the process's root (on a
// usrmerged Debian /bin is a link to usr/bin), so baselines and alerts name the files.
const TRUE_FILE = existsSync(TRUE) ? realpathSync(TRUE) : TRUE;
const ECHO_FILE = existsSync(ECHO) ? realpathSync(ECHO) : ECHO;

/** Why eBPF cannot run here, or null. As root, an unmounted tracefs is mounted first (as the DaemonSet's mount does). */
function ebpfUnavailable(): string | null {
  if (process.getuid?.() === 0 && !existsSync('/sys/kernel/tracing/events') && existsSync('/sys/kernel/tracing')) {
    spawnSync('mount', ['-t', 'tracefs', 'tracefs', '/sys/kernel/tracing'], { stdio: 'ignore' });
  }
  const missing = missingPrerequisites(findBpftrace('', REAL_HOST) ?? '', REAL_HOST);
  if (CGROUP_V2 === undefined) missing.push('no cgroup v2 hierarchy is mounted (/sys/fs/cgroup/unified or /sys/fs/cgroup)');
  return missing.length > 0 ? missing.join('; ') : null;
}

/** A runner child moved into the cgroup `leaf`: what it starts is in the container from its first instruction. */
async function startContainerRunner(leaf: string): Promise<{ run(exe: string, ...args: string[]): Promise<void>; child: ChildProcess }> {
  const child = fork(fileURLToPath(new URL('../helpers/cgroup-runner.js', import.meta.url)), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  await new Promise<void>((resolve, reject) => child.once('spawn', resolve).once('error', reject));
  writeFileSync(`${leaf}/cgroup.procs`, String(child.pid));
  let queue = Promise.resolve();
  const run = (exe: string, ...args: string[]) =>
    (queue = queue.then(
      () =>
        new Promise<void>((resolve, reject) => {
          child.once('message', (m) => {
            const r = m as { status: number | null; error: string | null };
            if (r.status === 0) resolve();
            else reject(new Error(`${exe} in the container's cgroup: status ${r.status} ${r.error ?? ''}`));
          });
          child.send({ exe, args });
        }),
    ));
  return { run, child };
}

/** The agent's event-time watermark (ms), from its /metrics. */
async function watermarkMs(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const m = /^driftwatch_agent_event_time_watermark_timestamp_seconds ([0-9.e+]+)$/m.exec(text);
  return m ? Number(m[1]) * 1000 : 0;
}

interface BaselineSummary {
  key: string;
  state: string;
  learnUntil: string;
  images: { repository: string; tag: string; digest: string }[];
  nodes: string[];
  processEntries: number;
}

test.serial('ebpf source: a containerd-cgroup process is learned into its image\'s baseline, and a new one after the window raises an alert', async (t) => {
  const why = ebpfUnavailable();
  if (why !== null) {
    t.log(`SKIPPED: eBPF is not possible here: ${why}`);
    t.pass();
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'dw-e2e-ebpf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const id = `e2eb${process.pid.toString(16)}${Date.now().toString(16)}`.padEnd(64, 'a');
  const scope = `${CGROUP_V2 as string}/dw-e2e-${process.pid}.slice`;
  const leaf = `${scope}/cri-containerd-${id}.scope`;
  mkdirSync(leaf, { recursive: true });
  t.teardown(() => {
    // Its processes have exited by now; an rmdir that still fails leaves an empty folder behind.
    for (const d of [leaf, scope]) try { rmdirSync(d); } catch { /* busy */ }
  });
  const cri = await startFakeCri([{
    id,
    sandbox: 'sb-e2e',
    name: 'worker',
    image: `${IMAGE}:3.1`,
    imageRef: `${IMAGE}@sha256:${'c'.repeat(64)}`,
    pod: { name: 'worker-7f9c4', namespace: 'batch', uid: '00000000-0000-0000-0000-00000000e2eb', labels: { app: 'worker' } },
  }]);
  t.teardown(() => cri.cleanup());

  // Started before the agent, so its own start is not an event; then moved into the container's cgroup.
  const container = await startContainerRunner(leaf);
  t.teardown(async () => {
    // Gone before the cgroup folders are removed (teardowns run last-registered first).
    if (container.child.exitCode === null && container.child.signalCode === null) {
      const exited = new Promise((r) => container.child.once('exit', r));
      container.child.kill('SIGKILL');
      await exited;
    }
  });

  const collector = await spawnCollector(t, join(dir, 'collector.db'));
  const agent = spawnCli(t, [
    'agent', '--source', 'ebpf', '--collector', `127.0.0.1:${collector.grpcPort}`, '--node', 'node-e2e',
    '--state-dir', join(dir, 'agent'), '--learning-window', '3s', '--quiet-period', '0s', '--http-listen', '127.0.0.1:0', '--cri-socket', cri.target,
  ]);
  // On failure, the agent's own account of what it saw is the first thing to read.
  t.teardown(() => {
    if (!t.passed) for (const l of agent.logs.slice(-10)) t.log(JSON.stringify(l).slice(0, 400));
  });
  const started = await agent.waitForLog((l) => l.msg === 'agent started');
  const metricsUrl = `http://${started.http as string}/metrics`;
  await agent.waitForLog((l) => l.msg === 'bpftrace attached', 30_000);

  // Learning: the container runs /bin/true with a distinctive argument. bpftrace says "attached" as it
  // starts attaching, so the first runs may go unseen: repeat until the collector shows the baseline.
  // The number is always 5 digits, so normalization turns it into `<n>` whatever the pid is (a pid
  // under 1000, as on a fresh CI machine, would stay literal and the summary would differ).
  const tag = `dw-e2e-${10_000 + (process.pid % 90_000)}`;
  let seen: BaselineSummary[] = [];
  t.teardown(() => {
    if (!t.passed) t.log('baselines in the collector', JSON.stringify(seen).slice(0, 2000));
  });
  let lastRun = 0;
  const learning = await eventually(async () => {
    if (Date.now() - lastRun >= 500) {
      await container.run(TRUE, tag);
      lastRun = Date.now();
    }
    seen = (await getJson<{ items: BaselineSummary[] }>(`${collector.url}/api/v1/baselines`)).items;
    const summary = seen.find((b) => b.key === IMAGE && b.processEntries >= 1);
    if (!summary) return undefined;
    // The whole run learned, not only some entry: while bpftrace is still attaching, an exec can come
    // through without its header lines (counted as a skipped record) and teach a partial entry.
    const detail = await getJson<{ entries: { summary: string; exe?: string }[] }>(`${collector.url}/api/v1/baselines/${encodeURIComponent(IMAGE)}`);
    return detail.entries.some((e) => e.exe === TRUE_FILE && e.summary.includes('dw-e2e-<n>')) ? summary : undefined;
  }, 20_000, 'the image\'s baseline in the collector');
  t.is(learning.state, 'learning');
  t.deepEqual(learning.nodes, ['node-e2e']);
  t.deepEqual(learning.images, [{ repository: IMAGE, tag: '3.1', digest: `sha256:${'c'.repeat(64)}` }], 'the image the CRI named for the cgroup\'s container id');
  const learnUntil = Date.parse(learning.learnUntil);

  // Wait until the agent has seen event time pass the end of the window: host execs move it on.
  await eventually(async () => {
    spawnSync(TRUE, [`${tag}-tick`]);
    return (await watermarkMs(metricsUrl)) >= learnUntil ? true : undefined;
  }, 20_000, 'event time past the learning window');

  // Enforcing: the learned program again (no alert), then one the image never ran.
  await container.run(TRUE, tag);
  await container.run(ECHO, '-n', tag);

  type Alert = { image: string; baselineKey: string; kind: string; reason: string; summary: string; example: string; pods: string[]; nodes: string[]; count: number; process: { exe: string } | null };
  const alerts = await eventually(async () => {
    const page = await getJson<{ items: Alert[] }>(`${collector.url}/api/v1/alerts`);
    const mine = page.items.filter((a) => a.baselineKey === IMAGE);
    return mine.some((a) => a.process?.exe === ECHO_FILE) ? mine : undefined;
  }, 20_000, 'an alert for the new program');
  t.is(alerts.length, 1, `only the new program is an alert: ${alerts.map((a) => a.summary).join('; ')}`);
  const [alert] = alerts as [Alert];
  t.like(alert, { image: IMAGE, baselineKey: IMAGE, kind: 'exec', reason: 'new-executable', nodes: ['node-e2e'], pods: ['batch/worker-7f9c4'], count: 1 });
  // The parent is the runner (node); the argument's number is normalized.
  t.is(alert.summary, `${ECHO_FILE} -n dw-e2e-<n> (parent node, root)`);
  t.true(alert.example.startsWith(`${ECHO_FILE} -n ${tag}`), alert.example);

  const baseline = await getJson<{ state: string; images: { repository: string; tag: string }[]; entries: { summary: string; exe?: string }[] }>(`${collector.url}/api/v1/baselines/${encodeURIComponent(IMAGE)}`);
  t.is(baseline.state, 'enforcing');
  t.true(baseline.entries.some((e) => e.exe === TRUE_FILE), `learned ${TRUE_FILE}: ${baseline.entries.map((e) => e.summary).join('; ')}`);
  t.false(baseline.entries.some((e) => e.exe === ECHO_FILE), 'what ran after the window is not learned');
  if (TRUE_FILE !== TRUE) {
    const text = await (await fetch(metricsUrl)).text();
    t.regex(text, /^driftwatch_agent_exe_resolutions_total\{source="ebpf",outcome="resolved"\} [1-9]/m, `${TRUE} was resolved to ${TRUE_FILE} in the container's root`);
  }
  t.like(baseline.images, [{ repository: IMAGE, tag: '3.1' }]);

  t.is(await agent.stop(), 0);
  await collector.stop();
});
