/**
 * The image inventory inside a real collector (fresh SQLite file, real gRPC streams, real HTTP): what
 * agents report in heartbeats becomes GET /api/v1/images and /api/v1/images/{repository}, each node
 * speaking only for itself; hostile reports (too many containers, too often) are refused and counted
 * without ending the stream; the filters and their 400s; the scanner export as JSON and as CSV that a
 * spreadsheet cannot take for formulas. The wall clock is injected, so staleness needs no waiting.
 */
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import type { CollectorHandle } from '../../collector/main.js';
import { agentService, PROTOCOL_REVISION, type WireAgentMessage, type WireCollectorMessage, type WireContainerReport } from '../../proto/index.js';
import { runImages } from '../../cli/images.js';
import { MAX_NEW_VERSIONS_PER_WRITE, MAX_VERSIONS_READ } from '../../collector/store/store.js';
import { withCollector } from '../helpers/collector.js';
import { eventually } from '../helpers/processes.js';

const T0 = Date.UTC(2026, 11, 1, 12, 0, 0);
const NGINX = 'docker.io/library/nginx';
const SHOP = 'ghcr.io/acme/shop';
const sha = (c: string) => `sha256:${c.repeat(64)}`;

function clock(start = T0) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

/** An agent stream as `node`: hello, then heartbeats carrying container reports. */
async function agentStream(t: ExecutionContext, port: number, node: string) {
  const { Client } = agentService();
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = (client.Connect as () => grpc.ClientDuplexStream<WireAgentMessage, WireCollectorMessage>).call(client);
  let ended: string | null = null;
  call.on('error', (e: grpc.ServiceError) => (ended = e.details));
  const welcomed = new Promise<void>((resolve) => call.on('data', (m: WireCollectorMessage) => m.welcome && resolve()));
  call.write({ hello: { node, agentVersion: '9.9.9', sources: [], protocol: PROTOCOL_REVISION } });
  await welcomed;
  t.teardown(() => {
    call.cancel();
    client.close();
  });
  return {
    report: (containers: WireContainerReport['containers'], extra: Partial<WireContainerReport> = {}) =>
      call.write({ heartbeat: { timeMs: 0, spooled: 0, watermarkMs: 0, containers: { source: 'cri', containers, truncated: false, total: containers.length, ...extra } } }),
    get ended() {
      return ended;
    },
  };
}

const container = (id: string, repository: string, tag: string, digest: string, namespace: string, pod: string) => ({
  id, name: 'main', image: { repository, tag, digest }, imageId: '', namespace, pod, workload: '',
});

async function api(c: CollectorHandle, path: string): Promise<{ status: number; body: any; text: string; type: string | null }> {
  const res = await fetch(`${c.url}${path}`);
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // CSV
  }
  return { status: res.status, body, text, type: res.headers.get('content-type') };
}

async function metric(c: CollectorHandle, outcome: string): Promise<number> {
  const m = new RegExp(`driftwatch_collector_inventory_reports_total\\{outcome="${outcome}"\\} (\\d+)`).exec(await (await fetch(`${c.url}/metrics`)).text());
  return m ? Number(m[1]) : 0;
}

const OWNERS = { owners: [{ match: { namespace: ['payments'] }, team: 'payments' }, { match: { image: ['ghcr.io/acme/*'] }, team: 'shop-team' }] };

test('reports become the inventory: versions, where they run, owners; each node speaks for itself; a stale report stops counting', async (t) => {
  const clk = clock();
  const c = await withCollector(t, { imageReportInterval: '1s', imageStaleAfter: '3m', alerting: OWNERS }, { now: clk.now });
  const a = await agentStream(t, c.grpcPort, 'node-a');
  const b = await agentStream(t, c.grpcPort, 'node-b');
  a.report([container('a1', NGINX, '1.25', sha('1'), 'payments', 'web-1'), container('a2', SHOP, 'v1', sha('3'), 'shop', 'shop-1')]);
  b.report([container('b1', NGINX, '1.26', sha('2'), 'payments', 'web-2')]);
  const list = await eventually(async () => {
    const r = await api(c, '/api/v1/images');
    return r.body.items.length === 2 && r.body.items[0].versions.length === 2 ? r.body : undefined;
  }, 10_000, 'both reports in the inventory');
  t.deepEqual(list.items.map((i: any) => [i.repository, i.running, i.containers, i.owner]), [[NGINX, true, 2, 'payments'], [SHOP, true, 1, 'shop-team']]);
  t.is(list.next, null);

  const nginx = (await api(c, `/api/v1/images/${encodeURIComponent(NGINX)}`)).body;
  t.deepEqual(nginx.versions.map((v: any) => [v.tag, v.digest, v.running, v.runningIn.map((p: any) => `${p.namespace}/${p.pod}@${p.node}`)]), [
    ['1.25', sha('1'), true, ['payments/web-1@node-a']],
    ['1.26', sha('2'), true, ['payments/web-2@node-b']],
  ]);
  t.is(nginx.firstSeen, new Date(T0).toISOString());

  // node-b's next report replaces only node-b's: node-a's containers stay.
  clk.advance(2_000);
  b.report([]);
  await eventually(async () => ((await api(c, `/api/v1/images/${encodeURIComponent(NGINX)}`)).body.containers === 1 ? true : undefined), 10_000, 'node-b emptied');
  const after = (await api(c, `/api/v1/images/${encodeURIComponent(NGINX)}`)).body;
  t.deepEqual(after.versions.map((v: any) => [v.tag, v.running]).sort(), [['1.25', true], ['1.26', false]]);
  t.deepEqual(after.versions.find((v: any) => v.tag === '1.26').seenIn.map((p: any) => p.pod), ['web-2'], 'where it ran stays known');

  // No report from node-a for longer than imageStaleAfter: it no longer says what runs.
  clk.advance(181_000);
  t.deepEqual((await api(c, '/api/v1/images?running=true')).body.items, []);
  t.deepEqual((await api(c, '/api/v1/images?running=false')).body.items.map((i: any) => i.repository), [NGINX, SHOP]);
});

