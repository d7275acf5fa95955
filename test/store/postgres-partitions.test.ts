/**
 * The PostgreSQL store's deviations partitions (schema revision 2, collector/store/postgres/
 * partitions.ts), on a real server: the days ahead exist once a store is open, a time with no
 * partition lands in DEFAULT (and moves out when its day is made), a batch replayed through a
 * second store is stored once, retention drops a whole day and keeps the recent rows, a page is
 * index scans merged in order (no sort of the partitions' rows), and a revision-1 database's
 * rows move into the partitions with their sequence numbers.
 */
import test, { type ExecutionContext } from 'ava';
import pg from 'pg';
import { listQuery } from '../../collector/store/postgres/deviations.js';
import { createPool } from '../../collector/store/postgres/db.js';
import { openPostgresStore } from '../../collector/store/postgres/index.js';
import { AHEAD_DAYS, DAY_MS, dayOf, DEFAULT_PARTITION, ensureDays, partitionName } from '../../collector/store/postgres/partitions.js';
import { MIGRATIONS } from '../../collector/store/postgres/schema.js';
import { deviationOf } from '../helpers/ingest.js';
import { usePostgres } from '../helpers/postgres.js';

const server = usePostgres(test);

async function connect(t: ExecutionContext, url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.teardown(() => client.end().catch(() => undefined));
  return client;
}

async function open(t: ExecutionContext, url: string) {
  const store = await openPostgresStore(url);
  t.teardown(() => store.close());
  return store;
}

/** The partition each stored deviation is in, by its agent id. */
async function whereStored(client: pg.Client): Promise<Map<string, string>> {
  const { rows } = await client.query<{ id: string; part: string }>(`SELECT id, tableoid::regclass::text AS part FROM deviations`);
  return new Map(rows.map((r) => [r.id.slice(r.id.indexOf(':') + 1), r.part]));
}

/** Whether `name` is a partition of deviations now. */
async function attached(client: pg.Client, name: string): Promise<boolean> {
  const { rows } = await client.query<{ yes: boolean }>(`SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass($1) AND inhparent = 'deviations'::regclass) AS yes`, [name]);
  return rows[0]!.yes;
}

test('opening makes today\'s and the next days\' partitions; a time with none lands in DEFAULT and moves out when its day is made', async (t) => {
  const url = await server.database();
  const store = await open(t, url);
  const client = await connect(t, url);
  const today = dayOf(Date.now());
  for (let d = today; d <= today + AHEAD_DAYS; d++) t.true(await attached(client, partitionName(d)), partitionName(d));
  t.false(await attached(client, partitionName(today + AHEAD_DAYS + 1)), 'no further than the days ahead');
  t.true(await attached(client, DEFAULT_PARTITION));

  const now = Date.now();
  const old = Date.UTC(2020, 1, 3, 12);
  await store.ingest('node-1', [deviationOf({ i: 1 })], [], now);
  await store.ingest('node-1', [deviationOf({ i: 2 })], [], old);
  const parts = await whereStored(client);
  t.is(parts.get(deviationOf({ i: 1 }).id), partitionName(today));
  t.is(parts.get(deviationOf({ i: 2 }).id), DEFAULT_PARTITION, 'stored, not refused');

  const pool = createPool(url, {});
  t.teardown(() => pool.end());
  t.is(await ensureDays(pool, [dayOf(old)]), 1);
  t.is(await ensureDays(pool, [dayOf(old)]), 0, 'idempotent');
  t.is((await whereStored(client)).get(deviationOf({ i: 2 }).id), 'deviations_d20200203');
  t.is(await store.countDeviations(), 2);
  t.is((await store.listDeviations({ limit: 10 })).items.length, 2);
});

