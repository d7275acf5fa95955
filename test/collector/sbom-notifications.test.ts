/**
 * What sinks receive about packages (issue 22), through a real collector with a recording receiver
 * as webhook, PagerDuty and Alertmanager: an alert on /usr/bin/curl names its package, one on a
 * binary the image's SBOM does not list says so; the payloads still validate against PagerDuty's
 * Events v2 and Alertmanager's v2 specs; a lookup that fails sends the notification without it.
 * And the version-change audit record when an image version first runs (a node's container report),
 * written once per repository and digest.
 * The SBOM is built here in the shape syft writes SPDX 2.3 for a Debian image (as in
 * sbom-api.test.ts: syft's own fixtures keep no Debian file list).
 */
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createPackageLookup, PACKAGE_CACHE_SIZE } from '../../collector/sbom/notification-packages.js';
import { buildSlackPayload } from '../../collector/sinks/slack.js';
import { alertFacts } from '../../collector/sinks/tickets.js';
import { asAsync } from '../../collector/store/async.js';
import { openSqliteStore } from '../../collector/store/sqlite/index.js';
import { deviationId, type Deviation } from '../../core/deviation.js';
import type { Entry } from '../../core/entry.js';
import { agentService, PROTOCOL_REVISION, snapshotToWire, type WireAgentMessage, type WireCollectorMessage } from '../../proto/index.js';
import { deltaOf, statsOf } from '../helpers/baseline-delta.js';
import { withCollector } from '../helpers/collector.js';
import { converse, deviationOf, sendDeviations } from '../helpers/ingest.js';
import { eventually } from '../helpers/processes.js';
import { shellNotification } from '../helpers/notification.js';
import { loadSpec } from '../helpers/openapi.js';
import { startRecorder, type Recorder } from '../helpers/recorder.js';
import { debianSpdx } from '../helpers/sbom.js';

const ROUTING_KEY = 'e93facc04764012d7bfb002500d5d1a6';
const quick = { maxAttempts: 1 };
const D = (c: string) => `sha256:${c.repeat(64)}`;
const DEBIAN = 'docker.io/library/debian';

const pagerDuty = loadSpec('pagerduty-events-v2-openapi.json');
const enqueueSchema = pagerDuty.at('#/paths/~1enqueue/post/requestBody/content/application~1json/schema');
const alertmanager = loadSpec('alertmanager-v2-openapi.yaml');
const postAlertsSchema = (alertmanager.at('#/paths/~1alerts/post/parameters') as { in: string; schema: unknown }[]).find((p) => p.in === 'body')!.schema;

const bookworm = debianSpdx([
  { name: 'curl', version: '7.88.1-10+deb12u8', files: ['/usr/bin/curl'] },
  { name: 'bash', version: '5.2.15-2+b7', files: ['/bin/bash'] },
]);

/** A deviation of `exe` in `repository`, its event carrying `digest`. */
function deviationIn(repository: string, digest: string, exe: string, i: number): Deviation {
  const d = deviationOf({ i, image: repository, exe });
  d.event.container!.image = { repository, tag: '12', digest };
  d.key = repository;
  d.id = deviationId(d.event, repository, d.entry);
  return d;
}

const bodies = (r: Recorder, path: string) => r.received.filter((x) => x.path === path).map((x) => JSON.parse(x.body) as any);

