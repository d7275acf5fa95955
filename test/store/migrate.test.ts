/**
 * `driftwatch store migrate` (issue 20): a SQLite store built through its API as a collector would
 * fill it (two nodes' deltas and deviations → baselines and alerts, reviews and versions, an
 * exception, deliveries in every state, audit rows, a quarantined node), moved by the real CLI (a
 * child process, the URL from a file) into a real PostgreSQL, then read back through the PostgreSQL
 * store: every read a user makes returns what it returned from SQLite, and new rows continue the
 * sequences. Refusals: a non-empty target (left as it was), a failure mid-copy (target left empty),
 * a password on the command line; the password never printed.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { AlertPolicy } from '../../collector/alerting/alert.js';
import { asAsync, type AsyncStore } from '../../collector/store/async.js';
import { openPostgresStore } from '../../collector/store/postgres/index.js';
import { openSqliteStore } from '../../collector/store/sqlite/index.js';
import { SCHEMA_VERSION as SQLITE_REVISION } from '../../collector/store/sqlite/schema.js';
import type { Store } from '../../collector/store/store.js';
import type { BaselineSnapshot } from '../../core/baseline.js';
import { entryId, type Entry } from '../../core/entry.js';
import { T0, deltaOf, statsOf } from '../helpers/baseline-delta.js';
import { deviationOf } from '../helpers/ingest.js';
import { usePostgres } from '../helpers/postgres.js';
import { CLI } from '../helpers/processes.js';

const server = usePostgres(test);

const NGINX = 'docker.io/library/nginx';
const REDIS = 'docker.io/library/redis';
const nginx: Entry = { type: 'process', exe: '/usr/sbin/nginx', parent: 'containerd-shim', user: 'root', args: '-g daemon off;' };
const dns: Entry = { type: 'network', direction: 'egress', protocol: 'udp', peer: 'cluster', port: 53 };
const proc = (exe: string): Entry => ({ type: 'process', exe, parent: 'sh', user: 'root', args: '' });
/** More deviations than one INSERT takes (1,000 rows), so the copy crosses chunk boundaries. */
const DEVIATIONS = 2_300;

const policy: AlertPolicy = {
  decide: (d) => ({ severity: d.event.kind === 'connect' ? 'high' : 'low', ruleId: 'r1', ruleReason: 'test rule', team: 'shop', receivers: ['pd'] }),
  exceptionFor: () => '',
  notify: (alert, at) => [{ alert: alert.fingerprint, sink: 'pd', action: alert.createdAt === at ? 'fire' : 'again', body: JSON.stringify({ fp: alert.fingerprint, n: alert.count }), state: 'pending' as const, lastError: '' }],
};

function delta(key: string, node: string, version: number, entries: [Entry, number, number, string[]][], state: BaselineSnapshot['state'] = 'learning'): BaselineSnapshot {
  return deltaOf(key, entries.map(([entry, count, last, examples]) => statsOf(entry, node, { firstSeen: T0 + last - 10, lastSeen: T0 + last, count, examples })), { state, version });
}

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'dw-migrate-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A store as a collector leaves it after some weeks: through the API only. */
const SBOM_DIGEST = `sha256:${'5'.repeat(64)}`;

