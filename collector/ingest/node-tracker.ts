/**
 * Nodes: what the collector knows about each node's agent — version, sources, open streams, last
 * contact, and the lag its heartbeats report (records and bytes in its spool, age of the oldest one
 * not yet acknowledged, what a full spool dropped). A node with no message for `silentAfter` is
 * marked silent and alerting is told (a silent agent is a blind spot); the next message from it
 * ends the silence. An agent that says goodbye (a clean stop: SIGTERM, drained) is `stopped`, not
 * silent: a node that is drained and removed is nothing to watch, and one whose agent is restarted
 * says hello again within seconds.
 *
 * Records are kept in memory and persisted in batches (one transaction per check, plus at once on
 * hello, goodbye and silence changes), so a heartbeat costs no disk write; the writes go to the store
 * one at a time, in order, behind the tracker's back (stop() waits for them). After a collector restart,
 * silence is measured from the later of a node's last contact and the collector's start: agents get
 * `silentAfter` to reconnect before anyone is paged.
 *
 * Several replicas (`cluster`, PostgreSQL): an agent talks to one replica at a time, so no replica's
 * memory alone says when a node was last heard from. Each check first reads the stored records (every
 * replica saves the nodes it hears from; the store keeps the latest contact of any) and takes the newer
 * of stored and own; then only the replica leading the `node-silence` job marks nodes silent and tells
 * alerting. A node silent in the cluster's view is silent here too, so whichever replica it reconnects
 * to resolves its silence; a silence this replica knew of that another replica's newer contact ended
 * (the node came back there before that replica read the silence) is resolved here.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../../runtime/logger.js';
import { createSerial } from '../../runtime/serial.js';
import type { Async } from '../store/async.js';
import type { NodeRecord, NodeStore } from '../store/store.js';

/** Most nodes tracked; hellos from more are served but not tracked (and logged). */
export const MAX_NODES = 10_000;
/** Most sources kept per node, and longest source name and agent version kept. */
const MAX_SOURCES = 32;
const MAX_SOURCE_CHARS = 512;
const MAX_VERSION_CHARS = 64;
/** Stopped nodes not heard from for this long are forgotten (autoscaled nodes come and go). */
const FORGET_STOPPED_AFTER_MS = 7 * 86_400_000;

/** A node as the API shows it: its record plus what is live. */
export interface NodeStatus extends NodeRecord {
  /** Agent streams open now. */
  streams: number;
  silent: boolean;
  stopped: boolean;
}

/** What a heartbeat reports. */
export interface NodeHeartbeat {
  spooled: number;
  spoolBytes: number;
  lagMs: number;
  spoolDropped: number;
  watermark: number;
}

/** Settings. */
export interface NodeTrackerOptions {
  /** No message for this long marks a node silent. */
  silentAfterMs: number;
  /** How often silence is checked and records persisted; default silentAfter / 10, within 1 s to 15 s. */
  checkIntervalMs?: number | undefined;
}

/** Collaborators. */
export interface NodeTrackerDeps {
  store: Async<NodeStore>;
  alerting: { nodeSilent(node: string, lastContact: number): Promise<void>; nodeBack(node: string, lastContact: number): Promise<void> };
  registry: Registry;
  logger: Logger;
  now: () => number;
  /**
   * Several replicas on one store: silence judged from the stored records, and raised only where
   * `runIfLeader` runs its function (the replica leading `node-silence` for `ttlMs`).
   */
  cluster?: { runIfLeader<T>(ttlMs: number, fn: () => Promise<T>): Promise<T | undefined> } | undefined;
}

/** The tracker. */
export interface NodeTracker {
  /** A stream said hello as `node`. */
  hello(node: string, info: { agentVersion: string; sources: readonly string[] }): void;
  /** Any message from `node` (cheap: memory only). */
  contact(node: string): void;
  heartbeat(node: string, hb: NodeHeartbeat): void;
  /** The agent said goodbye: a clean stop. */
  goodbye(node: string): void;
  /** A stream of `node` ended. */
  disconnected(node: string): void;
  list(): NodeStatus[];
  get(node: string): NodeStatus | null;
  /** Forget a node (decommissioned without a clean stop): resolves its silence alert; false when unknown. */
  forget(node: string): boolean;
  /** Mark silent nodes and persist changed records (also runs on its own timer); resolves once written and alerting told. */
  check(): Promise<void>;
  /** Stop the timer, persist everything; resolves once every write and silence change is done. */
  stop(): Promise<void>;
}

