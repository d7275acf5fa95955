/**
 * One executable path whatever the source (core/event.ts's contract): the resolved file, as Falco's
 * `proc.exepath` gives it. Tetragon's `process.binary`, the eBPF source's exec'd file name and old
 * Falco's `proc.exe` are the path handed to execve (`/usr/bin/wget`, a symlink to `/bin/busybox`);
 * the agent resolves those inside the container's own root filesystem, reached through
 * `/proc/<pid>/root` of the process, or of another live process of the same container once it exited.
 *
 * The walk never lets the kernel follow a link: under `/proc/<pid>/root` an absolute target would be
 * resolved against the agent's root (the host), so a container could point `/usr/bin/x` at host
 * paths. Each component is lstat'ed and each link read here; an absolute target restarts at the
 * container's root, `..` stops at it, 40 links at most (the kernel's MAXSYMLINKS), 4,096 characters of
 * path pending and 256 lookups at most. Files are never opened. Mounts other than local disk filesystems (`SAFE_FILESYSTEMS`)
 * are not entered: an unanswering NFS or FUSE mount would stop the agent's synchronous pipeline.
 *
 * A path can change between the exec and the walk (a container rewrites its own files): a result
 * reached through a link is used only for events no older than every link and directory the walk
 * passed (their ctime, which nobody can set back), else the invoked path is kept (`changed`). The
 * residue: a change within the kernel's coarse clock tick (a few ms) of the exec, the cache below
 * (a result is reused for `ttlMs` without walking again), and a directory swapped for a link between
 * two of the walk's lstat calls (the kernel then follows it in the middle of the next one: at worst a
 * few lstat and readlink calls on host paths, and a path string in that container's own event).
 *
 * The process is always verified to be in the event's container (its /proc/<pid>/cgroup, before and
 * after the walk), so a pid reused by another container, or an event of another node, is never walked.
 * Processes no event named are found by scanning /proc (at most every 100 ms); a container that
 * stopped keeps the results of its last walks (its files cannot change any more). Sources name host
 * pids, so the agent resolves only when it shares the host's pid namespace (hostPID).
 *
 * Results are cached per (container id, invoked path), bounded. Where a path cannot be resolved the
 * event keeps the invoked path and the outcome is counted (`driftwatch_agent_exe_resolutions_total`);
 * no event is ever dropped here.
 */
import { closeSync, lstatSync, openSync, readSync, readdirSync, readlinkSync, statSync, type Stats } from 'node:fs';
import type { ActivityEvent } from '../../core/event.js';
import { readProcCgroup } from './cgroup.js';

/** What became of one path (an event's `exe` or `parentExe`). */
export type ExeOutcome =
  /** Replaced by the resolved file (a link, `..` or `//` on the way). */
  | 'resolved'
  /** Already the resolved file (no link on the way, or the kernel's own ` (deleted)` path). */
  | 'unchanged'
  /** Resolves through a link or directory changed after the event: kept as invoked. */
  | 'changed'
  /** Nothing there (dangling link, missing component): kept. */
  | 'not_found'
  /** Not walked: relative, too long, a link loop or chain over 40, a mount that is not a local disk filesystem. Kept. */
  | 'refused'
  /** The agent may not look into the process's root (no CAP_SYS_PTRACE): kept. */
  | 'denied'
  /** No live process of the container (or of the host) on this node: kept. */
  | 'gone'
  /** A recorded stream (replay source): its processes are not this node's. Kept. */
  | 'replay';

/** Every outcome, in a stable order (metric labels). */
export const EXE_OUTCOMES: readonly ExeOutcome[] = ['resolved', 'unchanged', 'changed', 'not_found', 'refused', 'denied', 'gone', 'replay'];

