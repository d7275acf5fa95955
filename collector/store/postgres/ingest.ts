/**
 * The ingest slice on PostgreSQL: one group commit (the batches that arrived together) in one
 * transaction, with the SQLite slice's semantics: deltas merge first, then deviations the cluster
 * baseline knows are dropped, the rest stored once, grouped into alerts, and the policy's
 * notifications written to the outbox, all committed together; each batch gets its own result.
 *
 * Two paths. A group without deltas (a storm) takes a constant number of statements whatever its
 * number of batches (ingestGroup: a known-check, one INSERT of every deviation, one sorted lock of
 * its alerts, one UPDATE growing them; opening alerts adds three): round trips, not rows, were where
 * a commit's time went. A group with deltas, or one the group path failed on (a batch the database
 * refuses), goes batch by batch, each in its own savepoint, so only a bad batch fails.
 *
 * Between replicas: every lock is taken in one order (nodes, baseline keys, alert rows, the locks
 * of alerts to open, open-alert counters), each kind in one sorted statement, so replicas wait for
 * each other instead of deadlocking; the alert rows only after the deviations are in, so the
 * INSERT, the bulk of the work, runs in parallel. A deadlock or serialization failure all the same
 * runs the whole transaction again (db.ts transaction). A batch replayed to another replica is
 * stored once (deviations.ts); a batch is acknowledged after its transaction committed.
 */
import type pg from 'pg';
import type { BaselineSnapshot } from '../../../core/baseline.js';
import type { Deviation } from '../../../core/deviation.js';
import { exampleOf } from '../../../core/entry.js';
import type { BaselineFacts } from '../../../core/severity.js';
import type { Alert, AlertPolicy, OutboxEntry } from '../../alerting/alert.js';
import type { Async } from '../async.js';
import { createDeviationPreparer, knownToCluster } from '../prepare.js';
import { addToGroup, alertOf, grownLists, type DeviationGroup, type GroupOutcome } from '../sqlite/alerts.js';
import { scopedDeviationId } from '../sqlite/deviations.js';
import { NO_POLICY } from '../sqlite/ingest.js';
import type { IngestResult, IngestStore, PreparedBatch, PreparedDeviation, StoreRefusal } from '../store.js';
import type { GrowingAlert, Growth, PostgresAlerts } from './alerts.js';
import type { PostgresBaselines } from './baselines.js';
import { lockKeys, lockNode, lockNodesShared, retryable, savepoint, transaction, type Sql } from './db.js';
import { CLAIMS_IDS, type PostgresDeviations } from './deviations.js';
import { alertPayload, announce, CHANNELS, type AlertChange } from './feed.js';
import type { PostgresOutbox } from './outbox.js';
import type { PartitionKeeper } from './partitions.js';
import type { PostgresQuarantine } from './quarantine.js';

/** The deviation a prepared one stands for (parsed from its body once, when it did not come along). */
function deviationOf(p: PreparedDeviation): Deviation {
  return (p.deviation ??= JSON.parse(p.body) as Deviation);
}

/** Which change of an alert an announcement names when one transaction made several (the strongest). */
const RANK: Record<AlertChange, number> = { updated: 0, state: 1, created: 2 };

/**
 * Tell the other replicas what the committed batches of one transaction changed (delivered at its
 * COMMIT): each baseline key whose cluster view changed, once, and each alert created, grown or
 * reopened, once, under its strongest change.
 */
async function announceResults(sql: Sql, results: readonly (IngestResult | Error)[]): Promise<void> {
  const keys = new Set<string>();
  const alerts = new Map<string, AlertChange>();
  const note = (fingerprint: string, change: AlertChange) => {
    const had = alerts.get(fingerprint);
    if (had === undefined || RANK[change] > RANK[had]) alerts.set(fingerprint, change);
  };
  for (const r of results) {
    if (r instanceof Error) continue;
    for (const k of r.clusterChanged) keys.add(k);
    for (const a of r.newAlerts) note(a.fingerprint, 'created');
    for (const a of r.reopened) note(a.fingerprint, 'state');
    for (const fp of r.updated) note(fp, 'updated');
  }
  await announce(sql, CHANNELS.baseline, keys);
  await announce(sql, CHANNELS.alert, [...alerts].map(([fp, change]) => alertPayload(change, fp)));
}

/**
 * Fold one more batch's growth of an alert into the group's, so that one UPDATE leaves the row as
 * the batch-by-batch UPDATEs would: counts add, times widen, the node and pod lists and the
 * exception are the latest batch's (grown from the row as the earlier batches left it), the latest
 * deviation and example are those of the last batch whose time is the greatest so far (growMany
 * then keeps the row's own when it is later still), and a resolved alert fires again once.
 */
