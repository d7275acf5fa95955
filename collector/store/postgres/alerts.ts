/**
 * The alerts slice on PostgreSQL: deviations grouped by fingerprint into alerts, listed, read, and
 * moved through their life cycle. A transition locks its alert's row (SELECT … FOR UPDATE; an
 * acceptance first the key's baseline lock, the order ingest takes them in), so two replicas'
 * transitions of one alert run one after the other and the second sees the first's state.
 */
import type pg from 'pg';
import type { Deviation } from '../../../core/deviation.js';
import { SEVERITIES } from '../../../core/severity.js';
import type { Alert, AlertDecision, AlertTransition, OutboxEntry } from '../../alerting/alert.js';
import type { Async } from '../async.js';
import { ALLOWED_FROM, alertOf, imageOfKey, labelsOf, type AlertRow, type DeviationGroup, type GroupOutcome } from '../sqlite/alerts.js';
import type { AlertStore, TransitionResult } from '../store.js';
import type { PostgresBaselines } from './baselines.js';
import { decodeCursor, encodeCursor, lockKeys, transaction, type Sql } from './db.js';
import { alertPayload, announce, CHANNELS } from './feed.js';
import type { PostgresOutbox } from './outbox.js';

/** What an alert that grows keeps of its row. */
export type GrowingAlert = Pick<AlertRow, 'state' | 'suppressed_by' | 'nodes' | 'pods' | 'baseline_key'>;

/** One alert's growth by a group of deviations: its grown node and pod lists, and whether it fires again (it was resolved). */
export interface Growth {
  fingerprint: string;
  g: DeviationGroup;
  nodes: string;
  pods: string;
  reopen: boolean;
  outcome: GroupOutcome;
}

/** The alerts slice, and what ingest does to alerts inside its transaction. */
export interface PostgresAlerts {
  store: Async<AlertStore>;
  /** The alerts of `fingerprints` that exist, locked until the transaction ends (in one order: no deadlock between batches). */
  growing(sql: Sql, fingerprints: readonly string[]): Promise<Map<string, GrowingAlert>>;
  /** Create the alert of a group from its first deviation `d`; the alert as stored, or null when another replica created it first. */
  open(sql: Sql, fingerprint: string, d: Deviation, g: DeviationGroup, decision: AlertDecision, outcome: GroupOutcome): Promise<Alert | null>;
  /**
   * Create several alerts, in their order (their seq), in one statement; the rows created, by
   * fingerprint (one another replica created first is not among them). First, each in one sorted
   * statement: a lock per fingerprint to create (two replicas opening some of the same alerts take
   * turns instead of waiting on each other's uncommitted rows in two orders), then the open-alert
   * counters of `counterKeys` (made when missing), which creating and reopening alerts update.
   */
  openMany(sql: Sql, items: readonly { fingerprint: string; d: Deviation; g: DeviationGroup; decision: AlertDecision; outcome: GroupOutcome }[], counterKeys: Iterable<string>): Promise<Map<string, AlertRow>>;
  /** Add each group to its alert (`row`), all in one statement; a resolved alert fires again. */
  growMany(sql: Sql, items: readonly Growth[]): Promise<void>;
  /** The alert of `fingerprint`, which exists. */
  read(sql: Sql, fingerprint: string): Promise<Alert>;
}