test('sinks: the alert on /usr/bin/curl carries its package, the one on a binary the SBOM does not list says so; payloads valid per the specs', async (t) => {
  const rec = await startRecorder(t, (r) => ({ status: r.path === '/pd' ? 202 : 200, body: r.path === '/pd' ? '{"status":"success"}' : '' }));
  const c = await withCollector(t, {
    sinks: [
      { name: 'hook', type: 'webhook', url: `${rec.url}/hook`, retry: quick },
      { name: 'pd', type: 'pagerduty', routingKey: ROUTING_KEY, url: `${rec.url}/pd`, retry: quick },
      { name: 'am', type: 'alertmanager', url: rec.url, retry: quick },
    ],
  });
  const imported = await fetch(`${c.url}/api/v1/sboms?image=${encodeURIComponent(`debian@${D('1')}`)}`, { method: 'POST', headers: { 'content-type': 'application/spdx+json' }, body: bookworm });
  t.is(imported.status, 201);
  await sendDeviations(c.grpcPort, [deviationIn(DEBIAN, D('1'), '/usr/bin/curl', 1), deviationIn(DEBIAN, D('1'), '/tmp/.x/kinsing', 2), deviationOf({ i: 3, image: 'docker.io/library/nginx', exe: '/usr/bin/curl' })]);
  await c.alerting.drain();

  const hook = bodies(rec, '/hook');
  const byExe = (image: string, exe: string) => hook.find((b) => b.alert.image === image && b.alert.entry?.exe === exe)?.alert;
  t.like(byExe(DEBIAN, '/usr/bin/curl'), { package: { text: '/usr/bin/curl, package curl 7.88.1-10+deb12u8', status: 'package', name: 'curl', version: '7.88.1-10+deb12u8', notInSbom: false, sbom: D('1'), note: '' } });
  t.is(byExe(DEBIAN, '/usr/bin/curl').package.purl, 'pkg:deb/debian/curl@7.88.1-10+deb12u8?arch=amd64&distro=debian-12');
  t.like(byExe(DEBIAN, '/tmp/.x/kinsing'), { package: { text: "/tmp/.x/kinsing, not in the image's SBOM", status: 'not-listed', name: '', notInSbom: true } });
  t.is(byExe('docker.io/library/nginx', '/usr/bin/curl').package, null, 'no SBOM for nginx: no package');

  const pd = bodies(rec, '/pd').filter((b) => b.event_action === 'trigger');
  t.is(pd.length, 3);
  for (const b of pd) t.deepEqual(pagerDuty.validate(enqueueSchema, b), []);
  const pdOf = (exe: string) => pd.find((b) => b.payload.custom_details.entry.startsWith(exe) && b.payload.component === DEBIAN).payload.custom_details;
  t.like(pdOf('/usr/bin/curl'), { package: '/usr/bin/curl, package curl 7.88.1-10+deb12u8', not_in_sbom: false, sbom: D('1') });
  t.like(pdOf('/tmp/.x/kinsing'), { package: "/tmp/.x/kinsing, not in the image's SBOM", not_in_sbom: true });

  const am = bodies(rec, '/api/v2/alerts');
  t.true(am.length >= 3);
  for (const b of am) t.deepEqual(alertmanager.validate(postAlertsSchema, b), []);
  const annotations = am.map((b) => b[0].annotations);
  t.true(annotations.some((a) => a.package === '/usr/bin/curl, package curl 7.88.1-10+deb12u8'));
  t.true(annotations.some((a) => a.package === "/tmp/.x/kinsing, not in the image's SBOM"));
  t.true(annotations.some((a) => a.summary.includes('nginx') && a.package === undefined));

  // A re-send to Alertmanager carries the package as the first post did.
  const before = am.length;
  t.true((await c.alerting.resendToAlertmanager()) >= 3);
  t.true(bodies(rec, '/api/v2/alerts').slice(before).some((b) => b[0].annotations.package === '/usr/bin/curl, package curl 7.88.1-10+deb12u8'));
});

test('Slack and ticket bodies show the package, hostile characters made visible', (t) => {
  const n = { ...shellNotification(), package: { text: '/usr/bin/dash, package dash 0.5.12-2\u202egnp.exe', status: 'package' as const, name: 'dash', version: '0.5.12-2', purl: '', notInSbom: false, sbom: D('1'), note: '' } };
  const slack = JSON.stringify(buildSlackPayload(n));
  t.true(slack.includes('*Package:* /usr/bin/dash, package dash 0.5.12-2\\\\u202egnp.exe'), slack);
  t.deepEqual(alertFacts(n).find(([k]) => k === 'package'), ['package', '/usr/bin/dash, package dash 0.5.12-2\\u202egnp.exe']);
  t.false(alertFacts(shellNotification()).some(([k]) => k === 'package'));
});

test('a lookup that fails sends the notification as it was, and is logged', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-pkg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sqlite = openSqliteStore(join(dir, 'c.db'));
  const logs: string[] = [];
  const lookup = createPackageLookup({ store: asAsync(sqlite), logger: pino({ level: 'info' }, { write: (l: string) => logs.push(l) }), now: Date.now });
  const n = shellNotification();
  t.deepEqual(await lookup(n), n, 'no SBOM imported: nothing added');
  sqlite.close();
  const after = await lookup({ ...n, fingerprint: 'another-alert' });
  t.is(after.package, undefined);
  t.true(logs.some((l) => l.includes('notifying without it')));
});

