/**
 * Alerting: what happens to an alert after its batch is committed. Severity, owner and routes are
 * decided inside the ingest transaction (the store calls `policy`); after the commit this module
 * applies storm control, writes notifications to the durable outbox, publishes to the live feed, and
 * runs the outbox worker that hands notifications to the sinks. Life-cycle changes from the API
 * (acknowledge, resolve, accept) and exceptions go through here too, so they notify the same way.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { describeEntry } from '../../core/entry.js';
import type { Logger } from '../../runtime/logger.js';
import { alertJson } from '../api.js';
import type { AlertFeed, FeedEventType } from '../feed.js';
import { DeliveryError, type Notice, type Notification, type NotificationAction, type Sink } from '../sinks/index.js';
import { notificationOf } from '../sinks/sink.js';
import type { AlertStore, ExceptionStore, IngestResult, OutboxStore, RetentionStore, TransitionResult } from '../store/store.js';
import type { Alert, AlertException, AlertState, AlertTransition, OutboxItem } from './alert.js';
import type { AlertingConfig } from './config.js';
import { activeExceptions, apiLink, createAlertPolicy, defaultReceivers, isStormSummary, type AlertPolicyHandle, type PolicyHooks, type PolicySpec } from './policy.js';

export { AlertingConfigSchema, type AlertingConfig } from './config.js';
export { MAX_EXCEPTIONS } from './policy.js';

/** What alerting needs. */
export interface AlertingDeps {
  store: AlertStore & OutboxStore & ExceptionStore & RetentionStore;
  sinks: readonly Sink[];
  config: AlertingConfig;
  feed: AlertFeed;
  logger: Logger;
  registry: Registry;
  now?: (() => number) | undefined;
  random?: (() => number) | undefined;
  /** Base URL under which alerts are linked in notifications ('' = no link). */
  publicUrl?: string | undefined;
}

/** The alerting service. */
export interface Alerting {
  /** Consulted by the store inside each ingest transaction (on this thread). */
  readonly policy: AlertPolicyHandle;
  /** What the policy is made of: an ingest worker thread builds its own copy from it. */
  readonly policySpec: PolicySpec;
  /** Where a policy elsewhere (the ingest worker) reports what it suppressed. */
  readonly policyHooks: PolicyHooks;
  /** Called with the active exceptions whenever they change (the worker's policy follows). */
  onExceptions(listener: (active: readonly AlertException[]) => void): void;
  /** Act on a committed batch: notify new and reopened alerts, publish changes. */
  afterCommit(result: IngestResult): void;
  /** Acknowledge, resolve or accept an alert, and notify its receivers. */
  transition(fingerprint: string, change: AlertTransition): TransitionResult;
  /** Add an exception (validated by the caller). */
  addException(e: AlertException): void;
  revokeException(id: string, by: string): AlertException | null;
  /** Send what is due now (the worker also runs on its own); resolves when every sink is idle. */
  drain(): Promise<void>;
  /** Tell owners about exceptions expiring within `reminderBefore`; returns how many were told. */
  remindExpiringExceptions(): number;
  /** Send each team of the ownership map its digest (open alerts, new in the last day); returns how many. */
  sendDigests(): number;
  /** Delete old deviations and closed alerts. */
  prune(): { deviations: number; alerts: number; deliveries: number };
  /** Re-send open (and recently resolved) alerts, and silent nodes, to Alertmanager sinks. */
  resendToAlertmanager(): Promise<number>;
  /**
   * The agent of `node` has not been heard from since `lastContact`: Driftwatch is blind there. An
   * operational alert (severity high, rule `agent-silent`) to the default receivers, like a deviation
   * alert: a PagerDuty incident, a firing Alertmanager alert (label `node`), a Slack message, a webhook
   * call. Sent once per silence, also across collector restarts (the outbox remembers).
   */
  nodeSilent(node: string, lastContact: number): void;
  /** The silent `node` is heard from again: resolve what nodeSilent sent, on the sinks that got it. */
  nodeBack(node: string, lastContact: number): void;
  /** Stop the worker; an in-flight delivery is aborted and stays pending for the next start. */
  stop(): Promise<void>;
}

