/**
 * The collector's ingest and API with a real collector (ephemeral ports, fresh SQLite file) and a
 * real gRPC client speaking the wire contract.
 */
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { deviationId, type Deviation } from '../../core/deviation.js';
import type { Entry } from '../../core/entry.js';
import type { ActivityEvent } from '../../core/event.js';
import { agentService, deviationToWire, type WireAgentMessage, type WireCollectorMessage } from '../../proto/index.js';
import { withCollector } from '../helpers/collector.js';
import { converse } from '../helpers/ingest.js';

function deviation(node: string, i: number, image = 'docker.io/library/nginx'): Deviation {
  const event: ActivityEvent = {
    time: Date.UTC(2026, 10, 23, 10, 0, i),
    node,
    source: 'test',
    container: { id: 'c1', name: 'web', image: { repository: image, tag: '1', digest: '' } },
    pod: { namespace: 'shop', name: `web-${i % 3}`, labels: {}, workload: '' },
    kind: 'exec',
    process: { pid: 100 + i, exe: '/bin/sh', name: 'sh', args: ['-c', 'id'], parentExe: '/usr/sbin/nginx', parentName: 'nginx', uid: 0, user: 'root' },
    network: null,
  };
  const entry: Entry = { type: 'process', exe: '/bin/sh', parent: 'nginx', user: 'root', args: '-c id' };
  return { id: deviationId(event, image, entry), key: image, baselineVersion: 3, entry, reason: 'new-executable', explanation: 'x', nearest: [], event };
}

test('a batch is stored once even when sent twice, and grouped into one alert', async (t) => {
  const c = await withCollector(t);
  const batch = { deviations: [0, 1, 2].map((i) => deviationToWire(deviation('node-1', i))), baselines: [] };
  const { replies } = await converse(c.grpcPort, 'node-1', [{ batch: { batchId: 1, ...batch } }, { batch: { batchId: 2, ...batch } }], 2);
  const acks = replies.filter((r) => r.ack).map((r) => r.ack);
  t.deepEqual(acks.map((a) => [a!.batchId, a!.stored, a!.duplicates]), [[1, 3, 0], [2, 0, 3]]);
  const alerts = (await (await fetch(`${c.url}/api/v1/alerts`)).json()) as { items: { count: number; pods: string[]; kind: string; image: string; process: { exe: string } }[] };
  t.is(alerts.items.length, 1);
  t.is(alerts.items[0]!.count, 3);
  t.deepEqual(alerts.items[0]!.pods.sort(), ['shop/web-0', 'shop/web-1', 'shop/web-2']);
  t.is(alerts.items[0]!.process.exe, '/bin/sh');
});

test('invalid records are rejected and counted; valid ones in the same batch are stored', async (t) => {
  const c = await withCollector(t);
  const good = deviationToWire(deviation('node-1', 1));
  const impersonating = deviationToWire(deviation('node-2', 2));
  const badId = { ...deviationToWire(deviation('node-1', 3)), id: "x'; DROP TABLE deviations; --" };
  const hugeExe = deviationToWire(deviation('node-1', 4));
  hugeExe.event!.process!.exe = 'x'.repeat(100_000);
  const { replies } = await converse(c.grpcPort, 'node-1', [{ batch: { batchId: 7, deviations: [good, impersonating, badId, hugeExe], baselines: [] } }], 1);
  t.deepEqual(replies.find((r) => r.ack)?.ack, { batchId: 7, stored: 1, duplicates: 0, rejected: 3 });
  const metrics = await (await fetch(`${c.url}/metrics`)).text();
  t.regex(metrics, /driftwatch_collector_records_rejected_total\{field="event.node"\} 1/);
  t.regex(metrics, /driftwatch_collector_records_rejected_total\{field="id"\} 1/);
  t.is(await c.store.countDeviations(), 1);
});