function populate(store: Store): void {
  // An SBOM (issue 22): its header, packages and owned and unowned files.
  store.putSbom({
    digest: SBOM_DIGEST,
    repository: 'docker.io/library/debian',
    format: 'spdx',
    specVersion: 'SPDX-2.3',
    tool: 'syft-1.18.1',
    importedAt: T0,
    importedBy: 'alice',
    filesListed: true,
    packages: [{ name: 'curl', version: '7.88.1-10+deb12u8', purl: 'pkg:deb/debian/curl@7.88.1-10+deb12u8', type: 'deb' }],
    files: new Map([['/usr/bin/curl', 0], ['/etc/motd', -1]]),
  });
  // The image inventory: a node's report (one container with a tag a spreadsheet would misread), and an image seen in a deviation.
  const running = (id: string, repository: string, tag: string) => ({ id, name: 'main', image: { repository, tag, digest: `sha256:${'e'.repeat(64)}` }, imageId: '', namespace: 'shop', pod: `${id}-pod`, workload: '' });
  store.recordContainerReport('node-a', { source: 'cri', truncated: true, total: 3, containers: [running('c1', NGINX, '1.25'), running('c2', REDIS, '=7')] }, T0 + 5_000);
  store.recordImageSightings([{ repository: NGINX, tag: '1.24', digest: '', node: 'node-b', namespace: 'web', workload: 'Deployment/web', pod: 'web-1', time: T0 - 5_000 }]);
  // Two nodes teach two images; a third node teaches, sends deviations, then is quarantined.
  store.ingest('node-a', [], [delta(NGINX, 'node-a', 1, [[nginx, 5, 100, ['nginx -g daemon off;']], [dns, 3, 50, ['-> 10.96.0.10:53']]])], T0 - 10 * 86_400_000);
  store.ingest('node-b', [], [delta(NGINX, 'node-b', 2, [[nginx, 2, 300, ['nginx -t']], [proc('/usr/bin/env'), 1, 20, []]], 'enforcing')], T0);
  store.ingest('node-b', [], [delta(REDIS, 'node-b', 1, [[proc('/usr/bin/redis-server'), 9, 40, ['redis-server *:6379']]], 'enforcing')], T0);
  store.ingest('node-q', [], [delta(NGINX, 'node-q', 1, [[proc('/tmp/implant'), 1, 60, ['implant']], [nginx, 1, 70, []]])], T0);
  // Old deviations, pruned by retention later (gaps in the sequence), then the bulk.
  store.ingest('node-a', [1, 2, 3].map((i) => deviationOf({ node: 'node-a', i: 10_000 + i, exe: '/usr/bin/old' })), [], T0 - 40 * 86_400_000, policy);
  for (let from = 0; from < DEVIATIONS; from += 400) {
    for (const node of ['node-a', 'node-b']) {
      const batch = [];
      for (let i = from; i < Math.min(from + 400, DEVIATIONS); i += 2) {
        const n = node === 'node-a' ? i : i + 1;
        batch.push(n % 7 === 0
          ? deviationOf({ node, i: n, peer: `203.0.113.${n % 5}`, image: n % 3 === 0 ? REDIS : NGINX, namespace: n % 3 === 0 ? 'cache' : 'shop' })
          : deviationOf({ node, i: n, exe: `/usr/bin/tool${n % 23}`, image: n % 3 === 0 ? REDIS : NGINX, namespace: n % 3 === 0 ? 'cache' : 'shop', labels: { app: 'web', 'x"y': 'a\nb' } }));
      }
      store.ingest(node, batch, [], T0 + from * 1000, policy);
    }
  }
  store.ingest('node-q', [deviationOf({ node: 'node-q', i: 1, exe: '/tmp/implant' })], [], T0 + 1, policy);
  store.prune(T0 - 20 * 86_400_000, 0);
  // Reviews: a version history on nginx (approve, add, remove, lock), redis locked.
  const at = T0 + 5_000_000;
  store.reviewBaseline(NGINX, { action: 'approve', entryId: entryId(nginx) }, 'rita', 'fine', at);
  store.reviewBaseline(NGINX, { action: 'add', entry: proc('/usr/bin/curl') }, 'rita', 'health checks', at + 1);
  store.reviewBaseline(NGINX, { action: 'remove', entryId: entryId(proc('/usr/bin/env')) }, 'sam', 'not needed', at + 2);
  store.reviewBaseline(NGINX, { action: 'lock' }, 'rita', 'freeze — «release 4»', at + 3);
  store.reviewBaseline(REDIS, { action: 'lock' }, 'sam', '', at + 4);
  store.quarantineNode('node-q', 'rita', 'found a backdoor', at + 5);
  // Alerts moved: acknowledged, resolved (with its follow-up), accepted into the baseline.
  const alerts = store.listAlerts({ limit: 100 }).items;
  store.transitionAlert(alerts[0]!.fingerprint, { to: 'acknowledged', by: 'rita', at: at + 10, comment: 'looking' });
  store.transitionAlert(alerts[1]!.fingerprint, { to: 'resolved', by: 'sam', at: at + 11, comment: 'fixed' }, ({ after }) => [{ alert: after.fingerprint, sink: 'pd', action: 'resolve', body: '{"resolve":true}', state: 'pending', lastError: '' }]);
  store.transitionAlert(alerts[2]!.fingerprint, { to: 'accepted', by: 'rita', at: at + 12, comment: 'expected' });
  // Deliveries: one delivered, one failed for good, one retrying, the rest pending.
  const d1 = store.claimDelivery('pd', at + 20, 'replica-a', 60_000)!;
  store.settleDelivery(d1.seq, 'replica-a', { state: 'delivered', attempts: 1, nextAt: at + 20, error: '', at: at + 21 });
  const d2 = store.claimDelivery('pd', at + 22, 'replica-a', 60_000)!;
  store.settleDelivery(d2.seq, 'replica-a', { state: 'failed', attempts: 5, nextAt: at + 22, error: 'HTTP 400: bad request', at: at + 23 });
  const d3 = store.claimDelivery('pd', at + 24, 'replica-a', 60_000)!;
  store.settleDelivery(d3.seq, 'replica-a', { state: 'pending', attempts: 2, nextAt: at + 60_000, error: 'HTTP 503', at: at + 25 });
  // Exceptions: active, revoked, reminded.
  const exception = { key: 'docker.io/library/*', entry: 'exec /usr/bin/tool1*', namespace: 'shop', reason: 'batch jobs', owner: 'team-shop', createdBy: 'rita', createdAt: at, expiresAt: at + 30 * 86_400_000, revokedAt: 0, revokedBy: '', remindedAt: 0 };
  store.addException({ ...exception, id: 'ex-1' });
  store.addException({ ...exception, id: 'ex-2', namespace: '', reason: 'temporary' });
  store.addException({ ...exception, id: 'ex-3', key: REDIS, expiresAt: at + 86_400_000 });
  store.revokeException('ex-2', 'sam', at + 30);
  store.markReminded('ex-3', at + 31);
  // Nodes and the audit log.
  const node = (name: string, contact: number) => ({ node: name, agentVersion: '1.4.0', sources: ['falco', 'ebpf'], firstSeen: T0, lastContact: contact, spooled: 3, spoolBytes: 4096, lagMs: 1500, spoolDropped: 0, watermark: contact - 100, silentSince: 0, stoppedAt: 0 });
  store.saveNodes([node('node-a', at + 40), node('node-b', at + 41), { ...node('node-q', at + 42), silentSince: at + 50, stoppedAt: at + 49 }]);
  // The tickets of two images (ticket sinks): one open with two alerts, one closed.
  store.claimImageTicket('tickets', NGINX, 'fp-1', 'replica-a', at + 60, 300_000);
  store.recordImageTicket('tickets', NGINX, 'replica-a', { ref: '17', url: 'https://github.example/acme/shop/issues/17', state: 'open', openedTicket: true, alertOpened: 'fp-1', at: at + 61 });
  store.recordImageTicket('tickets', NGINX, 'replica-a', { alertOpened: 'fp-2', at: at + 62 });
  store.releaseImageTicket('tickets', NGINX, 'replica-a');
  store.claimImageTicket('tickets', REDIS, 'fp-3', 'replica-a', at + 63, 300_000);
  store.recordImageTicket('tickets', REDIS, 'replica-a', { ref: '18', state: 'closed', openedTicket: true, at: at + 64 });
  store.releaseImageTicket('tickets', REDIS, 'replica-a');
  for (let i = 0; i < 12; i++) store.appendAudit({ time: at + 100 + i, actor: i % 2 ? 'rita' : 'sam', role: 'admin', action: 'baseline.review', target: NGINX, before: `{"v": ${i}}`, after: i === 3 ? 'null' : `{"v": ${i + 1}}` });
}

