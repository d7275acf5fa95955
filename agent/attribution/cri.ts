/**
 * The node's container runtime, asked over the CRI (`runtime.v1.RuntimeService` on containerd's or
 * CRI-O's unix socket) which image, pod, namespace and labels a container id belongs to. Answers
 * are cached with a bound (least recently used forgotten first); a miss asks the runtime, and an
 * id the runtime does not know is remembered as unknown for a short while, so a burst of events
 * from a process outside any container (or a container already removed) does not become a burst of
 * calls.
 */
import { existsSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { UNKNOWN_IMAGE, canonicalRepository, parseImageReference, type ContainerInfo, type ImageRef, type PodInfo } from '../../core/event.js';
import { criRuntimeService } from '../../proto/third-party.js';

/** Sockets probed, in order, when the setting is `auto`. */
export const DEFAULT_CRI_SOCKETS: readonly string[] = ['/run/containerd/containerd.sock', '/run/crio/crio.sock'];

/** What the runtime says about a container. */
export interface ContainerMeta {
  container: ContainerInfo;
  pod: PodInfo | null;
}

/** Bounds on values taken from the runtime (pod labels are user-written). */
const LIMITS = Object.freeze({ name: 256, labels: 64 });

/** The three calls, promisified; each rejects with the grpc-js ServiceError. */
export interface CriClient {
  containerStatus(containerId: string): Promise<unknown>;
  listContainers(filter: { id?: string; pod_sandbox_id?: string; state?: { state: 'CONTAINER_RUNNING' } }): Promise<unknown>;
  podSandboxStatus(podSandboxId: string): Promise<unknown>;
  close(): void;
}

/** A CRI client on `target` (`unix:///run/containerd/containerd.sock`), each call with a deadline. */
export function createCriClient(target: string, options: { deadlineMs?: number } = {}): CriClient {
  const { Client } = criRuntimeService();
  const client = new Client(target, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 16 << 20 }) as unknown as Record<
    string,
    (req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void
  >;
  const deadlineMs = options.deadlineMs ?? 2_000;
  const call = (method: string, req: object) =>
    new Promise<unknown>((resolve, reject) => {
      (client[method] as NonNullable<(typeof client)[string]>).call(client, req, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res)));
    });
  return {
    containerStatus: (id) => call('ContainerStatus', { container_id: id }),
    listContainers: (filter) => call('ListContainers', { filter }),
    podSandboxStatus: (id) => call('PodSandboxStatus', { pod_sandbox_id: id }),
    close: () => (client as unknown as grpc.Client).close(),
  };
}

/**
 * The socket for a `criSocket` setting: `none` disables the CRI, `auto` takes the first default socket
 * that exists, anything else is a path (or `unix://` target) used as given.
 */
export function resolveCriTarget(setting: string, exists: (path: string) => boolean = existsSync): string | null {
  if (setting === 'none') return null;
  if (setting === 'auto') {
    const found = DEFAULT_CRI_SOCKETS.find((p) => exists(p));
    return found === undefined ? null : `unix://${found}`;
  }
  return setting.startsWith('unix:') ? setting : `unix://${setting}`;
}

