/**
 * Alerting: what happens to an alert after its batch is committed. Severity, owner and routes are
 * decided inside the ingest transaction (the store calls `policy`, with storm control); the
 * notifications it writes to the durable outbox are handed to the sinks by the outbox worker.
 * Life-cycle changes from the API (acknowledge, resolve, accept) and exceptions go through here too,
 * so they notify the same way. Each job lives in its own file; this one composes them:
 *
 * - `policy.ts`: severity, owner, receivers, exceptions and storm control inside the transaction
 * - `outbox.ts`: the worker, one loop per sink, with retries and backoff
 * - `lifecycle.ts`: the live feed after a commit, and transitions (alerts and storm summaries)
 * - `exceptions.ts`: the active exceptions the policy matches
 * - `node-silence.ts`: operational alerts for nodes whose agent is silent
 * - `reminders.ts`, `digests.ts`, `retention.ts`: the scheduled jobs
 * - `resend.ts`: the Alertmanager re-send rounds
 * - `notices.ts`, `queries.ts`, `metrics.ts`: what several jobs share
 */
import type { Registry } from 'prom-client';
import type { Logger } from '../../runtime/logger.js';
import type { AlertFeed } from '../http/feed.js';
import { replicaId } from '../replicas/leadership.js';
import type { Notification, Sink } from '../sinks/index.js';
import type { Async } from '../store/async.js';
import type { AlertStore, ExceptionStore, IngestResult, OutboxStore, RetentionStore, StormStore, TransitionResult } from '../store/store.js';
import type { AlertException, AlertTransition } from './alert.js';
import type { AlertingConfig } from './config.js';
import { createDigests } from './digests.js';
import { createExceptions } from './exceptions.js';
import { createLifecycle } from './lifecycle.js';
import { createAlertingMetrics } from './metrics.js';
import { createNodeSilence } from './node-silence.js';
import { createNoticeSender } from './notices.js';
import { createOutbox } from './outbox.js';
import { createAlertPolicy, defaultReceivers, type AlertPolicyHandle, type PolicyHooks, type PolicySpec } from './policy.js';
import { createReminders } from './reminders.js';
import { createResend } from './resend.js';
import { createRetention } from './retention.js';
import { startStormShare } from './storm-share.js';

export { AlertingConfigSchema, type AlertingConfig } from './config.js';
export { MAX_EXCEPTIONS } from './policy.js';

/** What alerting needs. */
export interface AlertingDeps {
  store: Async<AlertStore & OutboxStore & ExceptionStore & RetentionStore & StormStore>;
  sinks: readonly Sink[];
  config: AlertingConfig;
  feed: AlertFeed;
  logger: Logger;
  registry: Registry;
  now?: (() => number) | undefined;
  random?: (() => number) | undefined;
  /** Base URL under which alerts are linked in notifications ('' = no link). */
  publicUrl?: string | undefined;
  /** This replica's id, the owner of its outbox leases (default: a new collector/replicas/leadership.ts replicaId). */
  owner?: string | undefined;
  /** How long a claimed notification is this replica's unless renewed (default: outbox.ts DEFAULT_DELIVERY_LEASE_MS). */
  deliveryLeaseMs?: number | undefined;
  /** Adds to each notification at delivery what is not stored with it (the package behind its executable); see OutboxDeps.enrich. */
  enrichNotification?: ((n: Notification) => Promise<Notification>) | undefined;
  /**
   * How often this replica exchanges its storm-control counts with the others' (storm-share.ts);
   * 0 (the default) exchanges none: one collector on its own store has no others.
   */
  stormShareMs?: number | undefined;
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
  transition(fingerprint: string, change: AlertTransition): Promise<TransitionResult>;
  /** Add an exception (validated by the caller); resolves once the policy matches it. */
  addException(e: AlertException): Promise<void>;
  /** Revoke an exception: the revoked exception, or null when there is none or another call revoked it first. */
  revokeException(id: string, by: string): Promise<AlertException | null>;
  /** Send what is due now, silences and returns included (the worker also runs on its own); resolves when every sink is idle. */
  drain(): Promise<void>;
  /** Another replica wrote notifications (heard on the change feed): the workers look now, and whoever claims first delivers. */
  wakeOutbox(): void;
  /** Exchange storm-control counts with the other replicas now (they are every stormShareMs); nothing when not shared. */
  shareStorms(): Promise<void>;
  /** Read the active exceptions again (another replica added or revoked one). */
  reloadExceptions(): Promise<void>;
  /** Tell owners about exceptions expiring within `reminderBefore`; resolves to how many were told. */
  remindExpiringExceptions(): Promise<number>;
  /** Send each team of the ownership map its digest (open alerts, new in the last day); resolves to how many. */
  sendDigests(): Promise<number>;
  /** Delete old deviations and closed alerts. */
  prune(): Promise<{ deviations: number; alerts: number; deliveries: number }>;
  /** Re-send open (and recently resolved) alerts, and silent nodes, to Alertmanager sinks. */
  resendToAlertmanager(): Promise<number>;
  /**
   * The agent of `node` has not been heard from since `lastContact`: Driftwatch is blind there. An
   * operational alert (severity high, rule `agent-silent`) to the default receivers, like a deviation
   * alert: a PagerDuty incident, a firing Alertmanager alert (label `node`), a Slack message, a webhook
   * call. Sent once per silence, also across collector restarts (the outbox remembers).
   */
  nodeSilent(node: string, lastContact: number): Promise<void>;
  /** The silent `node` is heard from again: resolve what nodeSilent sent, on the sinks that got it. */
  nodeBack(node: string, lastContact: number): Promise<void>;
  /**
   * Stop the worker (an in-flight delivery is aborted and stays pending for the next start); resolves
   * once nothing of alerting uses the store any more.
   */
  stop(): Promise<void>;
}

