/**
 * Reads over the store that several alerting jobs share: whole sets of alerts page by page, and who
 * was sent an alert that is still open.
 */
import type { Async } from '../store/async.js';
import type { AlertStore, OutboxStore } from '../store/store.js';
import type { Alert, AlertState, OutboxItem } from './alert.js';

/** Alerts in each of `states`, newest first, at most `perState` of each (jobs read whole sets page by page). */
export async function newestAlerts(store: Async<AlertStore>, states: readonly AlertState[], perState: number): Promise<Alert[]> {
  const out: Alert[] = [];
  for (const state of states) {
    let cursor: string | undefined;
    for (let read = 0; read < perState; ) {
      const p = await store.listAlerts({ limit: Math.min(1000, perState - read), cursor, state });
      out.push(...p.items);
      read += p.items.length;
      if (!p.next) break;
      cursor = p.next;
    }
  }
  return out;
}

/** The sinks sent this fingerprint's latest trigger and not yet a resolve, at `at` (newest deliveries first). */
export async function openTriggerSinks(store: Async<OutboxStore>, fingerprint: string, at: number): Promise<string[]> {
  return triggerSinksOf(await store.deliveriesOf(fingerprint), at);
}

/** openTriggerSinks over deliveries already read (newest first). */
export function triggerSinksOf(deliveries: readonly OutboxItem[], at: number): string[] {
  const sinks: string[] = [];
  for (const d of deliveries) {
    // A resolve held back until later (a storm summary's, written with its trigger) has not happened yet.
    if (d.action === 'resolve' && !(d.state === 'pending' && d.nextAt > at)) break;
    if (d.action === 'trigger' && d.state !== 'skipped' && !sinks.includes(d.sink)) sinks.push(d.sink);
  }
  return sinks;
}
