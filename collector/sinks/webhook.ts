/**
 * Generic webhook: the notification as JSON in a POST, optionally signed with HMAC-SHA256 so the
 * receiver can check that it came from this collector and is fresh.
 *
 * Headers (all lowercase on the wire):
 * - `x-driftwatch-event`: `trigger` | `acknowledge` | `resolve`
 * - `x-driftwatch-delivery`: a stable id of (alert, action, time); a retried delivery repeats it,
 *   so a receiver can drop duplicates (delivery is at-least-once)
 * - `x-driftwatch-timestamp`: Unix seconds when this attempt was signed
 * - `x-driftwatch-signature`: `v1=` + hex HMAC-SHA256(key, `<timestamp>.<raw body>`), only with `hmacKey`
 *
 * The receiver recomputes the HMAC over the raw bytes it received (before any JSON parsing),
 * compares in constant time, and refuses timestamps older than a few minutes: that stops a
 * captured request from being replayed later. verifyWebhookSignature() does exactly that.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { deliveryShape, httpUrl, post, retryPolicyOf, urlSecrets, withRetry } from './http.js';
import { categoryOf, isoTime, sinkName, stateOf, truncate, type Notice, type Notification, type Sink, type SinkDeps } from './sink.js';
import { visibleNotice, visibleNotification } from './text.js';

/** Header names, for receivers and tests. */
export const WEBHOOK_HEADERS = Object.freeze({
  event: 'x-driftwatch-event',
  delivery: 'x-driftwatch-delivery',
  timestamp: 'x-driftwatch-timestamp',
  signature: 'x-driftwatch-signature',
});

/** Version tag of the JSON body; bumped on incompatible changes. */
export const WEBHOOK_PAYLOAD_VERSION = 'driftwatch.alert/v1';

/** Headers a user may not set: they carry the body's framing or our signature. */
const RESERVED_HEADERS = /^(content-type|content-length|host|transfer-encoding|connection|x-driftwatch-.*)$/i;

/** Config of one webhook sink. */
export const WebhookConfigSchema = z.strictObject({
  type: z.literal('webhook'),
  name: sinkName,
  url: httpUrl,
  /** Secret shared with the receiver; when set, every request is signed. */
  hmacKey: z.string().min(16, 'must be at least 16 characters').max(512).optional(),
  /** Extra static headers (e.g. an API key the receiver wants). Values are treated as secrets. */
  headers: z
    .record(
      z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'must be a header name').refine((h) => !RESERVED_HEADERS.test(h), 'is set by Driftwatch'),
      z.string().max(1024).regex(/^[^\r\n\0]*$/, 'must not contain line breaks'),
    )
    .refine((h) => Object.keys(h).length <= 20, 'at most 20 headers')
    .default({}),
  ...deliveryShape,
});

/** A parsed webhook config. */
export type WebhookConfig = z.output<typeof WebhookConfigSchema>;

/** Bounds that keep one body small whatever the alert holds. */
const MAX_TEXT = 1024;
const MAX_LIST = 50;

/**
 * The JSON body a webhook receives. Pure. Text fields are made visible (./text.ts); `entry` is the
 * structured data as stored, for programs.
 */
export function buildWebhookPayload(raw: Notification) {
  const n = visibleNotification(raw);
  const list = (xs: readonly string[]) => xs.slice(0, MAX_LIST).map((x) => truncate(x, 256));
  return {
    version: WEBHOOK_PAYLOAD_VERSION,
    action: n.action,
    at: isoTime(n.at),
    alert: {
      id: n.fingerprint,
      severity: n.severity,
      rule: { id: n.ruleId, reason: truncate(n.ruleReason, MAX_TEXT) },
      image: n.image,
      baselineKey: n.baselineKey,
      kind: n.kind,
      summary: truncate(n.description, MAX_TEXT),
      entry: n.entry,
      reason: n.reason,
      explanation: truncate(n.explanation, MAX_TEXT),
      example: truncate(n.example, MAX_TEXT),
      nearest: list(n.nearest),
      count: n.count,
      firstSeen: isoTime(n.firstSeen),
      lastSeen: isoTime(n.lastSeen),
      nodes: list(n.nodes),
      pods: list(n.pods),
      namespace: n.namespace,
      team: n.team,
      url: n.url,
      actor: n.actor,
      comment: n.comment ?? '',
      state: stateOf(n),
      category: categoryOf(n),
      // The package behind the executable, from the image's SBOM (issue 22); null when none is known.
      package: n.package ? { ...n.package, text: truncate(n.package.text, MAX_TEXT), name: truncate(n.package.name, 512), version: truncate(n.package.version, 512), purl: truncate(n.package.purl, MAX_TEXT), note: truncate(n.package.note, MAX_TEXT) } : null,
    },
  };
}

