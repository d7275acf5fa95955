/**
 * Scoring of the detection-quality scenario, pure: from the collector's alerts, deviations and
 * baselines (as its HTTP API returns them) and the labels of the injected attacks.
 *
 * - A deviation belongs to an attack when its node, pid and event time (ms) are those of one of the
 *   attack's events (attackMark; attack processes also have pids no normal process has).
 * - An alert is an attack alert when one of its deviations belongs to an attack, else a false alert.
 * - recall: attacks with at least one deviation / attacks injected;
 *   precision: attack alerts / alerts raised before the fresh replay began;
 *   false alerts per 1,000 container-hours: false alerts / container-hours of the enforce phase;
 *   fresh replay: alerts (distinct fingerprints) with a deviation in the fresh phase, which holds
 *   normal traffic only;
 *   time to enforce: per baseline key, enforcingSince − windowStart (event time).
 */
import { median } from './measure.js';
import { attackMark, type Attack } from './quality-traffic.js';

/** The fields of GET /api/v1/alerts items the score reads. */
export interface AlertItem {
  id: string;
  baselineKey: string;
  kind: string;
  summary: string;
  severity: string;
  rule: { id: string };
  process: { exe: string } | null;
  network: { direction: string; protocol: string; peer: string; port: number | string } | null;
}

/** The fields of GET /api/v1/deviations items the score reads. */
export interface DeviationItem {
  alertId: string;
  time: string;
  node: string;
  process: { pid: number };
}

/** The fields of GET /api/v1/baselines items the score reads. */
export interface BaselineItem {
  key: string;
  state: string;
  windowStart: string | null;
  enforcingSince: string | null;
}

/** What one attack raised. */
export interface AttackOutcome {
  id: string;
  image: string;
  expected: string;
  detected: boolean;
  /** The most urgent severity among its alerts, or null. */
  severity: string | null;
  /** The severity rules of its alerts. */
  rules: string[];
  alerts: string[];
}

/** One row of the false-alert breakdown: which rule, which kind of entry, how many, examples. */
export interface FalseAlertGroup {
  rule: string;
  entry: string;
  count: number;
  examples: string[];
}

/** The score of one replay. */
export interface QualityScore {
  attacks: AttackOutcome[];
  recall: number;
  alertsBeforeFresh: number;
  attackAlerts: number;
  falseAlerts: number;
  precision: number;
  falsePer1kContainerHours: number;
  freshAlerts: number;
  /** Fresh-phase alerts whose fingerprint never alerted before the fresh phase. */
  freshNewAlerts: number;
  freshDeviations: number;
  falseByKind: FalseAlertGroup[];
  /** False alerts per baseline key, most first. */
  falseByKey: { key: string; count: number }[];
  freshByKind: FalseAlertGroup[];
  enforceHours: { keys: number; enforcing: number; median: number; max: number };
}

const SEVERITY_ORDER = ['critical', 'high', 'medium', 'low'];

/** A short name for the kind of entry an alert is about (for the breakdown). */
export function entryKind(a: AlertItem): string {
  if (a.network) {
    const peer = a.network.peer;
    const cls = ['cluster', 'loopback', 'any', 'link-local'].includes(peer) ? peer : /^[0-9a-f.:/]+$/i.test(peer) ? (peer.includes('/') ? 'public block' : 'public address') : peer === '' || peer === 'unknown' ? 'unknown' : 'DNS name';
    return `network ${a.network.direction} ${a.network.protocol} ${cls}`;
  }
  return `process ${a.kind}`;
}