/** Create alerting and start its outbox worker. */
export function createAlerting(deps: AlertingDeps): Alerting {
  const { store, config, feed, logger } = deps;
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const sinkNames = deps.sinks.map((s) => s.name);
  const policySpec: PolicySpec = { config, sinks: sinkNames, publicUrl: deps.publicUrl ?? '' };
  const defaults = defaultReceivers(policySpec);
  const r = [deps.registry];
  const metrics = {
    notifications: new Counter({ name: 'driftwatch_collector_notifications_enqueued_total', help: 'Notifications written to the outbox, by sink, action and state (pending, or skipped with why)', labelNames: ['sink', 'action', 'state'], registers: r }),
    suppressed: new Counter({ name: 'driftwatch_collector_alerts_not_notified_total', help: 'New or reopened alerts not notified, by reason (exception, storm, no-receiver)', labelNames: ['reason'], registers: r }),
    known: new Counter({ name: 'driftwatch_collector_deviations_known_total', help: 'Deviations dropped because the cluster-wide baseline already has their entry', registers: r }),
    pending: new Gauge({
      name: 'driftwatch_collector_outbox_pending',
      help: 'Notifications waiting in the outbox',
      registers: r,
      collect() {
        this.set(store.pendingDeliveries());
      },
    }),
    outcomes: new Counter({ name: 'driftwatch_collector_outbox_deliveries_total', help: 'Outbox delivery attempts, by sink and outcome (delivered, retry, failed)', labelNames: ['sink', 'outcome'], registers: r }),
    resent: new Counter({ name: 'driftwatch_collector_alertmanager_resends_total', help: 'Open alerts re-sent to Alertmanager sinks, by sink and outcome (sent; rejected: that alert alone, retried with backoff; unavailable: the receiver, round stopped)', labelNames: ['sink', 'outcome'], registers: r }),
    resendHeld: new Gauge({ name: 'driftwatch_collector_alertmanager_resend_held_alerts', help: 'Open alerts the last re-send round held back from each Alertmanager sink, by reason (storm, exception, not-notified, backoff)', labelNames: ['sink', 'reason'], registers: r }),
  };

  const policyHooks: PolicyHooks = {
    suppressed: (reason, n = 1) => metrics.suppressed.inc({ reason }, n),
    storm: (scope, until) => logger.warn({ scope, until }, 'alert storm: notifications paused'),
  };
  const policy = createAlertPolicy(policySpec, policyHooks);

  // ---- exceptions, held in memory by the policy (few, and matched for every deviation group) ----
  const exceptionListeners: ((active: readonly AlertException[]) => void)[] = [];
  let active: readonly AlertException[] = [];
  const loadExceptions = () => {
    active = activeExceptions(store.listExceptions(), now());
    policy.setExceptions(active);
    for (const listen of exceptionListeners) listen(active);
  };
  loadExceptions();

  // ---- the outbox ----
  const url = (fingerprint: string) => apiLink(policySpec.publicUrl, `alerts/${fingerprint}`);
  const notification = (alert: Alert, action: NotificationAction, actor = '') => notificationOf(alert, { action, at: now(), url: url(alert.fingerprint), actor });
  const knownSink = new Set(sinkNames);
  type Enqueued = Parameters<OutboxStore['enqueue']>[0][number];

  function enqueue(items: Enqueued[]): void {
    if (items.length === 0) return;
    store.enqueue(items, now());
    written(items);
  }

  /** Count notifications the store wrote and wake the workers of their sinks. */
  function written(items: readonly Enqueued[]): void {
    for (const i of items) metrics.notifications.inc({ sink: i.sink, action: i.action, state: i.state === 'pending' ? 'pending' : i.lastError.split(':')[0] ?? 'skipped' });
    for (const s of new Set(items.filter((i) => i.state === 'pending').map((i) => i.sink))) workers.get(s)?.wake();
  }

  /** Acknowledge/resolve notifications go to the sinks that were sent the trigger. */
  function followUps(alert: Alert, action: NotificationAction, actor: string): Enqueued[] {
    const triggered = new Set(store.deliveriesOf(alert.fingerprint).filter((d) => d.action === 'trigger' && d.state !== 'skipped').map((d) => d.sink));
    if (triggered.size === 0) return [];
    const body = JSON.stringify(notification(alert, action, actor));
    return [...triggered].map((sink) => ({ alert: alert.fingerprint, sink, action, body, state: 'pending', lastError: '' }));
  }

  /** Alerts in each of `states`, newest first, at most `perState` of each (jobs read whole sets page by page). */
  function newestAlerts(states: readonly AlertState[], perState: number): Alert[] {
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

  /** Receivers of a team's notices: its own, else the defaults; only sinks that take notices. */
  function noticeReceivers(team: string): string[] {
    const owner = config.owners.find((o) => o.team === team && o.receivers !== undefined);
    return (owner?.receivers ?? defaults).filter((name) => deps.sinks.find((x) => x.name === name)?.notify !== undefined);
  }

  function sendNotice(notice: Notice, subject: string, receivers: readonly string[]): void {
    const body = JSON.stringify(notice);
    enqueue(receivers.map((sink) => ({ alert: subject, sink, action: 'notice', body, state: 'pending', lastError: '' })));
  }

  function publish(type: FeedEventType, alert: Alert): void {
    if (feed.size > 0) feed.publish({ type, at: now(), alert: alertJson(alert) });
  }

  // ---- the worker: one serial loop per sink, so a slow sink delays only itself and order holds per sink ----
  const abort = new AbortController();
  const workers = new Map<string, { finished: Promise<void>; wake(): void; idle(): Promise<void> }>();
  for (const sink of deps.sinks) workers.set(sink.name, startWorker(sink));

  function backoff(attempts: number): number {
    const { baseDelay, maxDelay } = config.outbox;
    const ceiling = Math.min(maxDelay, baseDelay * 2 ** Math.min(attempts - 1, 30));
    return Math.round(ceiling / 2 + random() * (ceiling / 2));
  }

  function startWorker(sink: Sink) {
    let wakeUp: (() => void) | null = null;
    let kicked = false;
    let idleWaiters: (() => void)[] = [];
    let busy = false;
    const wait = (ms: number) =>
      new Promise<void>((resolve) => {
        if (kicked) {
          kicked = false;
          return resolve();
        }
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          wakeUp = null;
          resolve();
        }
        wakeUp = done;
      });
    const loop = async () => {
      while (!abort.signal.aborted) {
        const t = now();
        const item = store.nextDelivery(sink.name, t);
        if (!item) {
          busy = false;
          for (const w of idleWaiters) w();
          idleWaiters = [];
          const due = store.nextDueAt(sink.name);
          await wait(due === null ? 60_000 : Math.max(10, Math.min(60_000, due - t)));
          continue;
        }
        busy = true;
        await deliver(sink, item);
      }
    };
    const finished = loop().catch((err: unknown) => logger.error({ err, sink: sink.name }, 'outbox worker stopped'));
    return {
      finished,
      wake() {
        kicked = true;
        wakeUp?.();
      },
      idle() {
        if (!busy && store.nextDelivery(sink.name, now()) === null) return Promise.resolve();
        return new Promise<void>((resolve) => idleWaiters.push(resolve));
      },
    };
  }

  async function deliver(sink: Sink, item: OutboxItem): Promise<void> {
    const attempts = item.attempts + 1;
    // An acknowledge or resolve overtaking its trigger (still being retried) would reach the pager
    // first and close nothing; the trigger then opens an incident that nobody closes. It waits.
    if (item.action === 'acknowledge' || item.action === 'resolve') {
      const trigger = store.deliveriesOf(item.alert).find((d) => d.sink === item.sink && d.action === 'trigger' && d.state === 'pending' && d.seq < item.seq);
      if (trigger) {
        const t = now();
        store.settleDelivery(item.seq, { state: 'pending', attempts: item.attempts, nextAt: Math.max(trigger.nextAt, t) + 1000, error: 'waiting: its trigger is not delivered yet', at: t });
        return;
      }
    }
    try {
      if (item.action === 'notice') {
        if (!sink.notify) throw new DeliveryError('rejected', `${sink.type} sinks take no notices`, undefined, undefined);
        await sink.notify(JSON.parse(item.body) as Notice, abort.signal);
      } else await sink.send(JSON.parse(item.body) as Notification, abort.signal);
      store.settleDelivery(item.seq, { state: 'delivered', attempts, nextAt: item.nextAt, error: '', at: now() });
      metrics.outcomes.inc({ sink: sink.name, outcome: 'delivered' });
    } catch (err) {
      const t = now();
      if (err instanceof DeliveryError && err.code === 'aborted') return; // shutdown: stays pending, not counted
      const error = err instanceof DeliveryError ? `${err.code}: ${err.message}`.slice(0, 500) : `error: ${err instanceof Error ? err.name : 'unknown'}`;
      const retryable = err instanceof DeliveryError && err.retryable;
      if (!retryable || t - item.createdAt >= config.outbox.giveUpAfter) {
        store.settleDelivery(item.seq, { state: 'failed', attempts, nextAt: item.nextAt, error, at: t });
        metrics.outcomes.inc({ sink: sink.name, outcome: 'failed' });
        logger.warn({ sink: sink.name, alert: item.alert, action: item.action, attempts, error }, 'notification failed for good');
        return;
      }
      const wait = Math.max(backoff(attempts), err instanceof DeliveryError ? err.retryAfterMs ?? 0 : 0);
      store.settleDelivery(item.seq, { state: 'pending', attempts, nextAt: t + wait, error, at: t });
      metrics.outcomes.inc({ sink: sink.name, outcome: 'retry' });
      logger.info({ sink: sink.name, alert: item.alert, action: item.action, attempts, retryInMs: wait, error }, 'notification will be retried');
    }
  }

  // ---- silent nodes: operational alerts through the same outbox ----
  /** Silent nodes and their trigger, re-sent to Alertmanager like open alerts. */
  const silentNodes = new Map<string, Notification>();
  const agentFingerprint = (node: string) => `agent-silent/${node}`;

  function agentNotification(node: string, action: 'trigger' | 'resolve', lastContact: number): Notification {
    const last = lastContact > 0 ? new Date(lastContact).toISOString() : 'never';
    return {
      action,
      at: now(),
      fingerprint: agentFingerprint(node),
      severity: 'high',
      ruleId: 'agent-silent',
      ruleReason: 'a node whose agent is silent is a blind spot: nothing there is checked against its baseline',
      baselineKey: '',
      image: '',
      kind: 'agent',
      entry: null,
      description: `agent on node ${node}: no contact since ${last}`,
      title: action === 'trigger' ? `node ${node}: Driftwatch agent silent since ${last}` : `node ${node}: Driftwatch agent reporting again`,
      example: '',
      reason: 'agent-silent',
      explanation:
        action === 'trigger'
          ? `No message from the Driftwatch agent on node ${node} since ${last}. Its deviations wait in its spool if it runs but cannot reach the collector; if it is down, nothing on the node is being checked. Look at the agent pod on this node (crash loop, eviction, network policy, certificate or token).`
          : `The Driftwatch agent on node ${node} is reporting again (last contact ${last}); what it spooled meanwhile is being delivered.`,
      nearest: [],
      count: 1,
      firstSeen: lastContact,
      lastSeen: lastContact,
      nodes: [node],
      pods: [],
      namespace: '',
      team: '',
      url: apiLink(policySpec.publicUrl, `nodes/${encodeURIComponent(node)}`),
      actor: '',
      comment: '',
      state: action === 'resolve' ? 'resolved' : 'firing',
      category: 'agent-silent',
    };
  }

  /** The sinks sent this fingerprint's latest trigger and not yet a resolve (newest deliveries first). */
  function openTriggerSinks(fingerprint: string): string[] {
    const sinks: string[] = [];
    const t = now();
    for (const d of store.deliveriesOf(fingerprint)) {
      // A resolve held back until later (a storm summary's, written with its trigger) has not happened yet.
      if (d.action === 'resolve' && !(d.state === 'pending' && d.nextAt > t)) break;
      if (d.action === 'trigger' && d.state !== 'skipped' && !sinks.includes(d.sink)) sinks.push(d.sink);
    }
    return sinks;
  }

  // ---- re-sends to Alertmanager ----
  /** Re-sends of one alert to one sink that failed (key: sink NUL fingerprint): when to try again. */
  const resendFailures = new Map<string, { failures: number; nextAt: number }>();
  /** Sink NUL fingerprint pairs known to have been sent a trigger (a delivery exists that was not skipped). */
  const notifiedPairs = new Set<string>();

  /**
   * Whether `sink` was ever sent this alert (then its re-sends keep it firing), else why not: an
   * alert that storm control held back (or that was never routed there) is not posted by a re-send.
   */
  function notifiedOn(sink: string, fingerprint: string): true | string {
    const key = `${sink}\0${fingerprint}`;
    if (notifiedPairs.has(key)) return true;
    const mine = store.deliveriesOf(fingerprint).filter((d) => d.sink === sink && d.action !== 'notice');
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
   * between successes is that alert's.
   */
  async function resendRound(sink: Sink, round: readonly { key: string; n: Notification }[], t: number): Promise<{ sent: number; backoff: number }> {
    let sent = 0;
    let waiting = 0;
    let suspect: { key: string; n: Notification; err: unknown } | null = null;
    const failed = (key: string, n: Notification, err: unknown) => {
      const failures = (resendFailures.get(key)?.failures ?? 0) + 1;
      resendFailures.set(key, { failures, nextAt: t + backoff(failures) });
      const error = err instanceof DeliveryError ? `${err.code}: ${err.message}`.slice(0, 500) : `error: ${err instanceof Error ? err.name : 'unknown'}`;
      metrics.resent.inc({ sink: sink.name, outcome: 'rejected' });
      logger.warn({ sink: sink.name, alert: n.fingerprint, failures, error }, 'Alertmanager refused the re-send of one alert; the others go on');
      // Visible in the alert's deliveries: the first failure, then at 2, 4, 8… so a lasting one stays a few rows.
      if ((failures & (failures - 1)) === 0) store.enqueue([{ alert: n.fingerprint, sink: sink.name, action: n.action, body: JSON.stringify(n), state: 'failed', lastError: `re-send ${failures}× failed: ${error}` }], now());
    };
    for (const { key, n } of round) {
      if (abort.signal.aborted) break;
      const f = resendFailures.get(key);
      if (f && f.nextAt > t) {
        waiting++;
        continue;
      }
      try {
        await sink.send(n, abort.signal);
        sent++;
        metrics.resent.inc({ sink: sink.name, outcome: 'sent' });
        resendFailures.delete(key);
        if (suspect) failed(suspect.key, suspect.n, suspect.err);
        suspect = null;
      } catch (err) {
        if (abort.signal.aborted) break;
        if (err instanceof DeliveryError && err.retryable) {
          if (suspect) {
            metrics.resent.inc({ sink: sink.name, outcome: 'unavailable' });
            break; // the receiver, not these alerts: the next round tries them all again
          }
          suspect = { key, n, err };
          continue;
        }
        failed(key, n, err);
      }
    }
    if (suspect) failed(suspect.key, suspect.n, suspect.err);
    return { sent, backoff: waiting };
  }

  // ---- storm summaries: alerts that exist only in the outbox ----
  /**
   * Acknowledge or resolve a storm summary through the API: the same follow-ups as an alert, to the
   * sinks its trigger went to. The summary is not a stored alert; it is shown as one made from its trigger.
   */
  function transitionSummary(fingerprint: string, change: AlertTransition): TransitionResult {
    const trigger = store.deliveriesOf(fingerprint).find((d) => d.action === 'trigger');
    if (!trigger) return { ok: false, reason: 'not-found' };
    const n = JSON.parse(trigger.body) as Notification;
    const sinks = openTriggerSinks(fingerprint);
    const acked = store.deliveriesOf(fingerprint).some((d) => d.action === 'acknowledge');
    const before = summaryAlert(n, sinks.length === 0 ? 'resolved' : acked ? 'acknowledged' : 'firing', trigger.createdAt);
    if (before.state === 'resolved' || change.to === 'accepted' || before.state === change.to) return { ok: false, reason: 'conflict', alert: before };
    const action: NotificationAction = change.to === 'acknowledged' ? 'acknowledge' : 'resolve';
    const body = JSON.stringify({ ...n, action, at: change.at, actor: change.by, comment: change.comment, state: change.to } satisfies Notification);
    const items: Enqueued[] = sinks.map((sink) => ({ alert: fingerprint, sink, action, body, state: 'pending', lastError: '' }));
    enqueue(items);
    logger.info({ alert: fingerprint, to: change.to, by: change.by, receivers: sinks }, 'storm summary changed through the API');
    return { ok: true, before, after: { ...before, state: change.to, stateBy: change.by, stateAt: change.at, stateComment: change.comment }, notifications: items };
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

  return {
    policy,
    policySpec,
    policyHooks,
    onExceptions(listener) {
      exceptionListeners.push(listener);
      listener(active);
    },
    nodeSilent(node, lastContact) {
      const n = agentNotification(node, 'trigger', lastContact);
      silentNodes.set(node, n);
      const fp = agentFingerprint(node);
      // Already told (a collector restart while the node stayed silent): do not page twice.
      if (openTriggerSinks(fp).length > 0) return;
      const receivers = defaults.filter((s) => knownSink.has(s));
      logger.warn({ node, lastContact: new Date(lastContact).toISOString(), receivers }, 'agent silent: this node is a blind spot');
      if (receivers.length === 0) {
        metrics.suppressed.inc({ reason: 'no-receiver' });
        return;
      }
      const body = JSON.stringify(n);
      enqueue(receivers.map((sink) => ({ alert: fp, sink, action: 'trigger', body, state: 'pending', lastError: '' })));
    },
    nodeBack(node, lastContact) {
      silentNodes.delete(node);
      const fp = agentFingerprint(node);
      const sinks = openTriggerSinks(fp);
      logger.info({ node, receivers: sinks }, 'agent reporting again');
      if (sinks.length === 0) return;
      const body = JSON.stringify(agentNotification(node, 'resolve', lastContact));
      enqueue(sinks.map((sink) => ({ alert: fp, sink, action: 'resolve', body, state: 'pending', lastError: '' })));
    },
    afterCommit(result) {
      if (result.known) metrics.known.inc(result.known);
      written(result.notifications);
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
      written(result.notifications);
      publish('alert.state', result.after);
      return result;
    },
    addException(e) {
      store.addException(e);
      loadExceptions();
    },
    revokeException(id, by) {
      const e = store.revokeException(id, by, now());
      loadExceptions();
      return e;
    },
    async drain() {
      for (const w of workers.values()) w.wake();
      await Promise.all([...workers.values()].map((w) => w.idle()));
    },
    remindExpiringExceptions() {
      const t = now();
      let told = 0;
      for (const e of store.listExceptions()) {
        if (e.revokedAt !== 0 || e.remindedAt !== 0 || e.expiresAt <= t || e.expiresAt - t > config.reminderBefore) continue;
        const expires = new Date(e.expiresAt).toISOString();
        const notice: Notice = {
          kind: 'exception-expiring',
          at: t,
          team: e.owner,
          title: `Exception ${e.id} expires ${expires}`,
          lines: [
            `reason: ${e.reason}`,
            `owner: ${e.owner}; created by ${e.createdBy} at ${new Date(e.createdAt).toISOString()}`,
            `covers: key ${e.key || '*'}, entry ${e.entry || '*'}, namespace ${e.namespace || '*'}`,
            'after it expires, what it covers alerts again: renew it or fix what it covers',
          ],
          url: apiLink(policySpec.publicUrl, `exceptions/${e.id}`),
        };
        const to = noticeReceivers(e.owner);
        sendNotice(notice, `exception-${e.id}`, to);
        store.markReminded(e.id, t);
        logger.info({ exception: e.id, owner: e.owner, expiresAt: expires, receivers: to }, 'exception expires soon: owner told');
        told++;
      }
      loadExceptions(); // expired ones stop matching
      return told;
    },
    sendDigests() {
      const t = now();
      const since = t - 86_400_000;
      const teams = [...new Set(config.owners.map((o) => o.team))];
      const byTeam = new Map<string, Alert[]>(teams.map((team) => [team, []]));
      for (const a of newestAlerts(['firing', 'acknowledged'], 5_000)) byTeam.get(a.team)?.push(a);
      let sent = 0;
      for (const [team, open] of byTeam) {
        const fresh = open.filter((a) => a.createdAt >= since);
        const rank = (a: Alert) => ['critical', 'high', 'medium', 'low'].indexOf(a.severity);
        open.sort((a, b) => rank(a) - rank(b) || b.lastSeen - a.lastSeen);
        const notice: Notice = {
          kind: 'digest',
          at: t,
          team,
          title: `Driftwatch daily digest for ${team}: ${open.length} open alert${open.length === 1 ? '' : 's'}, ${fresh.length} new`,
          lines: open.slice(0, 20).map((a) => `[${a.severity.toUpperCase()}] ${a.state === 'acknowledged' ? '(ack) ' : ''}${a.baselineKey}: ${describeEntry(a.entry)} — ${a.count}×, last ${new Date(a.lastSeen).toISOString()}`),
          url: apiLink(policySpec.publicUrl, 'alerts'),
        };
        if (open.length > 20) notice.lines.push(`… and ${open.length - 20} more`);
        if (open.length === 0) notice.lines.push('nothing open');
        sendNotice(notice, `digest-${team}`, noticeReceivers(team));
        sent++;
      }
      return sent;
    },
    prune() {
      const t = now();
      const out = store.prune(t - config.deviationRetention, t - config.alertRetention);
      logger.info(out, 'retention: old records deleted');
      return out;
    },
    async resendToAlertmanager() {
      const targets = deps.sinks.filter((s) => s.type === 'alertmanager');
      if (targets.length === 0) return 0;
      const t = now();
      // Bounded: at most 2,000 alerts per state and round, newest first.
      const open = newestAlerts(['firing', 'acknowledged', 'resolved'], 2_000).filter((a) => a.state !== 'resolved' || t - a.stateAt <= config.alertmanagerResolvedFor);
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
          const notified = notifiedOn(sink.name, a.fingerprint);
          if (notified !== true) {
            hold(notified);
            continue;
          }
          round.push({ key: `${sink.name}\0${a.fingerprint}`, n: notificationOf(a, { action: a.state === 'resolved' ? 'resolve' : 'trigger', at: a.state === 'resolved' ? a.stateAt : t, url: url(a.fingerprint) }) });
        }
        // Silent nodes fire until they are back, like open alerts (Alertmanager resolves what is not re-sent).
        if (defaults.includes(sink.name)) for (const [node, n] of silentNodes) round.push({ key: `${sink.name}\0${agentFingerprint(node)}`, n: { ...n, at: t } });
        const r = await resendRound(sink, round, t);
        sent += r.sent;
        if (r.backoff > 0) held.set('backoff', r.backoff);
        for (const [reason, n] of held) metrics.resendHeld.set({ sink: sink.name, reason }, n);
        // Forget the failures of alerts no longer re-sent (bounded by the open alerts).
        const keys = new Set(round.map((x) => x.key));
        for (const k of resendFailures.keys()) if (k.startsWith(`${sink.name}\0`) && !keys.has(k)) resendFailures.delete(k);
      }
      return sent;
    },
    async stop() {
      abort.abort();
      for (const w of workers.values()) w.wake();
      await Promise.all([...workers.values()].map((w) => w.finished));
    },
  };
}
