/**
 * Prometheus Alertmanager API v2: `POST <url>/api/v2/alerts` with an array of postable alerts.
 *
 * What this follows, from /work/shared/specs/alertmanager-v2-openapi.yaml:
 * - `paths./alerts.post`: body `postableAlerts`, an array of `postableAlert`; 200 on success, 400 and 500 errors;
 * - `definitions.postableAlert`: `labels` (required, a `labelSet`: string → string), `annotations`
 *   (labelSet), `startsAt`/`endsAt` (date-time), `generatorURL` (uri).
 * From the Prometheus data model (prometheus.io/docs/concepts/data_model): label names match
 * `[a-zA-Z_][a-zA-Z0-9_]*`, and names starting with `__` are reserved.
 * From Alertmanager's client guidance (prometheus.io/docs/alerting/latest/clients): an alert without
 * endsAt resolves after `resolve_timeout`; clients re-send firing alerts periodically and send
 * resolved ones with endsAt set. Alertmanager identifies an alert by its label set, so labels hold only
 * bounded, identifying values (one alert id per alert, no counts or pod names), the rest annotations.
 */
import { z } from 'zod';
import { durationMs } from '../../runtime/config.js';
import { deliveryShape, httpUrl, post, retryPolicyOf, withRetry } from './http.js';
import { categoryOf, isoTime, saneStart, sinkName, stateOf, titleOf, truncate, type AlertCategory, type Notification, type Sink, type SinkDeps } from './sink.js';
import { visibleNotification } from './text.js';

/** A valid Prometheus label name, not reserved. */
export const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Whether `name` may be used as a label name. */
export function isValidLabelName(name: string): boolean {
  return LABEL_NAME.test(name) && !name.startsWith('__') && name.length <= 128;
}

const labelName = z.string().refine(isValidLabelName, 'must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __');

/** Config of one Alertmanager sink. */
export const AlertmanagerConfigSchema = z.strictObject({
  type: z.literal('alertmanager'),
  name: sinkName,
  /** Base URL of Alertmanager (`http://alertmanager:9093`); `/api/v2/alerts` is appended. */
  url: httpUrl,
  /** Value of the `alertname` label of deviation alerts (operational ones have their own: see ALERTNAMES). */
  alertname: z.string().regex(/^[A-Za-z0-9_:.-]{1,64}$/, 'must be 1-64 letters, digits, _ : . or -').default('DriftwatchDeviation'),
  /** Static labels added to every alert (e.g. `cluster: prod`); ours win on a clash. */
  labels: z
    .record(labelName, z.string().max(256))
    .refine((l) => Object.keys(l).length <= 20, 'at most 20 labels')
    .default({}),
  /**
   * When set, firing alerts carry `endsAt = now + firingTimeout`, so Alertmanager resolves them by
   * itself if the collector stops re-sending; unset leaves it to Alertmanager's resolve_timeout.
   * Mind: Alertmanager up to 0.25 (checked against Debian's) keeps the later of two explicit endsAt,
   * so a resolve sent before the last firing post's endsAt shows only when that endsAt passes: set
   * it only when a resolve that late is acceptable. Unset (the default), resolves show at once.
   */
  firingTimeout: durationMs.pipe(z.number().int().min(60_000).max(7 * 86_400_000)).optional(),
  /** Credentials for an Alertmanager behind a proxy; secrets. */
  bearerToken: z.string().min(1).max(4096).regex(/^[^\r\n]+$/, 'must not contain line breaks').optional(),
  basicAuth: z.strictObject({ username: z.string().min(1).max(256).regex(/^[^:\r\n]+$/, 'must not contain : or line breaks'), password: z.string().max(1024).regex(/^[^\r\n]*$/, 'must not contain line breaks') }).optional(),
  ...deliveryShape,
}).refine((c) => !(c.bearerToken && c.basicAuth), { message: 'set bearerToken or basicAuth, not both', path: ['basicAuth'] });

/** A parsed Alertmanager config. */
export type AlertmanagerConfig = z.output<typeof AlertmanagerConfigSchema>;

/**
 * The `alertname` of the alerts that are not deviations, so Alertmanager routes, groups and inhibits
 * them apart: a silent agent is an operations problem, a storm summary stands for many alerts.
 */
export const ALERTNAMES: Readonly<Record<Exclude<AlertCategory, 'deviation'>, string>> = Object.freeze({ 'agent-silent': 'DriftwatchAgentSilent', storm: 'DriftwatchStormControl' });

/** Least time Alertmanager is given between a firing alert's re-send and its `endsAt`: three re-sends can be missed. */
export const FIRING_TIMEOUT_RESENDS = 3;

/** The annotation naming who put the alert in its state. */
const BY: Readonly<Record<string, string>> = { acknowledged: 'acknowledged_by', resolved: 'resolved_by', accepted: 'accepted_by' };

/** Longest label and annotation values sent. */
const MAX_LABEL_VALUE = 256;
const MAX_ANNOTATION = 2048;