test('a batch replayed through a second store (replica) at the same moment is stored once, in today\'s partition', async (t) => {
  const url = await server.database();
  const one = await open(t, url);
  const two = await open(t, url);
  const batch = Array.from({ length: 20 }, (_, i) => deviationOf({ node: 'node-7', i, exe: `/usr/bin/tool${i % 3}` }));
  const now = Date.now();
  const results = await Promise.all([one.ingest('node-7', batch, [], now), two.ingest('node-7', batch, [], now + 1)]);
  t.is(results[0].stored + results[1].stored, 20);
  t.is(results[0].duplicates + results[1].duplicates, 20);
  t.is(await one.countDeviations(), 20);
  const again = await two.ingest('node-7', batch, [], now + 2);
  t.like(again, { stored: 0, duplicates: 20 });
  const client = await connect(t, url);
  t.deepEqual(new Set((await whereStored(client)).values()), new Set([partitionName(dayOf(now))]));
  t.is(Number((await client.query(`SELECT count(*) AS n FROM deviation_ids`)).rows[0].n), 20);
});

test('retention drops a whole day partition, deletes rows only in the day of the cut-off, keeps recent rows; ids go with their rows', async (t) => {
  const url = await server.database();
  const store = await open(t, url);
  const client = await connect(t, url);
  const pool = createPool(url, {});
  t.teardown(() => pool.end());
  const now = Date.now();
  const day = (n: number) => (dayOf(now) - n) * DAY_MS;
  // Days a store running then would have made.
  await ensureDays(pool, [dayOf(day(40)), dayOf(day(31)), dayOf(day(20))]);
  await store.ingest('node-1', [deviationOf({ i: 1 }), deviationOf({ i: 2 })], [], day(40) + 3_600_000);
  await store.ingest('node-1', [deviationOf({ i: 3 })], [], day(31) + 1_000);
  await store.ingest('node-1', [deviationOf({ i: 4 })], [], day(31) + 20 * 3_600_000);
  await store.ingest('node-1', [deviationOf({ i: 5 })], [], day(20));
  await store.ingest('node-1', [deviationOf({ i: 6 })], [], now);
  const cutoff = day(31) + 12 * 3_600_000;
  const pruned = await store.prune(cutoff, 0);
  t.is(pruned.deviations, 3, 'two in the dropped day, one before the cut-off in its day');
  t.false(await attached(client, partitionName(dayOf(day(40)))));
  t.is((await client.query(`SELECT to_regclass($1) AS r`, [partitionName(dayOf(day(40)))])).rows[0].r, null, 'dropped, not only detached');
  t.true(await attached(client, partitionName(dayOf(day(31)))), 'the day of the cut-off stays');
  t.deepEqual(
    (await store.listDeviations({ limit: 10 })).items.map((d) => d.deviation.id),
    [6, 5, 4].map((i) => deviationOf({ i }).id),
  );
  t.is(Number((await client.query(`SELECT count(*) AS n FROM deviation_ids`)).rows[0].n), 3, 'the pruned ids went too');
  // A kept deviation resent is still a duplicate.
  t.like(await store.ingest('node-1', [deviationOf({ i: 4 })], [], now), { stored: 0, duplicates: 1 });
  t.deepEqual(await store.prune(cutoff, 0), { deviations: 0, alerts: 0, deliveries: 0 });
});

