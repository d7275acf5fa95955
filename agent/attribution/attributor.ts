/**
 * Attribution fills in what a source did not say about an event's container. Falco sometimes
 * emits an event before its container metadata is resolved (image fields null); the same container
 * id carried the image on earlier events, so a bounded cache by container id completes it.
 * Sources that know only a pid or cgroup (ebpf) name the container id from the cgroup path
 * (cgroup.ts); completeFromRuntime then asks the node's container runtime (cri.ts) for the image
 * and pod of every container id whose image is still unknown, before the pipeline runs.
 */
import type { ActivityEvent, ContainerInfo, PodInfo } from '../../core/event.js';
import type { ContainerLookup } from './cri.js';

/** Completes events in place; returns false when the event still has no image. */
export interface Attributor {
  attribute(event: ActivityEvent): boolean;
  readonly size: number;
}

interface Known {
  container: ContainerInfo;
  pod: PodInfo | null;
}

/** Create an attributor remembering up to `maxContainers` containers (oldest forgotten first). */
export function createAttributor(maxContainers = 50_000): Attributor {
  const known = new Map<string, Known>();
  return {
    get size() {
      return known.size;
    },
    attribute(event) {
      const c = event.container;
      if (!c) return true;
      if (c.image.repository !== '') {
        const k = known.get(c.id);
        if (!k) {
          if (known.size >= maxContainers) known.delete(known.keys().next().value as string);
          known.set(c.id, { container: c, pod: event.pod });
        } else if (!k.pod && event.pod) {
          k.pod = event.pod;
        }
        return true;
      }
      const k = known.get(c.id);
      if (!k) return false;
      event.container = { id: c.id, name: c.name || k.container.name, image: k.container.image };
      if (!event.pod) event.pod = k.pod;
      return true;
    },
  };
}

/**
 * Fill in image, container name and pod from the container runtime for events whose container id is
 * known but whose image is not (one lookup per distinct id; the lookup caches). Events the runtime does
 * not know stay as they are: the pipeline holds them for a while, then counts them as unattributed.
 */
export async function completeFromRuntime(events: readonly ActivityEvent[], lookup: ContainerLookup): Promise<void> {
  let ids: Set<string> | null = null;
  for (const ev of events) {
    if (ev.container && ev.container.id !== '' && ev.container.image.repository === '') (ids ??= new Set()).add(ev.container.id);
  }
  if (!ids) return;
  const found = new Map<string, Awaited<ReturnType<ContainerLookup['lookup']>>>();
  await Promise.all([...ids].map(async (id) => found.set(id, await lookup.lookup(id))));
  for (const ev of events) {
    const c = ev.container;
    if (!c || c.image.repository !== '') continue;
    const meta = found.get(c.id);
    if (!meta) continue;
    ev.container = { id: c.id, name: c.name || meta.container.name, image: meta.container.image };
    if (!ev.pod) ev.pod = meta.pod;
  }
}
