/**
 * The alerts slice: deviations grouped by fingerprint (key + entry) into alerts, listed, read, and
 * moved through their life cycle. The ingest slice opens and grows alerts inside its transaction
 * through the functions besides `store`.
 */
import type { Deviation } from '../../../core/deviation.js';
import type { Entry } from '../../../core/entry.js';
import type { EventKind } from '../../../core/event.js';
import { SEVERITIES, type Severity } from '../../../core/severity.js';
import type { Alert, AlertDecision, AlertState, AlertTransition, OutboxEntry } from '../../alerting/alert.js';
import type { AlertStore, PreparedDeviation, TransitionResult } from '../store.js';
import type { SqliteBaselines } from './baselines.js';
import { decodeCursor, encodeCursor, statementCache, writeTransaction, type Db } from './db.js';
import type { SqliteOutbox } from './outbox.js';

/** Most nodes and pods an alert lists. */
export const MAX_ALERT_NODES = 64;
export const MAX_ALERT_PODS = 64;
/** Most pod labels kept on an alert, and longest label value. */
export const MAX_ALERT_LABELS = 32;

export interface AlertRow {
  seq: number;
  fingerprint: string;
  state: AlertState;
  baseline_key: string;
  image: string;
  kind: EventKind;
  entry: string;
  reason: string;
  explanation: string;
  nearest: string;
  first_seen: number;
  last_seen: number;
  count: number;
  nodes: string;
  pods: string;
  last_deviation_id: string;
  example: string;
  created_at: number;
  severity: Severity;
  rule_id: string;
  rule_reason: string;
  team: string;
  namespace: string;
  labels: string;
  receivers: string;
  suppressed_by: string;
  state_by: string;
  state_at: number;
  state_comment: string;
}

/** A deviation's pod labels, bounded, as stored on its alert. */
export function labelsOf(d: Deviation): Record<string, string> {
  const out: Record<string, string> = {};
  let n = 0;
  for (const [k, v] of Object.entries(d.event.pod?.labels ?? {})) {
    if (n++ >= MAX_ALERT_LABELS) break;
    out[k] = v;
  }
  return out;
}

export function imageOfKey(d: Deviation): string {
  return d.event.container?.image.repository ?? d.key;
}

export function alertOf(r: AlertRow): Alert {
  return {
    fingerprint: r.fingerprint,
    state: r.state,
    baselineKey: r.baseline_key,
    image: r.image,
    kind: r.kind,
    entry: JSON.parse(r.entry) as Entry,
    reason: r.reason,
    explanation: r.explanation,
    nearest: JSON.parse(r.nearest) as string[],
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
    count: r.count,
    nodes: JSON.parse(r.nodes) as string[],
    pods: JSON.parse(r.pods) as string[],
    lastDeviationId: r.last_deviation_id,
    example: r.example,
    createdAt: r.created_at,
    severity: r.severity,
    ruleId: r.rule_id,
    ruleReason: r.rule_reason,
    team: r.team,
    namespace: r.namespace,
    labels: JSON.parse(r.labels) as Record<string, string>,
    receivers: JSON.parse(r.receivers) as string[],
    suppressedBy: r.suppressed_by,
    stateBy: r.state_by,
    stateAt: r.state_at,
    stateComment: r.state_comment,
  };
}

/** From which states each transition may start. */
export const ALLOWED_FROM: Readonly<Record<AlertTransition['to'], readonly AlertState[]>> = {
  acknowledged: ['firing'],
  resolved: ['firing', 'acknowledged'],
  accepted: ['firing', 'acknowledged', 'resolved'],
};

/** Deviations of one fingerprint in one batch, summed up (a storm is mostly that): they change their alert once. */
export interface DeviationGroup {
  first: PreparedDeviation;
  count: number;
  minTime: number;
  maxTime: number;
  latest: PreparedDeviation;
  nodes: Set<string>;
  pods: Set<string>;
}

/** Count one stored deviation into its fingerprint's group of the batch (both stores group the same way). */
export function addToGroup(groups: Map<string, DeviationGroup>, d: PreparedDeviation): void {
  const { pod, time, fingerprint } = d;
  const g = groups.get(fingerprint);
  if (!g) {
    groups.set(fingerprint, { first: d, count: 1, minTime: time, maxTime: time, latest: d, nodes: new Set([d.node]), pods: new Set(pod === '' ? [] : [pod]) });
    return;
  }
  g.count++;
  if (time < g.minTime) g.minTime = time;
  if (time >= g.maxTime) {
    g.maxTime = time;
    g.latest = d;
  }
  if (g.nodes.size < MAX_ALERT_NODES) g.nodes.add(d.node);
  if (pod !== '' && g.pods.size < MAX_ALERT_PODS) g.pods.add(pod);
}

