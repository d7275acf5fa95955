/**
 * The outbox worker: hands the notifications in the durable outbox to the sinks. One serial loop per
 * sink, so a slow sink delays only itself and order holds per sink. A failed delivery is retried with
 * backoff until the sink takes it, refuses it for good, or `giveUpAfter` has passed; a delivery in
 * flight at shutdown is aborted and stays pending for the next start.
 *
 * Several collectors (replicas) may share one store: each notification is claimed under a lease in
 * this replica's name (`owner`) before it is sent, renewed while the attempt lasts, and settled only
 * by its holder, so each is sent by one replica. A replica that dies mid-delivery leaves its lease to
 * expire; another replica's worker then claims the notification and sends it.
 */
import { backoffDelay } from '../../runtime/backoff.js';
import type { Logger } from '../../runtime/logger.js';
import { DeliveryError, SkippedDelivery, type Notice, type Notification, type Sink } from '../sinks/index.js';
import type { Async } from '../store/async.js';
import type { OutboxStore } from '../store/store.js';
import type { OutboxEntry, OutboxItem } from './alert.js';
import type { AlertingConfig } from './config.js';
import type { AlertingMetrics } from './metrics.js';

/** What the outbox worker needs. */
export interface OutboxDeps {
  store: Async<OutboxStore>;
  sinks: readonly Sink[];
  config: AlertingConfig['outbox'];
  /** Aborted at shutdown: the loops end, a delivery in flight is aborted. */
  signal: AbortSignal;
  metrics: Pick<AlertingMetrics, 'notifications' | 'outcomes'>;
  logger: Logger;
  now: () => number;
  random: () => number;
  /** This replica's id (see collector/replicas/leadership.ts): the name its leases are held in. */
  owner: string;
  /** How long a claim holds a notification before another replica may take it; renewed every third of it while an attempt lasts (default 2 min). */
  leaseMs?: number | undefined;
  /** Adds what is looked up at delivery, not stored with the notification (the package behind its executable: sbom/notification-packages.ts); never throws. */
  enrich?: ((n: Notification) => Promise<Notification>) | undefined;
}

/** How long a claimed notification stays this replica's unless renewed. */
export const DEFAULT_DELIVERY_LEASE_MS = 120_000;

/** The running outbox worker. */
export interface Outbox {
  /** Write `items` to the outbox, count them and wake the workers of their sinks (resolves once written). */
  enqueue(items: readonly OutboxEntry[]): Promise<void>;
  /** Count notifications the store already wrote (with an ingest or a transition) and wake their sinks' workers. */
  written(items: readonly OutboxEntry[]): void;
  /** Send what is due now; resolves when every sink's worker is idle. */
  drain(): Promise<void>;
  /** Wake every sink's worker to look for work (another replica wrote notifications: whoever claims first delivers). */
  wakeAll(): void;
  /** The delay before retry number `attempts` (jittered, doubling up to `maxDelay`); re-sends back off the same way. */
  backoff(attempts: number): number;
  /** Settles when every loop has ended (after `signal` aborts). */
  readonly finished: Promise<void>;
}

/** A delivery error as the outbox records it: the typed error's code and message (bounded), else only the error's name. */
export function deliveryErrorText(err: unknown): string {
  return err instanceof DeliveryError ? `${err.code}: ${err.message}`.slice(0, 500) : `error: ${err instanceof Error ? err.name : 'unknown'}`;
}

