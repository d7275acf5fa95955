/**
 * `driftwatch verify --baseline FILE -- COMMAND…`: run COMMAND under the agent's own eBPF program
 * and hand over every exec and connection of its process tree, decoded by the agent's decoder.
 *
 * Scope: the tree is a fresh cgroup v2 directory. Driftwatch moves itself into it just long enough
 * to fork the command (spawn returns after the child's exec), then moves back: the command and
 * everything it starts, however short-lived and however deep (a fork that never execs included),
 * carry that cgroup's id in every record the kernel emits, from the command's first instruction.
 * Sub-cgroups the command creates under it are found by their id. Pids alone would miss a child of
 * a process that forked without exec and exited before its own child ran.
 *
 * Order of a run: bpftrace attached (its `attached_probes` record) → the command → its exit → any
 * process of the tree still running is killed (and counted) → a marker exec from outside the tree
 * shows bpftrace has read past the end → bpftrace stopped (SIGINT: it reads what its buffers still
 * hold before exiting) → the last execs assembled. Lost events (the kernel's perf buffers overflowed)
 * are counted: the check is then incomplete, and the caller says so.
 *
 * The command's own process is started by Driftwatch, not by a container runtime: its execs get the
 * parent `rootParent` (default '': no known parent, as a container's entrypoint has from its runtime),
 * so that the baseline's entrypoint entries can match. No shell: the command is an argument vector.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseMountInfo, resolveInRoot, type MountTable } from '../../agent/attribution/container-path.js';
import type { CgroupOwner } from '../../agent/attribution/cgroup.js';
import { EBPF_LIMITS, createEbpfDecoder, monotonicToEpoch, type ProcessResolver } from '../../agent/sources/ebpf/decode.js';
import { REAL_HOST, findBpftrace, memoryControllerIndex, missingPrerequisites } from '../../agent/sources/ebpf/prerequisites.js';
import { createProcResolver } from '../../agent/sources/ebpf/proc.js';
import { bpftraceInvocation } from '../../agent/sources/ebpf/source.js';
import { createLineSplitter } from '../../agent/sources/lines.js';
import type { ActivityEvent } from '../../core/event.js';
import { countingContext, type ReadCounts } from './events-file.js';

/** The container id the command's tree is reported under (no runtime names it). */
export const TREE_CONTAINER = 'driftwatch-verify';

/** The environment cannot run a traced command (exit 2): not root, no bpftrace, no cgroup v2… */
export class CommandModeError extends Error {
  readonly code = 'environment' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CommandModeError';
  }
}

/** Settings of a traced run. */
export interface TraceOptions {
  /** bpftrace's path ('' finds it on PATH). */
  bpftrace: string;
  /** Trace DNS answers, so connects carry the names they were resolved from (as the agent does by default). */
  dns: boolean;
  /** The parent the command's own execs are reported with. */
  rootParent: string;
  /** Where the command's output goes (default: this process's). */
  stdio?: 'inherit' | 'ignore';
  /**
   * Who the command runs as (null: root, as verify). Not root by choice: a root command can write
   * its pid into any cgroup.procs and leave the tree's cgroup, and with it the check.
   */
  user?: { uid: number; gid: number } | null;
}

/** What became of the run. */
export interface TraceOutcome {
  /** The command's exit code, or null when a signal ended it. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Processes of the tree still running after the command exited, killed. */
  killed: number;
  /** Events of processes outside the tree, seen and not checked. */
  outside: number;
  /** Of those, events of a pid that was the tree's: a process that left the tree's cgroup (the check is incomplete). */
  escaped: number;
  /** Sub-cgroups of the tree's cgroup that its processes ran in. */
  subCgroups: number;
  /** Why bpftrace stopped before it was asked to (an interrupt, a crash): the check is incomplete. Null when it did not. */
  traceStopped: string | null;
}

/** Most pids of the tree remembered to tell a process that left its cgroup. */
const MAX_TREE_PIDS = 65_536;
/** Most cgroup directories walked under the tree's (the command's own sub-cgroups). */
const MAX_SUBTREE = 256;
/** Cgroup ids known not to be the tree's, remembered (emptied when full). */
const MAX_OUTSIDE_IDS = 4_096;
/** How long marker execs may take to come through bpftrace (a loaded machine) before giving up. */
const MARKER_WAIT_MS = 120_000;
/** A new marker exec this often until one comes through. */
const MARKER_EVERY_MS = 250;