/** An alert's stored nodes and pods (JSON lists) with a group's added, each list bounded, as JSON again. */
export function grownLists(row: Pick<AlertRow, 'nodes' | 'pods'>, g: DeviationGroup): { nodes: string; pods: string } {
  const nodes = JSON.parse(row.nodes) as string[];
  for (const n of g.nodes) if (!nodes.includes(n) && nodes.length < MAX_ALERT_NODES) nodes.push(n);
  const pods = JSON.parse(row.pods) as string[];
  for (const p of g.pods) if (!pods.includes(p) && pods.length < MAX_ALERT_PODS) pods.push(p);
  return { nodes: JSON.stringify(nodes), pods: JSON.stringify(pods) };
}

/** What an alert that grows keeps of its row. */
export type GrowingAlert = Pick<AlertRow, 'state' | 'suppressed_by' | 'nodes' | 'pods'>;

/** What the batch decided about a group: its latest example, the exception covering it (or ''), when the batch arrived. */
export interface GroupOutcome {
  example: string;
  suppressedBy: string;
  receivedAt: number;
}

/** The alerts slice, and what ingest does to alerts inside its transaction. */
export interface SqliteAlerts {
  store: AlertStore;
  /** The alert of `fingerprint` as a group grows it, or undefined when there is none yet. */
  growing(fingerprint: string): GrowingAlert | undefined;
  /** Create the alert of a group from its first deviation `d`, as `decision` says; the alert as stored. */
  open(fingerprint: string, d: Deviation, g: DeviationGroup, decision: AlertDecision, outcome: GroupOutcome): Alert;
  /** Add a group to its alert (`row`); a resolved alert fires again. */
  grow(fingerprint: string, row: GrowingAlert, g: DeviationGroup, outcome: GroupOutcome): void;
  /** The alert of `fingerprint`, which exists. */
  read(fingerprint: string): Alert;
}

