/**
 * The one event model. Every source converts its records into an ActivityEvent at the edge;
 * nothing past a source sees Falco, Tetragon or eBPF JSON.
 */

/** What a process did. `dns` is reserved for a later source. */
export type EventKind = 'exec' | 'connect' | 'accept' | 'listen';

/** All kinds, in a stable order (used for validation and metric labels). */
export const EVENT_KINDS: readonly EventKind[] = ['exec', 'connect', 'accept', 'listen'];

/** A container image reference split into its parts; any part may be unknown (''). */
export interface ImageRef {
  /** Canonical repository, e.g. `docker.io/library/nginx`. '' when unknown. */
  repository: string;
  tag: string;
  digest: string;
}

/** The container an event happened in; absent for host events. */
export interface ContainerInfo {
  id: string;
  name: string;
  image: ImageRef;
}

/** Kubernetes pod context, when the source or attribution knows it. */
export interface PodInfo {
  namespace: string;
  name: string;
  labels: Readonly<Record<string, string>>;
  /** Owning workload (e.g. `Deployment/web`) when known, else ''. */
  workload: string;
}

/**
 * The process that did the thing. Unknown strings are '', unknown numbers -1.
 *
 * The field contract, the same for every source, so that one activity gives one entry whichever
 * tool saw it (test/agent/one-activity.test.ts feeds one through Falco, Tetragon and eBPF):
 *
 * | field        | meaning                                   | Falco                    | Tetragon               | eBPF                       |
 * | ------------ | ----------------------------------------- | ------------------------ | ---------------------- | -------------------------- |
 * | `exe`        | the executable file, resolved (symlinks followed in the container's root) | `proc.exepath`, else `proc.exe` when it is an absolute path | `process.binary` | the exec'd file name |
 * | `name`       | the name it was invoked as: the kernel's comm, the basename of the exec'd path cut at 15 characters | `proc.name`, else the first word of `proc.cmdline` | comm of `binary` | comm of the file name |
 * | `args`       | argv without argv[0], split at whitespace (see splitArguments) | `proc.cmdline` / `proc.args` | `arguments` (quoted ones unquoted first) | argv |
 * | `parentExe`  | the parent's executable file, resolved like `exe` | `proc.pexepath`, else `proc.pexe` | `parent.binary` | the parent's remembered exec, else /proc/<ppid>/exe |
 * | `parentName` | the parent's comm                         | `proc.pname`             | comm of `parent.binary` | the parent's comm      |
 * | `uid`        | real uid; -1 unknown. A source that gives only the user name `root` sets 0 (the name names the class); other names stay -1 | `user.uid` | `process.uid` | the exec's uid |
 *
 * Executable: the resolved file, decided once for every source. Falco's `proc.exepath` is the
 * kernel's resolved executable (a busybox applet run as `/usr/bin/wget` shows `/bin/busybox`, with
 * `proc.name` `wget`). Tetragon's `binary`, the eBPF source's file name (and an old Falco's
 * `exepath`, or `proc.exe`) are the path handed to execve (`bprm->filename`: the symlink
 * `/usr/bin/wget`); the decoders take them as they are and the agent's pipeline resolves `exe` and
 * `parentExe` of every event inside the process's container root (agent/attribution/container-path.ts), so a
 * symlinked applet is `/bin/busybox` with the name `wget` from all three, and the multi-call logic
 * (core) reads the applet from `name`. Where the agent cannot resolve a path (the container stopped
 * before anything of it was resolved, a replay of another node's events, a link changed after the
 * exec, no access to /proc/<pid>/root) the path stays as the source gave it, and that is counted
 * (`driftwatch_agent_exe_resolutions_total{outcome}`).
 *
 * Arguments: Falco joins argv with spaces and cannot say where one argument ended, so every source
 * splits its arguments at whitespace: `sh -c "curl x | sh"` is `['-c', 'curl', 'x', '|', 'sh']`
 * from all three. A script runs as `interp script args…`: all three read the new process's argv, so
 * the script's path is the first argument from each (Tetragon's `/docker-entrypoint.sh nginx -g …`
 * for binary `/docker-entrypoint.sh`). Its `exe` is the script's path from Tetragon and eBPF, and
 * may be the interpreter from Falco, whose `proc.exepath` follows the kernel's executable.
 */
