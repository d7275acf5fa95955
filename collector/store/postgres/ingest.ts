/**
 * The ingest slice on PostgreSQL: one agent batch in one transaction (several, each in its own
 * savepoint, for a group commit), as the SQLite slice does it: deltas merge first, then deviations
 * the cluster baseline knows are dropped, the rest stored once, grouped into alerts, and the
 * policy's notifications written to the outbox, all committed together. Between replicas: the
 * batch holds its node's lock (shared) and its keys' locks (sorted) before merging, its deviations
 * go in with one INSERT … ON CONFLICT DO NOTHING, and the alerts it grows are locked in one order.
 * A deadlock or serialization failure runs the whole transaction again (db.ts transaction).
 */
import type pg from 'pg';
import type { BaselineSnapshot } from '../../../core/baseline.js';
import type { Deviation } from '../../../core/deviation.js';
import { exampleOf } from '../../../core/entry.js';
import type { BaselineFacts } from '../../../core/severity.js';
import type { Alert, AlertPolicy, OutboxEntry } from '../../alerting/alert.js';
import type { Async } from '../async.js';
import { createDeviationPreparer } from '../prepare.js';
import { addToGroup, type DeviationGroup } from '../sqlite/alerts.js';
import { scopedDeviationId } from '../sqlite/deviations.js';
import { NO_POLICY } from '../sqlite/ingest.js';
import type { IngestResult, IngestStore, PreparedBatch, PreparedDeviation, StoreRefusal } from '../store.js';
import type { PostgresAlerts } from './alerts.js';
import type { PostgresBaselines } from './baselines.js';
import { lockKeys, lockNode, retryable, savepoint, transaction, type Sql } from './db.js';
import type { PostgresDeviations } from './deviations.js';
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
      if (knownPairs.has(`${d.key}\n${d.entryId}`) && d.drift !== true) known++;
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
    const grows: Parameters<typeof alerts.growMany>[1][number][] = [];
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
      grows.push({ fingerprint, row, g, outcome: { example, suppressedBy, receivedAt } });
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

  const ingestMany = async (batches: readonly PreparedBatch[], receivedAt: number, policy: AlertPolicy) => {
    await slices.partitions.ahead(receivedAt);
    return transaction(pool, async (sql) => {
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
      await announceResults(sql, out);
      return out;
    });
  };

  return {
    ingest: async (node, deviations, deltas, receivedAt, policy = NO_POLICY) => {
      await slices.partitions.ahead(receivedAt);
      return transaction(pool, async (sql) => {
        const result = await ingestOne(sql, node, deviations.map((d) => prepare(d, true)), deltas, receivedAt, policy);
        await announceResults(sql, [result]);
        return result;
      });
    },
    ingestMany: (batches, receivedAt, policy = NO_POLICY) => ingestMany(batches.map((b) => ({ node: b.node, deviations: b.deviations.map((d) => prepare(d, true)), deltas: b.deltas })), receivedAt, policy),
    ingestPrepared: (batches, receivedAt, policy = NO_POLICY) => ingestMany(batches, receivedAt, policy),
  };
}
