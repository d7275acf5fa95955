/**
 * Several collectors on one PostgreSQL behave as one (issue 20): what any replica commits reaches the
 * agents and browsers of every replica through the store's change feed (store/postgres/feed.ts,
 * LISTEN/NOTIFY). A baseline key announced is pushed to the agents connected here; an alert announced
 * is read and published to this replica's live feed. The replica that made a change hears its own
 * announcement too, and that is the only way it pushes and publishes on PostgreSQL (main.ts turns the
 * in-process paths off), so each change is pushed and published once per replica.
 *
 * Announcements arrive faster than they can be acted on (a storm of alerts, a bulk review): they are
 * coalesced (each key, each alert once while waiting) and bounded; past the bound, or after the feed
 * was lost, keys are read afresh (every cluster key pushed) and the alerts waiting are dropped from
 * the live feed (it is a view of changes as they happen, not a log: a browser reloads the list).
 */
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../runtime/logger.js';
import { createSerial } from '../../runtime/serial.js';
import type { AlertFeed, FeedEventType } from '../http/feed.js';
import { alertView } from '../http/views.js';
import type { Async } from '../store/async.js';
import { CHANNELS, parseAlertPayload, RESYNC_PAYLOAD, type AlertChange, type ChangeFeed } from '../store/postgres/feed.js';
import type { AlertStore, BaselineStore } from '../store/store.js';

/** Most keys, and most alerts, waiting at once; beyond, keys resync and alerts are dropped (counted). */
export const MAX_PENDING = 10_000;

const FEED_TYPE: Record<AlertChange, FeedEventType> = { created: 'alert.created', updated: 'alert.updated', state: 'alert.state' };
const RANK: Record<AlertChange, number> = { updated: 0, state: 1, created: 2 };

/** What following the change feed needs. */
export interface ReplicationDeps {
  changes: ChangeFeed;
  store: Async<Pick<BaselineStore, 'clusterKeys'> & Pick<AlertStore, 'getAlert'>>;
  /** The agents connected to this replica. */
  pushBaselines(keys: readonly string[]): Promise<void>;
  /** Notifications were written with an announced alert change: this replica's outbox workers look for them too. */
  onAlertChange(): void;
  /** An exception was added or revoked on some replica (or the feed was lost): reload the active ones. */
  onExceptionChange(): void;
  /** This replica's live feed (the websocket clients). */
  feed: AlertFeed;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  registry: Registry;
  now: () => number;
}

/** Following the change feed. */
export interface Replication {
  /** Resolves once everything heard so far is pushed and published. */
  idle(): Promise<void>;
  /** Stop listening to the feed's subscriptions (the feed itself is closed by its owner). */
  stop(): Promise<void>;
}

/** Subscribe this replica's agents and live feed to the change feed. */
export function followChanges(deps: ReplicationDeps): Replication {
  const { changes, store, feed, logger, now } = deps;
  const heard = new Counter({
    name: 'driftwatch_collector_changes_heard_total',
    help: 'Changes announced by the replicas (this one included) and heard here, by channel; resync: a gap or overflow, everything read again',
    labelNames: ['channel'],
    registers: [deps.registry],
  });
  const droppedAlerts = new Counter({ name: 'driftwatch_collector_changes_dropped_total', help: 'Alert changes heard but not published to the live feed (more waiting than the bound)', registers: [deps.registry] });

  let keys = new Set<string>();
  let resyncKeys = false;
  let alerts = new Map<string, AlertChange>();
  const work = createSerial();
  let scheduled = false;
  let stopped = false;

  function schedule(): void {
    if (scheduled || stopped) return;
    scheduled = true;
    // Announcements of one commit arrive together: one step acts on all of them.
    setImmediate(() => {
      scheduled = false;
      void work.run(step).catch((err: unknown) => logger.error({ err }, 'acting on announced changes failed'));
    });
  }

  async function step(): Promise<void> {
    const all = resyncKeys;
    const someKeys = [...keys];
    const someAlerts = [...alerts];
    resyncKeys = false;
    keys = new Set();
    alerts = new Map();
    if (all) await deps.pushBaselines(await store.clusterKeys());
    else if (someKeys.length > 0) await deps.pushBaselines(someKeys);
    for (const [fingerprint, change] of someAlerts) {
      if (feed.size === 0) break;
      const alert = await store.getAlert(fingerprint);
      if (alert) feed.publish({ type: FEED_TYPE[change], at: now(), alert: alertView(alert) });
    }
  }

  const offBaseline = changes.subscribe(CHANNELS.baseline, {
    change(key) {
      heard.inc({ channel: 'baseline' });
      if (key === RESYNC_PAYLOAD || keys.size >= MAX_PENDING) resyncKeys = true;
      else keys.add(key);
      schedule();
    },
    resync() {
      heard.inc({ channel: 'resync' });
      logger.info('change feed: reading every cluster baseline again (announcements may have been missed)');
      resyncKeys = true;
      schedule();
    },
  });
  const offAlert = changes.subscribe(CHANNELS.alert, {
    change(payload) {
      heard.inc({ channel: 'alert' });
      deps.onAlertChange();
      // Nobody watches this replica's live feed: nothing to read.
      if (feed.size === 0) return;
      const a = parseAlertPayload(payload);
      if (!a) return;
      const had = alerts.get(a.fingerprint);
      if (had === undefined && alerts.size >= MAX_PENDING) {
        droppedAlerts.inc();
        return;
      }
      if (had === undefined || RANK[a.change] > RANK[had]) alerts.set(a.fingerprint, a.change);
      schedule();
    },
    resync() {
      // The live feed has no history to replay: what changed meanwhile is in the alert list.
    },
  });

  const offException = changes.subscribe(CHANNELS.exception, {
    change() {
      heard.inc({ channel: 'exception' });
      deps.onExceptionChange();
    },
    resync() {
      deps.onExceptionChange();
    },
  });

  return {
    async idle() {
      while (scheduled) await new Promise((r) => setImmediate(r));
      await work.idle();
    },
    async stop() {
      stopped = true;
      offBaseline();
      offAlert();
      offException();
      await work.idle();
    },
  };
}
