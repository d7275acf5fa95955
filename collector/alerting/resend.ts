/**
 * The Alertmanager re-send: Alertmanager resolves an alert that is not posted again within its
 * resolve_timeout, so each round posts every open alert (and those resolved within
 * `alertmanagerResolvedFor`, with endsAt) and every silent node to each Alertmanager sink, one alert
 * per request. Routing, exceptions and storm control decided what reached a receiver; the re-send
 * follows them. Run every `alertmanagerResend`.
 */
import type { Logger } from '../../runtime/logger.js';
import { DeliveryError, type Notification, type Sink } from '../sinks/index.js';
import { notificationOf } from '../sinks/sink.js';
import type { Async } from '../store/async.js';
import type { AlertStore, OutboxStore } from '../store/store.js';
import type { AlertingConfig } from './config.js';
import type { AlertingMetrics } from './metrics.js';
import { deliveryErrorText } from './outbox.js';
import { apiLink } from './policy.js';
import { newestAlerts } from './queries.js';

/** What the re-send needs. */
export interface ResendDeps {
  store: Async<AlertStore & OutboxStore>;
  /** Every sink; the Alertmanager ones are re-sent to. */
  sinks: readonly Sink[];
  config: Pick<AlertingConfig, 'alertmanagerResolvedFor'>;
  /** The default receivers: silent nodes are re-sent to those among them. */
  defaults: readonly string[];
  /** The trigger of each node silent now. */
  silentNodes(): Iterable<Notification>;
  /** The delay before retry number `failures` of one alert's re-send. */
  backoff(failures: number): number;
  /** Aborted at shutdown: the round stops. */
  signal: AbortSignal;
  /** Base URL under which alerts are linked ('' = no link). */
  publicUrl: string;
  metrics: Pick<AlertingMetrics, 'resent' | 'resendHeld'>;
  logger: Logger;
  now: () => number;
  /** What the outbox adds at delivery (the package): a re-send carries the annotations the first post did. */
  enrich?: ((n: Notification) => Promise<Notification>) | undefined;
}

