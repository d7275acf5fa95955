import test from 'ava';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { parse as parseYaml } from 'yaml';
import { SINK_TYPES, createSinks, parseSinksConfig, type SinksConfig } from '../../../collector/sinks/index.js';
import { DeliveryError } from '../../../collector/sinks/http.js';
import { ConfigError } from '../../../runtime/config.js';
import { createLogger } from '../../../runtime/logger.js';
import { shellNotification } from '../../helpers/notification.js';
import { startRecorder } from '../../helpers/recorder.js';

const example = parseYaml(readFileSync(new URL('../../../../config/sinks.example.yaml', import.meta.url), 'utf8')) as { sinks: Record<string, unknown>[] };

test('config/sinks.example.yaml parses, with one sink of every registered type', (t) => {
  const config = parseSinksConfig(example);
  t.deepEqual(config.sinks.map((s) => s.type).sort(), SINK_TYPES.map((s) => s.type).sort());
  t.true(Object.isFrozen(config.sinks[0]));
  const webhook = config.sinks.find((s) => s.type === 'webhook')!;
  t.is(webhook.timeout, 5000);
  t.deepEqual(webhook.retry, { maxAttempts: 5, baseDelay: 500, maxDelay: 30_000, maxRetryAfter: 60_000 });
  const am = config.sinks.find((s) => s.type === 'alertmanager');
  t.is(am?.type === 'alertmanager' ? am.firingTimeout : 0, 3_600_000);
  t.deepEqual(parseSinksConfig(undefined).sinks, []);
});

const withSink = (i: number, patch: Record<string, unknown>) => ({ sinks: example.sinks.map((s, j) => (j === i ? { ...s, ...patch } : s)) });
const pd = example.sinks.findIndex((s) => s.type === 'pagerduty');
const wh = example.sinks.findIndex((s) => s.type === 'webhook');
const am = example.sinks.findIndex((s) => s.type === 'alertmanager');

const bad: [string, unknown, string, RegExp?][] = [
  ['unknown type', withSink(pd, { type: 'opsgenie' }), `sinks.${pd}.type`, /webhook, slack, pagerduty, alertmanager/],
  ['missing routing key', withSink(pd, { routingKey: undefined }), `sinks.${pd}.routingKey`],
  ['a bad routing key', withSink(pd, { routingKey: 'not a key!' }), `sinks.${pd}.routingKey`],
  ['unknown key in a sink', withSink(pd, { severity: 'high' }), `sinks.${pd}.severity`, /unknown setting/],
  ['unknown top-level key', { ...example, receivers: [] }, 'receivers', /unknown setting/],
  ['bad duration', withSink(wh, { timeout: 'soon' }), `sinks.${wh}.timeout`],
  ['unknown retry key', withSink(wh, { retry: { attempts: 3 } }), `sinks.${wh}.retry.attempts`, /unknown setting/],
  ['bad label name', withSink(am, { labels: { 'k8s-cluster': 'x' } }), `sinks.${am}.labels.k8s-cluster`],
  ['duplicate name', withSink(pd, { name: 'soc-webhook' }), `sinks.${pd}.name`, /duplicate/],
  ['bad sink name', withSink(pd, { name: 'On Call' }), `sinks.${pd}.name`],
];

for (const [what, doc, field, message] of bad) {
  test(`config error names the field: ${what}`, (t) => {
    const err = t.throws(() => parseSinksConfig(doc), { instanceOf: ConfigError });
    t.is(err?.key, field);
    t.is(err?.code, 'invalid_config');
    if (message) t.regex(err!.message, message);
  });
}

test('config errors never quote a secret value', (t) => {
  const secretUrl = 'hooks.slack.com/services/T1/B1/SECRETPATH';
  const err = t.throws(() => parseSinksConfig(withSink(1, { webhookUrl: `notaurl ${secretUrl}` })));
  t.false(err!.message.includes('SECRETPATH'));
  const err2 = t.throws(() => parseSinksConfig(withSink(pd, { routingKey: 'SECRET KEY WITH SPACES' })));
  t.false(err2!.message.includes('SECRET'));
});

/** A pino logger writing into an array, to inspect what would be logged. */
function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { lines, logger: createLogger('test', 'trace', stream as never) };
}

test('a failing sink is logged and counted, the error rethrown, and no secret reaches the log', async (t) => {
  const routingKey = 'R0UT1NGKEYsecretsecretsecret1234';
  const hmacKey = 'HMACKEYsecretsecretsecret';
  const rec = await startRecorder(t, (r) => (r.path.startsWith('/pd') ? { status: 400, body: `{"message":"invalid routing key ${routingKey}"}` } : { status: 503, body: `bad gateway for ${r.path}` }));
  const config: SinksConfig = parseSinksConfig({
    sinks: [
      { type: 'pagerduty', name: 'pd', routingKey, url: `${rec.url}/pd/enqueue` },
      { type: 'webhook', name: 'wh', url: `${rec.url}/hook/SECRETPATH`, hmacKey, retry: { maxAttempts: 2, baseDelay: 1, maxDelay: 1 } },
      { type: 'slack', name: 'sl', webhookUrl: `${rec.url}/services/T1/B1/SLACKSECRET`, minInterval: 0, retry: { maxAttempts: 1 } },
    ],
  });
  const { lines, logger } = capture();
  const registry = new Registry();
  const sinks = createSinks(config, { logger, registry });
  t.deepEqual(sinks.map((s) => `${s.type}:${s.name}`), ['pagerduty:pd', 'webhook:wh', 'slack:sl']);
  for (const sink of sinks) await t.throwsAsync(sink.send(shellNotification(), AbortSignal.timeout(5000)), { instanceOf: DeliveryError });
  const log = lines.join('');
  for (const secret of [routingKey, hmacKey, 'SECRETPATH', 'SLACKSECRET']) t.false(log.includes(secret), `${secret} leaked into the log`);
  const failures = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'delivery failed');
  t.deepEqual(failures.map((l) => [l.sink, l.code, l.status, l.attempts]), [['pd', 'rejected', 400, 1], ['wh', 'unavailable', 503, 2], ['sl', 'unavailable', 503, 1]]);
  const metrics = await registry.getSingleMetricAsString('driftwatch_collector_notifications_total');
  t.regex(metrics, /sink="pd",type="pagerduty",outcome="rejected"} 1/);
  t.regex(metrics, /sink="wh",type="webhook",outcome="unavailable"} 1/);
  t.regex(await registry.getSingleMetricAsString('driftwatch_collector_notification_retries_total'), /sink="wh",type="webhook",code="unavailable"} 1/);
  t.false(metrics.includes('SECRET'));
});

test('a delivered notification is counted; createSinks twice on one registry is fine', async (t) => {
  const rec = await startRecorder(t, () => ({ status: 202 }));
  const registry = new Registry();
  const config = parseSinksConfig({ sinks: [{ type: 'pagerduty', name: 'pd', routingKey: 'abcdefgh12345678', url: rec.url }] });
  createSinks(config, { registry });
  const [sink] = createSinks(config, { registry });
  await sink!.send(shellNotification(), AbortSignal.timeout(5000));
  t.regex(await registry.getSingleMetricAsString('driftwatch_collector_notifications_total'), /outcome="delivered"} 1/);
});