/** Bounds of the resolver. */
export const EXE_RESOLUTION_LIMITS = Object.freeze({
  /** Links followed in one walk (Linux's MAXSYMLINKS). */
  links: 40,
  /** Longest path walked, and most characters of path pending during a walk. */
  pathLength: 4096,
  /** Most components looked up in one walk (`/x/../x/../…` would otherwise cost one lstat per two characters). */
  lookups: 256,
  /** Most bytes of /proc/<pid>/mountinfo read (a container may create many mounts). */
  mountinfoBytes: 256 * 1024,
  /** Containers (and the host) remembered. */
  containers: 2_048,
  /** Paths cached per container, and in all. */
  pathsPerContainer: 512,
  paths: 32_768,
  /** Longer paths are resolved every time, never cached (the cache's memory stays bounded). */
  cachedPathLength: 512,
  /** How long a walk's result (and a container's root process and mounts) is reused. */
  ttlMs: 5_000,
  /** After no live process of a container was found, how long before its known pids are tried again. */
  retryMs: 1_000,
  /** Recently seen pids remembered per container (roots for events of processes that exited). */
  pidsPerContainer: 8,
  /** Recently seen processes tried per resolution (then one found by scanning /proc). */
  probes: 4,
  /** /proc is scanned for a container's processes at most this often, and at most this many processes. */
  scanIntervalMs: 100,
  scanProcesses: 65_536,
  /** cgroup files read per scan (processes new since the last one; the rest wait for the next scan). */
  scanReads: 4_096,
});

