/**
 * The `alerting:` section of the collector's config: severity rules, routes to sinks, the ownership
 * map, storm control, outbox retries and retention. Pure: parsing and matching only.
 */
import { z } from 'zod';
import cron from 'node-cron';
import { SEVERITIES, SeverityConfigSchema, globMatch, type Severity } from '../../core/severity.js';
import { durationMs } from '../../runtime/config.js';

const name = z.string().min(1).max(63);

/** Shortest re-send interval to Alertmanager. */
export const MIN_ALERTMANAGER_RESEND = 10_000;
const glob = z.string().min(1).max(512);
const severity = z.enum(SEVERITIES as unknown as [Severity, ...Severity[]]);

/** What a route or an owner matches. Every given condition must hold; a list holds when any item does. */
export const AlertMatchSchema = z.strictObject({
  /** Exact namespaces. */
  namespace: z.array(z.string().min(1).max(63)).min(1).max(100).optional(),
  /** Globs over the baseline key (`docker.io/acme/*`). */
  image: z.array(glob).min(1).max(100).optional(),
  /** Pod labels that must all be present with these values. */
  labels: z.record(z.string().min(1).max(317), z.string().max(63)).optional(),
  /** This severity or a more urgent one. */
  severity: severity.optional(),
});
export type AlertMatch = z.output<typeof AlertMatchSchema>;

const RouteSchema = z.strictObject({
  match: AlertMatchSchema.default({}),
  /** Sink names. */
  receivers: z.array(name).min(1).max(50),
  /** Keep looking at later routes after this one matched (Alertmanager's `continue`). */
  continue: z.boolean().default(false),
});

const OwnerSchema = z.strictObject({
  match: AlertMatchSchema,
  team: z.string().min(1).max(128),
  /** Where the team's digest and exception reminders go (sink names); default: the default receivers. */
  receivers: z.array(name).max(50).optional(),
});

const cronExpression = z.string().min(1).max(64).refine((v) => cron.validate(v), 'must be a cron expression (minute hour day month weekday)');

const RateSchema = z.strictObject({
  /** Most notifications of new alerts in one window. */
  max: z.number().int().min(1).max(1_000_000),
  per: durationMs,
});

export const AlertingConfigSchema = z.strictObject({
  /** Site rules before (or, with `defaults: false`, instead of) the built-in severity table (core/severity.ts). */
  severity: SeverityConfigSchema.optional(),
  /** Routes, first match wins unless it says `continue`. */
  routes: z.array(RouteSchema).max(200).default([]),
  /** Receivers of alerts no route matched; default: every configured sink. */
  defaultReceivers: z.array(name).max(50).optional(),
  /** Ownership map: first match names the team shown in the alert. */
  owners: z.array(OwnerSchema).max(1000).default([]),
  /** Storm control: past these rates, new alerts are stored but not notified; one summary says so. */
  storm: z
    .strictObject({
      perImage: RateSchema.default({ max: 20, per: 300_000 }),
      global: RateSchema.default({ max: 100, per: 300_000 }),
    })
    .default({ perImage: { max: 20, per: 300_000 }, global: { max: 100, per: 300_000 } }),
  /** Durable retries of the outbox (on top of each sink's own quick retries). */
  outbox: z
    .strictObject({
      baseDelay: durationMs.default(10_000),
      maxDelay: durationMs.default(600_000),
      /** A notification still undelivered after this long is marked failed. */
      giveUpAfter: durationMs.default(86_400_000),
    })
    .default({ baseDelay: 10_000, maxDelay: 600_000, giveUpAfter: 86_400_000 }),
  /**
   * How often open alerts are re-sent to Alertmanager sinks (from 10s: each round posts every open
   * alert; Prometheus itself re-sends every minute), and how long resolved ones are.
   */
  alertmanagerResend: durationMs.pipe(z.number().int().min(MIN_ALERTMANAGER_RESEND, 'must be at least 10s (every round posts every open alert)').max(3_600_000, 'must be at most 1h (Alertmanager resolves alerts not re-sent within its resolve_timeout, 5m by default)')).default(60_000),
  alertmanagerResolvedFor: durationMs.default(900_000),
  /** Deviations are deleted after this; resolved and accepted alerts after `alertRetention`. */
  deviationRetention: durationMs.default(30 * 86_400_000),
  alertRetention: durationMs.default(90 * 86_400_000),
  /** Cron schedules (node-cron syntax, collector's local time). */
  retentionSchedule: cronExpression.default('17 3 * * *'),
  reminderSchedule: cronExpression.default('0 9 * * *'),
  digestSchedule: cronExpression.default('0 8 * * *'),
  /** Owners are told this long before an exception expires. */
  reminderBefore: durationMs.default(7 * 86_400_000),
  /** Longest an exception may last. */
  maxExceptionLifetime: durationMs.default(366 * 86_400_000),
});
export type AlertingConfig = z.output<typeof AlertingConfigSchema>;

