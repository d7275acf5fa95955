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

/** The process that did the thing. Unknown strings are '', unknown numbers -1. */
export interface ProcessInfo {
  pid: number;
  exe: string;
  name: string;
  /** Arguments without argv[0]. Bounded by the source (see limits in normalize-source helpers). */
  args: readonly string[];
  parentExe: string;
  parentName: string;
  uid: number;
  user: string;
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
  /** A DNS name for the remote peer when the source resolved one, else ''. */
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