for (const ingestThread of ['worker', 'main'] as const) {
  test(`batches from many agents at once are committed together and each acknowledged with its own counts (ingest on the ${ingestThread} thread)`, async (t) => {
    const c = await withCollector(t, { ingestThread });
    const AGENTS = 10;
    const BATCHES = 3;
    const PER = 40;
    const outcomes = await Promise.all(
      Array.from({ length: AGENTS }, (_, a) => {
        const node = `node-${a}`;
        const messages: WireAgentMessage[] = Array.from({ length: BATCHES }, (_, b) => ({
          batch: { batchId: b + 1, deviations: Array.from({ length: PER }, (_, i) => deviationToWire(deviation(node, b * PER + i, `docker.io/library/app-${a % 3}`))), baselines: [] },
        }));
        // The last batch again: its deviations are already stored (in this group or an earlier one).
        messages.push({ batch: { ...messages[BATCHES - 1]!.batch!, batchId: BATCHES + 1 } });
        return converse(c.grpcPort, node, messages, BATCHES + 1);
      }),
    );
    for (const { replies, error } of outcomes) {
      t.is(error, null);
      t.deepEqual(
        replies.filter((r) => r.ack).map((r) => [r.ack!.batchId, r.ack!.stored, r.ack!.duplicates]),
        [[1, PER, 0], [2, PER, 0], [3, PER, 0], [4, 0, PER]],
      );
    }
    const metrics = await (await fetch(`${c.url}/metrics`)).text();
    t.regex(metrics, new RegExp(`^driftwatch_collector_deviations_total\\{outcome="stored"\\} ${AGENTS * BATCHES * PER}$`, 'm'));
    // Every batch went through a group commit, counted once.
    t.regex(metrics, new RegExp(`^driftwatch_collector_commit_group_batches_sum ${AGENTS * (BATCHES + 1)}$`, 'm'));
    const alerts = (await (await fetch(`${c.url}/api/v1/alerts?limit=10`)).json()) as { items: { count: number }[] };
    t.deepEqual(alerts.items.map((a) => a.count).sort((x, y) => x - y), [3, 3, 4].map((n) => n * BATCHES * PER));
  });
}

test('alerts acknowledged and resolved through the API while agents stream a storm: both writers commit, no batch or request fails', async (t) => {
  const c = await withCollector(t);
  const IMAGES = 6;
  const image = (i: number) => `docker.io/library/app-${i}`;
  await converse(c.grpcPort, 'node-0', [{ batch: { batchId: 1, deviations: Array.from({ length: IMAGES }, (_, i) => deviationToWire(deviation('node-0', i, image(i)))), baselines: [] } }], 1);
  const ids = ((await (await fetch(`${c.url}/api/v1/alerts`)).json()) as { items: { id: string }[] }).items.map((a) => a.id);
  t.is(ids.length, IMAGES);

  // The storm (ingest worker) and security working the alerts (main thread) write at the same time:
  // an acknowledge or resolve that read its alert while a commit ran must wait for the write lock,
  // not fail.
  const AGENTS = 6;
  const BATCHES = 5;
  const PER = 200;
  let streaming = true;
  const storm = Promise.all(
    Array.from({ length: AGENTS }, (_, a) => {
      const node = `node-${a + 1}`;
      const messages: WireAgentMessage[] = Array.from({ length: BATCHES }, (_, b) => ({
        batch: { batchId: b + 1, deviations: Array.from({ length: PER }, (_, i) => deviationToWire(deviation(node, b * PER + i, image(i % IMAGES)))), baselines: [] },
      }));
      return converse(c.grpcPort, node, messages, BATCHES);
    }),
  ).finally(() => (streaming = false));
  const statuses = new Map<number, number>();
  let requests = 0;
  do {
    for (const id of ids) {
      const verb = requests++ % 2 === 0 ? 'acknowledge' : 'resolve';
      const res = await fetch(`${c.url}/api/v1/alerts/${id}/${verb}`, { method: 'POST' });
      await res.arrayBuffer();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    }
  } while (streaming);
  for (const { replies, error } of await storm) {
    t.is(error, null);
    t.deepEqual(replies.filter((r) => r.ack).map((r) => r.ack!.stored), Array(BATCHES).fill(PER));
  }
  // 200, or 409 where the alert was already in the asked state; never a server error.
  t.deepEqual([...statuses.keys()].filter((s) => s !== 200 && s !== 409), [], JSON.stringify([...statuses]));
  t.true((statuses.get(200) ?? 0) >= IMAGES, JSON.stringify([...statuses]));
  t.is(await c.store.countDeviations(), IMAGES + AGENTS * BATCHES * PER);
});

