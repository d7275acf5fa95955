/**
 * Nodes inside a real collector (fresh SQLite file, real gRPC streams, real HTTP): last contact and
 * lag from heartbeats in GET /api/v1/nodes and /metrics; a node silent for `silentAfter` pages
 * PagerDuty, fires in Alertmanager and calls the webhook (stand-ins that record what they got), and
 * resolves when it is back; a clean stop (goodbye) is not a silence; records and silence survive a
 * collector restart without paging twice. The clock is injected, so no test waits five minutes.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type CollectorHandle } from '../../collector/main.js';
import { agentService, PROTOCOL_REVISION, type WireAgentMessage, type WireCollectorMessage } from '../../proto/index.js';
import { withCollector } from '../helpers/collector.js';
import { loadSpec } from '../helpers/openapi.js';
import { eventually } from '../helpers/processes.js';
import { startRecorder, type Recorder } from '../helpers/recorder.js';

const ROUTING_KEY = 'e93facc04764012d7bfb002500d5d1a6';
const pdSpec = loadSpec('pagerduty-events-v2-openapi.json');
const pdSchema = pdSpec.at('#/paths/~1enqueue/post/requestBody/content/application~1json/schema');
const amSpec = loadSpec('alertmanager-v2-openapi.yaml');
const amSchema = (amSpec.at('#/paths/~1alerts/post/parameters') as { in: string; schema: unknown }[]).find((p) => p.in === 'body')!.schema;

/** A fake wall clock shared by the collector and the test. */
function clock(start = Date.UTC(2026, 10, 23, 12, 0, 0)) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function collector(t: ExecutionContext, dir: string, now: () => number, rec: Recorder): Promise<CollectorHandle> {
  const sinks = [
    { name: 'pd', type: 'pagerduty', routingKey: ROUTING_KEY, url: `${rec.url}/pd`, retry: { maxAttempts: 1 } },
    { name: 'am', type: 'alertmanager', url: `${rec.url}/am`, retry: { maxAttempts: 1 } },
    { name: 'hook', type: 'webhook', url: `${rec.url}/hook`, retry: { maxAttempts: 1 } },
  ];
  return withCollector(t, { silentAfter: '5m', sinks }, { dir, now });
}

/** An agent stream: hello, then whatever the test sends. */
async function agentStream(port: number, node: string) {
  const { Client } = agentService();
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = (client.Connect as () => grpc.ClientDuplexStream<WireAgentMessage, WireCollectorMessage>).call(client);
  call.on('error', () => undefined);
  const welcomed = new Promise<void>((resolve) => call.on('data', (m: WireCollectorMessage) => m.welcome && resolve()));
  call.write({ hello: { node, agentVersion: '9.9.9', sources: ['falco-file:/var/log/falco.json', 'falco-http:0.0.0.0:2801'], protocol: PROTOCOL_REVISION } });
  await welcomed;
  return {
    send: (m: WireAgentMessage) => call.write(m),
    close() {
      call.cancel();
      client.close();
    },
  };
}

const bodies = (r: Recorder, path: string) => r.received.filter((x) => x.path.startsWith(path)).map((x) => JSON.parse(x.body) as any);

async function nodesOf(c: CollectorHandle) {
  return ((await (await fetch(`${c.url}/api/v1/nodes`)).json()) as { items: any[] }).items;
}

