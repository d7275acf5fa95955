/**
 * Valid deviations for the collector scenarios, made from real events of a bench stream: each is
 * what an agent would send (a real event of its node, an entry its image never had, an id made by
 * core's deviationId), passed through the wire validation so that its shape is exactly the one the
 * collector stores.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { baselineKey } from '../../core/baseline.js';
import { deviationId, type Deviation } from '../../core/deviation.js';
import { describeEntry, entryOf, type Entry } from '../../core/entry.js';
import type { ActivityEvent } from '../../core/event.js';
import { DEFAULT_CLUSTER_CIDRS, parseCidr } from '../../core/ip.js';
import { parseFalcoLine } from '../../agent/sources/falco-event.js';
import { isRejected } from '../../agent/sources/record.js';
import { deviationFromWire, deviationToWire } from '../../proto/index.js';

/** The agent's default cluster ranges. */
const CLUSTER = { clusterRanges: DEFAULT_CLUSTER_CIDRS.map(parseCidr) };

/**
 * The first `count` container events with a known image from a stream file; with `maxImages`, only
 * events of the first that many images (a bad deploy touches a few images, on every node).
 */
export function eventPool(path: string, count: number, maxImages = Infinity): ActivityEvent[] {
  const images = new Set<string>();
  const fd = openSync(path, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  const out: ActivityEvent[] = [];
  let carry = '';
  try {
    while (out.length < count) {
      const got = readSync(fd, buf, 0, buf.length, null);
      if (got === 0) break;
      const parts = (carry + buf.toString('utf8', 0, got)).split('\n');
      carry = parts.pop() as string;
      for (const line of parts) {
        if (out.length >= count) break;
        const r = parseFalcoLine(line, { node: 'node-1', source: 'falco-file:/var/log/falco/events.json' });
        if (isRejected(r) || !r.container || r.container.image.repository === '') continue;
        const repo = r.container.image.repository;
        if (!images.has(repo)) {
          if (images.size >= maxImages) continue;
          images.add(repo);
        }
        out.push(r);
      }
    }
  } finally {
    closeSync(fd);
  }
  if (out.length === 0) throw new Error(`no usable events in ${path}`);
  return out;
}

/** Letters-only tags (digits would be normalized away into one pattern). */
export function letters(n: number, width = 4): string {
  let s = '';
  for (let i = 0; i < width; i++) {
    s = String.fromCharCode(97 + (n % 26)) + s;
    n = Math.floor(n / 26);
  }
  return s;
}

/**
 * A deviation of `base` on `node`: variant `variant` chooses the new behaviour (a binary or a peer the
 * image never had), `serial` makes the event distinct (pid and time) so that every id differs.
 */
export function makeDeviation(base: ActivityEvent, node: string, variant: number, serial: number): Deviation {
  const ev: ActivityEvent = {
    ...base,
    node,
    time: base.time + serial,
    process: { ...base.process, pid: 100_000 + (serial % 4_000_000) },
  };
  let entry: Entry;
  let reason: Deviation['reason'];
  let explanation: string;
  const key = baselineKey(ev, 'repository') as string;
  if (ev.kind === 'exec' || variant % 3 !== 0) {
    const exe = `/opt/drift-${letters(variant, 5)}/bin/tool`;
    ev.kind = 'exec';
    ev.network = null;
    ev.process = { ...ev.process, exe, name: 'tool', args: ['--serve', '-q'] };
    entry = entryOf(ev, CLUSTER) as Entry;
    reason = 'new-executable';
    explanation = `${exe} never ran in ${key} while it was learned`;
  } else {
    // Distinct variants give distinct entries: port and peer together cover 64,000 × 250 of them.
    const port = 1024 + (variant % 64_000);
    const peer = `203.0.113.${(Math.floor(variant / 64_000) % 250) + 1}`;
    ev.kind = 'connect';
    ev.network = { protocol: 'tcp', localAddress: '10.244.1.9', localPort: 40_000 + (serial % 20_000), remoteAddress: peer, remotePort: port, remoteName: '' };
    entry = entryOf(ev, CLUSTER) as Entry;
    reason = 'new-peer';
    explanation = `${key} never connected to ${peer} while it was learned`;
  }
  const base0 = entryOf(base, CLUSTER);
  const d: Deviation = {
    id: deviationId(ev, key, entry),
    key,
    baselineVersion: 3,
    entry,
    reason,
    explanation,
    nearest: base0 ? [describeEntry(base0)] : [],
    event: ev,
  };
  // Through the wire and back: exactly the object the collector validates and stores.
  return deviationFromWire(deviationToWire(d));
}