/** The mount point of the cgroup v2 hierarchy (pure v2 or the `unified` one of a hybrid host), or null. */
export function cgroupV2Root(mountinfo: string): string | null {
  for (const [point, type] of parseMountInfo(mountinfo)) if (type === 'cgroup2') return point;
  return null;
}

/** Everything that stops command mode here, each a sentence; empty when it can run. */
export function commandModeMissing(bpftrace: string): { missing: string[]; bpftrace: string; cgroupRoot: string | null } {
  const found = findBpftrace(bpftrace, REAL_HOST) ?? '';
  const missing = process.getuid?.() === 0 ? [] : ['not root: tracing a command needs root (bpftrace, and a cgroup of its own)'];
  missing.push(...missingPrerequisites(found, REAL_HOST).filter((m) => !(missing.length > 0 && m.startsWith('not privileged'))));
  let root: string | null = null;
  try {
    root = cgroupV2Root(readFileSync('/proc/self/mountinfo', 'utf8'));
  } catch {
    // reported below
  }
  if (root === null) missing.push('no cgroup v2 hierarchy is mounted (cgroup2 at /sys/fs/cgroup or /sys/fs/cgroup/unified): the command\'s tree is scoped by a cgroup of its own');
  return { missing, bpftrace: found, cgroupRoot: root };
}

/** The cgroup v2 directory of this process. */
function ownCgroup(root: string): string {
  const line = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'));
  if (line === undefined) throw new CommandModeError('this process has no cgroup v2 entry in /proc/self/cgroup');
  return join(root, line.slice(3));
}

/** The cgroup id (the directory's inode) of `dir`, as bpftrace prints it. */
function cgroupId(dir: string): string {
  return statSync(dir, { bigint: true }).ino.toString();
}

/** Ids of `dir` and the directories under it (bounded). */
function subtreeIds(dir: string): Set<string> {
  const ids = new Set<string>();
  const queue = [dir];
  while (queue.length > 0 && ids.size < MAX_SUBTREE) {
    const d = queue.shift() as string;
    try {
      ids.add(cgroupId(d));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) queue.push(join(d, e.name));
    } catch {
      // gone meanwhile
    }
  }
  return ids;
}