/** Version of the notice body. */
export const WEBHOOK_NOTICE_VERSION = 'driftwatch.notice/v1';

/** The JSON body of a notice. Pure. */
export function buildWebhookNotice(raw: Notice) {
  const n = visibleNotice(raw);
  return {
    version: WEBHOOK_NOTICE_VERSION,
    kind: n.kind,
    at: isoTime(n.at),
    team: n.team,
    title: truncate(n.title, MAX_TEXT),
    lines: n.lines.slice(0, 200).map((l) => truncate(l, MAX_TEXT)),
    url: n.url,
  };
}

/** The stable delivery id of a notification: equal for retries of the same (alert, action, time). */
export function deliveryId(n: { fingerprint: string; action: string; at: number }): string {
  return createHash('sha256').update(`${n.fingerprint}\n${n.action}\n${n.at}`).digest('hex').slice(0, 32);
}

/** `v1=` + hex HMAC-SHA256(key, `<timestamp>.<body>`). */
export function webhookSignature(key: string, timestampSeconds: number, rawBody: string | Buffer): string {
  return `v1=${createHmac('sha256', key).update(`${timestampSeconds}.`).update(rawBody).digest('hex')}`;
}

/** Why verification failed, or 'ok'. */
export type WebhookVerification = 'ok' | 'missing' | 'stale' | 'mismatch';

/**
 * What a receiver does: check the signature over the raw body and refuse stale timestamps
 * (`toleranceMs`, default 5 minutes, either way to allow for clock skew).
 */
export function verifyWebhookSignature(
  rawBody: string | Buffer,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  key: string,
  nowMs: number,
  toleranceMs = 300_000,
): WebhookVerification {
  const ts = headers[WEBHOOK_HEADERS.timestamp];
  const sig = headers[WEBHOOK_HEADERS.signature];
  if (typeof ts !== 'string' || typeof sig !== 'string' || !/^\d{1,12}$/.test(ts)) return 'missing';
  if (Math.abs(nowMs - Number(ts) * 1000) > toleranceMs) return 'stale';
  const expected = Buffer.from(webhookSignature(key, Number(ts), rawBody));
  const given = Buffer.from(sig);
  return expected.length === given.length && timingSafeEqual(expected, given) ? 'ok' : 'mismatch';
}

/** Create a webhook sink. */
export function createWebhookSink(config: WebhookConfig, deps: SinkDeps = {}): Sink {
  const now = deps.now ?? Date.now;
  const policy = retryPolicyOf(config);
  const secrets = [...urlSecrets(config.url), ...(config.hmacKey ? [config.hmacKey] : []), ...Object.values(config.headers)];
  const deliver = (body: string, event: string, id: string, signal: AbortSignal) =>
    withRetry(
      () => {
        const headers: Record<string, string> = { ...config.headers, [WEBHOOK_HEADERS.event]: event, [WEBHOOK_HEADERS.delivery]: id };
        // Signed per attempt: a retry minutes later must not arrive with a stale timestamp.
        const ts = Math.floor(now() / 1000);
        headers[WEBHOOK_HEADERS.timestamp] = String(ts);
        if (config.hmacKey) headers[WEBHOOK_HEADERS.signature] = webhookSignature(config.hmacKey, ts, body);
        return post({ url: config.url, headers, body, timeoutMs: config.timeout, maxResponseBytes: config.maxResponseBytes, secrets, now }, signal);
      },
      policy,
      signal,
      deps,
    );
  return {
    name: config.name,
    type: 'webhook',
    async send(n, signal) {
      await deliver(JSON.stringify(buildWebhookPayload(n)), n.action, deliveryId(n), signal);
    },
    async notify(n, signal) {
      await deliver(JSON.stringify(buildWebhookNotice(n)), 'notice', deliveryId({ fingerprint: `${n.kind}:${n.team}:${n.title}`, action: 'notice', at: n.at }), signal);
    },
  };
}

/** The webhook sink type, for the registry in ./index.ts. */
export const webhookSinkType = { type: 'webhook', schema: WebhookConfigSchema, create: createWebhookSink } as const;
