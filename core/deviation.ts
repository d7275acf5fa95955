/**
 * Deviations: events that an enforcing baseline does not cover. The agent makes the id from the
 * event's own content, so a resend (or a replay of the same record) is recognised by the collector.
 */
import { createHash } from 'node:crypto';
import type { ActivityEvent } from './event.js';
import type { DeviationReason } from './baseline.js';
import { entryId, fingerprint, type Entry } from './entry.js';

/** One event that did not match, with what it would add and why it is new. */
export interface Deviation {
  /** Stable id: the same event always gets the same id (see deviationId). */
  id: string;
  key: string;
  /** The version of the baseline it was checked against. */
  baselineVersion: number;
  entry: Entry;
  reason: DeviationReason;
  explanation: string;
  /** Up to three known entries closest to this one, as readable text. */
  nearest: string[];
  event: ActivityEvent;
  /**
   * The event's own time when the collector found it too far ahead of the time it received it
   * (bounded clock skew): `event.time` is then the receive time, and this keeps what the node said.
   */
  reportedTime?: number;
}

/**
 * The id of a deviation: a hash of who (node, container, pid), when (event time) and what (key and
 * entry). Two deliveries of one event hash alike; two distinct events differ in at least one of these.
 */
export function deviationId(event: ActivityEvent, key: string, entry: Entry): string {
  return createHash('sha256')
    .update(
      [event.node, event.container?.id ?? '', String(event.process.pid), String(event.time), event.kind, key, entryId(entry)].join('\0'),
    )
    .digest('hex')
    .slice(0, 32);
}

/** The alert fingerprint a deviation groups under. */
export function deviationFingerprint(d: Pick<Deviation, 'key' | 'entry'> & { reason?: DeviationReason }): string {
  // Drift has an alert of its own: grouped with an older alert of the same entry (a path that once
  // ran from the image), it would keep that alert's severity, decided by its first deviation.
  // No entry id starts with `drift|`, so the two never collide.
  return fingerprint(d.key, d.reason === 'drift' ? `drift|${entryId(d.entry)}` : entryId(d.entry));
}
