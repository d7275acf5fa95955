/**
 * The sinks, registered in one array, with one config schema (a list of sinks, each with a `type`
 * and that type's keys) and one factory that wraps every sink so a failure is logged and counted.
 * Adding a destination: one file with its schema, pure payload builder and factory, one line here.
 */
import { Counter, type Registry } from 'prom-client';
import { z } from 'zod';
import { deepFreeze } from '../../core/freeze.js';
import { firstIssue } from '../../core/zod-issue.js';
import { ConfigError } from '../../runtime/config.js';
import type { Logger } from '../../runtime/logger.js';
import { alertmanagerSinkType } from './alertmanager.js';
import { gitHubSinkType } from './github.js';
import { gitLabSinkType } from './gitlab.js';
import { DeliveryError } from './http.js';
import { jiraSinkType } from './jira.js';
import { pagerDutySinkType } from './pagerduty.js';
import { slackSinkType } from './slack.js';
import type { Notice, Sink, SinkDeps } from './sink.js';
import { TokenSourceError, type TicketDeps } from './tickets.js';
import { webhookSinkType } from './webhook.js';

/** The public types of the sinks, so the collector imports only this file. */
export type { Notice, Notification, NotificationAction, Sink, SinkDeps } from './sink.js';
export { DeliveryError, type DeliveryErrorCode } from './http.js';
export { SkippedDelivery } from './sink.js';

/** Every sink type. The one place a destination is registered. */
export const SINK_TYPES = [webhookSinkType, slackSinkType, pagerDutySinkType, alertmanagerSinkType, gitHubSinkType, gitLabSinkType, jiraSinkType] as const;

// A homomorphic mapped type over the tuple keeps one schema per position, so the union stays precise.
type SchemasOf<T extends readonly { schema: unknown }[]> = { -readonly [K in keyof T]: T[K] extends { schema: infer S } ? S : never };
type SinkSchemas = SchemasOf<typeof SINK_TYPES>;

/** One configured sink: `type` picks the schema of the rest. */
export const SinkConfigSchema = z.discriminatedUnion('type', SINK_TYPES.map((t) => t.schema) as unknown as SinkSchemas);

/** A parsed sink config (any type). */
export type SinkConfig = z.output<typeof SinkConfigSchema>;

/** Most sinks one collector sends to. */
const MAX_SINKS = 50;