function groupAlerts(alerts: AlertItem[]): FalseAlertGroup[] {
  const groups = new Map<string, FalseAlertGroup>();
  for (const a of alerts) {
    const entry = entryKind(a);
    const k = `${a.rule.id}\u0000${entry}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { rule: a.rule.id, entry, count: 0, examples: [] }));
    g.count++;
    if (g.examples.length < 3) g.examples.push(`${a.baselineKey}: ${a.summary}`);
  }
  return [...groups.values()].sort((p, q) => q.count - p.count || p.rule.localeCompare(q.rule) || p.entry.localeCompare(q.entry));
}

function countByKey(alerts: AlertItem[]): { key: string; count: number }[] {
  const n = new Map<string, number>();
  for (const a of alerts) n.set(a.baselineKey, (n.get(a.baselineKey) ?? 0) + 1);
  return [...n].map(([key, count]) => ({ key, count })).sort((p, q) => q.count - p.count || p.key.localeCompare(q.key));
}

/** Score one replay. `freshStartMs` is the event time the fresh phase began. */
export function scoreQuality(input: {
  attacks: readonly Attack[];
  alerts: readonly AlertItem[];
  deviations: readonly DeviationItem[];
  baselines: readonly BaselineItem[];
  freshStartMs: number;
  enforceContainerHours: number;
}): QualityScore {
  const byMark = new Map<string, Attack>();
  for (const a of input.attacks) for (const m of a.marks) byMark.set(m, a);
  const alertById = new Map(input.alerts.map((a) => [a.id, a]));
  const attackAlerts = new Map<string, Set<string>>(input.attacks.map((a) => [a.id, new Set()]));
  const attackAlertIds = new Set<string>();
  const before = new Set<string>();
  const fresh = new Set<string>();
  let freshDeviations = 0;
  for (const d of input.deviations) {
    const attack = byMark.get(attackMark(d.node, d.process.pid, Date.parse(d.time)));
    if (attack) {
      attackAlerts.get(attack.id)!.add(d.alertId);
      attackAlertIds.add(d.alertId);
    }
    if (Date.parse(d.time) >= input.freshStartMs) {
      fresh.add(d.alertId);
      freshDeviations++;
    } else {
      before.add(d.alertId);
    }
  }
  const attacks: AttackOutcome[] = input.attacks.map((a) => {
    const ids = [...(attackAlerts.get(a.id) as Set<string>)].sort();
    const alerts = ids.map((id) => alertById.get(id)).filter((x): x is AlertItem => x !== undefined);
    const severity = alerts.map((x) => x.severity).sort((p, q) => SEVERITY_ORDER.indexOf(p) - SEVERITY_ORDER.indexOf(q))[0] ?? null;
    return { id: a.id, image: a.image, expected: a.expected, detected: ids.length > 0, severity, rules: [...new Set(alerts.map((x) => x.rule.id))], alerts: ids };
  });
  const falseAlerts = [...before].filter((id) => !attackAlertIds.has(id)).map((id) => alertById.get(id)).filter((x): x is AlertItem => x !== undefined);
  const attackCount = [...before].filter((id) => attackAlertIds.has(id)).length;
  const freshAlerts = [...fresh].map((id) => alertById.get(id)).filter((x): x is AlertItem => x !== undefined);
  const enforcedHours: number[] = [];
  for (const b of input.baselines) {
    if (b.enforcingSince === null || b.windowStart === null) continue;
    enforcedHours.push((Date.parse(b.enforcingSince) - Date.parse(b.windowStart)) / 3_600_000);
  }
  return {
    attacks,
    recall: input.attacks.length === 0 ? 1 : attacks.filter((a) => a.detected).length / input.attacks.length,
    alertsBeforeFresh: before.size,
    attackAlerts: attackCount,
    falseAlerts: falseAlerts.length,
    precision: before.size === 0 ? 1 : attackCount / before.size,
    falsePer1kContainerHours: input.enforceContainerHours > 0 ? (falseAlerts.length / input.enforceContainerHours) * 1000 : 0,
    freshAlerts: fresh.size,
    freshNewAlerts: [...fresh].filter((id) => !before.has(id)).length,
    freshDeviations,
    falseByKind: groupAlerts(falseAlerts),
    falseByKey: countByKey(falseAlerts),
    freshByKind: groupAlerts(freshAlerts),
    enforceHours: { keys: input.baselines.length, enforcing: enforcedHours.length, median: median(enforcedHours), max: enforcedHours.length > 0 ? Math.max(...enforcedHours) : NaN },
  };
}