/** Start one worker loop per sink. */
export function createOutbox(deps: OutboxDeps): Outbox {
  const { store, config, signal, metrics, logger, now, random, owner } = deps;
  const leaseMs = deps.leaseMs ?? DEFAULT_DELIVERY_LEASE_MS;
  const workers = new Map<string, Worker>();
  for (const sink of deps.sinks) workers.set(sink.name, startWorker(sink));
  // Wakes the loops waiting for work, so that they see the abort and end.
  signal.addEventListener('abort', () => workers.forEach((w) => w.wake()), { once: true });

  const backoff = (attempts: number): number => backoffDelay(attempts, { baseMs: config.baseDelay, capMs: config.maxDelay }, random);

  function wakeAll(): void {
    for (const w of workers.values()) w.wake();
  }

  function written(items: readonly OutboxEntry[]): void {
    for (const i of items) metrics.notifications.inc({ sink: i.sink, action: i.action, state: i.state === 'pending' ? 'pending' : i.lastError.split(':')[0] ?? 'skipped' });
    for (const s of new Set(items.filter((i) => i.state === 'pending').map((i) => i.sink))) workers.get(s)?.wake();
  }

  interface Worker {
    finished: Promise<void>;
    wake(): void;
    idle(): Promise<void>;
  }

  function startWorker(sink: Sink): Worker {
    let wakeUp: (() => void) | null = null;
    let kicked = false;
    let idleWaiters: (() => void)[] = [];
    let busy = false;
    /** Times the loop found nothing due. */
    let idleRounds = 0;
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
      while (!signal.aborted) {
        const t = now();
        const item = await store.claimDelivery(sink.name, t, owner, leaseMs);
        if (!item) {
          busy = false;
          idleRounds++;
          for (const w of idleWaiters) w();
          idleWaiters = [];
          const due = await store.nextDueAt(sink.name);
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
      async idle() {
        const rounds = idleRounds;
        const due = busy ? null : await store.nextDueAt(sink.name);
        if (!busy && (due === null || due > now())) return;
        // The loop may have delivered what the read saw and gone idle while it was read (calling the
        // waiters it had then): that is the idleness asked for, not a reason to wait for the next.
        if (idleRounds !== rounds) return;
        return new Promise<void>((resolve) => idleWaiters.push(resolve));
      },
    };
  }

  /** Settle `item` as this replica; a refusal (the lease expired and another replica took it) is counted and logged. */
  async function settle(sink: Sink, item: OutboxItem, outcome: Parameters<Async<OutboxStore>['settleDelivery']>[2]): Promise<boolean> {
    if (await store.settleDelivery(item.seq, owner, outcome)) return true;
    metrics.outcomes.inc({ sink: sink.name, outcome: 'lease_lost' });
    logger.warn({ sink: sink.name, alert: item.alert, action: item.action, seq: item.seq, outcome: outcome.state }, 'notification lease lost before its outcome was recorded: another replica took it over');
    return false;
  }

  async function deliver(sink: Sink, item: OutboxItem): Promise<void> {
    const attempts = item.attempts + 1;
    // An acknowledge or resolve overtaking its trigger (still being retried) would reach the pager
    // first and close nothing; the trigger then opens an incident that nobody closes. It waits.
    if (item.action === 'acknowledge' || item.action === 'resolve') {
      const trigger = (await store.deliveriesOf(item.alert)).find((d) => d.sink === item.sink && d.action === 'trigger' && d.state === 'pending' && d.seq < item.seq);
      if (trigger) {
        const t = now();
        await settle(sink, item, { state: 'pending', attempts: item.attempts, nextAt: Math.max(trigger.nextAt, t) + 1000, error: 'waiting: its trigger is not delivered yet', at: t });
        return;
      }
    }
    // The attempt is aborted at shutdown, or when the lease cannot be renewed (another replica has
    // the notification now: sending it too would notify twice).
    const attempt = new AbortController();
    const onAbort = () => attempt.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    let lost = false;
    const renewal = setInterval(() => {
      void store.renewDelivery(item.seq, owner, now() + leaseMs).then(
        (held) => {
          if (held || attempt.signal.aborted) return;
          lost = true;
          attempt.abort();
        },
        (err: unknown) => logger.warn({ err, sink: sink.name, seq: item.seq }, 'could not renew a notification lease'),
      );
    }, Math.max(10, Math.floor(leaseMs / 3)));
    try {
      if (item.action === 'notice') {
        if (!sink.notify) throw new DeliveryError('rejected', `${sink.type} sinks take no notices`, undefined, undefined);
        await sink.notify(JSON.parse(item.body) as Notice, attempt.signal);
      } else {
        const n = JSON.parse(item.body) as Notification;
        await sink.send(deps.enrich ? await deps.enrich(n) : n, attempt.signal);
      }
      if (await settle(sink, item, { state: 'delivered', attempts, nextAt: item.nextAt, error: '', at: now() })) metrics.outcomes.inc({ sink: sink.name, outcome: 'delivered' });
    } catch (err) {
      const t = now();
      if (err instanceof DeliveryError && err.code === 'aborted') {
        if (lost) {
          metrics.outcomes.inc({ sink: sink.name, outcome: 'lease_lost' });
          logger.warn({ sink: sink.name, alert: item.alert, action: item.action, seq: item.seq }, 'notification lease lost mid-delivery: attempt aborted, another replica took it over');
          return;
        }
        // Shutdown: stays pending as it was (not counted), its lease released for whichever replica starts next.
        await store.settleDelivery(item.seq, owner, { state: 'pending', attempts: item.attempts, nextAt: item.nextAt, error: item.lastError, at: t }).catch(() => false);
        return;
      }
      if (err instanceof SkippedDelivery) {
        // The sink chose not to deliver (its own bound): final, recorded with why, never retried.
        const why = `${err.reason}: ${err.message}`.slice(0, 500);
        if (!(await settle(sink, item, { state: 'skipped', attempts, nextAt: item.nextAt, error: why, at: t }))) return;
        metrics.outcomes.inc({ sink: sink.name, outcome: 'skipped' });
        logger.info({ sink: sink.name, alert: item.alert, action: item.action, reason: err.reason }, 'notification skipped by its sink');
        return;
      }
      const error = deliveryErrorText(err);
      const retryable = err instanceof DeliveryError && err.retryable;
      if (!retryable || t - item.createdAt >= config.giveUpAfter) {
        if (!(await settle(sink, item, { state: 'failed', attempts, nextAt: item.nextAt, error, at: t }))) return;
        metrics.outcomes.inc({ sink: sink.name, outcome: 'failed' });
        logger.warn({ sink: sink.name, alert: item.alert, action: item.action, attempts, error }, 'notification failed for good');
        return;
      }
      const wait = Math.max(backoff(attempts), err instanceof DeliveryError ? err.retryAfterMs ?? 0 : 0);
      if (!(await settle(sink, item, { state: 'pending', attempts, nextAt: t + wait, error, at: t }))) return;
      metrics.outcomes.inc({ sink: sink.name, outcome: 'retry' });
      logger.info({ sink: sink.name, alert: item.alert, action: item.action, attempts, retryInMs: wait, error }, 'notification will be retried');
    } finally {
      clearInterval(renewal);
      signal.removeEventListener('abort', onAbort);
    }
  }

  return {
    async enqueue(items) {
      if (items.length === 0) return;
      await store.enqueue(items, now());
      written(items);
    },
    written,
    wakeAll,
    async drain() {
      for (const w of workers.values()) w.wake();
      await Promise.all([...workers.values()].map((w) => w.idle()));
    },
    backoff,
    finished: Promise.all([...workers.values()].map((w) => w.finished)).then(() => undefined),
  };
}