/** Every read a user makes (the API's and the CLI's), in one value to compare. */
async function readAll(store: AsyncStore): Promise<Record<string, unknown>> {
  const pages = async <T>(list: (cursor: string | undefined) => Promise<{ items: T[]; next?: string | null | undefined }>) => {
    const out: { items: T[]; next?: string | null | undefined }[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 1_000; i++) {
      const page = await list(cursor);
      out.push(page);
      if (!page.next) break;
      cursor = page.next;
    }
    return out;
  };
  const alertPages = await pages((cursor) => store.listAlerts({ limit: 7, cursor }));
  const fingerprints = alertPages.flatMap((p) => p.items.map((a) => a.fingerprint));
  const baselines = await store.listBaselines();
  const keys = baselines.map((b) => b.key);
  const versions: Record<string, unknown> = {};
  for (const key of keys) {
    const list = await store.listVersions(key);
    versions[key] = { list, each: await Promise.all(list.map((v) => store.getVersion(key, v.version))) };
  }
  const window = { now: T0 + 6_000, staleAfterMs: 180_000 };
  return {
    images: await pages((cursor) => store.listImages({ limit: 1, cursor, ...window })),
    imageDetails: await Promise.all([NGINX, REDIS].map((r) => store.getImage(r, window))),
    runningImages: await store.runningImages({ ...window, limit: 10 }),
    imageTickets: [await store.getImageTicket('tickets', NGINX), await store.getImageTicket('tickets', REDIS)],
    alertPages,
    alertsFiltered: {
      acknowledged: await pages((cursor) => store.listAlerts({ limit: 5, cursor, state: 'acknowledged' })),
      high: await pages((cursor) => store.listAlerts({ limit: 5, cursor, severity: 'high' })),
      cache: await pages((cursor) => store.listAlerts({ limit: 5, cursor, namespace: 'cache' })),
      redisExec: await pages((cursor) => store.listAlerts({ limit: 5, cursor, image: REDIS, kind: 'exec' })),
    },
    alerts: await Promise.all(fingerprints.map((fp) => store.getAlert(fp))),
    deviationPages: await pages((cursor) => store.listDeviations({ limit: 250, cursor })),
    deviationsOfNodeQ: await pages((cursor) => store.listDeviations({ limit: 10, cursor, node: 'node-q' })),
    deviationsOfAlert: await pages((cursor) => store.listDeviations({ limit: 50, cursor, fingerprint: fingerprints[3] })),
    deviationsOfRedis: (await store.listDeviations({ limit: 100, baselineKey: REDIS })).items,
    countDeviations: await store.countDeviations(),
    baselines,
    baseline: await Promise.all(keys.map((k) => store.getBaseline(k))),
    cluster: await Promise.all((await store.clusterKeys()).map((k) => store.clusterBaseline(k))),
    versions,
    exceptions: await store.listExceptions(),
    exception: await store.getException('ex-3'),
    deliveries: await Promise.all(fingerprints.map((fp) => store.deliveriesOf(fp))),
    pendingDeliveries: await store.pendingDeliveries(),
    nextDueAt: await store.nextDueAt('pd'),
    nodes: await store.listNodes(),
    quarantined: await store.listQuarantined(),
    audit: await store.listAudit(Number.MAX_SAFE_INTEGER, 1_000),
    auditPage: await store.listAudit(8, 3),
    sbom: await store.getSbom(SBOM_DIGEST),
    sbomFiles: await store.sbomFiles(SBOM_DIGEST, ['/usr/bin/curl', '/etc/motd', '/bin/sh']),
    sbomPackages: await store.sbomPackages(SBOM_DIGEST, 10),
  };
}