/** The alerts slice on `pool`; accepting an alert changes `baselines`, a transition's notifications go to `outbox`. */
export function postgresAlerts(pool: pg.Pool, sql: Sql, deps: { baselines: PostgresBaselines; outbox: PostgresOutbox }): PostgresAlerts {
  const { baselines, outbox } = deps;
  const get = async (on: Sql, fingerprint: string, lock = false) =>
    (await on<AlertRow>(`SELECT * FROM alerts WHERE fingerprint = $1${lock ? ' FOR UPDATE' : ''}`, [fingerprint])).rows[0];
  const read = async (on: Sql, fingerprint: string) => alertOf((await get(on, fingerprint))!);

  const transition = (fingerprint: string, change: AlertTransition, followUps?: (change: { before: Alert; after: Alert }) => OutboxEntry[]) =>
    transaction(pool, async (tx): Promise<TransitionResult> => {
      if (change.to === 'accepted') {
        const peek = await get(tx, fingerprint);
        if (!peek) return { ok: false, reason: 'not-found' };
        await lockKeys(tx, [peek.baseline_key]);
      }
      const row = await get(tx, fingerprint, true);
      if (!row) return { ok: false, reason: 'not-found' };
      const before = alertOf(row);
      if (!ALLOWED_FROM[change.to].includes(before.state)) return { ok: false, reason: 'conflict', alert: before };
      await tx(`UPDATE alerts SET state = $1, state_by = $2, state_at = $3, state_comment = $4 WHERE fingerprint = $5`, [change.to, change.by, change.at, change.comment, fingerprint]);
      if (change.to === 'accepted') await baselines.accept(tx, before, change);
      const after = await read(tx, fingerprint);
      // The notifications of the change commit with it (see the SQLite slice).
      const notifications = followUps?.({ before, after }) ?? [];
      for (const i of notifications) await outbox.write(tx, i, change.at);
      await announce(tx, CHANNELS.alert, [alertPayload('state', fingerprint)]);
      return { ok: true, before, after, notifications };
    });

  return {
    store: {
      async listAlerts(q) {
        const values: unknown[] = [decodeCursor(q.cursor)];
        const where = ['seq < $1'];
        // The WHERE clause is assembled from fixed fragments only; every value is a bound parameter.
        const filter = (column: string, value: string | undefined) => {
          if (value === undefined) return;
          values.push(value);
          where.push(`${column} = $${values.length}`);
        };
        filter('image', q.image);
        filter('kind', q.kind);
        filter('state', q.state);
        filter('namespace', q.namespace);
        if (q.severity !== undefined) {
          // This severity or a more urgent one.
          values.push(SEVERITIES.slice(0, SEVERITIES.indexOf(q.severity) + 1));
          where.push(`severity = ANY($${values.length}::text[])`);
        }
        values.push(q.limit + 1);
        const { rows } = await sql<AlertRow>(`SELECT * FROM alerts WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT $${values.length}`, values);
        const more = rows.length > q.limit;
        const page = rows.slice(0, q.limit);
        return { items: page.map(alertOf), next: more ? encodeCursor(page[page.length - 1]!.seq) : null };
      },
      async getAlert(fingerprint) {
        const row = await get(sql, fingerprint);
        return row ? alertOf(row) : null;
      },
      transitionAlert: transition,
    },
    async growing(tx, fingerprints) {
      if (fingerprints.length === 0) return new Map();
      const { rows } = await tx<GrowingAlert & { fingerprint: string }>(
        `SELECT fingerprint, state, suppressed_by, nodes, pods, baseline_key FROM alerts WHERE fingerprint = ANY($1::text[]) ORDER BY fingerprint FOR UPDATE`,
        [fingerprints],
      );
      return new Map(rows.map(({ fingerprint, ...r }) => [fingerprint, r]));
    },
    async open(tx, fingerprint, d, g, decision, { example, suppressedBy, receivedAt }) {
      const { rows } = await tx<AlertRow>(
        `INSERT INTO alerts (fingerprint, baseline_key, image, kind, entry, reason, explanation, nearest, first_seen, last_seen, count, nodes, pods, last_deviation_id, example, created_at,
           severity, rule_id, rule_reason, team, namespace, labels, receivers, suppressed_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)
         ON CONFLICT (fingerprint) DO NOTHING RETURNING *`,
        [
          fingerprint,
          d.key,
          imageOfKey(d),
          d.event.kind,
          JSON.stringify(d.entry),
          d.reason,
          d.explanation,
          JSON.stringify(d.nearest),
          g.minTime,
          g.maxTime,
          g.count,
          JSON.stringify([...g.nodes]),
          JSON.stringify([...g.pods]),
          g.latest.id,
          example,
          receivedAt,
          decision.severity,
          decision.ruleId,
          decision.ruleReason,
          decision.team,
          d.event.pod?.namespace ?? '',
          JSON.stringify(labelsOf(d)),
          JSON.stringify(decision.receivers),
          suppressedBy,
        ],
      );
      return rows[0] ? alertOf(rows[0]) : null;
    },
    async openMany(tx, items, counterKeys) {
      const out = new Map<string, AlertRow>();
      if (items.length > 0) {
        await tx(
          `SELECT pg_advisory_xact_lock(hashtextextended('alert:' || f, 21)) FROM (SELECT f FROM unnest($1::text[]) AS f ORDER BY f COLLATE "C" OFFSET 0) AS s`,
          [items.map((i) => i.fingerprint)],
        );
      }
      const keys = [...new Set(counterKeys)];
      // DO UPDATE (to the same value) is what locks a counter row that exists.
      if (keys.length > 0) {
        await tx(
          `INSERT INTO baseline_open_alerts (key, n) SELECT k, 0 FROM unnest($1::text[]) AS k ORDER BY k COLLATE "C"
           ON CONFLICT (key) DO UPDATE SET n = baseline_open_alerts.n`,
          [keys],
        );
      }
      if (items.length === 0) return out;
      const col = <T>(f: (i: (typeof items)[number]) => T) => items.map(f);
      const { rows } = await tx<AlertRow>(
        `INSERT INTO alerts (fingerprint, baseline_key, image, kind, entry, reason, explanation, nearest, first_seen, last_seen, count, nodes, pods, last_deviation_id, example, created_at,
           severity, rule_id, rule_reason, team, namespace, labels, receivers, suppressed_by)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::text[],
           $13::text[], $14::text[], $15::text[], $16::bigint[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[])
         ON CONFLICT (fingerprint) DO NOTHING RETURNING *`,
        [
          col((i) => i.fingerprint),
          col((i) => i.d.key),
          col((i) => imageOfKey(i.d)),
          col((i) => i.d.event.kind),
          col((i) => JSON.stringify(i.d.entry)),
          col((i) => i.d.reason),
          col((i) => i.d.explanation),
          col((i) => JSON.stringify(i.d.nearest)),
          col((i) => i.g.minTime),
          col((i) => i.g.maxTime),
          col((i) => i.g.count),
          col((i) => JSON.stringify([...i.g.nodes])),
          col((i) => JSON.stringify([...i.g.pods])),
          col((i) => i.g.latest.id),
          col((i) => i.outcome.example),
          col((i) => i.outcome.receivedAt),
          col((i) => i.decision.severity),
          col((i) => i.decision.ruleId),
          col((i) => i.decision.ruleReason),
          col((i) => i.decision.team),
          col((i) => i.d.event.pod?.namespace ?? ''),
          col((i) => JSON.stringify(labelsOf(i.d))),
          col((i) => JSON.stringify(i.decision.receivers)),
          col((i) => i.outcome.suppressedBy),
        ],
      );
      for (const r of rows) out.set(r.fingerprint, r);
      return out;
    },
    async growMany(tx, items) {
      if (items.length === 0) return;
      const cols = { fingerprint: [] as string[], count: [] as number[], first: [] as number[], last: [] as number[], nodes: [] as string[], pods: [] as string[], suppressed: [] as string[], lastId: [] as string[], example: [] as string[], reopen: [] as boolean[], at: [] as number[] };
      for (const { fingerprint, g, nodes, pods, reopen, outcome } of items) {
        cols.fingerprint.push(fingerprint);
        cols.count.push(g.count);
        cols.first.push(g.minTime);
        cols.last.push(g.maxTime);
        cols.nodes.push(nodes);
        cols.pods.push(pods);
        cols.suppressed.push(outcome.suppressedBy);
        cols.lastId.push(g.latest.id);
        cols.example.push(outcome.example);
        cols.reopen.push(reopen);
        cols.at.push(outcome.receivedAt);
      }
      // Every expression on the right reads the row as it was (PostgreSQL's UPDATE semantics): the
      // latest deviation and example follow only a group at least as late as the alert's last one.
      await tx(
        `UPDATE alerts a SET count = a.count + v.count, first_seen = LEAST(a.first_seen, v.first_seen), last_seen = GREATEST(a.last_seen, v.last_seen),
           nodes = v.nodes, pods = v.pods, suppressed_by = v.suppressed_by,
           last_deviation_id = CASE WHEN v.last_seen >= a.last_seen THEN v.last_id ELSE a.last_deviation_id END,
           example = CASE WHEN v.last_seen >= a.last_seen THEN v.example ELSE a.example END,
           state = CASE WHEN v.reopen THEN 'firing' ELSE a.state END,
           state_by = CASE WHEN v.reopen THEN '' ELSE a.state_by END,
           state_at = CASE WHEN v.reopen THEN v.at ELSE a.state_at END
         FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::boolean[], $11::bigint[])
           AS v(fingerprint, count, first_seen, last_seen, nodes, pods, suppressed_by, last_id, example, reopen, at)
         WHERE a.fingerprint = v.fingerprint`,
        [cols.fingerprint, cols.count, cols.first, cols.last, cols.nodes, cols.pods, cols.suppressed, cols.lastId, cols.example, cols.reopen, cols.at],
      );
    },
    read,
  };
}