export interface ProcessInfo {
  pid: number;
  exe: string;
  name: string;
  /** Arguments without argv[0], split at whitespace (splitArguments). Bounded by the source. */
  args: readonly string[];
  parentExe: string;
  parentName: string;
  uid: number;
  user: string;
  /**
   * Where the executable came from (ExecutableOrigin), as far as the source can tell. Absent means
   * the same as `unknown`: sources and recordings made before origins existed say nothing, and an
   * absent origin never makes drift.
   */
  origin?: ExecutableOrigin;
}

/**
 * Where a process's executable came from, as the source saw it at exec:
 *
 * | origin        | meaning                                                         | Falco                          | Tetragon                              | eBPF (program.ts)                  |
 * | ------------- | --------------------------------------------------------------- | ------------------------------ | ------------------------------------- | ---------------------------------- |
 * | `image`       | a file of the image's layers (overlayfs lower layer)            | `proc.is_exe_upper_layer` false, or `EXE_LOWER_LAYER` | never (it cannot tell layers) | overlay inode without upper dentry |
 * | `upper-layer` | written or changed after the container started (upper layer)    | `proc.is_exe_upper_layer` true, `EXE_UPPER_LAYER`, the rule "Drop and execute new binary in container" | never | overlay inode with an upper dentry |
 * | `memfd`       | an anonymous in-memory file (memfd_create), never on disk       | `proc.is_exe_from_memfd` true, `EXE_FROM_MEMFD`, the rule "Fileless execution via memfd_create" | — (see `deleted`) | no links, dentry `memfd:…` |
 * | `deleted`     | a file with no link left on disk (deleted after open, or memory Tetragon cannot tell apart) | — | `binary_properties.file.inode.links` 0 | no links, not memfd |
 * | `unknown`     | the source could not tell (not overlayfs, old kernel, field not printed) | — | a linked file | not overlayfs |
 *
 * Everything but `image` and `unknown` is drift (isDrift): code that is not part of the image.
 */
export type ExecutableOrigin = 'image' | 'upper-layer' | 'memfd' | 'deleted' | 'unknown';

/** All origins, in a stable order (validation, metric labels). */
export const EXECUTABLE_ORIGINS: readonly ExecutableOrigin[] = ['image', 'upper-layer', 'memfd', 'deleted', 'unknown'];

/** Whether an origin is drift: an executable that did not come with the image. */
export function isDrift(origin: ExecutableOrigin | undefined): boolean {
  return origin === 'upper-layer' || origin === 'memfd' || origin === 'deleted';
}

/**
 * runc's own copy of itself (`memfd:runc_cloned:/proc/self/exe`), which it runs from a memfd at every
 * container start (CVE-2019-5736's fix): the one memfd exec that is plumbing, as Falco's
 * `known_memfd_execution_processes` has it. Matched by prefix, also cut to 16 bytes (`memfd:runc_clone`).
 */
export function isRuntimeMemfd(name: string): boolean {
  const n = name.startsWith('/') ? name.slice(1) : name;
  return n.startsWith('memfd:runc_clone');
}

/** What people read about an origin, in alerts, sinks and the console. */
export function originText(origin: ExecutableOrigin | undefined): string {
  switch (origin) {
    case 'image':
      return 'binary from the image';
    case 'upper-layer':
      return 'binary not from the image (written after start)';
    case 'memfd':
      return 'binary not from the image (runs from memory, memfd)';
    case 'deleted':
      return 'binary not from the image (runs from a deleted file)';
    default:
      return 'origin of the binary unknown';
  }
}

/**
 * The origin an entry shows after one more exec of it: drift outranks `image`, which outranks
 * `unknown` (a reviewer must see that an entry ever ran from outside the image, and a source that
 * cannot tell must not erase what another one saw).
 */
export function mergeOrigin(known: ExecutableOrigin | undefined, seen: ExecutableOrigin | undefined): ExecutableOrigin | undefined {
  if (seen === undefined || seen === 'unknown') return known;
  if (isDrift(seen) || known === undefined || known === 'unknown') return seen;
  return known;
}