/** Run `driftwatch store migrate ARGS` as a child process; its exit code and output. */
function migrateCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const childEnv = { ...process.env, DRIFTWATCH_DB_URL: '', DRIFTWATCH_DB_URL_FILE: '', ...env };
    execFile(process.execPath, [CLI, 'store', 'migrate', ...args], { env: childEnv, timeout: 300_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

function urlFile(dir: string, url: string): string {
  const file = join(dir, 'db-url');
  writeFileSync(file, `${url}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}

const passwordOf = (url: string) => decodeURIComponent(new URL(url).password);

/** Rows in every table of the target (besides schema_version). */
async function tableCounts(url: string): Promise<Record<string, number>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ table_name: string }>(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'schema_version' ORDER BY table_name`);
    const out: Record<string, number> = {};
    for (const r of rows) out[r.table_name] = Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${pg.escapeIdentifier(r.table_name)}`)).rows[0]!.n);
    return out;
  } finally {
    await client.end();
  }
}

test('an installation moves whole: every read returns what it returned from SQLite, and new rows continue the sequences', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'collector.db');
  const sqlite = openSqliteStore(file);
  populate(sqlite);
  const before = await readAll(asAsync(sqlite));
  const maxAudit = sqlite.listAudit(Number.MAX_SAFE_INTEGER, 1)[0]!.id;
  sqlite.close();
  // Sanity of the fixture: every kind of row is there, so the comparison below compares something.
  const b = before as Record<string, any>;
  t.true(b.alertPages.length > 3, 'several pages of alerts');
  t.true(b.deviationPages.length > 4, 'more deviations than one INSERT takes');
  t.true(b.versions[NGINX].list.length >= 5, 'a version history');
  t.deepEqual(b.quarantined.map((q: { node: string }) => q.node), ['node-q']);
  t.true(b.deviationsOfNodeQ[0].items[0].nodeQuarantined);
  t.deepEqual([...new Set(b.deliveries.flat().map((d: { state: string }) => d.state))].sort(), ['delivered', 'failed', 'pending']);
  t.deepEqual(b.alerts.map((a: { state: string }) => a.state).filter((s: string) => s !== 'firing').sort(), ['accepted', 'acknowledged', 'resolved']);
  t.is(b.runningImages.length, 2, 'images running');
  t.is(b.imageDetails[0].versions.length, 2, 'a version seen in a deviation too');
  t.like(b.imageTickets, [{ ref: '17', state: 'open', openAlerts: 2 }, { ref: '18', state: 'closed', openAlerts: 0 }]);

  const url = await server.database();
  const r = await migrateCli(['--from', `sqlite:${file}`, '--to-file', urlFile(dir, url)]);
  t.is(r.code, 0, r.stderr);
  t.log(r.stdout);
  for (const table of ['nodes', 'quarantined_nodes', 'baseline_nodes', 'baseline_entries', 'baseline_entry_nodes', 'baseline_entry_reviews', 'baseline_versions', 'exceptions', 'deviations', 'alerts', 'outbox', 'audit_log', 'image_reports', 'image_containers', 'image_versions', 'image_places', 'image_tickets', 'image_ticket_alerts', 'sboms', 'sbom_packages', 'sbom_files']) {
    t.regex(r.stdout, new RegExp(`^${table}\\s+(\\d+)\\s+\\1\\s*$`, 'm'), `${table}: the same count on both sides in the table printed`);
  }
  t.regex(r.stdout, new RegExp(`^deviations\\s+${b.countDeviations}\\s+${b.countDeviations}\\s*$`, 'm'));
  t.regex(r.stdout, /copied \d+ rows in \d+\.\d s/);
  t.false(`${r.stdout}${r.stderr}`.includes(passwordOf(url)), 'the password is never printed');

  // Copied deviations sit in the partitions of the days they were received on, not in DEFAULT.
  const counts = await tableCounts(url);
  t.is(counts.deviations_default, 0, 'no copied deviation fell into the DEFAULT partition');
  t.true(Object.keys(counts).filter((n) => /^deviations_d\d+$/.test(n)).length >= 3, 'partitions for the copied days');

  const store = await openPostgresStore(url);
  t.teardown(() => store.close());
  t.deepEqual(await readAll(store), before);

  // Going on from there: a new batch, an audit row, a delivery, none colliding with a copied id.
  const fresh = deviationOf({ node: 'node-b', i: 90_000, exe: '/usr/bin/brand-new' });
  const result = await store.ingest('node-b', [fresh], [delta(NGINX, 'node-b', 3, [[nginx, 3, 400, []]], 'enforcing')], T0 + 9_000_000, policy);
  t.like(result, { stored: 1 });
  const newest = (await store.listDeviations({ limit: 1 })).items[0]!;
  t.true(newest.deviation.id.endsWith(fresh.id), 'the new deviation is the newest (its seq above every copied one)');
  t.is(await store.countDeviations(), b.countDeviations + 1);
  const alert = (await store.listAlerts({ limit: 1 })).items[0]!;
  t.is(alert.entry.type === 'process' ? alert.entry.exe : '', '/usr/bin/brand-new', 'the new alert is the newest');
  const maxOutbox = Math.max(...b.deliveries.flat().map((d: { seq: number }) => d.seq));
  const deliveries = await store.deliveriesOf(alert.fingerprint);
  t.is(deliveries.length, 1);
  t.true(deliveries[0]!.seq > maxOutbox, 'the new delivery continues the outbox sequence');
  t.is(await store.appendAudit({ time: T0, actor: 'rita', role: 'admin', action: 'x', target: 'y', before: 'null', after: 'null' }), maxAudit + 1);
  t.is((await store.getBaseline(NGINX))!.state, 'locked', 'a locked baseline stays locked');
});

test('a target that already holds data is refused and left as it was', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'collector.db');
  const sqlite = openSqliteStore(file);
  sqlite.ingest('node-a', [deviationOf({ node: 'node-a', i: 1 })], [], T0, policy);
  sqlite.close();
  const url = await server.database();
  const existing = await openPostgresStore(url);
  await existing.appendAudit({ time: T0, actor: 'someone', role: 'admin', action: 'x', target: 'y', before: 'null', after: 'null' });
  await existing.close();
  const before = await tableCounts(url);
  const r = await migrateCli(['--from', `sqlite:${file}`, '--to-file', urlFile(dir, url)]);
  t.is(r.code, 1);
  t.regex(r.stderr, /already holds data \(audit_log\)/);
  t.deepEqual(await tableCounts(url), before);
  t.is(before.audit_log, 1);
  t.false(`${r.stdout}${r.stderr}`.includes(passwordOf(url)));
});

test('a failure mid-copy leaves the target empty (one transaction)', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'collector.db');
  const sqlite = openSqliteStore(file);
  populate(sqlite);
  sqlite.close();
  const url = await server.database();
  (await openPostgresStore(url)).close();
  // Tampered with: the last table copied refuses one of the rows, after every other table went in.
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(`ALTER TABLE audit_log ADD CONSTRAINT no_rita CHECK (actor <> 'rita')`);
  await client.end();
  const r = await migrateCli(['--from', `sqlite:${file}`], { DRIFTWATCH_DB_URL: url });
  t.is(r.code, 1);
  t.regex(r.stderr, /no_rita/);
  t.regex(r.stdout, /^ {2}deviations: \d+ rows$/m, 'the earlier tables were copied before the failure');
  const counts = await tableCounts(url);
  t.true(Object.keys(counts).length >= 13);
  t.deepEqual(Object.entries(counts).filter(([, n]) => n > 0), [], 'every table empty');
  t.false(`${r.stdout}${r.stderr}`.includes(passwordOf(url)));
});

test('a password on the command line is refused before anything is opened, and not echoed', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'collector.db');
  openSqliteStore(file).close();
  const url = await server.database();
  const r = await migrateCli(['--from', `sqlite:${file}`, '--to', url]);
  t.is(r.code, 2);
  t.regex(r.stderr, /--to carries a password/);
  t.false(`${r.stdout}${r.stderr}`.includes(passwordOf(url)));
  t.deepEqual(await tableCounts(url), {}, 'the target was not touched (no schema made)');
  // A wrong password in a file: refused by the server, the password still never printed.
  const wrong = url.replace(`:${new URL(url).password}@`, ':Wrong-Secret-123@');
  const w = await migrateCli(['--from', `sqlite:${file}`, '--to-file', urlFile(dir, wrong)]);
  t.is(w.code, 1);
  t.regex(w.stderr, /password authentication failed/);
  t.false(`${w.stdout}${w.stderr}`.includes('Wrong-Secret-123'));
});

test('a SQLite file of an older revision is refused with how to upgrade it, and not written', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'collector.db');
  openSqliteStore(file).close();
  const Database = (await import('better-sqlite3')).default;
  const db = new Database(file);
  db.pragma('user_version = 3');
  db.close();
  const url = await server.database();
  const r = await migrateCli(['--from', `sqlite:${file}`, '--to-file', urlFile(dir, url)]);
  t.is(r.code, 1);
  t.regex(r.stderr, new RegExp(`schema revision 3; this Driftwatch copies revision ${SQLITE_REVISION}\\. Upgrade the file first: start this version's collector on it once`));
  const again = new Database(file, { readonly: true });
  t.is(again.pragma('user_version', { simple: true }), 3);
  again.close();
  const missing = await migrateCli(['--from', `sqlite:${join(dir, 'nope.db')}`, '--to-file', urlFile(dir, url)]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /nope\.db does not exist/);
});
