/**
 * The metrics of alerting, named and explained in one place. Each job takes only the ones it moves.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Async } from '../store/async.js';
import type { OutboxStore } from '../store/store.js';

/** What alerting counts. */
export interface AlertingMetrics {
  /** Notifications written to the outbox, by sink, action and state. */
  notifications: Counter<'sink' | 'action' | 'state'>;
  /** New or reopened alerts not notified, by reason. */
  suppressed: Counter<'reason'>;
  /** Deviations dropped because the cluster-wide baseline has their entry. */
  known: Counter;
  /** Notifications waiting in the outbox (read from the store at each scrape). */
  pending: Gauge;
  /** Outbox delivery attempts, by sink and outcome. */
  outcomes: Counter<'sink' | 'outcome'>;
  /** Alertmanager re-sends, by sink and outcome. */
  resent: Counter<'sink' | 'outcome'>;
  /** Open alerts the last re-send round held back, by sink and reason. */
  resendHeld: Gauge<'sink' | 'reason'>;
}

/** Register alerting's metrics on `registry`; the pending gauge asks `store` when scraped. */
export function createAlertingMetrics(registry: Registry, store: Async<OutboxStore>): AlertingMetrics {
  const r = [registry];
  return {
    notifications: new Counter({ name: 'driftwatch_collector_notifications_enqueued_total', help: 'Notifications written to the outbox, by sink, action and state (pending, or skipped with why)', labelNames: ['sink', 'action', 'state'], registers: r }),
    suppressed: new Counter({ name: 'driftwatch_collector_alerts_not_notified_total', help: 'New or reopened alerts not notified, by reason (exception, storm, no-receiver)', labelNames: ['reason'], registers: r }),
    known: new Counter({ name: 'driftwatch_collector_deviations_known_total', help: 'Deviations dropped because the cluster-wide baseline already has their entry', registers: r }),
    pending: new Gauge({
      name: 'driftwatch_collector_outbox_pending',
      help: 'Notifications waiting in the outbox',
      registers: r,
      async collect() {
        this.set(await store.pendingDeliveries());
      },
    }),
    outcomes: new Counter({ name: 'driftwatch_collector_outbox_deliveries_total', help: 'Outbox delivery attempts, by sink and outcome (delivered, retry, failed; skipped: the sink chose not to deliver, such as a ticket sink past maxNewTicketsPerHour; lease_lost: another replica took the notification over before this one recorded its outcome)', labelNames: ['sink', 'outcome'], registers: r }),
    resent: new Counter({ name: 'driftwatch_collector_alertmanager_resends_total', help: 'Open alerts re-sent to Alertmanager sinks, by sink and outcome (sent; rejected: that alert alone, retried with backoff; unavailable: the receiver, round stopped)', labelNames: ['sink', 'outcome'], registers: r }),
    resendHeld: new Gauge({ name: 'driftwatch_collector_alertmanager_resend_held_alerts', help: 'Open alerts the last re-send round held back from each Alertmanager sink, by reason (storm, exception, not-notified, backoff)', labelNames: ['sink', 'reason'], registers: r }),
  };
}