/**
 * Split arguments the one way every source can: at runs of whitespace, empty words dropped, at most
 * `max` words. Falco's command line is already joined this way; argv from Tetragon or eBPF is split
 * again so that an argument holding spaces gives the same words from every source.
 */
export function splitArguments(argv: readonly string[], max: number): string[] {
  const out: string[] = [];
  for (const arg of argv) {
    if (out.length >= max) break;
    if (!/\s/.test(arg)) {
      if (arg !== '') out.push(arg);
      continue;
    }
    for (const word of arg.split(/\s+/)) {
      if (word === '') continue;
      if (out.length >= max) break;
      out.push(word);
    }
  }
  return out;
}

/** A uid from a source that may know only the user's name: `root` is uid 0 on every Linux system. */
export function uidFromName(uid: number, user: string): number {
  return uid < 0 && user === 'root' ? 0 : uid;
}

/** Transport of a network event. */
export type NetworkProtocol = 'tcp' | 'udp';

/** Socket details of a connect / accept / listen event. Unknown ports are -1. */
export interface NetworkInfo {
  protocol: NetworkProtocol;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  /**
   * A DNS name for the remote peer when the source resolved one, else ''. Falco: `fd.sip.name` for a
   * connect, `fd.cip.name` for an accept, `fd.rip.name` either way (present when the rule prints them),
   * or a name in place of an address in `fd.name`. A connect may carry a name and no address.
   */
  remoteName: string;
}

/** One thing one process did, at one moment, on one node. */
export interface ActivityEvent {
  /** Milliseconds since the epoch, taken from the event itself (never the wall clock of the reader). */
  time: number;
  node: string;
  /** Name of the source instance that produced it, e.g. `falco-file:/var/log/falco.json`. */
  source: string;
  /** Absent for host events: those never mix into an image's baseline. */
  container: ContainerInfo | null;
  pod: PodInfo | null;
  kind: EventKind;
  process: ProcessInfo;
  /** Present exactly when kind is connect, accept or listen. */
  network: NetworkInfo | null;
}

/** True for kinds that carry `network`. */
export function isNetworkKind(kind: EventKind): boolean {
  return kind !== 'exec';
}

/** The empty image reference. */
export const UNKNOWN_IMAGE: ImageRef = Object.freeze({ repository: '', tag: '', digest: '' });

/**
 * Canonicalise an image repository the way container runtimes do, so that `nginx`,
 * `library/nginx` and `docker.io/library/nginx` are one baseline.
 */
export function canonicalRepository(repository: string): string {
  const known = canonicalCache.get(repository);
  if (known !== undefined) return known;
  const canonical = canonicalize(repository);
  // Few distinct repositories exist on a node; the bound only guards against hostile input.
  if (canonicalCache.size >= 10_000) canonicalCache.clear();
  canonicalCache.set(repository, canonical);
  return canonical;
}

const canonicalCache = new Map<string, string>();

function canonicalize(repository: string): string {
  const repo = repository.trim().toLowerCase();
  if (repo === '') return '';
  const slash = repo.indexOf('/');
  if (slash === -1) return `docker.io/library/${repo}`;
  const first = repo.slice(0, slash);
  // A registry host has a dot or a port, or is localhost; otherwise it is a Docker Hub namespace.
  const isHost = first.includes('.') || first.includes(':') || first === 'localhost';
  if (!isHost) return `docker.io/${repo}`;
  if (first === 'index.docker.io') return `docker.io/${repo.slice(slash + 1)}`;
  return repo;
}

/**
 * Split a full image reference (`repo[:tag][@digest]`) into parts. Used when a source gives only
 * `container.image` and not its split fields.
 */
export function parseImageReference(reference: string): ImageRef {
  let rest = reference.trim();
  let digest = '';
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag = '';
  const colon = rest.lastIndexOf(':');
  // A colon after the last slash separates a tag; one before it belongs to a registry port.
  if (colon !== -1 && colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  return { repository: canonicalRepository(rest), tag, digest };
}