/** The `sinks:` section: a list of sinks with distinct names. */
export const SinksConfigSchema = z.strictObject({
  sinks: z
    .array(SinkConfigSchema)
    .max(MAX_SINKS)
    .default([])
    .superRefine((sinks, ctx) => {
      const seen = new Set<string>();
      sinks.forEach((s, i) => {
        if (seen.has(s.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate sink name ${s.name}` });
        seen.add(s.name);
      });
    }),
});

/** The parsed `sinks:` section. */
export type SinksConfig = z.output<typeof SinksConfigSchema>;

const SINK_TYPE_NAMES = SINK_TYPES.map((t) => t.type);

/**
 * Validate a `sinks:` section (parsed YAML) and return it deep-frozen, or throw a ConfigError naming
 * the field (`sinks.1.routingKey`). Messages never quote the value: it may be a secret.
 */
export function parseSinksConfig(doc: unknown): Readonly<SinksConfig> {
  const result = SinksConfigSchema.safeParse(doc ?? {});
  if (result.success) return deepFreeze(result.data);
  const { issue, path, key, message } = firstIssue(result.error);
  // An unknown or missing `type` fails the discriminator: say which types exist.
  if (issue.code === 'invalid_union' && issue.path.at(-1) === 'type') {
    throw new ConfigError(path, `must be one of: ${SINK_TYPE_NAMES.join(', ')}`, { cause: result.error });
  }
  throw new ConfigError(key, message, { cause: result.error });
}

/** What createSinks needs besides config. */
export interface CreateSinksDeps extends SinkDeps {
  logger?: Logger | undefined;
  /** Where ticket sinks (github, gitlab, jira) keep each image's ticket, and this replica's name (the holder of their claims). */
  tickets?: TicketDeps['tickets'];
  owner?: string | undefined;
  /** Where delivery counters go (the collector's registry). */
  registry?: Registry | undefined;
}

/**
 * Create the configured sinks, each wrapped so that every outcome is counted
 * (`driftwatch_collector_notifications_total{sink,type,outcome}`) and every failure logged with its
 * code, status and attempts — never its URL, key or body. The error is rethrown for the outbox to
 * reschedule; nothing here can bring the collector down.
 */
export function createSinks(config: Readonly<SinksConfig>, deps: CreateSinksDeps = {}): Sink[] {
  const registers = deps.registry ? [deps.registry] : [];
  const counter = (name: string, help: string, labelNames: string[]) =>
    (deps.registry?.getSingleMetric(name) as Counter<string> | undefined) ?? new Counter({ name, help, labelNames, registers });
  const outcomes = counter('driftwatch_collector_notifications_total', 'Notifications handed to sinks, by sink and outcome (delivered, rejected, throttled, unavailable, aborted, error)', ['sink', 'type', 'outcome']);
  const retries = counter('driftwatch_collector_notification_retries_total', 'Delivery attempts retried, by sink and error code', ['sink', 'type', 'code']);
  return config.sinks.map((c, i) => {
    const type = SINK_TYPES.find((t) => t.type === c.type);
    if (!type) throw new ConfigError('sinks.type', `unknown sink type ${c.type}`);
    const log = deps.logger?.child({ component: `sink.${c.type}`, sink: c.name });
    const onRetry = (err: DeliveryError, attempt: number, delayMs: number) => {
      retries.inc({ sink: c.name, type: c.type, code: err.code });
      log?.debug({ code: err.code, status: err.status, attempt, delayMs }, 'delivery failed, retrying');
      deps.onRetry?.(err, attempt, delayMs);
    };
    let inner: Sink;
    try {
      inner = (type.create as (config: SinkConfig, deps: TicketDeps) => Sink)(c, { ...deps, onRetry, logger: log });
    } catch (err) {
      // A secret read at startup (a ticket sink's token) that is missing stops startup naming its key.
      if (err instanceof TokenSourceError) throw new ConfigError(`sinks.${i}.${err.key}`, err.message, { cause: err });
      throw err;
    }
    const counted = async (what: { alert: string; action: string }, deliver: () => Promise<void>) => {
      try {
        await deliver();
        outcomes.inc({ sink: c.name, type: c.type, outcome: 'delivered' });
      } catch (err) {
        const code = err instanceof DeliveryError ? err.code : 'error';
        outcomes.inc({ sink: c.name, type: c.type, outcome: code });
        const fields = {
          ...what,
          code,
          status: err instanceof DeliveryError ? err.status : undefined,
          attempts: err instanceof DeliveryError ? err.attempts : undefined,
          retryAfterMs: err instanceof DeliveryError ? err.retryAfterMs : undefined,
          // DeliveryError messages are built secret-free in ./http.ts; other errors are bugs, named only by type.
          reason: err instanceof DeliveryError ? err.message : err instanceof Error ? err.name : typeof err,
        };
        if (code === 'aborted') log?.info(fields, 'delivery aborted');
        else log?.warn(fields, 'delivery failed');
        throw err;
      }
    };
    const notify = inner.notify?.bind(inner);
    return {
      name: inner.name,
      type: inner.type,
      send: (n, signal) => counted({ alert: n.fingerprint, action: n.action }, () => inner.send(n, signal)),
      ...(notify ? { notify: (n: Notice, signal: AbortSignal) => counted({ alert: n.kind, action: 'notice' }, () => notify(n, signal)) } : {}),
    } satisfies Sink;
  });
}