/** The alerts slice on `db`; accepting an alert changes `baselines`, a transition's notifications go to `outbox`. */
export function sqliteAlerts(db: Db, deps: { baselines: SqliteBaselines; outbox: SqliteOutbox }): SqliteAlerts {
  const { baselines, outbox } = deps;
  const listStatement = statementCache(db);
  const selectAlert = db.prepare(`SELECT * FROM alerts WHERE fingerprint = ?`);
  const insertAlert = db.prepare(`
    INSERT INTO alerts (fingerprint, baseline_key, image, kind, entry, reason, explanation, nearest, first_seen, last_seen, count, nodes, pods, last_deviation_id, example, created_at,
      severity, rule_id, rule_reason, team, namespace, labels, receivers, suppressed_by)
    VALUES (@fingerprint, @baselineKey, @image, @kind, @entry, @reason, @explanation, @nearest, @firstSeen, @lastSeen, @count, @nodes, @pods, @lastDeviationId, @example, @createdAt,
      @severity, @ruleId, @ruleReason, @team, @namespace, @labels, @receivers, @suppressedBy)`);
  // An alert that grows: most of a storm. Its state (indexed twice) is not in the SET list, so
  // SQLite leaves those indexes alone; a resolved alert that comes back takes reopenAlert instead.
  const growAlert = `count = count + @count, first_seen = min(first_seen, @minTime), last_seen = max(last_seen, @maxTime),
      nodes = @nodes, pods = @pods, suppressed_by = @suppressedBy,
      last_deviation_id = CASE WHEN @maxTime >= last_seen THEN @id ELSE last_deviation_id END,
      example = CASE WHEN @maxTime >= last_seen THEN @example ELSE example END`;
  const updateAlert = db.prepare(`UPDATE alerts SET ${growAlert} WHERE fingerprint = @fingerprint`);
  const reopenAlert = db.prepare(`UPDATE alerts SET ${growAlert}, state = 'firing', state_by = '', state_at = @receivedAt WHERE fingerprint = @fingerprint`);
  const selectAlertToGrow = db.prepare(`SELECT state, suppressed_by, nodes, pods FROM alerts WHERE fingerprint = ?`);
  const setAlertState = db.prepare(`UPDATE alerts SET state = @to, state_by = @by, state_at = @at, state_comment = @comment WHERE fingerprint = @fingerprint`);

  const read = (fingerprint: string) => alertOf(selectAlert.get(fingerprint) as AlertRow);

  const transitionTx = writeTransaction(db, (fingerprint: string, change: AlertTransition, followUps?: (change: { before: Alert; after: Alert }) => OutboxEntry[]): TransitionResult => {
    const row = selectAlert.get(fingerprint) as AlertRow | undefined;
    if (!row) return { ok: false, reason: 'not-found' };
    const before = alertOf(row);
    if (!ALLOWED_FROM[change.to].includes(before.state)) return { ok: false, reason: 'conflict', alert: before };
    setAlertState.run({ fingerprint, to: change.to, by: change.by, at: change.at, comment: change.comment });
    if (change.to === 'accepted') baselines.accept(before, change);
    const after = read(fingerprint);
    // The notifications of the change commit with it: a crash cannot leave a resolved alert whose
    // pager incident stays open.
    const notifications = followUps?.({ before, after }) ?? [];
    for (const i of notifications) outbox.write(i, change.at);
    return { ok: true, before, after, notifications };
  });

  return {
    store: {
      listAlerts(q) {
        const before = decodeCursor(q.cursor);
        const where = ['seq < @before'];
        if (q.image !== undefined) where.push('image = @image');
        if (q.kind !== undefined) where.push('kind = @kind');
        if (q.state !== undefined) where.push('state = @state');
        if (q.namespace !== undefined) where.push('namespace = @namespace');
        const levels: Record<string, Severity> = {};
        if (q.severity !== undefined) {
          // This severity or a more urgent one: a fixed fragment per level, each value bound.
          const upTo = SEVERITIES.slice(0, SEVERITIES.indexOf(q.severity) + 1);
          upTo.forEach((s, i) => (levels[`s${i}`] = s));
          where.push(`severity IN (${upTo.map((_s, i) => `@s${i}`).join(', ')})`);
        }
        // The WHERE clause is assembled from fixed fragments only; every value is a bound parameter.
        const rows = listStatement(`SELECT * FROM alerts WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT @limit`)
          .all({ before, image: q.image, kind: q.kind, state: q.state, namespace: q.namespace, ...levels, limit: q.limit + 1 }) as AlertRow[];
        const more = rows.length > q.limit;
        const page = rows.slice(0, q.limit);
        return { items: page.map(alertOf), next: more ? encodeCursor((page[page.length - 1] as AlertRow).seq) : null };
      },
      getAlert(fingerprint) {
        const row = selectAlert.get(fingerprint) as AlertRow | undefined;
        return row ? alertOf(row) : null;
      },
      transitionAlert: (fingerprint, change, followUps) => transitionTx(fingerprint, change, followUps),
    },
    growing: (fingerprint) => selectAlertToGrow.get(fingerprint) as GrowingAlert | undefined,
    open(fingerprint, d, g, decision, { example, suppressedBy, receivedAt }) {
      insertAlert.run({
        fingerprint,
        baselineKey: d.key,
        image: imageOfKey(d),
        kind: d.event.kind,
        entry: JSON.stringify(d.entry),
        reason: d.reason,
        explanation: d.explanation,
        nearest: JSON.stringify(d.nearest),
        firstSeen: g.minTime,
        lastSeen: g.maxTime,
        count: g.count,
        nodes: JSON.stringify([...g.nodes]),
        pods: JSON.stringify([...g.pods]),
        lastDeviationId: g.latest.id,
        example,
        createdAt: receivedAt,
        severity: decision.severity,
        ruleId: decision.ruleId,
        ruleReason: decision.ruleReason,
        team: decision.team,
        namespace: d.event.pod?.namespace ?? '',
        labels: JSON.stringify(labelsOf(d)),
        receivers: JSON.stringify(decision.receivers),
        suppressedBy,
      });
      return read(fingerprint);
    },
    grow(fingerprint, row, g, { example, suppressedBy, receivedAt }) {
      const { nodes, pods } = grownLists(row, g);
      (row.state === 'resolved' ? reopenAlert : updateAlert).run({
        fingerprint,
        count: g.count,
        minTime: g.minTime,
        maxTime: g.maxTime,
        nodes,
        pods,
        id: g.latest.id,
        example,
        suppressedBy,
        receivedAt,
      });
    },
    read,
  };
}
