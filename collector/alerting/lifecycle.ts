/**
 * An alert's life after its batch is committed: new, reopened and updated alerts are published to
 * the live feed (their notifications were written in the ingest transaction); acknowledging,
 * resolving or accepting one through the API notifies the sinks its trigger went to. Storm summaries,
 * alerts that exist only in the outbox, are acknowledged and resolved the same way.
 */
import type { Logger } from '../../runtime/logger.js';
import { alertView } from '../http/views.js';
import type { AlertFeed, FeedEventType } from '../http/feed.js';
import type { Notification, NotificationAction } from '../sinks/index.js';
import { notificationOf } from '../sinks/sink.js';
import type { AlertStore, IngestResult, OutboxStore, TransitionResult } from '../store/store.js';
import type { Alert, AlertState, AlertTransition, OutboxEntry } from './alert.js';
import type { AlertingMetrics } from './metrics.js';
import type { Outbox } from './outbox.js';
import { apiLink, isStormSummary } from './policy.js';
import { openTriggerSinks } from './queries.js';

/** What the life cycle needs. */
export interface LifecycleDeps {
  store: AlertStore & OutboxStore;
  outbox: Pick<Outbox, 'enqueue' | 'written'>;
  feed: AlertFeed;
  /** Base URL under which alerts are linked ('' = no link). */
  publicUrl: string;
  metrics: Pick<AlertingMetrics, 'known'>;
  logger: Logger;
  now: () => number;
}

/** The life cycle of alerts. */
export interface Lifecycle {
  /** Act on a committed batch: wake the sinks of its notifications, publish its changes. */
  afterCommit(result: IngestResult): void;
  /** Acknowledge, resolve or accept an alert (or a storm summary), and notify its receivers. */
  transition(fingerprint: string, change: AlertTransition): TransitionResult;
}

/** The life cycle over the store, the outbox and the feed. */
export function createLifecycle(deps: LifecycleDeps): Lifecycle {
  const { store, outbox, feed, metrics, logger, now } = deps;

  /** Acknowledge/resolve notifications go to the sinks that were sent the trigger. */
  function followUps(alert: Alert, action: NotificationAction, actor: string): OutboxEntry[] {
    const triggered = new Set(store.deliveriesOf(alert.fingerprint).filter((d) => d.action === 'trigger' && d.state !== 'skipped').map((d) => d.sink));
    if (triggered.size === 0) return [];
    const body = JSON.stringify(notificationOf(alert, { action, at: now(), url: apiLink(deps.publicUrl, `alerts/${alert.fingerprint}`), actor }));
    return [...triggered].map((sink) => ({ alert: alert.fingerprint, sink, action, body, state: 'pending', lastError: '' }));
  }

  function publish(type: FeedEventType, alert: Alert): void {
    if (feed.size > 0) feed.publish({ type, at: now(), alert: alertView(alert) });
  }

  /**
   * Acknowledge or resolve a storm summary through the API: the same follow-ups as an alert, to the
   * sinks its trigger went to. The summary is not a stored alert; it is shown as one made from its trigger.
   */
  function transitionSummary(fingerprint: string, change: AlertTransition): TransitionResult {
    const trigger = store.deliveriesOf(fingerprint).find((d) => d.action === 'trigger');
    if (!trigger) return { ok: false, reason: 'not-found' };
    const n = JSON.parse(trigger.body) as Notification;
    const sinks = openTriggerSinks(store, fingerprint, now());
    const acked = store.deliveriesOf(fingerprint).some((d) => d.action === 'acknowledge');
    const before = summaryAlert(n, sinks.length === 0 ? 'resolved' : acked ? 'acknowledged' : 'firing', trigger.createdAt);
    if (before.state === 'resolved' || change.to === 'accepted' || before.state === change.to) return { ok: false, reason: 'conflict', alert: before };
    const action: NotificationAction = change.to === 'acknowledged' ? 'acknowledge' : 'resolve';
    const body = JSON.stringify({ ...n, action, at: change.at, actor: change.by, comment: change.comment, state: change.to } satisfies Notification);
    const items: OutboxEntry[] = sinks.map((sink) => ({ alert: fingerprint, sink, action, body, state: 'pending', lastError: '' }));
    outbox.enqueue(items);
    logger.info({ alert: fingerprint, to: change.to, by: change.by, receivers: sinks }, 'storm summary changed through the API');
    return { ok: true, before, after: { ...before, state: change.to, stateBy: change.by, stateAt: change.at, stateComment: change.comment }, notifications: items };
  }

  return {
    afterCommit(result) {
      if (result.known) metrics.known.inc(result.known);
      outbox.written(result.notifications);
      for (const a of result.newAlerts) publish('alert.created', a);
      for (const a of result.reopened) publish('alert.state', a);
      if (feed.size > 0) {
        for (const fp of result.updated) {
          const a = store.getAlert(fp);
          if (a) publish('alert.updated', a);
        }
      }
    },
    transition(fingerprint, change) {
      if (isStormSummary(fingerprint)) return transitionSummary(fingerprint, change);
      const action: NotificationAction = change.to === 'acknowledged' ? 'acknowledge' : 'resolve';
      // Written in the transaction of the change. Accepting a resolved alert changes nothing on the
      // pager: it was resolved there already.
      const result = store.transitionAlert(fingerprint, change, ({ before, after }) => (change.to === 'accepted' && before.state === 'resolved' ? [] : followUps(after, action, change.by)));
      if (!result.ok) return result;
      outbox.written(result.notifications);
      publish('alert.state', result.after);
      return result;
    },
  };
}

/** A storm summary shown as an alert (it has no entry of its own: a placeholder names it). */
function summaryAlert(n: Notification, state: AlertState, createdAt: number): Alert {
  return {
    fingerprint: n.fingerprint,
    state,
    baselineKey: n.baselineKey,
    image: n.image,
    kind: n.kind === 'agent' ? 'exec' : n.kind,
    entry: { type: 'process', exe: '(storm control)', parent: '', user: 'unknown', args: '' },
    reason: n.reason,
    explanation: n.explanation,
    nearest: [],
    firstSeen: n.at,
    lastSeen: n.at,
    count: 1,
    nodes: [],
    pods: [],
    lastDeviationId: '',
    example: '',
    createdAt,
    severity: n.severity,
    ruleId: n.ruleId,
    ruleReason: n.ruleReason,
    team: n.team,
    namespace: n.namespace,
    labels: {},
    receivers: [],
    suppressedBy: '',
    stateBy: '',
    stateAt: 0,
    stateComment: '',
  };
}