test('a stream must start with a hello', async (t) => {
  const c = await withCollector(t);
  const { Client } = agentService();
  const client = new Client(`127.0.0.1:${c.grpcPort}`, grpc.credentials.createInsecure());
  const call = (client.Connect as () => grpc.ClientDuplexStream<WireAgentMessage, WireCollectorMessage>).call(client);
  const err = await new Promise<grpc.ServiceError>((resolve) => {
    call.on('error', resolve);
    call.on('data', () => {});
    call.write({ batch: { batchId: 1, deviations: [], baselines: [] } });
  });
  client.close();
  t.is(err.code, grpc.status.FAILED_PRECONDITION);
  t.regex(err.details, /first message must be a hello/);
});

test('API: pagination, filters, percent-encoded keys, and 4xx with a reason', async (t) => {
  const c = await withCollector(t);
  const devs = [0, 1, 2, 3, 4].map((i) => deviationToWire(deviation('node-1', i, `docker.io/library/app${i}`)));
  await converse(c.grpcPort, 'node-1', [{ batch: { batchId: 1, deviations: devs, baselines: [] } }], 1);
  const get = async (path: string) => {
    const res = await fetch(`${c.url}${path}`);
    return { status: res.status, body: (await res.json()) as any };
  };
  const p1 = await get('/api/v1/alerts?limit=2');
  t.is(p1.body.items.length, 2);
  t.truthy(p1.body.next);
  const p2 = await get(`/api/v1/alerts?limit=2&cursor=${p1.body.next}`);
  const p3 = await get(`/api/v1/alerts?limit=2&cursor=${p2.body.next}`);
  t.is(p3.body.next, null);
  t.is(new Set([...p1.body.items, ...p2.body.items, ...p3.body.items].map((a: { id: string }) => a.id)).size, 5);
  t.is((await get('/api/v1/alerts?image=docker.io/library/app3')).body.items.length, 1);
  t.is((await get('/api/v1/deviations?limit=1000')).body.items.length, 5);
  const one = p1.body.items[0];
  const detail = await get(`/api/v1/alerts/${one.id}`);
  t.is(detail.body.deviations.length, 1);

  const cases: [string, number, RegExp][] = [
    ['/api/v1/alerts?limit=0', 400, /limit must be an integer from 1 to 1000/],
    ['/api/v1/alerts?limit=5000', 400, /limit/],
    ['/api/v1/alerts?kind=fork', 400, /kind must be one of: exec, connect, accept, listen/],
    ['/api/v1/alerts?cursor=bm9wZQ', 400, /cursor/],
    ['/api/v1/alerts?limit=1&limit=2', 400, /limit given more than once/],
    ['/api/v1/alerts?sort=x', 400, /unknown query parameter "sort"/],
    ['/api/v1/alerts/doesnotexist', 404, /no alert/],
    [`/api/v1/baselines/${encodeURIComponent('docker.io/library/none')}`, 404, /no baseline with key "docker.io\/library\/none"/],
    ['/api/v1/baselines/%E0%A4%A', 400, /percent-encoding/],
    ['/api/v1/baselines/docker.io/library/none', 404, /one percent-encoded segment/],
    ['/api/v1/nothing', 404, /no such API resource/],
    ['/elsewhere', 404, /under \/api\/v1\//],
  ];
  for (const [path, status, message] of cases) {
    const r = await get(path);
    t.is(r.status, status, path);
    t.regex(r.body.error.message, message, path);
  }
  const post = await fetch(`${c.url}/api/v1/alerts`, { method: 'POST', body: '{}' });
  t.is(post.status, 405);
  t.is(post.headers.get('allow'), 'GET, HEAD');
  t.is((await fetch(`${c.url}/api/v1/alerts/x/acknowledge`)).headers.get('allow'), 'POST', 'a write route read: 405 with what it takes');
  const stream = await get('/api/v1/stream');
  t.is(stream.status, 426, 'the live feed is a websocket');
  for (const path of ['/livez', '/healthz', '/readyz']) t.is((await fetch(`${c.url}${path}`)).status, 200, path);
  t.regex(await (await fetch(`${c.url}/metrics`)).text(), /^driftwatch_collector_deviations_total\{outcome="stored"\} 5$/m);
});