test('a page is index scans merged in seq order across partitions, with or without a filter: no sort of every row', async (t) => {
  const url = await server.database();
  const store = await open(t, url);
  const client = await connect(t, url);
  const pool = createPool(url, {});
  t.teardown(() => pool.end());
  const now = Date.now();
  const days = Array.from({ length: 10 }, (_, i) => dayOf(now) - 10 + i);
  await ensureDays(pool, days);
  for (const [n, d] of days.entries()) {
    await store.ingest('node-1', Array.from({ length: 30 }, (_, i) => deviationOf({ i: n * 100 + i, exe: `/bin/x${i % 4}` })), [], d * DAY_MS + 1000);
  }
  // Enough rows that the plan is the one of a real table (on a few hundred rows, a sort is cheapest):
  // 5,000 a day of other nodes, keys and fingerprints, inserted through the parent as a copy would.
  const body = JSON.stringify(deviationOf({ i: 0 }));
  for (const d of days) {
    await client.query(
      `INSERT INTO deviations (id, fingerprint, baseline_key, kind, time, received_at, node, body)
       SELECT 'node-2:fill-' || $1::bigint || '-' || g, 'fill-' || (g % 50), 'docker.io/x/fill-' || (g % 20), 'exec', $2::bigint, $2::bigint + g, 'node-2', $3
       FROM generate_series(1, 5000) AS g`,
      [d, d * DAY_MS, body],
    );
  }
  await client.query('ANALYZE deviations');
  const first = await store.listDeviations({ limit: 5 });
  const fp = first.items[0]!.fingerprint;
  for (const q of [{}, { fingerprint: fp }, { baselineKey: 'docker.io/library/nginx' }, { node: 'node-1' }, { node: 'node-1', cursor: first.next ?? undefined }]) {
    const { text, values } = listQuery({ limit: 100, ...q });
    const plan = JSON.stringify((await client.query(`EXPLAIN (FORMAT JSON) ${text}`, values)).rows[0]['QUERY PLAN']);
    const nodes = [...plan.matchAll(/"Node Type":"([^"]+)"/g)].map((m) => m[1]);
    t.false(nodes.includes('Sort'), `${JSON.stringify(q)}: ${nodes.join(', ')}`);
    t.true(nodes.includes('Merge Append'), `${JSON.stringify(q)}: ${nodes.join(', ')}`);
    t.true(nodes.every((n) => n !== 'Seq Scan'), `${JSON.stringify(q)}: ${nodes.join(', ')}`);
  }
  // And the pages themselves: newest first across days, every row once.
  const seen: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.listDeviations({ limit: 7, node: 'node-1', cursor });
    seen.push(...page.items.map((d) => d.deviation.id));
    cursor = page.next ?? undefined;
  } while (cursor !== undefined);
  t.is(seen.length, 300);
  t.is(new Set(seen).size, 300);
  t.is(seen[0], deviationOf({ i: 929, exe: '/bin/x1' }).id);
  t.is(await store.countDeviations(), 300 + 10 * 5000);
});

test('a revision-1 database: its deviations move into the day partitions with their seq, their ids still stored once', async (t) => {
  const url = await server.database();
  const client = await connect(t, url);
  await client.query(`CREATE TABLE schema_version (version BIGINT NOT NULL, applied_at BIGINT NOT NULL, description TEXT NOT NULL)`);
  await client.query(MIGRATIONS[0]!.sql);
  await client.query(`INSERT INTO schema_version VALUES (1, 0, 'revision 1')`);
  const now = Date.now();
  const rows = [
    { i: 1, at: now - 3 * DAY_MS },
    { i: 2, at: now - DAY_MS },
    { i: 3, at: now },
    { i: 4, at: Date.UTC(2001, 0, 1) },
  ];
  for (const r of rows) {
    const d = deviationOf({ i: r.i });
    await client.query(
      `INSERT INTO deviations (id, fingerprint, baseline_key, kind, time, received_at, node, body) VALUES ($1, 'fp', $2, 'exec', $3, $4, 'node-1', $5)`,
      [`node-1:${d.id}`, d.key, d.event.time, r.at, JSON.stringify(d)],
    );
  }
  const before = (await client.query<{ id: string; seq: string }>(`SELECT id, seq FROM deviations ORDER BY seq`)).rows;
  const store = await open(t, url);
  t.deepEqual((await client.query(`SELECT version FROM schema_version ORDER BY version`)).rows.map((r: { version: string }) => Number(r.version)), MIGRATIONS.map((m) => m.version));
  t.deepEqual((await client.query<{ id: string; seq: string }>(`SELECT id, seq FROM deviations ORDER BY seq`)).rows, before, 'every row, its seq kept');
  const parts = await whereStored(client);
  t.is(parts.get(deviationOf({ i: 1 }).id), partitionName(dayOf(now - 3 * DAY_MS)));
  t.is(parts.get(deviationOf({ i: 3 }).id), partitionName(dayOf(now)));
  t.is(parts.get(deviationOf({ i: 4 }).id), DEFAULT_PARTITION, 'older than the days migrated: DEFAULT');
  t.is(await client.query(`SELECT to_regclass('deviations_v1') AS r`).then((r) => r.rows[0].r), null);
  t.like(await store.ingest('node-1', [deviationOf({ i: 2 }), deviationOf({ i: 5 })], [], now), { stored: 1, duplicates: 1 });
  const page = await store.listDeviations({ limit: 10 });
  t.is(page.items[0]!.deviation.id, deviationOf({ i: 5 }).id, 'a new row comes after every migrated one');
  t.is(page.items.length, 5);
});