/** One round of re-sends to every Alertmanager sink; the function resolves to how many alerts were sent. */
export function createResend(deps: ResendDeps): () => Promise<number> {
  const { store, config, defaults, signal, metrics, logger, now } = deps;
  const targets = deps.sinks.filter((s) => s.type === 'alertmanager');
  /** Re-sends of one alert to one sink that failed (key: sink NUL fingerprint): when to try again. */
  const resendFailures = new Map<string, { failures: number; nextAt: number }>();
  /** Sink NUL fingerprint pairs known to have been sent a trigger (a delivery exists that was not skipped). */
  const notifiedPairs = new Set<string>();

  /**
   * Whether `sink` was ever sent this alert (then its re-sends keep it firing), else why not: an
   * alert that storm control held back (or that was never routed there) is not posted by a re-send.
   */
  async function notifiedOn(sink: string, fingerprint: string): Promise<true | string> {
    const key = `${sink}\0${fingerprint}`;
    if (notifiedPairs.has(key)) return true;
    const mine = (await store.deliveriesOf(fingerprint)).filter((d) => d.sink === sink && d.action !== 'notice');
    if (mine.some((d) => d.state !== 'skipped')) {
      if (notifiedPairs.size >= 100_000) notifiedPairs.clear(); // a cache: cleared, it is rebuilt from the store
      notifiedPairs.add(key);
      return true;
    }
    const skipped = mine.find((d) => d.state === 'skipped');
    return skipped ? (skipped.lastError.split(':')[0] ?? 'not-notified') : 'not-notified';
  }

  /**
   * Post each notification of `round` to `sink`, one alert per request. A rejected alert (Alertmanager
   * refuses it: 4xx) is that alert's failure alone: it is recorded in its deliveries, retried with
   * backoff in later rounds, and the round goes on. An unavailable receiver (network, 5xx, 429) fails
   * the round: after two such failures in a row the rest waits for the next round; a single one
   * between successes is that alert's, and one with no success after it (the last or only alert) is
   * nobody's: no backoff, the next round tries again.
   */
  async function resendRound(sink: Sink, round: readonly { key: string; n: Notification }[], t: number): Promise<{ sent: number; backoff: number }> {
    let sent = 0;
    let waiting = 0;
    let suspect: { key: string; n: Notification; err: unknown } | null = null;
    const failed = async (key: string, n: Notification, err: unknown) => {
      const failures = (resendFailures.get(key)?.failures ?? 0) + 1;
      resendFailures.set(key, { failures, nextAt: t + deps.backoff(failures) });
      const error = deliveryErrorText(err);
      metrics.resent.inc({ sink: sink.name, outcome: 'rejected' });
      logger.warn({ sink: sink.name, alert: n.fingerprint, failures, error }, 'Alertmanager refused the re-send of one alert; the others go on');
      // Visible in the alert's deliveries: the first failure, then at 2, 4, 8… so a lasting one stays a few rows.
      if ((failures & (failures - 1)) === 0) await store.enqueue([{ alert: n.fingerprint, sink: sink.name, action: n.action, body: JSON.stringify(n), state: 'failed', lastError: `re-send ${failures}× failed: ${error}` }], now());
    };
    for (const { key, n } of round) {
      if (signal.aborted) break;
      const f = resendFailures.get(key);
      if (f && f.nextAt > t) {
        waiting++;
        continue;
      }
      try {
        await sink.send(deps.enrich ? await deps.enrich(n) : n, signal);
        sent++;
        metrics.resent.inc({ sink: sink.name, outcome: 'sent' });
        resendFailures.delete(key);
        if (suspect) await failed(suspect.key, suspect.n, suspect.err);
        suspect = null;
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof DeliveryError && err.retryable) {
          if (suspect) {
            metrics.resent.inc({ sink: sink.name, outcome: 'unavailable' });
            // The receiver, not these alerts: neither backs off, the next round tries them all again.
            suspect = null;
            break;
          }
          suspect = { key, n, err };
          continue;
        }
        await failed(key, n, err);
      }
    }
    // A retryable failure with no success after it says nothing about that alert: the receiver may be down
    // (one alert open, or the last of the round). It is not held back; the next round tries it again, so a
    // recovered receiver gets every alert at once instead of after a backoff past its resolve_timeout.
    if (suspect) metrics.resent.inc({ sink: sink.name, outcome: 'unavailable' });
    return { sent, backoff: waiting };
  }

  return async () => {
    if (targets.length === 0) return 0;
    const t = now();
    // Bounded: at most 2,000 alerts per state and round, newest first.
    const open = (await newestAlerts(store, ['firing', 'acknowledged', 'resolved'], 2_000)).filter((a) => a.state !== 'resolved' || t - a.stateAt <= config.alertmanagerResolvedFor);
    let sent = 0;
    metrics.resendHeld.reset();
    for (const sink of targets) {
      const held = new Map<string, number>();
      const hold = (reason: string) => held.set(reason, (held.get(reason) ?? 0) + 1);
      const round: { key: string; n: Notification }[] = [];
      for (const a of open) {
        // Routing, exceptions and storm control decided what reached this receiver; the re-send follows.
        if (!a.receivers.includes(sink.name)) continue;
        if (a.suppressedBy !== '') {
          hold('exception');
          continue;
        }
        const notified = await notifiedOn(sink.name, a.fingerprint);
        if (notified !== true) {
          hold(notified);
          continue;
        }
        round.push({ key: `${sink.name}\0${a.fingerprint}`, n: notificationOf(a, { action: a.state === 'resolved' ? 'resolve' : 'trigger', at: a.state === 'resolved' ? a.stateAt : t, url: apiLink(deps.publicUrl, `alerts/${a.fingerprint}`) }) });
      }
      // Silent nodes fire until they are back, like open alerts (Alertmanager resolves what is not re-sent).
      if (defaults.includes(sink.name)) for (const n of deps.silentNodes()) round.push({ key: `${sink.name}\0${n.fingerprint}`, n: { ...n, at: t } });
      const r = await resendRound(sink, round, t);
      sent += r.sent;
      if (r.backoff > 0) held.set('backoff', r.backoff);
      for (const [reason, n] of held) metrics.resendHeld.set({ sink: sink.name, reason }, n);
      // Forget the failures of alerts no longer re-sent (bounded by the open alerts).
      const keys = new Set(round.map((x) => x.key));
      for (const k of resendFailures.keys()) if (k.startsWith(`${sink.name}\0`) && !keys.has(k)) resendFailures.delete(k);
    }
    return sent;
  };
}