function str(v: unknown, max = LIMITS.name): string {
  return typeof v === 'string' ? (v.length > max ? v.slice(0, max) : v) : '';
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function stringMap(v: unknown, keep: (key: string) => boolean = () => true): Record<string, string> {
  const out: Record<string, string> = {};
  let n = 0;
  for (const [k, x] of Object.entries(obj(v))) {
    if (n >= LIMITS.labels) break;
    if (typeof x !== 'string' || !keep(k)) continue;
    out[k.slice(0, LIMITS.name)] = x.slice(0, LIMITS.name);
    n++;
  }
  return out;
}

/** An image id (`sha256:…` or bare hex) names no repository. */
function isImageId(s: string): boolean {
  return /^(sha256:)?[0-9a-f]{64}$/.test(s);
}

/**
 * The image of a CRI ContainerStatus: the pod spec's image when the runtime reports it
 * (`user_specified_image`), else the repository:tag containerd / CRI-O resolved (`image.image`), else
 * the repo@digest of `image_ref`. The digest comes from `image_ref` when it is one.
 */
export function imageOfStatus(status: Record<string, unknown>): ImageRef {
  const spec = obj(status.image);
  const ref = str(status.image_ref);
  const candidates = [str(spec.user_specified_image), str(spec.image), ref.includes('@') ? ref : ''];
  const named = candidates.find((c) => c !== '' && !isImageId(c));
  if (named === undefined) return UNKNOWN_IMAGE;
  const image = parseImageReference(named);
  const at = ref.indexOf('@');
  const digest = image.digest !== '' ? image.digest : at !== -1 ? ref.slice(at + 1) : '';
  return { repository: canonicalRepository(image.repository), tag: image.tag, digest };
}

/** The container and pod a ContainerStatus response (and the pod's sandbox labels) describe. */
export function metaOfStatus(response: unknown, podLabels: Readonly<Record<string, string>> | null): ContainerMeta | null {
  const status = obj(obj(response).status);
  const id = str(status.id);
  if (id === '') return null;
  const labels = stringMap(status.labels);
  const container: ContainerInfo = {
    id,
    name: str(obj(status.metadata).name) || (labels['io.kubernetes.container.name'] ?? ''),
    image: imageOfStatus(status),
  };
  const namespace = labels['io.kubernetes.pod.namespace'] ?? '';
  const name = labels['io.kubernetes.pod.name'] ?? '';
  const pod = namespace === '' && name === '' ? null : { namespace, name, labels: podLabels ?? {}, workload: '' };
  return { container, pod };
}

/** Looks containers up by id, cached. */
export interface ContainerLookup {
  /** The container's metadata, or null when the runtime does not know it (or cannot be asked). */
  lookup(containerId: string): Promise<ContainerMeta | null>;
  /** Counters for logs, metrics and tests. */
  readonly stats: { hits: number; misses: number; calls: number; errors: number; size: number };
  close(): void;
}

/** Cache tuning. */
export interface ContainerLookupOptions {
  /** Most containers remembered (known and unknown together). */
  maxEntries: number;
  /** How long an id the runtime did not know (or a failed call) is answered as unknown without asking again. */
  negativeTtlMs: number;
  /** Most lookups in flight at once; beyond it a lookup answers unknown at once, uncached. */
  maxInFlight: number;
  now: () => number;
}

/** Defaults: a node runs at most a few hundred containers. */
export const CONTAINER_LOOKUP_DEFAULTS: ContainerLookupOptions = Object.freeze({ maxEntries: 4_096, negativeTtlMs: 5_000, maxInFlight: 64, now: Date.now });

/** A lookup that knows nothing (no runtime socket on this node): every id is unknown. */
export const NO_CONTAINER_LOOKUP: ContainerLookup = Object.freeze({
  lookup: async () => null,
  stats: Object.freeze({ hits: 0, misses: 0, calls: 0, errors: 0, size: 0 }),
  close: () => {},
});

type Cached = { meta: ContainerMeta; until: number } | { meta: null; until: number };

/** A cached lookup over `client`. */
export function createContainerLookup(client: CriClient, options: Partial<ContainerLookupOptions> = {}): ContainerLookup {
  const opts = { ...CONTAINER_LOOKUP_DEFAULTS, ...options };
  const cache = new Map<string, Cached>();
  const inFlight = new Map<string, Promise<ContainerMeta | null>>();
  const stats = { hits: 0, misses: 0, calls: 0, errors: 0, size: 0 };

  const remember = (id: string, entry: Cached) => {
    cache.delete(id);
    if (cache.size >= opts.maxEntries) cache.delete(cache.keys().next().value as string);
    cache.set(id, entry);
    stats.size = cache.size;
  };

  async function ask(id: string): Promise<ContainerMeta | null> {
    stats.calls++;
    let status: unknown;
    try {
      status = await client.containerStatus(id);
    } catch (err) {
      if ((err as grpc.ServiceError).code !== grpc.status.NOT_FOUND) stats.errors++;
      return null;
    }
    // ContainerStatus does not name the sandbox; ListContainers does, and the sandbox has the pod's labels.
    let podLabels: Record<string, string> | null = null;
    try {
      const listed = obj(await client.listContainers({ id }));
      const first = obj(Array.isArray(listed.containers) ? listed.containers[0] : undefined);
      const sandbox = str(first.pod_sandbox_id);
      if (sandbox !== '') {
        const pod = obj(obj(await client.podSandboxStatus(sandbox)).status);
        podLabels = stringMap(pod.labels, (k) => !k.startsWith('io.kubernetes.'));
      }
    } catch {
      // The image is what a baseline needs; pod labels are a nicety. Go on without them.
      stats.errors++;
    }
    return metaOfStatus(status, podLabels);
  }

  return {
    stats,
    lookup(id) {
      const now = opts.now();
      const hit = cache.get(id);
      if (hit && (hit.meta !== null || hit.until > now)) {
        stats.hits++;
        cache.delete(id);
        cache.set(id, hit);
        return Promise.resolve(hit.meta);
      }
      stats.misses++;
      const pending = inFlight.get(id);
      if (pending) return pending;
      if (inFlight.size >= opts.maxInFlight) return Promise.resolve(null);
      const p = ask(id).then((meta) => {
        inFlight.delete(id);
        // A container without an image name (a runtime that reports only ids) is not cached as known.
        remember(id, meta && meta.container.image.repository !== '' ? { meta, until: Infinity } : { meta: null, until: opts.now() + opts.negativeTtlMs });
        return meta;
      });
      inFlight.set(id, p);
      return p;
    },
    close: () => client.close(),
  };
}
