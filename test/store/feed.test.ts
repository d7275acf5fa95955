/**
 * The PostgreSQL change feed (issue 20): an announcement made inside a transaction on one replica's
 * pool reaches another replica's listener after COMMIT, never after ROLLBACK; a listener whose
 * connection the server kills reconnects and tells its subscribers to resync.
 */
import test from 'ava';
import pg from 'pg';
import { createPool, transaction } from '../../collector/store/postgres/db.js';
import { CHANNELS, notifyIn, openChangeFeed } from '../../collector/store/postgres/feed.js';
import { openPostgresStore } from '../../collector/store/postgres/index.js';
import { usePostgres } from '../helpers/postgres.js';

const server = usePostgres(test);

/** Wait for `check` to hold, polling; fails after a generous deadline. */
async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a baseline key announced in a committed transaction reaches the other replica; a rolled-back one never does; a killed listener reconnects and resyncs', async (t) => {
  const url = await server.database();
  const pool = createPool(url, {});
  const feed = openChangeFeed(url);
  t.teardown(async () => {
    await feed.close();
    await pool.end();
  });
  const keys: string[] = [];
  let resyncs = 0;
  feed.subscribe(CHANNELS.baseline, { change: (k) => keys.push(k), resync: () => resyncs++ });
  await feed.ready;

  await transaction(pool, async (sql) => {
    await sql('SELECT 1');
    await notifyIn(sql, CHANNELS.baseline, 'docker.io/acme/rolled-back');
    throw new Error('the change fails');
  }).catch(() => undefined);
  await transaction(pool, (sql) => notifyIn(sql, CHANNELS.baseline, 'docker.io/acme/shop'));
  await until(() => keys.length > 0, 'the committed key');
  // A third, committed after: when it arrives, anything from the rolled-back one would have too (one session's NOTIFYs arrive in commit order).
  await transaction(pool, (sql) => notifyIn(sql, CHANNELS.baseline, 'docker.io/acme/after'));
  await until(() => keys.length >= 2, 'the key committed after');
  t.deepEqual(keys, ['docker.io/acme/shop', 'docker.io/acme/after'], 'the rolled-back change is not announced');
  await t.throwsAsync(transaction(pool, (sql) => notifyIn(sql, CHANNELS.baseline, 'x'.repeat(5000))), { instanceOf: RangeError });

  // The server ends the listening connection: the feed reconnects and asks for a resync.
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const killed = await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'driftwatch-feed' AND datname = current_database()`);
  await admin.end();
  t.is(killed.rowCount, 1, 'one listening connection');
  await until(() => resyncs === 1, 'the resync after reconnecting');
  await transaction(pool, (sql) => notifyIn(sql, CHANNELS.baseline, 'docker.io/acme/back'));
  await until(() => keys.includes('docker.io/acme/back'), 'a key announced after the reconnect');
});

test('an exception added or revoked through one replica\'s store is announced to the others, once per change; a revoke that changes nothing is not', async (t) => {
  const url = await server.database();
  const one = await openPostgresStore(url);
  const feed = openChangeFeed(url);
  t.teardown(async () => {
    await feed.close();
    await one.close();
  });
  const heard: string[] = [];
  feed.subscribe(CHANNELS.exception, { change: (p) => heard.push(p), resync: () => undefined });
  await feed.ready;
  const at = Date.UTC(2026, 11, 2, 12, 0, 0);
  await one.addException({ id: 'exc-1', key: 'docker.io/acme/*', entry: 'exec|/usr/bin/curl|*', namespace: '', reason: 'accepted: health checks', owner: 'team-a', createdBy: 'rita', createdAt: at, expiresAt: at + 86_400_000, revokedAt: 0, revokedBy: '', remindedAt: 0 });
  await until(() => heard.length === 1, 'the added exception announced');
  t.deepEqual(heard, ['added']);
  t.truthy(await one.revokeException('exc-1', 'rita', at + 1_000));
  await until(() => heard.length === 2, 'the revoke announced');
  await one.revokeException('exc-1', 'rita', at + 2_000);
  await one.revokeException('no-such-exception', 'rita', at + 2_000);
  // A later change shows that nothing was announced for the two revokes that changed nothing.
  await one.addException({ id: 'exc-2', key: 'docker.io/acme/*', entry: 'exec|/usr/bin/wget|*', namespace: '', reason: 'accepted', owner: 'team-a', createdBy: 'rita', createdAt: at, expiresAt: at + 86_400_000, revokedAt: 0, revokedBy: '', remindedAt: 0 });
  await until(() => heard.length >= 3, 'the second exception announced');
  t.deepEqual(heard, ['added', 'revoked', 'added']);
});