test('heartbeats show lag; a silent node pages every receiver once, resolves when back; a restart neither forgets nor pages twice', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-nodes-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const rec = await startRecorder(t, (r) => ({ status: r.path === '/pd' ? 202 : 200 }));
  const clk = clock();
  const c = await collector(t, dir, clk.now, rec);

  const a = await agentStream(c.grpcPort, 'node-1');
  a.send({ heartbeat: { timeMs: clk.now(), spooled: 42, watermarkMs: clk.now() - 1000, spoolBytes: 65_536, oldestSpooledAgeMs: 12_500, spoolDropped: 3 } });
  const [n] = await eventually(async () => {
    const items = await nodesOf(c);
    return items[0]?.spooled === 42 ? items : undefined;
  }, 5_000, 'the heartbeat in the API');
  t.like(n, { node: 'node-1', agentVersion: '9.9.9', connected: true, lagSeconds: 12.5, spooled: 42, spoolBytes: 65_536, spoolDropped: 3, silent: false, stopped: false });
  t.deepEqual(n.sources, ['falco-file:/var/log/falco.json', 'falco-http:0.0.0.0:2801']);
  t.is(n.lastContact, new Date(clk.now()).toISOString());
  const metrics = await (await fetch(`${c.url}/metrics`)).text();
  t.regex(metrics, /driftwatch_collector_agent_lag_seconds\{node="node-1"\} 12\.5/);
  t.regex(metrics, /driftwatch_collector_agent_connected\{node="node-1"\} 1/);

  // Four minutes without a message: not yet silent. Past five: silent, and every receiver is told.
  a.close();
  await eventually(async () => ((await nodesOf(c))[0]?.connected === false ? true : undefined), 5_000, 'the stream to end');
  const lastContact = clk.now();
  clk.advance(240_000);
  await c.nodes.check();
  t.false((await nodesOf(c))[0].silent);
  clk.advance(61_000);
  await c.nodes.check();
  const silent = (await nodesOf(c))[0];
  t.true(silent.silent);
  t.is(silent.silentSince, new Date(clk.now()).toISOString());
  await c.alerting.drain();
  const [pd] = bodies(rec, '/pd');
  t.like(pd, { event_action: 'trigger', dedup_key: 'driftwatch/agent-silent/node-1', payload: { severity: 'error', class: 'agent-silent' } });
  t.regex(pd.payload.summary, /node node-1: Driftwatch agent silent since/);
  t.deepEqual(pdSpec.validate(pdSchema, pd), []);
  const [am] = bodies(rec, '/am');
  t.deepEqual(amSpec.validate(amSchema, am), []);
  t.like(am[0].labels, { node: 'node-1', rule: 'agent-silent', severity: 'high', kind: 'agent' });
  t.is(am[0].startsAt, new Date(lastContact).toISOString());
  t.is(am[0].endsAt, undefined, 'firing');
  const [hook] = bodies(rec, '/hook');
  t.like(hook, { action: 'trigger', alert: { id: 'agent-silent/node-1', severity: 'high', kind: 'agent', rule: { id: 'agent-silent' }, nodes: ['node-1'] } });
  t.regex(await (await fetch(`${c.url}/metrics`)).text(), /driftwatch_collector_agents_silent 1/);

  // Further checks while it stays silent change nothing.
  clk.advance(600_000);
  await c.nodes.check();
  await c.alerting.drain();
  t.is(rec.received.length, 3);

  // A collector restart: the record is still there, still silent, and nobody is paged again.
  await c.stop();
  const c2 = await collector(t, dir, clk.now, rec);
  await c2.nodes.check();
  await c2.alerting.drain();
  t.is(rec.received.length, 3, 'no second page after a restart');
  t.like((await nodesOf(c2))[0], { node: 'node-1', silent: true, connected: false, spooled: 42 });

  // Back: the silence resolves on every sink that was told.
  const b = await agentStream(c2.grpcPort, 'node-1');
  await eventually(async () => ((await nodesOf(c2))[0]?.silent === false ? true : undefined), 5_000, 'the node to be back');
  await c2.alerting.drain();
  t.like(bodies(rec, '/pd')[1], { event_action: 'resolve', dedup_key: 'driftwatch/agent-silent/node-1' });
  t.truthy(bodies(rec, '/am')[1][0].endsAt, 'resolved in Alertmanager');
  t.is(bodies(rec, '/hook')[1].action, 'resolve');
  b.close();
});

test('a clean stop (goodbye) is not a silence; DELETE forgets a node; unknown nodes are 404', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-nodes-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const rec = await startRecorder(t, () => ({ status: 202 }));
  const clk = clock();
  const c = await collector(t, dir, clk.now, rec);

  const a = await agentStream(c.grpcPort, 'node-a');
  a.send({ goodbye: { spooled: 0 } });
  await eventually(async () => ((await nodesOf(c))[0]?.stopped ? true : undefined), 5_000, 'the goodbye');
  a.close();
  clk.advance(3_600_000);
  await c.nodes.check();
  t.like((await nodesOf(c))[0], { node: 'node-a', stopped: true, silent: false });

  // Hello again: no longer stopped.
  const b = await agentStream(c.grpcPort, 'node-a');
  await eventually(async () => ((await nodesOf(c))[0]?.stopped === false ? true : undefined), 5_000, 'back after a stop');
  b.close();

  const one = await fetch(`${c.url}/api/v1/nodes/node-a`);
  t.is(one.status, 200);
  t.is(((await one.json()) as any).node, 'node-a');
  t.is((await fetch(`${c.url}/api/v1/nodes/nope`)).status, 404);
  t.is((await fetch(`${c.url}/api/v1/nodes?x=1`)).status, 400);
  t.is((await fetch(`${c.url}/api/v1/nodes/node-a`, { method: 'DELETE' })).status, 200);
  t.deepEqual(await nodesOf(c), []);
  t.is((await fetch(`${c.url}/api/v1/nodes/node-a`, { method: 'DELETE' })).status, 404);
  await c.alerting.drain();
  t.is(rec.received.length, 0, 'nothing was paged');
});
