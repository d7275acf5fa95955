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
import { ALLOWED_FROM, alertOf, imageOfKey, labelsOf, grownLists, type AlertRow, type DeviationGroup, type GroupOutcome } from '../sqlite/alerts.js';
import type { AlertStore, TransitionResult } from '../store.js';
import type { PostgresBaselines } from './baselines.js';
import { decodeCursor, encodeCursor, lockKeys, transaction, type Sql } from './db.js';
import { alertPayload, announce, CHANNELS } from './feed.js';
import type { PostgresOutbox } from './outbox.js';

/** What an alert that grows keeps of its row. */
export type GrowingAlert = Pick<AlertRow, 'state' | 'suppressed_by' | 'nodes' | 'pods'>;

/** The alerts slice, and what ingest does to alerts inside its transaction. */
export interface PostgresAlerts {
  store: Async<AlertStore>;
  /** The alerts of `fingerprints` that exist, locked until the transaction ends (in one order: no deadlock between batches). */
  growing(sql: Sql, fingerprints: readonly string[]): Promise<Map<string, GrowingAlert>>;
  /** Create the alert of a group from its first deviation `d`; the alert as stored, or null when another replica created it first. */
  open(sql: Sql, fingerprint: string, d: Deviation, g: DeviationGroup, decision: AlertDecision, outcome: GroupOutcome): Promise<Alert | null>;
  /** Add each group to its alert (`row`), all in one statement; a resolved alert fires again. */
  growMany(sql: Sql, items: readonly { fingerprint: string; row: GrowingAlert; g: DeviationGroup; outcome: GroupOutcome }[]): Promise<void>;
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
        `SELECT fingerprint, state, suppressed_by, nodes, pods FROM alerts WHERE fingerprint = ANY($1::text[]) ORDER BY fingerprint FOR UPDATE`,
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
    async growMany(tx, items) {
      if (items.length === 0) return;
      const cols = { fingerprint: [] as string[], count: [] as number[], first: [] as number[], last: [] as number[], nodes: [] as string[], pods: [] as string[], suppressed: [] as string[], lastId: [] as string[], example: [] as string[], reopen: [] as boolean[], at: [] as number[] };
      for (const { fingerprint, row, g, outcome } of items) {
        const { nodes, pods } = grownLists(row, g);
        cols.fingerprint.push(fingerprint);
        cols.count.push(g.count);
        cols.first.push(g.minTime);
        cols.last.push(g.maxTime);
        cols.nodes.push(nodes);
        cols.pods.push(pods);
        cols.suppressed.push(outcome.suppressedBy);
        cols.lastId.push(g.latest.id);
        cols.example.push(outcome.example);
        cols.reopen.push(row.state === 'resolved');
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
