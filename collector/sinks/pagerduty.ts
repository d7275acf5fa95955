/**
 * PagerDuty Events API v2 (`POST https://events.pagerduty.com/v2/enqueue`): trigger, acknowledge and
 * resolve, all with the same routing key and a dedup_key derived from the alert fingerprint, so every
 * step of one alert lands on one PagerDuty alert.
 *
 * What this follows, from /work/shared/specs/pagerduty-events-v2-openapi.json:
 * - request body: `routing_key` and `event_action` (trigger | acknowledge | resolve) required;
 *   `dedup_key` "required unless the event_action is trigger"; `payload` with `summary`, `severity`
 *   (critical | error | warning | info) and `source` required; optional `timestamp`, `component`,
 *   `group`, `class`, `custom_details`, and top-level `client`, `client_url`, `links` [{href, text}];
 * - "API Response Codes & Retry Logic": 202 accepted; 400 no retry; 429 and 5xx and network errors
 *   retry "after some time", "preferably with a back off". ./http.ts maps exactly that.
 * From PagerDuty's Events API v2 overview (not in the spec file): summary is cut at 1024 characters
 * and dedup_key at 255, so we never send longer ones.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Severity } from '../../core/severity.js';
import { deliveryShape, httpUrl, post, retryPolicyOf, withRetry } from './http.js';
import { categoryOf, isoTime, saneStart, sinkName, titleOf, truncate, type Notification, type Sink, type SinkDeps } from './sink.js';
import { visibleNotification } from './text.js';

/** The Events API v2 endpoint. */
export const PAGERDUTY_EVENTS_URL = 'https://events.pagerduty.com/v2/enqueue';

/** Limits of the Events API v2 (see the file comment). */
export const PAGERDUTY_LIMITS = Object.freeze({ summary: 1024, dedupKey: 255 });

/** Our severities onto PagerDuty's four. */
export const PAGERDUTY_SEVERITY: Readonly<Record<Severity, 'critical' | 'error' | 'warning' | 'info'>> = Object.freeze({
  critical: 'critical',
  high: 'error',
  medium: 'warning',
  low: 'info',
});

/** Config of one PagerDuty sink. */
export const PagerDutyConfigSchema = z.strictObject({
  type: z.literal('pagerduty'),
  name: sinkName,
  /** The integration key of an Events API v2 integration: a secret. */
  routingKey: z.string().regex(/^[A-Za-z0-9_-]{8,128}$/, 'must be an Events API v2 integration key (8-128 letters and digits)'),
  /** Override only for a proxy or tests. */
  url: httpUrl.default(PAGERDUTY_EVENTS_URL),
  /** Shown as the monitoring client in PagerDuty. */
  client: z.string().min(1).max(100).default('Driftwatch'),
  ...deliveryShape,
});

/** A parsed PagerDuty config. */
export type PagerDutyConfig = z.output<typeof PagerDutyConfigSchema>;

/** The dedup_key of an alert: stable across trigger, acknowledge and resolve, and across restarts. */
export function pagerDutyDedupKey(fingerprint: string): string {
  const key = `driftwatch/${fingerprint}`;
  // Fingerprints are 32 hex characters; hash anything else that would not fit.
  return key.length <= PAGERDUTY_LIMITS.dedupKey && /^[\x21-\x7e]+$/.test(fingerprint) ? key : `driftwatch/${createHash('sha256').update(fingerprint).digest('hex')}`;
}

const list = (xs: readonly string[]) => xs.slice(0, 20).map((x) => truncate(x, 256));

/**
 * The JSON body of one event. Pure; acknowledge and resolve carry only what the API reads for them
 * (the Events API has no field for a comment on those: the person's comment reaches PagerDuty only
 * when it rides on a trigger, as custom_details.comment). Text is made visible (./text.ts).
 */
export function buildPagerDutyPayload(raw: Notification, config: Pick<PagerDutyConfig, 'routingKey' | 'client'>) {
  const base = { routing_key: config.routingKey, event_action: raw.action, dedup_key: pagerDutyDedupKey(raw.fingerprint) };
  if (raw.action !== 'trigger') return base;
  const n = visibleNotification(raw);
  // The event's own time, but never after the collector received it (a node clock ahead).
  const latest = Math.min(n.lastSeen || n.at, n.at);
  const links = /^https?:\/\//.test(n.url) ? [{ href: n.url, text: 'Alert in Driftwatch' }] : [];
  return {
    ...base,
    payload: {
      summary: truncate(`[${n.severity}] ${titleOf(n)} (${n.ruleReason})`, PAGERDUTY_LIMITS.summary),
      // The affected system: the image's baseline, which is what deviated (nodes and pods vary).
      source: truncate(n.baselineKey || n.image || 'driftwatch', 255),
      severity: PAGERDUTY_SEVERITY[n.severity],
      timestamp: isoTime(Math.max(latest, saneStart(n))) || undefined,
      component: truncate(n.image || n.baselineKey, 255),
      group: truncate(n.namespace || n.team || 'unknown', 255),
      class: categoryOf(n) === 'deviation' ? n.ruleId : categoryOf(n),
      custom_details: {
        rule: n.ruleId,
        rule_reason: truncate(n.ruleReason, 1024),
        kind: n.kind,
        entry: truncate(n.description, 1024),
        reason: n.reason,
        explanation: truncate(n.explanation, 1024),
        example: truncate(n.example, 1024),
        nearest: list(n.nearest),
        count: n.count,
        first_seen: isoTime(n.firstSeen),
        last_seen: isoTime(n.lastSeen),
        nodes: list(n.nodes),
        pods: list(n.pods),
        namespace: n.namespace,
        team: n.team,
        fingerprint: n.fingerprint,
        category: categoryOf(n),
        ...(n.actor !== '' ? { state: n.state, by: n.actor } : {}),
        ...(n.comment ? { comment: truncate(n.comment, 1024) } : {}),
        // The package behind the executable, from the image's SBOM (issue 22).
        ...(n.package ? { package: truncate(n.package.text, 1024), not_in_sbom: n.package.notInSbom, sbom: n.package.sbom } : {}),
      },
    },
    client: config.client,
    ...(links.length > 0 ? { client_url: n.url, links } : {}),
  };
}

/** Create a PagerDuty sink. */
export function createPagerDutySink(config: PagerDutyConfig, deps: SinkDeps = {}): Sink {
  const now = deps.now ?? Date.now;
  const policy = retryPolicyOf(config);
  return {
    name: config.name,
    type: 'pagerduty',
    async send(n, signal) {
      const body = JSON.stringify(buildPagerDutyPayload(n, config));
      await withRetry(
        () => post({ url: config.url, headers: {}, body, timeoutMs: config.timeout, maxResponseBytes: config.maxResponseBytes, secrets: [config.routingKey], now }, signal),
        policy,
        signal,
        deps,
      );
    },
  };
}

/** The PagerDuty sink type, for the registry in ./index.ts. */
export const pagerDutySinkType = { type: 'pagerduty', schema: PagerDutyConfigSchema, create: createPagerDutySink } as const;