export function foldGrowth(had: Growth | undefined, next: Growth): Growth {
  if (!had) return next;
  const later = next.g.maxTime >= had.g.maxTime;
  return {
    fingerprint: next.fingerprint,
    g: {
      ...had.g,
      count: had.g.count + next.g.count,
      minTime: Math.min(had.g.minTime, next.g.minTime),
      maxTime: Math.max(had.g.maxTime, next.g.maxTime),
      latest: later ? next.g.latest : had.g.latest,
    },
    nodes: next.nodes,
    pods: next.pods,
    reopen: had.reopen || next.reopen,
    outcome: { ...next.outcome, example: later ? next.outcome.example : had.outcome.example },
  };
}

/** The slices a batch writes to. */
export interface PostgresIngestSlices {
  baselines: PostgresBaselines;
  quarantine: PostgresQuarantine;
  deviations: PostgresDeviations;
  alerts: PostgresAlerts;
  outbox: PostgresOutbox;
  /** Asked before each transaction, so a collector that runs for days keeps its partitions ahead. */
  partitions: PartitionKeeper;
}

/** The ingest slice on `pool`. */
export function postgresIngest(pool: pg.Pool, slices: PostgresIngestSlices): Async<IngestStore> {
  const { baselines, quarantine, alerts, outbox } = slices;
  const prepare = createDeviationPreparer();

  async function ingestOne(sql: Sql, node: string, deviations: readonly PreparedDeviation[], deltas: readonly BaselineSnapshot[], receivedAt: number, policy: AlertPolicy): Promise<IngestResult> {
    let stored = 0;
    let duplicates = 0;
    let known = 0;
    const newAlerts: Alert[] = [];
    const updated: string[] = [];
    const reopened: Alert[] = [];
    const clusterChanged: string[] = [];
    const notifications: OutboxEntry[] = [];
    const notify = async (alert: Alert) => {
      for (const item of policy.notify?.(alert, receivedAt) ?? []) {
        await outbox.write(sql, item, receivedAt);
        notifications.push(item);
      }
    };
    const refused: Partial<Record<StoreRefusal, number>> = {};
    if (deltas.length > 0) {
      // The node's lock, then its keys': a quarantine of the node either waits for this batch or is seen by it.
      await lockNode(sql, node, false);
      await lockKeys(sql, deltas.map((d) => d.key));
      const quarantined = await quarantine.isQuarantined(sql, node);
      for (const delta of deltas) {
        if (quarantined) {
          refused.quarantined = (refused.quarantined ?? 0) + 1;
          continue;
        }
        if ((await baselines.applyDelta(sql, node, delta, receivedAt, refused)) && !clusterChanged.includes(delta.key)) clusterChanged.push(delta.key);
      }
    }
    // Deviations the cluster baseline knows are not news; the rest go in with one statement.
    // One check for the batch's distinct (key, entry) pairs, not one round trip each.
    const pairs = new Map<string, { key: string; id: string }>();
    for (const d of deviations) pairs.set(`${d.key}\n${d.entryId}`, { key: d.key, id: d.entryId });
    const knownPairs = await baselines.knowsMany(sql, [...pairs.values()]);
    const fresh: PreparedDeviation[] = [];
    for (const d of deviations) {
      if (knownToCluster(d, knownPairs.has(`${d.key}\n${d.entryId}`))) known++;
      else fresh.push(d);
    }
    const inserted = await slices.deviations.insert(sql, fresh, receivedAt);
    const groups = new Map<string, DeviationGroup>();
    for (const d of fresh) {
      // A deviation twice in one batch: its first copy is the stored one.
      if (!inserted.delete(scopedDeviationId(d.node, d.id))) {
        duplicates++;
        continue;
      }
      stored++;
      addToGroup(groups, d);
    }
    const facts = new Map<string, BaselineFacts>();
    const existing = await alerts.growing(sql, [...groups.keys()]);
    const grows: (Growth & { row: GrowingAlert })[] = [];
    for (const [fingerprint, g] of groups) {
      let row = existing.get(fingerprint);
      const latest = deviationOf(g.latest);
      const example = exampleOf(latest.event);
      const suppressedBy = policy.exceptionFor(latest, receivedAt);
      if (!row) {
        const d = deviationOf(g.first);
        const factsOf = facts.get(d.key) ?? (await baselines.factsOf(sql, d.key));
        facts.set(d.key, factsOf);
        const decision = policy.decide(d, () => factsOf);
        const created = await alerts.open(sql, fingerprint, d, g, decision, { example, suppressedBy, receivedAt });
        if (created) {
          newAlerts.push(created);
          await notify(created);
          continue;
        }
        // Another replica created it since: this batch grows it.
        row = (await alerts.growing(sql, [fingerprint])).get(fingerprint)!;
      }
      grows.push({ fingerprint, row, g, ...grownLists(row, g), reopen: row.state === 'resolved', outcome: { example, suppressedBy, receivedAt } });
    }
    // Every existing alert grows in one statement; those that fire again are read back and notified, in the groups' order.
    await alerts.growMany(sql, grows);
    for (const { fingerprint, row, outcome } of grows) {
      const again = row.state === 'resolved' || (row.suppressed_by !== '' && outcome.suppressedBy === '' && row.state !== 'accepted');
      if (again) {
        const alert = await alerts.read(sql, fingerprint);
        reopened.push(alert);
        await notify(alert);
      } else updated.push(fingerprint);
    }
    return { stored, duplicates, newAlerts, snapshots: deltas.length, known, updated, reopened, clusterChanged, notifications, refused };
  }

  /**
   * A group without baseline deltas (a storm's batches) in a few statements whatever its number of
   * batches: what the baselines know, checked for every deviation at once; every new deviation in
   * one INSERT; the alerts it touches locked in one sorted statement (after the INSERT, so replicas
   * hold them only for the short rest of the transaction); new alerts made in one sorted INSERT
   * after their open-alert counters are locked in order; every alert grown in one UPDATE. The
   * policy sees each batch's groups in the order the batch-by-batch path shows them (exceptions,
   * decisions, notifications), and each batch gets the result that path would give it.
   */
  async function ingestGroup(sql: Sql, batches: readonly PreparedBatch[], receivedAt: number, policy: AlertPolicy): Promise<IngestResult[]> {
    const results: IngestResult[] = batches.map(() => ({ stored: 0, duplicates: 0, newAlerts: [], snapshots: 0, known: 0, updated: [], reopened: [], clusterChanged: [], notifications: [], refused: {} }));
    const pairs = new Map<string, { key: string; id: string }>();
    for (const b of batches) for (const d of b.deviations) pairs.set(`${d.key}\n${d.entryId}`, { key: d.key, id: d.entryId });
    const knownPairs = await baselines.knowsMany(sql, [...pairs.values()]);
    const fresh = batches.map((b, i) => {
      const news = b.deviations.filter((d) => !knownToCluster(d, knownPairs.has(`${d.key}\n${d.entryId}`)));
      results[i]!.known = b.deviations.length - news.length;
      return news;
    });
    const inserted = await slices.deviations.insert(sql, fresh.flat(), receivedAt);
    const groups = fresh.map((ds, i) => {
      const r = results[i]!;
      const byFingerprint = new Map<string, DeviationGroup>();
      for (const d of ds) {
        // A deviation twice in the group: its first copy is the stored one.
        if (!inserted.delete(scopedDeviationId(d.node, d.id))) r.duplicates++;
        else {
          r.stored++;
          addToGroup(byFingerprint, d);
        }
      }
      return byFingerprint;
    });
    const rows: Map<string, GrowingAlert> = await alerts.growing(sql, [...new Set(groups.flatMap((g) => [...g.keys()]))]);
    // What each batch decided about each of its groups, in the batch-by-batch order.
    const outcomes = groups.map((byFingerprint) => {
      const out = new Map<string, GroupOutcome>();
      for (const [fingerprint, g] of byFingerprint) {
        const latest = deviationOf(g.latest);
        out.set(fingerprint, { example: exampleOf(latest.event), suppressedBy: policy.exceptionFor(latest, receivedAt), receivedAt });
      }
      return out;
    });
    // The alerts the group opens: each by the first batch that has it.
    const opening = new Map<string, { batch: number; fingerprint: string; d: Deviation; g: DeviationGroup; outcome: GroupOutcome }>();
    groups.forEach((byFingerprint, batch) => {
      for (const [fingerprint, g] of byFingerprint) {
        if (!rows.has(fingerprint) && !opening.has(fingerprint)) opening.set(fingerprint, { batch, fingerprint, d: deviationOf(g.first), g, outcome: outcomes[batch]!.get(fingerprint)! });
      }
    });
    const reopening = [...rows].filter(([, r]) => r.state === 'resolved').map(([fp]) => fp);
    let opened = new Map<string, Alert>();
    if (opening.size > 0 || reopening.length > 0) {
      const facts = await baselines.factsOfMany(sql, [...new Set([...opening.values()].map((o) => o.d.key))]);
      const items = [...opening.values()].map((o) => ({ ...o, decision: policy.decide(o.d, () => facts.get(o.d.key)!) }));
      const made = await alerts.openMany(sql, items, [...items.map((i) => i.d.key), ...reopening.map((fp) => rows.get(fp)!.baseline_key)]);
      opened = new Map([...made].map(([fp, row]) => [fp, alertOf(row)]));
      for (const [fp, row] of made) rows.set(fp, { state: row.state, suppressed_by: row.suppressed_by, nodes: row.nodes, pods: row.pods, baseline_key: row.baseline_key });
      // Opened by another replica since: this group grows them.
      const taken = [...opening.keys()].filter((fp) => !made.has(fp));
      for (const [fp, row] of await alerts.growing(sql, taken)) rows.set(fp, row);
      for (const fp of taken) opening.delete(fp);
    }
    // Growth of every alert over the whole group, folded per fingerprint (alerts.growMany).
    const pending = new Map<string, Growth>();
    const flush = async () => {
      await alerts.growMany(sql, [...pending.values()]);
      pending.clear();
    };
    const notify = async (r: IngestResult, alert: Alert) => {
      for (const item of policy.notify?.(alert, receivedAt) ?? []) {
        await outbox.write(sql, item, receivedAt);
        r.notifications.push(item);
      }
    };
    for (const [batch, byFingerprint] of groups.entries()) {
      const r = results[batch]!;
      for (const [fingerprint, g] of byFingerprint) {
        const outcome = outcomes[batch]!.get(fingerprint)!;
        if (opening.get(fingerprint)?.batch === batch) {
          const created = opened.get(fingerprint)!;
          r.newAlerts.push(created);
          await notify(r, created);
          continue;
        }
        const row = rows.get(fingerprint)!;
        const fires = row.state === 'resolved' || (row.suppressed_by !== '' && outcome.suppressedBy === '' && row.state !== 'accepted');
        const lists = grownLists(row, g);
        rows.set(fingerprint, { ...row, ...lists, suppressed_by: outcome.suppressedBy, state: row.state === 'resolved' ? 'firing' : row.state });
        pending.set(fingerprint, foldGrowth(pending.get(fingerprint), { fingerprint, g, ...lists, reopen: row.state === 'resolved', outcome }));
        if (!fires) {
          r.updated.push(fingerprint);
          continue;
        }
        // An alert that fires again is notified as it stands after this growth (rare: the growth so far is written first).
        await flush();
        const alert = await alerts.read(sql, fingerprint);
        r.reopened.push(alert);
        await notify(r, alert);
      }
    }
    await flush();
    return results;
  }

  /** Batch by batch, each in its own savepoint: a group with deltas, or one the group path failed on. */
  async function ingestEach(sql: Sql, batches: readonly PreparedBatch[], receivedAt: number, policy: AlertPolicy): Promise<(IngestResult | Error)[]> {
    // Every lock the group will take, up front and each kind in one order: nodes, keys, alerts.
    const withDeltas = batches.filter((b) => b.deltas.length > 0);
    await lockNodesShared(sql, withDeltas.map((b) => b.node));
    await lockKeys(sql, withDeltas.flatMap((b) => b.deltas.map((d) => d.key)));
    await alerts.growing(sql, [...new Set(batches.flatMap((b) => b.deviations.map((d) => d.fingerprint)))]);
    const out: (IngestResult | Error)[] = [];
    for (const b of batches) {
      try {
        out.push(await savepoint(sql, () => ingestOne(sql, b.node, b.deviations, b.deltas, receivedAt, policy)));
      } catch (err) {
        // A deadlock is the transaction's, not the batch's: all of it runs again.
        if (retryable(err)) throw err;
        out.push(err instanceof Error ? err : new Error(String(err)));
      }
    }
    return out;
  }

  const ingestMany = async (batches: readonly PreparedBatch[], receivedAt: number, policy: AlertPolicy): Promise<(IngestResult | Error)[]> => {
    await slices.partitions.ahead(receivedAt);
    const inTransaction = (each: boolean) =>
      transaction(
        pool,
        async (sql) => {
          const out = each ? await ingestEach(sql, batches, receivedAt, policy) : await ingestGroup(sql, batches, receivedAt, policy);
          await announceResults(sql, out);
          return out;
        },
        CLAIMS_IDS,
      );
    if (batches.some((b) => b.deltas.length > 0)) return inTransaction(true);
    try {
      return await inTransaction(false);
    } catch (err) {
      // A batch the group path cannot store (rolled back with the rest): batch by batch, so only it fails.
      if (retryable(err)) throw err;
      return inTransaction(true);
    }
  };

  return {
    ingest: async (node, deviations, deltas, receivedAt, policy = NO_POLICY) => {
      const [result] = await ingestMany([{ node, deviations: deviations.map((d) => prepare(d, true)), deltas }], receivedAt, policy);
      if (result instanceof Error) throw result;
      return result!;
    },
    ingestMany: (batches, receivedAt, policy = NO_POLICY) => ingestMany(batches.map((b) => ({ node: b.node, deviations: b.deviations.map((d) => prepare(d, true)), deltas: b.deltas })), receivedAt, policy),
    ingestPrepared: (batches, receivedAt, policy = NO_POLICY) => ingestMany(batches, receivedAt, policy),
  };
}
