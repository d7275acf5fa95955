/**
 * Scenario 5 (collector part) and 6 (collector memory) — the collector's API with more and more
 * stored deviations: the alert list, an alert's detail (its recent deviations), the deviation list,
 * and the baseline list and detail, against a bare round trip to the same server (/livez), at each
 * size; the curve must stay flat (every query here is served by an index). The collector's RSS is
 * read after the queries at the largest size.
 *
 * Every list returns a full page at every full-run size (100 alerts or deviations; 20 alerts of one
 * image, which has a quarter of all alerts), so that the sizes compare like with like.
 *
 * Sizes: quick 1k / 10k; full 10k / 1M; `--huge` adds 10M (about 20 GB of SQLite and several
 * minutes of bulk loading, so it is not part of the default full run). Every size is served at once
 * by its own collector (smaller sizes from a copy of the database made when it reached that size),
 * and requests go round the sizes in turn, so that machine noise cancels between sizes.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BaselineSnapshot } from '../../core/baseline.js';
import { openSqliteStore } from '../../collector/store/sqlite/index.js';
import { bulkLoad, hotImage, NODES } from '../lib/collector-db.js';
import { eventPool } from '../lib/deviations.js';
import { hotPathInputs } from '../lib/hot-path-data.js';
import { mib, percentile, rssOf, fmt } from '../lib/measure.js';
import { getJson, spawnCollector } from '../lib/procs.js';
import { bareNodeRss } from '../lib/bare-node.js';
import { figure, type Figure, type Scenario, type ScenarioContext } from '../lib/types.js';

const NAME = 'growth';

async function latencies(url: string, n: number, warm = 3): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < warm + n; i++) {
    const t0 = performance.now();
    const res = await fetch(url);
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
    if (i >= warm) out.push(performance.now() - t0);
  }
  return out;
}

export function sizes(ctx: ScenarioContext): number[] {
  if (ctx.quick) return [1_000, 10_000];
  return process.argv.includes('--huge') || process.env.DWBENCH_HUGE === '1' ? [10_000, 1_000_000, 10_000_000] : [10_000, 1_000_000];
}

interface SizeResult {
  size: number;
  alerts: number;
  loadSeconds: number;
  livez: number;
  q: Record<string, { p50: number; p99: number }>;
  rss: number;
}

async function run(ctx: ScenarioContext): Promise<Figure[]> {
  const { check, baselines } = await hotPathInputs(ctx);
  const pool = eventPool(check.path, 5_000);
  const db = join(ctx.workDir, 'collector-growth.db');

  // Baselines as every node sent them, through the store's own ingest.
  const store = openSqliteStore(db);
  for (let n = 1; n <= NODES; n++) {
    const node = `node-${n}`;
    const snaps: BaselineSnapshot[] = baselines.map((b) => ({ ...b, entries: b.entries.map((e) => ({ ...e, nodes: [node] })) }));
    for (let i = 0; i < snaps.length; i += 200) store.ingest(node, [], snaps.slice(i, i + 200), Date.now());
  }
  store.close();

  const reps = ctx.quick ? 10 : 60;
  // Every size's database, loaded one after the other; all but the largest are copies frozen at
  // their size, so that every size is served at once.
  const dbs: { size: number; path: string; alerts: number; loadSeconds: number }[] = [];
  let loaded = 0;
  let alertsSoFar = 0;
  const all = sizes(ctx);
  for (const size of all) {
    ctx.log(`loading deviations ${loaded} → ${size}`);
    const load = bulkLoad(db, pool, loaded, size, alertsSoFar);
    loaded = size;
    alertsSoFar += load.alerts;
    ctx.log(`loaded in ${load.seconds.toFixed(1)} s`);
    let path = db;
    if (size !== all[all.length - 1]) copyFileSync(db, (path = join(ctx.workDir, `collector-growth-${size}.db`)));
    dbs.push({ size, path, alerts: alertsSoFar, loadSeconds: load.seconds });
  }

  // One collector per size, all running; each round sends one request of each kind to each size in
  // turn, /livez included. Noise on this shared machine (a slow second, a busy neighbour) then falls
  // on every size and query alike instead of on whichever size happened to be measured then.
  const servers = [];
  for (const d of dbs) {
    const collector = await spawnCollector(d.path);
    const u = collector.url;
    const page = await getJson<{ items: { id: string; image: string }[] }>(`${u}/api/v1/alerts?limit=100`);
    const blist = await getJson<{ items: { key: string }[] }>(`${u}/api/v1/baselines`);
    const fp = page.items[Math.floor(page.items.length / 2)]!.id;
    const image = hotImage(pool);
    const key = blist.items.find((b) => b.key.startsWith('docker.io/library/nginx'))?.key ?? blist.items[0]!.key;
    const queries: Record<string, string> = {
      livez: `${u}/livez`,
      'alert list': `${u}/api/v1/alerts?limit=100`,
      'alert list by image': `${u}/api/v1/alerts?limit=20&image=${encodeURIComponent(image)}`,
      'alert detail': `${u}/api/v1/alerts/${fp}`,
      'deviation list by node': `${u}/api/v1/deviations?limit=100&node=node-3`,
      'baseline list': `${u}/api/v1/baselines`,
      'baseline detail': `${u}/api/v1/baselines/${encodeURIComponent(key)}`,
    };
    servers.push({ ...d, collector, queries, samples: new Map<string, number[]>(Object.keys(queries).map((k) => [k, []])) });
  }
  for (let round = 0; round < reps + 5; round++) {
    for (const name of Object.keys(servers[0]!.queries)) {
      for (const srv of servers) {
        const l = await latencies(srv.queries[name]!, 1, 0);
        if (round >= 5) srv.samples.get(name)!.push(l[0] as number);
      }
    }
  }
  const results: SizeResult[] = [];
  for (const srv of servers) {
    const q: SizeResult['q'] = {};
    for (const name of Object.keys(srv.queries)) if (name !== 'livez') q[name] = { p50: percentile(srv.samples.get(name)!, 50), p99: percentile(srv.samples.get(name)!, 99) };
    const rss = rssOf(srv.collector.pid);
    ctx.log(`${srv.size} deviations: ${Object.entries(q).map(([n, v]) => `${n} ${fmt(v.p50)} ms`).join(', ')}; RSS ${Math.round(mib(rss))} MiB`);
    results.push({ size: srv.size, alerts: srv.alerts, loadSeconds: srv.loadSeconds, livez: percentile(srv.samples.get('livez')!, 50), q, rss });
  }
  for (const srv of servers) await srv.collector.stop();

  const figures: Figure[] = [];
  const label = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : `${n / 1e3}k`);
  for (const r of results) {
    const note = `${r.size} deviations, ${r.alerts} alerts, ${baselines.length} baselines × ${NODES} nodes; bulk load ${r.loadSeconds.toFixed(1)} s; lists of 100 (by image: 20), ${reps} requests each`;
    figures.push(figure.cost(NAME, `alert list p50 @ ${label(r.size)} deviations`, r.q['alert list']!.p50, 'ms', '/livez round trip', r.livez, null, note));
    figures.push(figure.cost(NAME, `alert list p99 @ ${label(r.size)}`, r.q['alert list']!.p99, 'ms', '/livez round trip', r.livez, null));
    figures.push(figure.cost(NAME, `alert list by image p50 @ ${label(r.size)}`, r.q['alert list by image']!.p50, 'ms', '/livez round trip', r.livez, null));
    figures.push(figure.cost(NAME, `alert detail p50 @ ${label(r.size)}`, r.q['alert detail']!.p50, 'ms', '/livez round trip', r.livez, null));
    figures.push(figure.cost(NAME, `deviation list by node p50 @ ${label(r.size)}`, r.q['deviation list by node']!.p50, 'ms', '/livez round trip', r.livez, null));
    figures.push(figure.cost(NAME, `baseline list p50 @ ${label(r.size)}`, r.q['baseline list']!.p50, 'ms', '/livez round trip', r.livez, null));
    figures.push(figure.cost(NAME, `baseline detail p50 @ ${label(r.size)}`, r.q['baseline detail']!.p50, 'ms', '/livez round trip', r.livez, null));
  }
  const first = results[0]!;
  const last = results[results.length - 1]!;
  const span = `${label(first.size)} → ${label(last.size)}`;
  for (const name of ['alert list', 'alert list by image', 'alert detail', 'deviation list by node', 'baseline list', 'baseline detail']) {
    // Normalised by the /livez floor of each size, so that machine noise between sizes cancels out.
    const flat = (first.q[name]!.p50 / first.livez) / (last.q[name]!.p50 / last.livez);
    // Quick sizes are too small to fill a page at the smallest size: no goal there.
    figures.push(figure.flat(NAME, `${name} flatness ${span}`, flat, ctx.quick ? null : 0.7, 'p50 relative to /livez, smallest ÷ largest size'));
  }
  const bare = await bareNodeRss();
  figures.push(figure.cost('memory', `collector RSS with ${label(last.size)} stored deviations`, mib(last.rss), 'MiB', 'idle bare node RSS', mib(bare), 300,
    last.size < 10_000_000 ? `measured at ${last.size} deviations, not 10M (run with --huge for 10M)` : undefined));
  return figures;
}

export const scenario: Scenario = { name: 'growth-collector', title: 'Growth: collector API', run };
