/**
 * The ingest slice: one agent batch in one transaction (several, each in its own savepoint, for a
 * group commit). Its baseline deltas merge first (baselines slice), then its deviations are dropped
 * when the cluster baseline knows them, stored once (deviations slice), grouped by fingerprint into
 * alerts (alerts slice), and the notifications the policy decides are written to the outbox (outbox
 * slice), all committed together.
 */
import type { BaselineSnapshot } from '../../../core/baseline.js';
import type { Deviation } from '../../../core/deviation.js';
import { exampleOf } from '../../../core/entry.js';
import type { BaselineFacts } from '../../../core/severity.js';
import type { Alert, AlertPolicy, OutboxEntry } from '../../alerting/alert.js';
import { createDeviationPreparer, knownToCluster } from '../prepare.js';
import type { IngestResult, IngestStore, PreparedBatch, PreparedDeviation, StoreRefusal } from '../store.js';
import { addToGroup, type DeviationGroup, type SqliteAlerts } from './alerts.js';
import type { SqliteBaselines } from './baselines.js';
import { writeTransaction, type Db } from './db.js';
import type { SqliteDeviations } from './deviations.js';
import type { SqliteOutbox } from './outbox.js';
import type { SqliteQuarantine } from './quarantine.js';

/** The default decision when the caller gives no policy (tests of the store alone). */
export const NO_POLICY: AlertPolicy = {
  decide: () => ({ severity: 'medium', ruleId: 'unmatched', ruleReason: '', team: '', receivers: [] }),
  exceptionFor: () => '',
};

/** The deviation a prepared one stands for (parsed from its body once, when it did not come along). */
function deviationOf(p: PreparedDeviation): Deviation {
  return (p.deviation ??= JSON.parse(p.body) as Deviation);
}

/** The slices a batch writes to. */
export interface IngestSlices {
  baselines: SqliteBaselines;
  quarantine: SqliteQuarantine;
  deviations: SqliteDeviations;
  alerts: SqliteAlerts;
  outbox: SqliteOutbox;
}

/** The ingest slice on `db`. */
export function sqliteIngest(db: Db, slices: IngestSlices): IngestStore {
  const { baselines, quarantine, alerts, outbox } = slices;
  const prepare = createDeviationPreparer();

  const ingestTx = writeTransaction(db, (node: string, deviations: readonly PreparedDeviation[], deltas: readonly BaselineSnapshot[], receivedAt: number, policy: AlertPolicy) => {
    let stored = 0;
    let duplicates = 0;
    let known = 0;
    const newAlerts: Alert[] = [];
    const updated: string[] = [];
    const reopened: Alert[] = [];
    const clusterChanged: string[] = [];
    const notifications: OutboxEntry[] = [];
    const notify = (alert: Alert) => {
      for (const item of policy.notify?.(alert, receivedAt) ?? []) {
        outbox.write(item, receivedAt);
        notifications.push(item);
      }
    };
    // The batch's baseline deltas first: its deviations and alerts are judged against what they teach.
    const refused: Partial<Record<StoreRefusal, number>> = {};
    for (const delta of deltas) {
      // A quarantined node teaches nothing.
      if (quarantine.isQuarantined(node)) {
        refused.quarantined = (refused.quarantined ?? 0) + 1;
        continue;
      }
      if (baselines.applyDelta(node, delta, receivedAt, refused) && !clusterChanged.includes(delta.key)) clusterChanged.push(delta.key);
    }
    // Deviations of one fingerprint in a batch (a storm is mostly that) update their alert once,
    // and ask the cluster baseline about their entry once.
    const groups = new Map<string, DeviationGroup>();
    const knownInBatch = new Map<string, boolean>();
    for (const d of deviations) {
      const { entryId: id } = d;
      // The agent checked against its own baseline; the cluster-wide one may know more (another
      // node learned it, or security accepted it). Such a deviation is not news: drop it.
      const knownKey = `${d.key}\n${id}`;
      let isKnown = knownInBatch.get(knownKey);
      if (isKnown === undefined) {
        isKnown = baselines.knows(d.key, id);
        knownInBatch.set(knownKey, isKnown);
      }
      if (knownToCluster(d, isKnown)) {
        known++;
        continue;
      }
      if (!slices.deviations.insert(d, receivedAt)) {
        duplicates++;
        continue;
      }
      stored++;
      addToGroup(groups, d);
    }
    const facts = new Map<string, BaselineFacts>();
    for (const [fingerprint, g] of groups) {
      const row = alerts.growing(fingerprint);
      const latest = deviationOf(g.latest);
      const example = exampleOf(latest.event);
      const suppressedBy = policy.exceptionFor(latest, receivedAt);
      if (!row) {
        const d = deviationOf(g.first);
        const decision = policy.decide(d, () => {
          let f = facts.get(d.key);
          if (!f) facts.set(d.key, (f = baselines.factsOf(d.key)));
          return f;
        });
        const created = alerts.open(fingerprint, d, g, decision, { example, suppressedBy, receivedAt });
        newAlerts.push(created);
        notify(created);
        continue;
      }
      alerts.grow(fingerprint, row, g, { example, suppressedBy, receivedAt });
      // Resolved, or covered by an exception that no longer covers it: it is news again.
      const fresh = row.state === 'resolved' || (row.suppressed_by !== '' && suppressedBy === '' && row.state !== 'accepted');
      if (fresh) {
        const again = alerts.read(fingerprint);
        reopened.push(again);
        notify(again);
      } else updated.push(fingerprint);
    }
    return { stored, duplicates, newAlerts, snapshots: deltas.length, known, updated, reopened, clusterChanged, notifications, refused };
  });

  // ingestTx called inside a transaction runs as a savepoint: a batch that throws is rolled back alone.
  const ingestManyTx = writeTransaction(db, (batches: readonly PreparedBatch[], receivedAt: number, policy: AlertPolicy) =>
    batches.map((b): IngestResult | Error => {
      try {
        return ingestTx(b.node, b.deviations, b.deltas, receivedAt, policy);
      } catch (err) {
        return err instanceof Error ? err : new Error(String(err));
      }
    }),
  );

  return {
    ingest: (node, deviations, deltas, receivedAt, policy = NO_POLICY) => ingestTx(node, deviations.map((d) => prepare(d, true)), deltas, receivedAt, policy),
    ingestMany: (batches, receivedAt, policy = NO_POLICY) => ingestManyTx(batches.map((b) => ({ node: b.node, deviations: b.deviations.map((d) => prepare(d, true)), deltas: b.deltas })), receivedAt, policy),
    ingestPrepared: (batches, receivedAt, policy = NO_POLICY) => ingestManyTx(batches, receivedAt, policy),
  };
}