/** Pids in `dir` and its sub-cgroups. */
function pidsIn(dir: string): number[] {
  const pids: number[] = [];
  const queue = [dir];
  while (queue.length > 0) {
    const d = queue.shift() as string;
    try {
      for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (/^\d+$/.test(l)) pids.push(Number(l));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) queue.push(join(d, e.name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Remove `dir` and its sub-cgroups (empty by now), deepest first. */
function removeCgroup(dir: string): void {
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroup(join(dir, e.name));
    rmdirSync(dir);
  } catch {
    // Busy or gone: an empty directory left behind harms nothing.
  }
}

/** Resolve after `ms`. */
const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Kill what is left in the tree's cgroup; resolves with how many were running, once none is. */
async function killLeftovers(dir: string): Promise<number> {
  const first = pidsIn(dir);
  if (first.length === 0) return 0;
  const kill = join(dir, 'cgroup.kill');
  for (let pids = first; pids.length > 0; pids = pidsIn(dir)) {
    // cgroup.kill (Linux 5.14+) kills the whole subtree at once, forks in flight included.
    if (existsSync(kill)) writeFileSync(kill, '1');
    else for (const pid of pids) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    await pause(20);
  }
  return first.length;
}

/** Executables as the agent resolves them in a process's root: the tree shares this host's root. */
function resolveExecutables(ev: ActivityEvent, mounts: MountTable): void {
  const p = ev.process;
  for (const field of ['exe', 'parentExe'] as const) {
    if (!p[field].startsWith('/')) continue;
    const walk = resolveInRoot('/', p[field], mounts);
    // A link changed after the event may not have been the one exec'd: keep what was invoked (container-path.ts).
    if (walk.outcome === 'resolved' && walk.changedAt <= ev.time) p[field] = walk.path;
  }
}

/**
 * Run `argv` traced; hand every event of its tree to `onEvent`. Throws CommandModeError when the
 * environment cannot (the message names every missing prerequisite) or the command cannot start.
 */
export async function traceCommand(argv: readonly string[], options: TraceOptions, counts: ReadCounts, onEvent: (ev: ActivityEvent) => void): Promise<TraceOutcome> {
  const env = commandModeMissing(options.bpftrace);
  if (env.missing.length > 0) throw new CommandModeError(`cannot trace the command: ${env.missing.join('; ')}`);
  const root = env.cgroupRoot as string;
  const home = ownCgroup(root);
  const dir = join(root, `driftwatch-verify-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    mkdirSync(dir);
  } catch (err) {
    throw new CommandModeError(`cannot create a cgroup for the command under ${root}: ${(err as Error).message} (command mode needs a writable cgroup v2 hierarchy)`, { cause: err });
  }
  try {
    return await traced(argv, options, counts, onEvent, { bpftrace: env.bpftrace, dir, home });
  } finally {
    removeCgroup(dir);
  }
}

async function traced(argv: readonly string[], options: TraceOptions, counts: ReadCounts, onEvent: (ev: ActivityEvent) => void, where: { bpftrace: string; dir: string; home: string }): Promise<TraceOutcome> {
  const { dir, home } = where;
  const tree = subtreeIds(dir);
  const outsideIds = new Set<string>();
  let subCgroups = 0;
  const proc = createProcResolver();
  const inTree = (id: string): boolean => {
    if (tree.has(id)) return true;
    if (outsideIds.has(id)) return false;
    // A cgroup id not seen before: a sub-cgroup the command made, or anyone else's.
    for (const sub of subtreeIds(dir)) {
      if (!tree.has(sub)) subCgroups++;
      tree.add(sub);
    }
    if (tree.has(id)) return true;
    if (outsideIds.size >= MAX_OUTSIDE_IDS) outsideIds.clear();
    outsideIds.add(id);
    return false;
  };
  const resolver: ProcessResolver = {
    owner: (_pid, id): CgroupOwner => (inTree(id) ? { kind: 'container', id: TREE_CONTAINER, runtime: 'unknown', podUid: '' } : { kind: 'host' }),
    exe: (pid) => proc.exe(pid),
  };
  const ctx = countingContext(counts, hostname());
  const decoder = createEbpfDecoder({ ctx, source: 'ebpf', clock: monotonicToEpoch(), resolver, now: Date.now });
  let mounts: MountTable = new Map();
  try {
    mounts = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  } catch {
    // Then no mount is known to be unsafe: resolution walks local paths only anyway.
  }

  let memoryIndex = 0;
  try {
    memoryIndex = memoryControllerIndex(readFileSync('/proc/cgroups', 'utf8'));
  } catch {
    // No v1 controllers.
  }
  const run = bpftraceInvocation({ dns: options.dns, memoryIndex });
  const bpf = spawn(where.bpftrace, run.args, { stdio: ['ignore', 'pipe', 'pipe'], env: run.env });
  let stderrTail = '';
  bpf.stderr!.setEncoding('utf8');
  bpf.stderr!.on('data', (s: string) => (stderrTail = (stderrTail + s).slice(-4096)));
  const bpfClosed = new Promise<{ code: number | null; signal: string | null; error?: Error }>((resolve) => {
    bpf.once('error', (error) => resolve({ code: null, signal: null, error }));
    bpf.once('close', (code, signal) => resolve({ code, signal }));
  });
  let attached!: () => void;
  const attachedP = new Promise<void>((r) => (attached = r));
  let rootPid = -1;
  // Markers: execs from outside the tree whose record proves bpftrace reports what happens now.
  const markers = new Set<number>();
  let markerSeen: (() => void) | null = null;
  let outside = 0;
  let escaped = 0;
  // Pids seen in the tree (bounded): an event of one of them outside the tree is a process that left it.
  const treePids = new Set<number>();

  const deliver = () => {
    for (const ev of decoder.take()) {
      if (ev.kind === 'exec' && markers.delete(ev.process.pid)) markerSeen?.();
      if (ev.container?.id !== TREE_CONTAINER) {
        outside++;
        if (treePids.has(ev.process.pid) || ev.process.pid === rootPid) escaped++;
        continue;
      }
      if (treePids.size < MAX_TREE_PIDS) treePids.add(ev.process.pid);
      if (ev.kind === 'exec') {
        resolveExecutables(ev, mounts);
        if (ev.process.pid === rootPid) {
          ev.process.parentExe = options.rootParent;
          ev.process.parentName = options.rootParent;
        }
      }
      onEvent(ev);
    }
  };
  /** Resolves (null) once a marker exec started now came through bpftrace; markers repeat until one does. */
  const sync = async (): Promise<null> => {
    const seen = new Promise<void>((r) => (markerSeen = r));
    const deadline = Date.now() + MARKER_WAIT_MS;
    for (;;) {
      const marker = spawn(process.execPath, ['--version'], { stdio: 'ignore' });
      if (marker.pid !== undefined) markers.add(marker.pid);
      const done = await Promise.race([seen.then(() => true), pause(MARKER_EVERY_MS).then(() => false), bpfClosed.then(() => true)]);
      if (done) break;
      if (Date.now() > deadline) throw new CommandModeError(`bpftrace (${where.bpftrace}) reported none of this process's marker executions within ${MARKER_WAIT_MS / 1000} s: it does not see what runs here`);
    }
    markerSeen = null;
    markers.clear();
    return null;
  };
  const splitter = createLineSplitter(EBPF_LIMITS.line, {
    line: (text) => {
      if (text.includes('"attached_probes"')) attached();
      decoder.line(text);
    },
    reject: (reason) => ctx.rejected(reason, 'bpftrace line'),
  });
  bpf.stdout!.on('data', (chunk: Buffer) => {
    splitter.push(chunk);
    deliver();
  });
  const tick = setInterval(() => {
    decoder.expire(Date.now(), false);
    deliver();
  }, EBPF_LIMITS.assembleMs);

  try {
    // bpftrace reports its probes attached before its output buffers are read: events of the first
    // moments after are lost silently. A marker exec that comes through shows it sees what happens.
    const first = await Promise.race([attachedP.then(() => sync()), bpfClosed]);
    if (first !== null) {
      const why = first.error?.message ?? stderrTail.split('\n').filter((l) => l !== '' && !l.includes('RLIMIT_MEMLOCK')).slice(-5).join('; ');
      throw new CommandModeError(`bpftrace (${where.bpftrace}) stopped before it attached its probes: ${why || `exit ${first.code ?? first.signal}`}`);
    }
    const child = startInCgroup(argv, dir, home, options.stdio ?? 'inherit', options.user ?? null);
    rootPid = child.pid ?? -1;
    const started = await new Promise<Error | null>((resolve) => {
      child.once('spawn', () => resolve(null));
      child.once('error', (err) => resolve(err));
    });
    if (started) throw new CommandModeError(`cannot run ${JSON.stringify(argv[0])}: ${started.message}`, { cause: started });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
    const killed = await killLeftovers(dir);
    // Ctrl-C reaches bpftrace too (one process group): what ran after it stopped was not seen.
    const early = await Promise.race([bpfClosed, pause(0).then(() => null)]);

    // A marker exec seen after the tree's end: bpftrace has read past it (the buffers of other CPUs
    // are read in the same pass, and SIGINT makes bpftrace read what is left before it exits).
    await Promise.race([sync(), bpfClosed]);
    bpf.kill('SIGINT');
    await bpfClosed;
    splitter.end();
    decoder.expire(Date.now(), true);
    deliver();
    const traceStopped = early === null ? null : `bpftrace stopped before the command's tree ended (${early.error?.message ?? (early.signal !== null ? `signal ${early.signal}` : `exit ${early.code}`)}): what ran after that was not checked`;
    return { exitCode: exit.code, signal: exit.signal, killed, outside, escaped, subCgroups, traceStopped };
  } finally {
    clearInterval(tick);
    if (bpf.exitCode === null && bpf.signalCode === null) bpf.kill('SIGTERM');
  }
}

/**
 * Spawn `argv` with this process inside `dir`, so that the child is there from its fork on; then
 * move back to `home`. spawn returns once the child has exec'd (or failed to), so no instruction
 * of this process's own work after it runs in the tree's cgroup.
 */
function startInCgroup(argv: readonly string[], dir: string, home: string, stdio: 'inherit' | 'ignore', user: { uid: number; gid: number } | null): ChildProcess {
  try {
    writeFileSync(join(dir, 'cgroup.procs'), String(process.pid));
  } catch (err) {
    throw new CommandModeError(`cannot enter the command's cgroup ${dir}: ${(err as Error).message}`, { cause: err });
  }
  try {
    // libuv drops the supplementary groups when it sets the ids (setgroups(0) before setgid/setuid).
    return spawn(argv[0] as string, argv.slice(1), { stdio, ...(user && { uid: user.uid, gid: user.gid }) });
  } finally {
    writeFileSync(join(home, 'cgroup.procs'), String(process.pid));
  }
}