test('hostile reports: too many containers, too often, or over-long values are refused and counted; the stream goes on', async (t) => {
  const clk = clock();
  const c = await withCollector(t, { imageReportInterval: '10s' }, { now: clk.now });
  const a = await agentStream(t, c.grpcPort, 'node-a');
  a.report(Array.from({ length: 10_001 }, (_, i) => container(`c${i}`, NGINX, '1', '', 'ns', `p${i}`)));
  await eventually(async () => ((await metric(c, 'invalid')) === 1 ? true : undefined), 10_000, 'the oversized report refused');
  a.report([container('c1', 'x'.repeat(300), '1', '', 'ns', 'p')]);
  await eventually(async () => ((await metric(c, 'invalid')) === 2 ? true : undefined), 10_000, 'the over-long repository refused');
  a.report([container('c1', NGINX, '1', '', 'ns', 'p')]);
  await eventually(async () => ((await metric(c, 'stored')) === 1 ? true : undefined), 10_000, 'a valid report stored');
  a.report([container('c1', SHOP, '1', '', 'ns', 'p')]);
  await eventually(async () => ((await metric(c, 'too_soon')) === 1 ? true : undefined), 10_000, 'a second report within the interval dropped');
  t.deepEqual((await api(c, '/api/v1/images')).body.items.map((i: any) => i.repository), [NGINX]);
  t.is(a.ended, null, 'the stream is still open');
});

async function boundsHit(c: CollectorHandle, bound: string): Promise<number> {
  const m = new RegExp(`driftwatch_collector_bounds_hit_total\\{bound="${bound}"\\} (\\d+)`).exec(await (await fetch(`${c.url}/metrics`)).text());
  return m ? Number(m[1]) : 0;
}

test('a node spraying made-up versions: each report adds at most the per-write bound, the rest counted; the API and the CLI say the version list is cut', async (t) => {
  const clk = clock();
  const c = await withCollector(t, { imageReportInterval: '1s' }, { now: clk.now });
  const a = await agentStream(t, c.grpcPort, 'node-a');
  const EVIL = 'ghcr.io/evil/spray';
  const spray = (round: number, n: number) => Array.from({ length: n }, (_, i) => container(`c${i}`, EVIL, `r${round}-${i}`, '', 'ns', `p${i}`));
  const rounds = 3;
  for (let round = 1; round <= rounds; round++) {
    a.report(spray(round, 1_000));
    await eventually(async () => ((await metric(c, 'stored')) === round ? true : undefined), 30_000, `report ${round} stored`);
    clk.advance(2_000);
  }
  t.is(await boundsHit(c, 'inventory_write_versions'), rounds * (1_000 - MAX_NEW_VERSIONS_PER_WRITE));
  const image = (await api(c, `/api/v1/images/${encodeURIComponent(EVIL)}`)).body;
  t.like(image, { versionCount: rounds * MAX_NEW_VERSIONS_PER_WRITE, versionsTruncated: true, running: true });
  t.is(image.versions.length, MAX_VERSIONS_READ);
  t.true(image.versions.every((v: any) => v.tag.startsWith('r3-') || !v.running), 'what runs is listed');
  t.like((await api(c, `/api/v1/images?prefix=${encodeURIComponent(EVIL)}`)).body.items[0], { versionCount: rounds * MAX_NEW_VERSIONS_PER_WRITE, versionsTruncated: true });
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
  t.is(await runImages(['show', EVIL, '--url', c.url], {}, io, clk.now()), 0);
  t.true(lines.includes(`\n  ${MAX_VERSIONS_READ} of ${rounds * MAX_NEW_VERSIONS_PER_WRITE} versions shown (those running, then the last seen)`), lines.slice(-3).join('\n'));
  // A version not among those listed (r1-99: the oldest reports' last in tag order) cannot be answered for: an error (2), not "never seen".
  lines.length = 0;
  t.is(await runImages(['gone', EVIL, '--tag', 'r1-99', '--url', c.url], {}, io, clk.now()), 2);
  t.regex(lines.join('\n'), /is not among the 500 versions listed of 600/);
  t.is(a.ended, null, 'the stream is still open');
});