/** Filesystems whose lstat and readlink answer from local state: the walk enters no other mount. */
export const SAFE_FILESYSTEMS: ReadonlySet<string> = new Set(['overlay', 'ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'tmpfs', 'squashfs', 'erofs', 'zfs', 'f2fs']);

/** Mount points (as the process sees them, relative to its root) and their filesystem types. */
export type MountTable = ReadonlyMap<string, string>;

const OCTAL_ESCAPE = /\\([0-7]{3})/g;

/** Parse /proc/<pid>/mountinfo; the last mount on a mount point (the one on top) wins. */
export function parseMountInfo(text: string): MountTable {
  const mounts = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    // `36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw`: the mount point is
    // the fifth field, the type follows the ` - ` that ends the optional fields.
    const fields = line.split(' ');
    const dash = fields.indexOf('-', 6);
    if (fields.length < 7 || dash === -1 || dash + 1 >= fields.length) continue;
    const point = (fields[4] as string).replace(OCTAL_ESCAPE, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    mounts.set(point, fields[dash + 1] as string);
  }
  return mounts;
}

/** The result of walking one path inside a root. */
export interface Walk {
  outcome: 'resolved' | 'unchanged' | 'not_found' | 'refused' | 'denied' | 'gone';
  /** The resolved path when `resolved`, else the path given. */
  path: string;
  /** Latest ctime (ms) of the links read and the directories passed before the last one; -Infinity when no link was followed. */
  changedAt: number;
}

/** Why a walk stopped, from an fs error. */
function failure(err: unknown, atRoot: boolean): Walk['outcome'] {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return 'denied';
  if (atRoot && (code === 'ENOENT' || code === 'ESRCH')) return 'gone';
  if (code === 'ENOENT' || code === 'ENOTDIR') return 'not_found';
  return 'refused';
}

/**
 * Resolve `path` inside the directory `root` (`/proc/<pid>/root`, or any directory standing in for
 * a container's root), component by component (module doc). `mounts`, when given, are the mount
 * points as seen from that root: the walk refuses to enter one whose type is not in SAFE_FILESYSTEMS.
 */
export function resolveInRoot(root: string, path: string, mounts: MountTable | null): Walk {
  const keep = (outcome: Walk['outcome']): Walk => ({ outcome, path, changedAt: -Infinity });
  if (!path.startsWith('/') || path.length > EXE_RESOLUTION_LIMITS.pathLength || path.includes('\0')) return keep('refused');
  if (mounts && !SAFE_FILESYSTEMS.has(mounts.get('/') ?? '')) return keep('refused');
  let rootStat: Stats;
  try {
    // The one place the kernel follows a link: /proc/<pid>/root is the process's root itself.
    rootStat = statSync(root);
  } catch (err) {
    return keep(failure(err, true));
  }
  if (!rootStat.isDirectory()) return keep('refused');
  // Components still to walk, the next one last; and the directories reached, each a real one (no link).
  const pending = componentsReversed(path);
  let pendingLength = path.length;
  const reached: string[] = [];
  let here = '';
  let links = 0;
  let lookups = 0;
  // What decides the resolved text: the links read and the directories passed before the last of them.
  let dirsChangedAt = rootStat.ctimeMs;
  let changedAt = -Infinity;
  // Whether the walk ended on a regular file (not on a directory through a final `.` or `..`).
  let file = false;
  while (pending.length > 0) {
    const name = pending.pop() as string;
    pendingLength -= name.length + 1;
    file = false;
    if (name === '.') continue;
    if (name === '..') {
      // Clamped at the root; every directory reached is a real one, so `..` is its parent.
      reached.pop();
      here = reached.length === 0 ? '' : here.slice(0, here.lastIndexOf('/'));
      continue;
    }
    if (++lookups > EXE_RESOLUTION_LIMITS.lookups) return keep('refused');
    const next = `${here}/${name}`;
    if (mounts) {
      const type = mounts.get(next);
      if (type !== undefined && !SAFE_FILESYSTEMS.has(type)) return keep('refused');
    }
    let st: Stats | undefined;
    try {
      st = lstatSync(root + next, { throwIfNoEntry: false });
    } catch (err) {
      return keep(failure(err, false));
    }
    if (st === undefined) return keep('not_found');
    if (st.isSymbolicLink()) {
      if (++links > EXE_RESOLUTION_LIMITS.links) return keep('refused');
      let target: string;
      try {
        target = readlinkSync(root + next);
      } catch (err) {
        return keep(failure(err, false));
      }
      if (target === '') return keep('not_found');
      pendingLength += target.length + 1;
      if (pendingLength > EXE_RESOLUTION_LIMITS.pathLength) return keep('refused');
      changedAt = Math.max(changedAt, dirsChangedAt, st.ctimeMs);
      if (target.startsWith('/')) {
        // Absolute: from the container's root, never the agent's.
        reached.length = 0;
        here = '';
      }
      for (const c of componentsReversed(target)) pending.push(c);
      continue;
    }
    if (pending.length > 0) {
      if (!st.isDirectory()) return keep('not_found');
      if (st.ctimeMs > dirsChangedAt) dirsChangedAt = st.ctimeMs;
    } else if (!st.isFile()) {
      // An executable is a regular file; a directory or device at the end is not what ran.
      return keep('not_found');
    } else {
      file = true;
    }
    reached.push(name);
    here = next;
  }
  if (!file) return keep('not_found');
  if (here === path) return keep('unchanged');
  return { outcome: 'resolved', path: here, changedAt };
}

/** The non-empty components of a path, last first (so that pop() gives them in order). */
function componentsReversed(path: string): string[] {
  const out: string[] = [];
  const parts = path.split('/');
  for (let i = parts.length - 1; i >= 0; i--) if (parts[i] !== '') out.push(parts[i] as string);
  return out;
}

/** Read at most `max` bytes of a (procfs) file; null when it cannot be read. */
function readBounded(path: string, max: number): string | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const buf = Buffer.allocUnsafe(max);
    let got = 0;
    for (;;) {
      const n = readSync(fd, buf, got, max - got, null);
      if (n === 0 || got + n >= max) {
        got += n;
        break;
      }
      got += n;
    }
    // A table cut short could hide a mount: past the bound, nothing is walked.
    return got >= max ? null : buf.toString('utf8', 0, got);
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/** Resolves the executables of a batch's events in place. */
export interface ExecutableResolver {
  /** Replace `exe` and `parentExe` of each event by the resolved file where it can be known. */
  resolve(events: readonly ActivityEvent[], source: string): void;
}

/** Resolves nothing (tests and benches that do not wire the resolver). */
export const NO_EXECUTABLE_RESOLUTION: ExecutableResolver = Object.freeze({ resolve() {} });

/** Settings of the resolver. */
export interface ExecutableResolverOptions {
  /** Where the node's processes are (tests point it at a directory shaped like /proc). */
  procRoot?: string;
  /**
   * Whether the agent sees the host's processes (hostPID). Default: whether `<procRoot>/2` is the
   * kernel's kthreadd, which only the host's pid namespace shows. Sources name host pids: in a pod of
   * its own the agent would find other processes under those numbers (its own, which look like host
   * processes in a private cgroup namespace), so then nothing is resolved and every path counts as `gone`.
   */
  hostPidNamespace?: boolean;
  /** Sources whose processes are not this node's (replays): counted, never resolved. */
  isReplay?: (source: string) => boolean;
}

/** Collaborators. */
export interface ExecutableResolverDeps {
  /** Wall clock (cache lifetimes). */
  now: () => number;
  /** Count `n` resolutions of `source` with `outcome` (once per batch and outcome). */
  count: (source: string, outcome: ExeOutcome, n: number) => void;
}

interface Cached {
  outcome: Walk['outcome'];
  path: string;
  changedAt: number;
  /** Walked again after this (wall clock); until then, and while the container has no live process, reused. */
  until: number;
}

interface Root {
  pid: number;
  mounts: MountTable;
  until: number;
}

/** What the resolver keeps per container ('' for the host). */
interface ContainerPaths {
  paths: Map<string, Cached>;
  /** Recently seen pids, newest last. */
  pids: number[];
  root: Root | null;
  /** No live process found: until when the known pids are not tried again (0: try). */
  noRootUntil: number;
  /** False for an id that cannot name a container (its events are counted as gone). */
  valid: boolean;
  /** The scan of /proc (its time) that showed no process of the container, NaN while none did. */
  absentAt: number;
}

const DELETED = ' (deleted)';
const CONTAINER_ID = /^[0-9a-f]{12,64}$/;

/** Create the resolver (module doc). */
export function createExecutableResolver(options: ExecutableResolverOptions, deps: ExecutableResolverDeps): ExecutableResolver {
  const procRoot = options.procRoot ?? '/proc';
  const isReplay = options.isReplay ?? (() => false);
  const hostPids = options.hostPidNamespace ?? readBounded(`${procRoot}/2/comm`, 64) === 'kthreadd\n';
  const L = EXE_RESOLUTION_LIMITS;
  const containers = new Map<string, ContainerPaths>();
  let cachedPaths = 0;
  const counts = new Float64Array(EXE_OUTCOMES.length);
  const index = Object.fromEntries(EXE_OUTCOMES.map((o, i) => [o, i])) as Record<ExeOutcome, number>;
  const add = (i: number, n: number) => {
    counts[i] = (counts[i] as number) + n;
  };
  // The node's processes by container, from the last scan of /proc: pid → container id ('' host,
  // '?' neither), and container id (all 64 characters, and the first 12) → its lowest pid.
  let owners = new Map<number, string>();
  let pidOf = new Map<string, number>();
  let scannedAt = -Infinity;

  /** Whether `pid` is (still) a process of container `id` ('' the host) on this node. */
  function belongs(pid: number, id: string): boolean {
    const owner = readProcCgroup(pid, procRoot);
    if (!owner) return false;
    // Falco and Tetragon name a container by the first 12 characters of its id, eBPF by all 64.
    return id === '' ? owner.kind === 'host' : owner.kind === 'container' && owner.id.startsWith(id);
  }

  /**
   * A process of container `id` that no event named: its first process (the container's init lives
   * as long as the container). /proc is scanned at most every `scanIntervalMs`; a pid already known
   * from the last scan is not read again (a pid found reused is forgotten, so the next scan reads it).
   */
  function livePidOf(id: string, now: number): number {
    const known = pidOf.get(id);
    if (known !== undefined && belongs(known, id)) return known;
    if (known !== undefined) owners.delete(known);
    if (now - scannedAt < L.scanIntervalMs) return 0;
    scannedAt = now;
    let names: string[];
    try {
      names = readdirSync(procRoot);
    } catch {
      return 0;
    }
    const nextOwners = new Map<number, string>();
    const nextPidOf = new Map<string, number>();
    let reads = 0;
    for (const name of names) {
      if (nextOwners.size >= L.scanProcesses) break;
      const first = name.charCodeAt(0);
      if (first < 49 || first > 57) continue;
      const pid = Number(name);
      if (!Number.isSafeInteger(pid)) continue;
      let owner = owners.get(pid);
      if (owner === undefined) {
        // A storm of new processes costs one bounded scan at a time.
        if (reads >= L.scanReads) continue;
        reads++;
        const o = readProcCgroup(pid, procRoot);
        if (o === null) continue;
        owner = o.kind === 'container' ? o.id : o.kind === 'host' ? '' : '?';
      }
      nextOwners.set(pid, owner);
      if (owner.length === 64 && !nextPidOf.has(owner)) {
        nextPidOf.set(owner, pid);
        nextPidOf.set(owner.slice(0, 12), pid);
      }
    }
    owners = nextOwners;
    pidOf = nextPidOf;
    return pidOf.get(id) ?? 0;
  }

  function containerOf(id: string): ContainerPaths {
    let c = containers.get(id);
    if (c) return c;
    if (containers.size >= L.containers) {
      const oldest = containers.keys().next().value as string;
      cachedPaths -= (containers.get(oldest) as ContainerPaths).paths.size;
      containers.delete(oldest);
    }
    c = { paths: new Map(), pids: [], root: null, noRootUntil: 0, valid: id === '' || CONTAINER_ID.test(id), absentAt: NaN };
    containers.set(id, c);
    return c;
  }

  /** Remember a pid seen in the container; true when it was not among the remembered ones. */
  function rememberPid(c: ContainerPaths, pid: number): boolean {
    const pids = c.pids;
    if (pid <= 0 || pids[pids.length - 1] === pid) return false;
    const at = pids.indexOf(pid);
    if (at !== -1) pids.splice(at, 1);
    else if (pids.length >= L.pidsPerContainer) pids.shift();
    pids.push(pid);
    return at === -1;
  }

  /**
   * A live process of the container to walk in, verified now: the event's own (its root, even if it
   * chrooted), else one seen recently, else one found in /proc (the host: pid 1, with hostPID).
   */
  function rootOf(c: ContainerPaths, id: string, ev: ActivityEvent, newPid: boolean, now: number): Root | null {
    if (c.root && c.root.until > now && belongs(c.root.pid, id)) return c.root;
    c.root = null;
    // /proc was read well after the event and showed no process of the container: all are gone
    // (the container stopped, or ran on another node). Nothing to look at, not even the event's pid.
    if (id !== '' && scannedAt >= ev.time + L.retryMs && !pidOf.has(id)) {
      c.absentAt = scannedAt;
      return null;
    }
    const pid = ev.process.pid;
    // Nothing was found a moment ago: only a pid not seen before is worth a look until the retry.
    const retry = c.noRootUntil <= now;
    if (!retry && !newPid) return null;
    const tried = new Set<number>();
    const attempt = (p: number): Root | null => {
      if (p <= 0 || tried.has(p)) return null;
      tried.add(p);
      if (!belongs(p, id)) return null;
      const text = readBounded(`${procRoot}/${p}/mountinfo`, L.mountinfoBytes);
      return text === null ? null : { pid: p, mounts: parseMountInfo(text), until: now + L.ttlMs };
    };
    let root = attempt(pid);
    if (!root && retry) {
      for (let i = c.pids.length - 1; i >= 0 && !root && tried.size < L.probes; i--) root = attempt(c.pids[i] as number);
      if (!root) root = attempt(id === '' ? 1 : livePidOf(id, now));
    }
    if (!root) {
      if (retry) c.noRootUntil = now + L.retryMs;
      return null;
    }
    c.noRootUntil = 0;
    c.root = root;
    return root;
  }

  /** Walk `path` in the container's root (its process verified before and after); cached. */
  function walk(c: ContainerPaths, id: string, path: string, ev: ActivityEvent, newPid: boolean, now: number): Cached | null {
    if (!path.startsWith('/') || path.length > L.pathLength) return { outcome: 'refused', path, changedAt: -Infinity, until: now };
    const root = rootOf(c, id, ev, newPid, now);
    if (root === null) return null;
    const w = resolveInRoot(`${procRoot}/${root.pid}/root`, path, root.mounts);
    // The process may have exited during the walk (and its pid been reused): walked again next time.
    if (w.outcome === 'gone' || !belongs(root.pid, id)) {
      c.root = null;
      return null;
    }
    const cached: Cached = { ...w, until: now + L.ttlMs };
    if (path.length <= L.cachedPathLength) {
      if (c.paths.delete(path)) cachedPaths--;
      if (c.paths.size >= L.pathsPerContainer) {
        c.paths.delete(c.paths.keys().next().value as string);
        cachedPaths--;
      }
      if (cachedPaths >= L.paths) {
        // Full: the container remembered longest gives up its paths.
        for (const other of containers.values()) {
          if (other.paths.size === 0) continue;
          cachedPaths -= other.paths.size;
          other.paths.clear();
          break;
        }
      }
      c.paths.set(path, cached);
      cachedPaths++;
    }
    return cached;
  }

  /** The path an event should carry for `path`, counting the outcome. */
  function resolvePath(c: ContainerPaths, id: string, path: string, ev: ActivityEvent, newPid: boolean, now: number): string {
    if (path.endsWith(DELETED)) {
      // The kernel's path of an unlinked executable: resolved already, and a file by that name proves nothing.
      add(index.unchanged, 1);
      return path;
    }
    let r = c.paths.get(path);
    if (r === undefined || r.until <= now) {
      // With no live process left, the container's files cannot have changed since the last walk: it stands.
      const walked = walk(c, id, path, ev, newPid, now);
      if (walked !== null) r = walked;
      else if (r === undefined) {
        add(index.gone, 1);
        return path;
      }
    }
    if (r.outcome !== 'resolved') {
      add(index[r.outcome], 1);
      return path;
    }
    // Reached through something changed after the event: what ran then may have been another file.
    if (Math.floor(r.changedAt) > ev.time) {
      add(index.changed, 1);
      return path;
    }
    add(index.resolved, 1);
    return r.path;
  }

  return {
    resolve(events, source) {
      if (events.length === 0) return;
      // A replay's processes are not this node's; without the host's pids, the pids events name are not theirs.
      if (isReplay(source) || !hostPids) {
        let n = 0;
        for (const ev of events) n += (ev.process.exe !== '' ? 1 : 0) + (ev.process.parentExe !== '' ? 1 : 0);
        if (n > 0) deps.count(source, hostPids ? 'replay' : 'gone', n);
        return;
      }
      const now = deps.now();
      counts.fill(0);
      let gone = 0;
      for (const ev of events) {
        const p = ev.process;
        if (p.exe === '' && p.parentExe === '') continue;
        const id = ev.container ? ev.container.id : '';
        const c = containers.get(id) ?? containerOf(id);
        // The hot case of a container not on this node (or stopped, with nothing walked while it ran):
        // the latest scan of /proc, well after the event, showed none of its processes.
        if (!c.valid || (c.absentAt === scannedAt && ev.time + L.retryMs <= scannedAt && c.paths.size === 0)) {
          gone += (p.exe !== '' ? 1 : 0) + (p.parentExe !== '' ? 1 : 0);
          continue;
        }
        const newPid = rememberPid(c, p.pid);
        if (p.exe !== '') p.exe = resolvePath(c, id, p.exe, ev, newPid, now);
        if (p.parentExe !== '') p.parentExe = resolvePath(c, id, p.parentExe, ev, false, now);
      }
      add(index.gone, gone);
      for (let i = 0; i < counts.length; i++) if (counts[i]) deps.count(source, EXE_OUTCOMES[i] as ExeOutcome, counts[i] as number);
    },
  };
}