/** Lone surrogates would make invalid UTF-8 on the wire, which Alertmanager refuses. */
function wellFormed(s: string): string {
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

/** The body of `POST /api/v2/alerts` for one notification: an array of one postable alert. Pure. */
export function buildAlertmanagerPayload(raw: Notification, config: Pick<AlertmanagerConfig, 'alertname' | 'labels' | 'firingTimeout'>) {
  const n = visibleNotification(raw);
  const category = categoryOf(n);
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(config.labels)) if (isValidLabelName(k)) labels[k] = wellFormed(truncate(v, MAX_LABEL_VALUE));
  const own: Record<string, string> = {
    alertname: category === 'deviation' ? config.alertname : ALERTNAMES[category],
    severity: n.severity,
    rule: n.ruleId,
    kind: n.kind,
    image: n.baselineKey,
    namespace: n.namespace,
    team: n.team,
    // Alertmanager tells alerts apart by labels: without the id, two deviations of one image would merge.
    alert_id: n.fingerprint,
    // An operational alert about a node's agent (silent) names the node, for routing and inhibition.
    node: n.kind === 'agent' ? (n.nodes[0] ?? '') : '',
  };
  // Empty values are the same as absent in Alertmanager; leave them out.
  for (const [k, v] of Object.entries(own)) if (v !== '') labels[k] = wellFormed(truncate(v, MAX_LABEL_VALUE));
  const annotation = (s: string) => wellFormed(truncate(s, MAX_ANNOTATION));
  const annotations: Record<string, string> = {
    summary: annotation(titleOf(n)),
    description: annotation(n.explanation),
    rule_reason: annotation(n.ruleReason),
    reason: n.reason,
    example: annotation(n.example),
    count: String(n.count),
    first_seen: isoTime(n.firstSeen),
    last_seen: isoTime(n.lastSeen),
  };
  if (n.nearest.length > 0) annotations.nearest = annotation(n.nearest.slice(0, 3).join('\n'));
  if (n.pods.length > 0) annotations.pods = annotation(n.pods.slice(0, 20).join(', '));
  if (n.nodes.length > 0) annotations.nodes = annotation(n.nodes.slice(0, 20).join(', '));
  // The package behind the executable, from the image's SBOM (issue 22).
  if (n.package) annotations.package = annotation(n.package.text);
  // From the alert's state, not the action: a re-send of an acknowledged alert says who acknowledged it.
  const by = BY[stateOf(n)];
  if (by !== undefined && n.actor !== '') annotations[by] = annotation(n.actor);
  if (by !== undefined && n.comment) annotations.comment = annotation(n.comment);
  for (const k of Object.keys(annotations)) if (annotations[k] === '') delete annotations[k];
  // Alertmanager refuses an alert whose end is before its start ("start time must be before end
  // time"); a start after the receive time (a node clock ahead, a forged event time) would be refused
  // on resolve or with a firing timeout. saneStart bounds it; endsAt is kept after it.
  const start = saneStart(n);
  const startsAt = isoTime(start);
  let endsAt: string | undefined;
  if (n.action === 'resolve') endsAt = isoTime(Math.max(n.at, start + 1000));
  else if (config.firingTimeout !== undefined) endsAt = isoTime(Math.max(n.at, start) + config.firingTimeout);
  return [
    {
      labels,
      annotations,
      ...(startsAt !== '' ? { startsAt } : {}),
      ...(endsAt !== undefined && endsAt !== '' ? { endsAt } : {}),
      ...(/^https?:\/\/\S+$/.test(n.url) ? { generatorURL: n.url } : {}),
    },
  ];
}

/** The URL alerts are posted to. */
export function alertmanagerAlertsUrl(base: string): string {
  const u = new URL(base);
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/api/v2/alerts`;
  return u.toString();
}

/** Create an Alertmanager sink. */
export function createAlertmanagerSink(config: AlertmanagerConfig, deps: SinkDeps = {}): Sink {
  const now = deps.now ?? Date.now;
  const policy = retryPolicyOf(config);
  const url = alertmanagerAlertsUrl(config.url);
  const headers: Record<string, string> = {};
  const secrets: string[] = [];
  if (config.bearerToken) {
    headers.authorization = `Bearer ${config.bearerToken}`;
    secrets.push(config.bearerToken);
  } else if (config.basicAuth) {
    headers.authorization = `Basic ${Buffer.from(`${config.basicAuth.username}:${config.basicAuth.password}`).toString('base64')}`;
    secrets.push(config.basicAuth.password);
  }
  return {
    name: config.name,
    type: 'alertmanager',
    async send(n, signal) {
      const body = JSON.stringify(buildAlertmanagerPayload(n, config));
      await withRetry(() => post({ url, headers, body, timeoutMs: config.timeout, maxResponseBytes: config.maxResponseBytes, secrets, now }, signal), policy, signal, deps);
    },
  };
}

/** The Alertmanager sink type, for the registry in ./index.ts. */
export const alertmanagerSinkType = { type: 'alertmanager', schema: AlertmanagerConfigSchema, create: createAlertmanagerSink } as const;