/** Create the tracker: loads the persisted records (resolves once loaded) and starts its check timer. */
export async function createNodeTracker(options: NodeTrackerOptions, deps: NodeTrackerDeps): Promise<NodeTracker> {
  const { store, alerting, logger, now } = deps;
  const startedAt = now();
  const interval = options.checkIntervalMs ?? Math.min(15_000, Math.max(1_000, Math.floor(options.silentAfterMs / 10)));
  const records = new Map<string, NodeRecord>();
  const streams = new Map<string, number>();
  const dirty = new Set<string>();
  for (const r of await store.listNodes()) records.set(r.node, r);
  /** Store writes, in the order the tracker made them (a save, then the delete of a forgotten node). */
  const writes = createSerial();
  /** Silences and returns told to alerting and not yet written (alerting orders them itself). */
  const telling = new Set<Promise<void>>();

  /** Queue a store write; a failure is logged (the record stays in memory, written again with its next change). */
  function write(what: string, step: () => Promise<unknown>): Promise<void> {
    return writes.run(step).then(
      () => undefined,
      (err: unknown) => logger.error({ err }, `node records: ${what} failed`),
    );
  }

  /** Tell alerting, without waiting; a failure is logged. */
  function tell(promise: Promise<void>): void {
    const told = promise.catch((err: unknown) => logger.error({ err }, 'telling alerting of a node failed'));
    telling.add(told);
    void told.finally(() => telling.delete(told));
  }

  const settled = async () => {
    await Promise.all([writes.idle(), ...telling]);
  };

  const r = [deps.registry];
  const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames: ['node'], registers: r });
  const metrics = {
    lag: gauge('driftwatch_collector_agent_lag_seconds', 'Age of the oldest record in each agent spool not yet acknowledged, from its heartbeats'),
    spoolBytes: gauge('driftwatch_collector_agent_spool_bytes', 'Bytes waiting in each agent spool, from its heartbeats'),
    dropped: gauge('driftwatch_collector_agent_spool_dropped', 'Deviations each agent dropped from its full spool since it started, from its heartbeats'),
    connected: gauge('driftwatch_collector_agent_connected', '1 while the node has an open agent stream'),
    silent: gauge('driftwatch_collector_agent_silent', '1 while the node is silent (no message for silentAfter; a blind spot)'),
    silentNodes: new Gauge({ name: 'driftwatch_collector_agents_silent', help: 'Nodes marked silent now', registers: r }),
    silences: new Counter({ name: 'driftwatch_collector_agent_silences_total', help: 'Times a node was marked silent', registers: r }),
  };

  function status(rec: NodeRecord): NodeStatus {
    return { ...rec, sources: [...rec.sources], streams: streams.get(rec.node) ?? 0, silent: rec.silentSince > 0, stopped: rec.stoppedAt > 0 };
  }

  function updateSilentGauge(): void {
    let n = 0;
    for (const rec of records.values()) if (rec.silentSince > 0) n++;
    metrics.silentNodes.set(n);
  }

  /** The record of `node`, created on first sight; null past MAX_NODES. */
  function recordOf(node: string): NodeRecord | null {
    let rec = records.get(node);
    if (rec) return rec;
    if (records.size >= MAX_NODES) {
      logger.warn({ node, max: MAX_NODES }, 'too many nodes tracked; this one is not');
      return null;
    }
    const t = now();
    rec = { node, agentVersion: '', sources: [], firstSeen: t, lastContact: t, spooled: 0, spoolBytes: 0, lagMs: 0, spoolDropped: 0, watermark: 0, silentSince: 0, stoppedAt: 0 };
    records.set(node, rec);
    return rec;
  }

  function persist(nodes: Iterable<string>): void {
    const out: NodeRecord[] = [];
    for (const n of nodes) {
      const rec = records.get(n);
      // A copy: the record in memory changes on while the write waits its turn.
      if (rec) out.push({ ...rec, sources: [...rec.sources] });
      dirty.delete(n);
    }
    if (out.length > 0) void write('save', () => store.saveNodes(out));
  }

  function touch(node: string): NodeRecord | null {
    const rec = recordOf(node);
    if (!rec) return null;
    const t = now();
    rec.lastContact = t;
    dirty.add(node);
    if (rec.stoppedAt > 0) rec.stoppedAt = 0;
    if (rec.silentSince > 0) {
      logger.info({ node, silentForMs: t - rec.silentSince }, 'silent node is back');
      rec.silentSince = 0;
      metrics.silent.set({ node }, 0);
      updateSilentGauge();
      tell(alerting.nodeBack(node, t));
      persist([node]);
    }
    return rec;
  }

  /** The nodes other replicas heard from: the stored records merged into this replica's (the newer contact wins). */
  async function readClusterView(): Promise<void> {
    let changed = false;
    for (const s of await store.listNodes()) {
      const rec = records.get(s.node);
      if (!rec) {
        if (records.size >= MAX_NODES) continue;
        records.set(s.node, { ...s, sources: [...s.sources] });
        if (s.silentSince > 0) metrics.silent.set({ node: s.node }, 1);
        changed = true;
        continue;
      }
      if (s.lastContact > rec.lastContact) {
        const wasSilent = rec.silentSince > 0;
        Object.assign(rec, { ...s, sources: [...s.sources], firstSeen: Math.min(rec.firstSeen, s.firstSeen) });
        dirty.delete(rec.node);
        if (wasSilent && rec.silentSince === 0) {
          // Back on another replica, which did not know of the silence yet: resolved from here.
          logger.info({ node: rec.node }, 'silent node is back (heard by another replica)');
          metrics.silent.set({ node: rec.node }, 0);
          tell(alerting.nodeBack(rec.node, rec.lastContact));
        } else if (!wasSilent && rec.silentSince > 0) metrics.silent.set({ node: rec.node }, 1);
        changed = true;
      } else if (s.lastContact === rec.lastContact && s.silentSince > 0 && rec.silentSince === 0 && rec.stoppedAt === 0) {
        // The leader marked it silent: whichever replica it reconnects to resolves that.
        rec.silentSince = s.silentSince;
        metrics.silent.set({ node: rec.node }, 1);
        changed = true;
      }
    }
    if (changed) updateSilentGauge();
  }

  async function check(): Promise<void> {
    if (deps.cluster) {
      try {
        await readClusterView();
      } catch (err) {
        // Without the cluster's view no silence is judged: this replica's alone would be wrong.
        logger.error({ err }, 'node records: reading the cluster view failed');
        persist([...dirty]);
        return settled();
      }
      const leads = await deps.cluster.runIfLeader(Math.max(3 * interval, 15_000), async () => true).catch((err: unknown) => {
        logger.error({ err }, 'node records: asking for the node-silence lease failed');
        return undefined;
      });
      if (leads !== true) {
        persist([...dirty]);
        return settled();
      }
    }
    const t = now();
    for (const rec of records.values()) {
      if (rec.silentSince > 0) continue;
      if (rec.stoppedAt > 0) {
        if (t - rec.lastContact > FORGET_STOPPED_AFTER_MS && (streams.get(rec.node) ?? 0) === 0) {
          records.delete(rec.node);
          const node = rec.node;
          void write('delete', () => store.deleteNode(node));
          dirty.delete(rec.node);
        }
        continue;
      }
      if (t - Math.max(rec.lastContact, startedAt) <= options.silentAfterMs) continue;
      rec.silentSince = t;
      dirty.add(rec.node);
      metrics.silent.set({ node: rec.node }, 1);
      metrics.silences.inc();
      tell(alerting.nodeSilent(rec.node, rec.lastContact));
    }
    updateSilentGauge();
    persist([...dirty]);
    return settled();
  }

  // Nodes that were silent when the collector stopped stay silent (and keep firing) until heard from.
  for (const rec of records.values()) {
    if (rec.silentSince > 0) {
      metrics.silent.set({ node: rec.node }, 1);
      tell(alerting.nodeSilent(rec.node, rec.lastContact));
    }
  }
  updateSilentGauge();

  const timer = setInterval(() => {
    check().catch((err: unknown) => logger.error({ err }, 'node check failed'));
  }, interval);
  timer.unref();

  return {
    hello(node, info) {
      const rec = touch(node);
      streams.set(node, (streams.get(node) ?? 0) + 1);
      metrics.connected.set({ node }, 1);
      if (!rec) return;
      rec.agentVersion = info.agentVersion.slice(0, MAX_VERSION_CHARS);
      rec.sources = info.sources.slice(0, MAX_SOURCES).map((s) => String(s).slice(0, MAX_SOURCE_CHARS));
      persist([node]);
    },
    contact(node) {
      touch(node);
    },
    heartbeat(node, hb) {
      const rec = touch(node);
      if (!rec) return;
      // Hostile input: only finite, non-negative numbers are kept.
      const n = (v: number) => (Number.isFinite(v) && v >= 0 ? Math.min(v, Number.MAX_SAFE_INTEGER) : 0);
      rec.spooled = n(hb.spooled);
      rec.spoolBytes = n(hb.spoolBytes);
      rec.lagMs = n(hb.lagMs);
      rec.spoolDropped = n(hb.spoolDropped);
      rec.watermark = n(hb.watermark);
      metrics.lag.set({ node }, rec.lagMs / 1000);
      metrics.spoolBytes.set({ node }, rec.spoolBytes);
      metrics.dropped.set({ node }, rec.spoolDropped);
    },
    goodbye(node) {
      const rec = touch(node);
      if (!rec) return;
      rec.stoppedAt = now();
      logger.info({ node, spooled: rec.spooled }, 'agent stopped cleanly');
      persist([node]);
    },
    disconnected(node) {
      const open = Math.max(0, (streams.get(node) ?? 0) - 1);
      if (open === 0) streams.delete(node);
      else streams.set(node, open);
      if (open === 0) metrics.connected.set({ node }, 0);
    },
    list: () => [...records.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)).map(status),
    get(node) {
      const rec = records.get(node);
      return rec ? status(rec) : null;
    },
    forget(node) {
      const rec = records.get(node);
      if (!rec) return false;
      records.delete(node);
      dirty.delete(node);
      void write('delete', () => store.deleteNode(node));
      if (rec.silentSince > 0) tell(alerting.nodeBack(node, rec.lastContact));
      for (const g of [metrics.lag, metrics.spoolBytes, metrics.dropped, metrics.connected, metrics.silent]) g.remove({ node });
      updateSilentGauge();
      return true;
    },
    check,
    stop() {
      clearInterval(timer);
      persist([...dirty]);
      return settled();
    },
  };
}
