/**
 * Transactions on PostgreSQL (collector/store/postgres/db.ts): two transactions that take the same
 * two locks in opposite orders deadlock; the server aborts one, which runs again whole and commits,
 * and the retry is counted (what driftwatch_collector_db_transaction_retries_total shows).
 */
import test from 'ava';
import { countRetries, createPool, transaction } from '../../collector/store/postgres/db.js';
import { usePostgres } from '../helpers/postgres.js';

const server = usePostgres(test);

test('a deadlock between two transactions: one is run again and both commit; the retry is counted with its SQLSTATE', async (t) => {
  const pool = createPool(await server.database(), { max: 4 });
  t.teardown(() => pool.end());
  const retries: string[] = [];
  countRetries(pool, (code) => retries.push(code));
  await pool.query(`CREATE TABLE done (who TEXT PRIMARY KEY, attempts INT NOT NULL)`);
  // Both hold their first lock before either asks for its second (only on the first attempt).
  let holding = 0;
  let release!: () => void;
  const bothHold = new Promise<void>((resolve) => (release = resolve));
  const run = (who: string, first: number, second: number) => {
    let attempts = 0;
    return transaction(pool, async (sql) => {
      attempts++;
      await sql(`SELECT pg_advisory_xact_lock($1)`, [first]);
      if (attempts === 1 && ++holding === 2) release();
      if (attempts === 1) await bothHold;
      await sql(`SELECT pg_advisory_xact_lock($1)`, [second]);
      await sql(`INSERT INTO done (who, attempts) VALUES ($1, $2)`, [who, attempts]);
    });
  };
  await Promise.all([run('a', 1, 2), run('b', 2, 1)]);
  const { rows } = await pool.query<{ who: string; attempts: number }>(`SELECT who, attempts FROM done ORDER BY who`);
  t.is(rows.length, 2, 'both committed');
  t.is(rows.filter((r) => r.attempts === 2).length, 1, 'one of them on its second attempt');
  t.deepEqual(retries, ['40P01']);
});
