/**
 * An alert's life after its batch is committed: new, reopened and updated alerts are published to
 * the live feed (their notifications were written in the ingest transaction); acknowledging,
 * resolving or accepting one through the API notifies the sinks its trigger went to. Storm summaries,
 * alerts that exist only in the outbox, are acknowledged and resolved the same way.
 */
import type { Logger } from '../../runtime/logger.js';
import { createSerial } from '../../runtime/serial.js';
import { alertView } from '../http/views.js';
import type { AlertFeed, FeedEventType } from '../http/feed.js';
import type { Notification, NotificationAction } from '../sinks/index.js';
import { notificationOf } from '../sinks/sink.js';
import type { Async } from '../store/async.js';
import type { AlertStore, IngestResult, OutboxStore, TransitionResult } from '../store/store.js';
import type { Alert, AlertState, AlertTransition, OutboxEntry, OutboxItem } from './alert.js';
import type { AlertingMetrics } from './metrics.js';
import type { Outbox } from './outbox.js';
import { apiLink, isStormSummary } from './policy.js';
import { triggerSinksOf } from './queries.js';

/** What the life cycle needs. */
export interface LifecycleDeps {
  store: Async<AlertStore & OutboxStore>;
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
  /** Act on a committed batch: wake the sinks of its notifications, publish its changes (the feed's reads follow on their own). */
  afterCommit(result: IngestResult): void;
  /** Acknowledge, resolve or accept an alert (or a storm summary), and notify its receivers. */
  transition(fingerprint: string, change: AlertTransition): Promise<TransitionResult>;
  /** Resolves once every publication and summary change asked for so far is done. */
  idle(): Promise<void>;
}

/**
 * Thrown from inside a transition's transaction when the alert is not the one its follow-ups were
 * worked out for: the transaction rolls back and the transition is tried again.
 */
class StaleFollowUps extends Error {
  constructor() {
    super('the alert changed between reading its deliveries and its transition');
    this.name = 'StaleFollowUps';
  }
}

/** Tries of a transition whose alert keeps changing under it (a reopen, another transition) before it fails. */
const MAX_TRANSITION_TRIES = 5;

/**
 * Whether `before` (read in the transaction) is the alert `seen` (read with its deliveries): the
 * same state since the same moment, and the same exception. Triggers are written only when an alert
 * is created or fires again (its state changes, or an exception stops covering it), so the sinks
 * that `seen`'s deliveries name are still the ones its trigger went to.
 */
function sameOpening(seen: Alert | null, before: Alert): boolean {
  return seen !== null && seen.state === before.state && seen.stateAt === before.stateAt && seen.suppressedBy === before.suppressedBy;
}

/** The life cycle over the store, the outbox and the feed. */
export function createLifecycle(deps: LifecycleDeps): Lifecycle {
  const { store, outbox, feed, metrics, logger, now } = deps;
  // Feed publications of committed batches, in commit order (updated alerts are read first).
  const publications = createSerial();
  // Storm summaries are not stored alerts: no transaction makes their read-then-write one step, so
  // this collector changes one at a time (two acknowledgements at once: the second is a conflict).
  const summaries = createSerial();

  /** Acknowledge/resolve notifications go to the sinks that were sent the trigger (`deliveries`: the alert's). */
  function followUps(alert: Alert, action: NotificationAction, actor: string, deliveries: readonly OutboxItem[]): OutboxEntry[] {
    const triggered = new Set(deliveries.filter((d) => d.action === 'trigger' && d.state !== 'skipped').map((d) => d.sink));
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
  async function transitionSummary(fingerprint: string, change: AlertTransition): Promise<TransitionResult> {
    const deliveries = await store.deliveriesOf(fingerprint);
    const trigger = deliveries.find((d) => d.action === 'trigger');
    if (!trigger) return { ok: false, reason: 'not-found' };
    const n = JSON.parse(trigger.body) as Notification;
    const sinks = triggerSinksOf(deliveries, now());
    const acked = deliveries.some((d) => d.action === 'acknowledge');
    const before = summaryAlert(n, sinks.length === 0 ? 'resolved' : acked ? 'acknowledged' : 'firing', trigger.createdAt);
    if (before.state === 'resolved' || change.to === 'accepted' || before.state === change.to) return { ok: false, reason: 'conflict', alert: before };
    const action: NotificationAction = change.to === 'acknowledged' ? 'acknowledge' : 'resolve';
    const body = JSON.stringify({ ...n, action, at: change.at, actor: change.by, comment: change.comment, state: change.to } satisfies Notification);
    const items: OutboxEntry[] = sinks.map((sink) => ({ alert: fingerprint, sink, action, body, state: 'pending', lastError: '' }));
    await outbox.enqueue(items);
    logger.info({ alert: fingerprint, to: change.to, by: change.by, receivers: sinks }, 'storm summary changed through the API');
    return { ok: true, before, after: { ...before, state: change.to, stateBy: change.by, stateAt: change.at, stateComment: change.comment }, notifications: items };
  }

  return {
    afterCommit(result) {
      if (result.known) metrics.known.inc(result.known);
      outbox.written(result.notifications);
      if (feed.size === 0) return;
      publications
        .run(async () => {
          for (const a of result.newAlerts) publish('alert.created', a);
          for (const a of result.reopened) publish('alert.state', a);
          for (const fp of result.updated) {
            if (feed.size === 0) break;
            const a = await store.getAlert(fp);
            if (a) publish('alert.updated', a);
          }
        })
        .catch((err: unknown) => logger.warn({ err }, 'publishing a commit to the live feed failed'));
    },
    async transition(fingerprint, change) {
      if (isStormSummary(fingerprint)) return summaries.run(() => transitionSummary(fingerprint, change));
      const action: NotificationAction = change.to === 'acknowledged' ? 'acknowledge' : 'resolve';
      for (let tries = 1; ; tries++) {
        // The follow-ups are written in the transaction of the change, by a callback that cannot wait
        // for the store: the deliveries they come from are read first, and the transaction checks
        // that the alert is still the one they were read for (else it rolls back and this reads again).
        const seen = await store.getAlert(fingerprint);
        const deliveries = seen ? await store.deliveriesOf(fingerprint) : [];
        let result: TransitionResult;
        try {
          // Accepting a resolved alert changes nothing on the pager: it was resolved there already.
          result = await store.transitionAlert(fingerprint, change, ({ before, after }) => {
            if (!sameOpening(seen, before)) throw new StaleFollowUps();
            return change.to === 'accepted' && before.state === 'resolved' ? [] : followUps(after, action, change.by, deliveries);
          });
        } catch (err) {
          if (err instanceof StaleFollowUps && tries < MAX_TRANSITION_TRIES) continue;
          throw err;
        }
        if (!result.ok) return result;
        outbox.written(result.notifications);
        publish('alert.state', result.after);
        return result;
      }
    },
    async idle() {
      await Promise.all([publications.idle(), summaries.idle()]);
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