test('an Alertmanager re-send round of 2,000 alerts, a minute later (the default re-send), finds every package in the cache', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-pkg-round-'));
  const sqlite = openSqliteStore(join(dir, 'c.db'));
  t.teardown(() => {
    sqlite.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const store = asAsync(sqlite);
  let lookups = 0;
  const counting = { ...store, listDeviations: (...args: Parameters<typeof store.listDeviations>) => (lookups++, store.listDeviations(...args)) };
  let now = 1_800_000_000_000;
  const lookup = createPackageLookup({ store: counting, logger: pino({ level: 'silent' }), now: () => now });
  // The round's size: alerting/resend.ts reads at most 2,000 alerts per round.
  const round = Array.from({ length: 2_000 }, (_, i) => shellNotification({}, { fingerprint: `alert-${i}` }));
  t.true(round.every((n) => n.entry?.type === 'process'));
  for (const n of round) await lookup(n);
  t.is(lookups, 2_000, 'the first round looks each alert up');
  // Triggers of other alerts delivered between the rounds.
  for (let i = 0; i < PACKAGE_CACHE_SIZE - 2_000; i++) await lookup(shellNotification({}, { fingerprint: `between-${i}` }));
  now += 60_000;
  lookups = 0;
  for (const n of round) await lookup(n);
  t.is(lookups, 0, 'the second round, a minute later, hits the cache for all 2,000');
  // Used again, they are the most recent: a burst of new alerts forgets the others first.
  for (let i = 0; i < 1_000; i++) await lookup(shellNotification({}, { fingerprint: `burst-${i}` }));
  lookups = 0;
  for (const n of round) await lookup(n);
  t.is(lookups, 0, 'least recently used forgotten first, not the round just asked for');
});

/** A container report from `node`, as an agent's heartbeat carries it: `digest` of DEBIAN runs. */
async function reportRunning(port: number, node: string, tag: string, digest: string): Promise<void> {
  const { Client } = agentService();
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = (client.Connect as () => grpc.ClientDuplexStream<WireAgentMessage, WireCollectorMessage>).call(client);
  call.on('error', () => undefined);
  const welcomed = new Promise<void>((resolve) => call.on('data', (m: WireCollectorMessage) => m.welcome && resolve()));
  call.write({ hello: { node, agentVersion: '9.9.9', sources: [], protocol: PROTOCOL_REVISION } });
  await welcomed;
  const containers = [{ id: 'c1', name: 'main', image: { repository: DEBIAN, tag, digest }, imageId: '', namespace: 'shop', pod: 'web-1', workload: '' }];
  await new Promise<void>((resolve) => call.write({ heartbeat: { timeMs: 0, spooled: 0, watermarkMs: 0, containers: { source: 'cri', containers, truncated: false, total: 1 } } }, () => resolve()));
  call.end();
  client.close();
}

test('an image version that first runs, whose SBOM drops and adds packages the baseline uses: sbom.version-change in the audit log, once', async (t) => {
  const c = await withCollector(t);
  const proc = (exe: string): Entry => ({ type: 'process', exe, parent: 'sh', user: 'root', args: '' });
  const entries = ['/usr/bin/curl', '/usr/bin/bash'].map((exe, i) => statsOf(proc(exe), 'node-1', { firstSeen: 1, lastSeen: 2 + i, count: 3, examples: [] }));
  // The baseline ran 12.7 only; both versions' SBOMs are imported before 12.8 ever runs.
  const { error } = await converse(c.grpcPort, 'node-1', [{ batch: { batchId: 1, deviations: [], baselines: [snapshotToWire(deltaOf(DEBIAN, entries, { images: [{ repository: DEBIAN, tag: '12.7', digest: D('1') }] }))] } }], 1);
  t.is(error, null);
  const post = (digest: string, doc: string) => fetch(`${c.url}/api/v1/sboms?image=${encodeURIComponent(`debian@${digest}`)}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: doc });
  t.is((await post(D('1'), bookworm)).status, 201);
  // 12.8 drops curl and adds busybox for bash.
  const next = await post(D('2'), debianSpdx([{ name: 'busybox', version: '1:1.35.0-4+b3', files: ['/usr/bin/bash'] }]));
  t.is(next.status, 201);
  t.deepEqual(((await next.json()) as any).notices, [], 'not run yet: nothing to notice at import');
  const audit = async () => ((await (await fetch(`${c.url}/api/v1/audit?limit=100`)).json()) as any).items.filter((x: any) => x.action === 'sbom.version-change');
  t.deepEqual(await audit(), []);

  // 12.8 first runs on a node.
  await reportRunning(c.grpcPort, 'node-2', '12.8', D('2'));
  const [record] = await eventually(async () => ((await audit()).length > 0 ? await audit() : undefined), 20_000, 'the version-change record');
  t.like(record, { actor: 'system', target: DEBIAN, before: { digest: D('1') }, after: { digest: D('2') } });
  t.regex(record.after.text, /image version sha256:2{64} changes the packages of executables this baseline uses: 1 dropped, 1 replaced/);
  t.deepEqual(record.after.changes.map((x: any) => `${x.exe} ${x.change}`).sort(), ['/usr/bin/bash replaced', '/usr/bin/curl dropped']);

  // It runs again (another node, a deviation of it, another tag of the same digest), and 12.9 without an SBOM first runs: nothing more.
  await reportRunning(c.grpcPort, 'node-3', 'stable', D('2'));
  await sendDeviations(c.grpcPort, [deviationIn(DEBIAN, D('2'), '/usr/bin/curl', 1), deviationIn(DEBIAN, D('3'), '/usr/bin/curl', 2)]);
  await eventually(async () => {
    const res = await fetch(`${c.url}/api/v1/images/${encodeURIComponent(DEBIAN)}`);
    const versions = res.status === 200 ? (((await res.json()) as any).versions as { tag: string; digest: string }[]) : [];
    return versions.some((v) => v.digest === D('3')) && versions.some((v) => v.tag === 'stable') ? true : undefined;
  }, 20_000, 'the later versions in the inventory');
  // Stopping waits for the collector's jobs: whatever the later writes started has finished.
  await c.stop();
  const store = openSqliteStore(join(c.dir, 'c.db'));
  const rows = store.listAudit(Number.MAX_SAFE_INTEGER, 1000).filter((r) => r.action === 'sbom.version-change');
  store.close();
  t.is(rows.length, 1);
});