test('query filters, pages and 400s with a reason', async (t) => {
  const clk = clock();
  const c = await withCollector(t, { imageReportInterval: '1s' }, { now: clk.now });
  const a = await agentStream(t, c.grpcPort, 'node-a');
  a.report([container('a1', NGINX, '1.25', sha('1'), 'web', 'web-1'), container('a2', SHOP, 'v1', sha('3'), 'shop', 'shop-1'), container('a3', 'ghcr.io/acme/cart', 'v2', '', 'shop', 'cart-1')]);
  await eventually(async () => ((await api(c, '/api/v1/images')).body.items.length === 3 ? true : undefined), 10_000, 'the report');
  const names = async (q: string) => (await api(c, `/api/v1/images?${q}`)).body.items.map((i: any) => i.repository);
  t.deepEqual(await names('namespace=shop'), ['ghcr.io/acme/cart', SHOP]);
  t.deepEqual(await names(`prefix=${encodeURIComponent('ghcr.io/acme/s')}`), [SHOP]);
  t.deepEqual(await names('running=true&seenSince=2026-12-01T11:00:00Z'), [NGINX, 'ghcr.io/acme/cart', SHOP]);
  t.deepEqual(await names('seenSince=2026-12-01T13:00:00Z'), []);
  const page = (await api(c, '/api/v1/images?limit=2')).body;
  t.is(page.items.length, 2);
  t.deepEqual((await api(c, `/api/v1/images?limit=2&cursor=${page.next}`)).body.items.map((i: any) => i.repository), [SHOP]);
  for (const [q, reason] of [
    ['running=maybe', /running must be one of: true, false/],
    ['seenSince=yesterday', /seenSince must be an RFC 3339 time/],
    ['namespace=Not_A_Namespace', /namespace must be a namespace name/],
    ['limit=0', /limit must be an integer from 1 to 1000/],
    ['cursor=bogus', /cursor is not one this API returned/],
    ['owner=x', /unknown query parameter "owner"/],
  ] as const) {
    const r = await api(c, `/api/v1/images?${q}`);
    t.is(r.status, 400, q);
    t.regex(r.body.error.message, reason, q);
  }
  t.is((await api(c, '/api/v1/images/export?format=xml')).status, 400);
  const missing = await api(c, `/api/v1/images/${encodeURIComponent('docker.io/library/none')}`);
  t.is(missing.status, 404);
});

test('the scanner export: the running set with digests as JSON, and CSV whose cells cannot become formulas', async (t) => {
  const clk = clock();
  const c = await withCollector(t, { imageReportInterval: '1s' }, { now: clk.now });
  const a = await agentStream(t, c.grpcPort, 'node-a');
  a.report([
    container('a1', NGINX, '1.25', sha('1'), 'web', 'web-1'),
    container('a2', NGINX, '1.25', sha('1'), 'shop', 'web-2'),
    container('a3', 'ghcr.io/evil/x', '=HYPERLINK("http://203.0.113.9","x")', '', 'shop', 'x-1'),
    container('a4', 'ghcr.io/evil/y', '-2+3', '', '@ns', 'y-1'),
  ]);
  await eventually(async () => ((await api(c, '/api/v1/images')).body.items.length === 3 ? true : undefined), 10_000, 'the report');
  const json = (await api(c, '/api/v1/images/export?format=json')).body;
  t.deepEqual(json.items.find((i: any) => i.repository === NGINX), { repository: NGINX, tag: '1.25', digest: sha('1'), image: `${NGINX}@${sha('1')}`, containers: 2, namespaces: ['shop', 'web'], nodes: ['node-a'] });
  const csv = await api(c, '/api/v1/images/export?format=csv');
  t.is(csv.status, 200);
  t.regex(csv.type ?? '', /^text\/csv/);
  const lines = csv.text.trimEnd().split('\r\n');
  t.is(lines[0], 'repository,tag,digest,image,containers,namespaces,nodes');
  t.true(lines.includes(`${NGINX},1.25,${sha('1')},${NGINX}@${sha('1')},2,shop web,node-a`));
  const evil = lines.find((l) => l.startsWith('ghcr.io/evil/x'))!;
  t.true(evil.includes(`"'=HYPERLINK(""http://203.0.113.9"",""x"")"`), evil);
  t.true(evil.includes(`"'ghcr.io/evil/x:=HYPERLINK`) === false, 'the image cell starts with the repository, not a formula');
  for (const cell of lines.flatMap((l) => l.match(/("([^"]|"")*"|[^,]*)/g) ?? [])) {
    const text = cell.startsWith('"') ? cell.slice(1, -1).replaceAll('""', '"') : cell;
    t.false(/^[=+\-@]/.test(text), `no cell starts a formula: ${cell}`);
  }
});