/** Create alerting (resolves once the active exceptions are loaded) and start its outbox worker. */
export async function createAlerting(deps: AlertingDeps): Promise<Alerting> {
  const { store, sinks, config, feed, logger } = deps;
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const publicUrl = deps.publicUrl ?? '';
  const policySpec: PolicySpec = { config, sinks: sinks.map((s) => s.name), publicUrl };
  const defaults = defaultReceivers(policySpec);
  const metrics = createAlertingMetrics(deps.registry, store);

  const policyHooks: PolicyHooks = {
    suppressed: (reason, n = 1) => metrics.suppressed.inc({ reason }, n),
    storm: (scope, until) => logger.warn({ scope, until }, 'alert storm: notifications paused'),
  };
  const policy = createAlertPolicy(policySpec, policyHooks);
  const exceptions = await createExceptions({ store, policy, now });

  // Aborted by stop(): ends the outbox loops and a re-send round, aborting a delivery in flight.
  const abort = new AbortController();
  const owner = deps.owner ?? replicaId();
  const outbox = createOutbox({ store, sinks, config: config.outbox, signal: abort.signal, metrics, logger, now, random, owner, leaseMs: deps.deliveryLeaseMs, enrich: deps.enrichNotification });
  const storms = deps.stormShareMs ? startStormShare({ store, policy, owner, logger, now, everyMs: deps.stormShareMs }) : null;
  const lifecycle = createLifecycle({ store, outbox, feed, publicUrl, metrics, logger, now });
  const silence = createNodeSilence({ store, outbox, receivers: defaults.filter((name) => policySpec.sinks.includes(name)), publicUrl, metrics, logger, now });
  const notices = createNoticeSender({ owners: config.owners, defaults, sinks, outbox });
  const remindExpiringExceptions = createReminders({ store, notices, reminderBefore: config.reminderBefore, refreshExceptions: exceptions.reload, publicUrl, logger, now });
  const sendDigests = createDigests({ store, owners: config.owners, notices, publicUrl, now });
  const prune = createRetention({ store, config, logger, now });
  const resendToAlertmanager = createResend({ store, sinks, config, defaults, silentNodes: silence.firing, backoff: outbox.backoff, signal: abort.signal, publicUrl, metrics, logger, now, enrich: deps.enrichNotification });

  return {
    policy,
    policySpec,
    policyHooks,
    onExceptions: exceptions.onChange,
    reloadExceptions: exceptions.reload,
    afterCommit: lifecycle.afterCommit,
    transition: lifecycle.transition,
    addException: exceptions.add,
    revokeException: exceptions.revoke,
    wakeOutbox: outbox.wakeAll,
    shareStorms: async () => storms?.exchange(),
    async drain() {
      // What silences, returns and exception reloads are still writing is part of what is due now.
      await Promise.all([silence.idle(), exceptions.idle()]);
      await outbox.drain();
    },
    remindExpiringExceptions,
    sendDigests,
    prune,
    resendToAlertmanager,
    nodeSilent: silence.nodeSilent,
    nodeBack: silence.nodeBack,
    async stop() {
      abort.abort();
      await Promise.all([outbox.finished, silence.idle(), exceptions.idle(), lifecycle.idle(), storms?.stop()]);
    },
  };
}
