/**
 * Attribution fills in what a source did not say about an event's container. Falco sometimes
 * emits an event before its container metadata is resolved (image fields null); the same container
 * id carried the image on earlier events, so a bounded cache by container id completes it.
 * (Attribution from /proc/<pid>/cgroup and the CRI for pid-only sources plugs in here later.)
 */
import type { ActivityEvent, ContainerInfo, PodInfo } from '../core/event.js';

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