/** What matching looks at. */
export interface Matchable {
  baselineKey: string;
  namespace: string;
  labels: Readonly<Record<string, string>>;
  severity: Severity;
}

/** Whether `m` holds for `a`. */
export function matchesAlert(m: AlertMatch, a: Matchable): boolean {
  if (m.namespace && !m.namespace.includes(a.namespace)) return false;
  if (m.image && !m.image.some((g) => globMatch(g, a.baselineKey))) return false;
  if (m.labels) for (const [k, v] of Object.entries(m.labels)) if (a.labels[k] !== v) return false;
  if (m.severity && SEVERITIES.indexOf(a.severity) > SEVERITIES.indexOf(m.severity)) return false;
  return true;
}

/** The receivers of an alert: matching routes in order (stopping at one without `continue`), else the defaults. */
export function routeAlert(config: Pick<AlertingConfig, 'routes'>, defaults: readonly string[], a: Matchable): string[] {
  const out: string[] = [];
  let matched = false;
  for (const r of config.routes) {
    if (!matchesAlert(r.match, a)) continue;
    matched = true;
    for (const s of r.receivers) if (!out.includes(s)) out.push(s);
    if (!r.continue) break;
  }
  return matched ? out : [...defaults];
}

/** The owning team, or ''. */
export function ownerOf(config: Pick<AlertingConfig, 'owners'>, a: Matchable): string {
  for (const o of config.owners) if (matchesAlert(o.match, a)) return o.team;
  return '';
}

/** Every sink name the section refers to, with the config path that names it (to check them at startup). */
export function receiverReferences(config: AlertingConfig): { path: (string | number)[]; name: string }[] {
  const refs: { path: (string | number)[]; name: string }[] = [];
  config.routes.forEach((r, i) => r.receivers.forEach((n, j) => refs.push({ path: ['alerting', 'routes', i, 'receivers', j], name: n })));
  config.defaultReceivers?.forEach((n, j) => refs.push({ path: ['alerting', 'defaultReceivers', j], name: n }));
  config.owners.forEach((o, i) => o.receivers?.forEach((n, j) => refs.push({ path: ['alerting', 'owners', i, 'receivers', j], name: n })));
  return refs;
}

/**
 * Alertmanager sink settings that cannot work with the re-send interval: a firing alert carries
 * `endsAt = now + firingTimeout`, so a timeout shorter than a few re-sends lets Alertmanager resolve
 * it between two of them, and every alert flaps resolved/firing. Each issue names both settings.
 */
export function alertmanagerTimingIssues(alerting: Pick<AlertingConfig, 'alertmanagerResend'>, sinks: readonly { type: string; firingTimeout?: number | undefined }[], resends: number): { path: (string | number)[]; message: string }[] {
  const issues: { path: (string | number)[]; message: string }[] = [];
  sinks.forEach((s, i) => {
    if (s.type !== 'alertmanager' || s.firingTimeout === undefined) return;
    const least = alerting.alertmanagerResend * resends;
    if (s.firingTimeout < least) {
      issues.push({
        path: ['sinks', i, 'firingTimeout'],
        message: `(${s.firingTimeout / 1000}s) must be at least ${resends} × alerting.alertmanagerResend (${alerting.alertmanagerResend / 1000}s), ${least / 1000}s: else Alertmanager resolves firing alerts between two re-sends`,
      });
    }
  });
  return issues;
}
