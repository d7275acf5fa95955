/**
 * The node's image inventory: which containers run here now, for the collector's image inventory.
 * Asked of the container runtime (CRI ListContainers, running containers only) where its socket is
 * there; otherwise, or when the runtime does not answer, the containers this agent saw in events
 * within a window. A report is bounded (INVENTORY_LIMITS: containers, string lengths) and cut with
 * `truncated` set rather than refused.
 */
import { INVENTORY_LIMITS, type ContainerReport, type RunningContainer } from '../core/inventory.js';
import type { ActivityEvent } from '../core/event.js';
import type { Logger } from '../runtime/logger.js';
import { imageOfStatus, type ContainerLookup, type CriClient } from './attribution/cri.js';

/** The inventory. */
export interface ContainerInventory {
  /** Remember the containers of `events` (the fallback when there is no runtime to ask). */
  observe(events: readonly ActivityEvent[]): void;
  /** What runs on this node now. */
  report(): Promise<ContainerReport>;
}

/** Settings. */
export interface InventoryOptions {
  /** A container seen in an event within this window counts as running (events fallback). */
  eventWindowMs: number;
  /** Most containers held and reported. */
  maxContainers: number;
  /** ContainerStatus lookups (for the tag) at once. */
  parallelLookups: number;
  now: () => number;
}

/** Defaults: a 5-minute window; INVENTORY_LIMITS.containers. */
export const INVENTORY_DEFAULTS: InventoryOptions = Object.freeze({ eventWindowMs: 300_000, maxContainers: INVENTORY_LIMITS.containers, parallelLookups: 16, now: Date.now });

const cut = (s: unknown, max: number): string => (typeof s === 'string' ? s.slice(0, max) : '');
const obj = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

/** A container as ListContainers lists it (the pod from the kubelet's labels), or null when it names no image. */
export function containerOfListing(listed: unknown): RunningContainer | null {
  const c = obj(listed);
  const id = cut(c.id, INVENTORY_LIMITS.text);
  const image = imageOfStatus(c);
  if (id === '' || image.repository === '') return null;
  const labels = obj(c.labels);
  const imageRef = cut(c.image_ref, INVENTORY_LIMITS.digest);
  return {
    id,
    name: cut(obj(c.metadata).name, INVENTORY_LIMITS.text) || cut(labels['io.kubernetes.container.name'], INVENTORY_LIMITS.text),
    image: { repository: cut(image.repository, INVENTORY_LIMITS.text), tag: cut(image.tag, INVENTORY_LIMITS.tag), digest: cut(image.digest, INVENTORY_LIMITS.digest) },
    imageId: cut(c.image_id, INVENTORY_LIMITS.digest) || (/^sha256:[0-9a-f]{64}$/.test(imageRef) ? imageRef : ''),
    namespace: cut(labels['io.kubernetes.pod.namespace'], INVENTORY_LIMITS.text),
    pod: cut(labels['io.kubernetes.pod.name'], INVENTORY_LIMITS.text),
    workload: '',
  };
}

/** The inventory over `cri` (null: none on this node) and `lookup` (the cached ContainerStatus, for tags). */
export function createContainerInventory(cri: CriClient | null, lookup: ContainerLookup, deps: { logger: Logger }, options: Partial<InventoryOptions> = {}): ContainerInventory {
  const opts = { ...INVENTORY_DEFAULTS, ...options };
  // Containers seen in events, least recently seen first (a Map keeps insertion order).
  const seen = new Map<string, { container: RunningContainer; at: number }>();
  let criFailing = false;

  function fromEvents(): ContainerReport {
    const since = opts.now() - opts.eventWindowMs;
    const live = [...seen.values()].filter((s) => s.at >= since).map((s) => s.container);
    return { source: 'events', containers: live.slice(-opts.maxContainers), truncated: live.length > opts.maxContainers, total: live.length };
  }

  /** ListContainers gives the digest; the tag is in ContainerStatus (cached per container by `lookup`). */
  async function withTag(c: RunningContainer): Promise<RunningContainer> {
    if (c.image.tag !== '') return c;
    const meta = await lookup.lookup(c.id);
    const image = meta?.container.image;
    if (!image || image.repository !== c.image.repository) return c;
    return { ...c, image: { ...c.image, tag: cut(image.tag, INVENTORY_LIMITS.tag), digest: c.image.digest || cut(image.digest, INVENTORY_LIMITS.digest) } };
  }

  async function fromRuntime(client: CriClient): Promise<ContainerReport> {
    const listed = obj(await client.listContainers({ state: { state: 'CONTAINER_RUNNING' } })).containers;
    const all = (Array.isArray(listed) ? listed : []).map(containerOfListing).filter((c): c is RunningContainer => c !== null);
    const kept = all.slice(0, opts.maxContainers);
    const out: RunningContainer[] = [];
    for (let i = 0; i < kept.length; i += opts.parallelLookups) out.push(...(await Promise.all(kept.slice(i, i + opts.parallelLookups).map(withTag))));
    return { source: 'cri', containers: out, truncated: all.length > kept.length, total: all.length };
  }

  return {
    observe(events) {
      const at = opts.now();
      for (const ev of events) {
        const c = ev.container;
        if (!c || c.id === '' || c.image.repository === '') continue;
        seen.delete(c.id);
        if (seen.size >= opts.maxContainers) seen.delete(seen.keys().next().value as string);
        seen.set(c.id, {
          at,
          container: {
            id: cut(c.id, INVENTORY_LIMITS.text),
            name: cut(c.name, INVENTORY_LIMITS.text),
            image: { repository: cut(c.image.repository, INVENTORY_LIMITS.text), tag: cut(c.image.tag, INVENTORY_LIMITS.tag), digest: cut(c.image.digest, INVENTORY_LIMITS.digest) },
            imageId: '',
            namespace: cut(ev.pod?.namespace, INVENTORY_LIMITS.text),
            pod: cut(ev.pod?.name, INVENTORY_LIMITS.text),
            workload: cut(ev.pod?.workload, INVENTORY_LIMITS.text),
          },
        });
      }
    },
    async report() {
      if (cri === null) return fromEvents();
      try {
        const r = await fromRuntime(cri);
        if (criFailing) deps.logger.info('the container runtime lists containers again');
        criFailing = false;
        return r;
      } catch (err) {
        // Said once per outage: the inventory goes on from events meanwhile.
        if (!criFailing) deps.logger.warn({ err: (err as Error).message }, 'cannot list containers from the runtime; reporting those seen in events');
        criFailing = true;
        return fromEvents();
      }
    },
  };
}
