/**
 * A store written by an older collector that took entry ids as agents sent them: a row whose id is
 * no entry id is in the SQLite file. A collector started on it repairs the row away (with a log
 * line) and agents connect, reads, exports and reviews work; a bad row that appears later anyway
 * is skipped at read, with a log line, never failing its key.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { loadCollectorConfig, startCollector } from '../../collector/main.js';
import { entryId, type Entry } from '../../core/entry.js';
import { hello } from '../helpers/agent-stream.js';
import { api, type Target } from './attacks.js';

const KEY = 'docker.io/acme/old';
const good: Entry = { type: 'process', exe: '/usr/bin/old', parent: 'sh', user: 'root', args: '' };
const BAD = 'exec|/bin/sh';

function insertBad(db: Database.Database, id: string): void {
  db.prepare(`INSERT INTO baseline_entries (key, entry_id, type, first_seen, last_seen, count, nodes, examples) VALUES (?, ?, 'process', 1, 2, 3, 1, '[]')`).run(KEY, id);
  db.prepare(`INSERT INTO baseline_entry_nodes (key, entry_id, node, first_seen, last_seen, count) VALUES (?, ?, 'node-1', 1, 2, 3)`).run(KEY, id);
}

test('a bad entry row from an older version is repaired on open; one that appears later is skipped at read', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-old-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'c.db');
  const config = loadCollectorConfig({ db: file, grpcListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', insecure: true }, {});
  // A store with one good entry and a locked review, as the current version writes it...
  const first = await startCollector(config, { logger: pino({ level: 'silent' }) });
  await first.store.reviewBaseline(KEY, { action: 'add', entry: good }, 'alice', 'known', Date.now());
  await first.stop();
  // ...then made as an older version left it: schema 3, a bad row, a deviation id not scoped by node.
  const db = new Database(file);
  insertBad(db, BAD);
  db.prepare(`INSERT INTO deviations (id, fingerprint, baseline_key, kind, time, received_at, node, body) VALUES ('0123456789abcdef0123456789abcdef', 'f', ?, 'exec', 1, 1, 'node-1', '{}')`).run(KEY);
  db.pragma('user_version = 3');
  db.close();

  const logs: string[] = [];
  const c = await startCollector(config, { logger: pino({ level: 'info' }, { write: (s: string) => logs.push(s) }) });
  t.teardown(() => c.stop());
  t.true(logs.some((l) => l.includes('removed a stored baseline entry whose id is not an entry id') && l.includes(BAD)), 'the repair is logged');
  const target: Target = { grpcPort: c.grpcPort, url: c.url, headers: {}, credentials: () => grpc.credentials.createInsecure() };
  const enc = encodeURIComponent(KEY);

  const check = async (what: string) => {
    t.deepEqual(await hello(c.grpcPort, grpc.credentials.createInsecure(), 'node-2'), { welcomed: true }, `${what}: Hello`);
    const b = await api(target, 'GET', `/api/v1/baselines/${enc}`);
    t.is(b.status, 200, `${what}: GET`);
    t.true(b.body.entries.some((e: { id: string }) => e.id === entryId(good)), `${what}: the good entry is there`);
    t.false(b.body.entries.some((e: { id: string }) => e.id === BAD), `${what}: the bad one is not`);
    t.is((await api(target, 'GET', `/api/v1/baselines/${enc}/export`)).status, 200, `${what}: export`);
  };
  await check('after the repair');
  const scoped = new Database(file, { readonly: true }).prepare(`SELECT id FROM deviations`).pluck().get();
  t.is(scoped, 'node-1:0123456789abcdef0123456789abcdef', 'deviation ids are scoped by node');

  // A bad row written behind the collector's back now: skipped at read, logged, the key still works.
  const late = new Database(file);
  insertBad(late, 'not-an-id');
  late.close();
  await check('with a bad row at read');
  t.true(logs.some((l) => l.includes('skipped a stored baseline entry whose id is not an entry id')));
  const exported = await api(target, 'GET', `/api/v1/baselines/${enc}/export`);
  t.is((await api(target, 'POST', `/api/v1/baselines/${enc}/entries/${encodeURIComponent(entryId(good))}/remove`, { reason: 'r' })).status, 200, 'remove');
  t.is((await api(target, 'POST', `/api/v1/baselines/${enc}/lock`, { reason: 'r' })).status, 200, 'lock');
  // (A key no agent reported is learning already: lock it first, so that relearn has something to do.)
  t.is((await api(target, 'POST', `/api/v1/baselines/${enc}/relearn`, { reason: 'r' })).status, 200, 'relearn');
  const imported = await fetch(`${c.url}/api/v1/baselines/import`, { method: 'POST', headers: { 'content-type': 'application/yaml' }, body: exported.body as string });
  t.is(imported.status, 200, 'import');
});
