/**
 * Reads over the store that several alerting jobs share: whole sets of alerts page by page, and who
 * was sent an alert that is still open.
 */
import type { AlertStore, OutboxStore } from '../store/store.js';
import type { Alert, AlertState } from './alert.js';

/** Alerts in each of `states`, newest first, at most `perState` of each (jobs read whole sets page by page). */
export function newestAlerts(store: AlertStore, states: readonly AlertState[], perState: number): Alert[] {
  const out: Alert[] = [];
  for (const state of states) {
    let cursor: string | undefined;
    for (let read = 0; read < perState; ) {
      const p = store.listAlerts({ limit: Math.min(1000, perState - read), cursor, state });
      out.push(...p.items);
      read += p.items.length;
      if (!p.next) break;
      cursor = p.next;
    }
  }
  return out;
}

/** The sinks sent this fingerprint's latest trigger and not yet a resolve, at `at` (newest deliveries first). */
export function openTriggerSinks(store: OutboxStore, fingerprint: string, at: number): string[] {
  const sinks: string[] = [];
  for (const d of store.deliveriesOf(fingerprint)) {
    // A resolve held back until later (a storm summary's, written with its trigger) has not happened yet.
    if (d.action === 'resolve' && !(d.state === 'pending' && d.nextAt > at)) break;
    if (d.action === 'trigger' && d.state !== 'skipped' && !sinks.includes(d.sink)) sinks.push(d.sink);
  }
  return sinks;
}
