/**
 * Daily digests on their own, over a real SQLite store and a fixed clock: each team of the ownership
 * map gets its open alerts, most severe first then most recent, at most 20 lines and how many more,
 * with how many are new in the last day; a team with nothing open is told so; closed alerts and
 * alerts of no team are left out.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Severity } from '../../../core/severity.js';
import { AlertingConfigSchema } from '../../../collector/alerting/config.js';
import { createDigests } from '../../../collector/alerting/digests.js';
import { createNoticeSender } from '../../../collector/alerting/notices.js';
import { createSinks, parseSinksConfig } from '../../../collector/sinks/index.js';
import { asAsync } from '../../../collector/store/async.js';
import { openSqliteStore } from '../../../collector/store/sqlite/index.js';
import type { AlertPolicy } from '../../../collector/alerting/alert.js';
import { deviationOf } from '../../helpers/ingest.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 10, 24, 8, 0, 0);

/** Severity from the tool's name (`/usr/bin/high-tool` is high), team from the namespace. */
const policy: AlertPolicy = {
  decide: (d) => ({
    severity: (d.entry.type === 'process' ? d.entry.exe.slice('/usr/bin/'.length).split('-')[0] : 'low') as Severity,
    ruleId: 'test',
    ruleReason: 'test',
    team: d.event.pod?.namespace === 'shop' ? 'storefront' : '',
    receivers: [],
  }),
  exceptionFor: () => '',
};

test('each team gets its open alerts, most severe first, 20 lines and how many more; a team with none is told so', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-digests-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const store = openSqliteStore(join(dir, 'c.db'));
  t.teardown(() => store.close());
  const config = AlertingConfigSchema.parse({
    owners: [
      { match: { namespace: ['shop'] }, team: 'storefront', receivers: ['team-hook'] },
      { match: { namespace: ['pay'] }, team: 'payments' },
    ],
  });
  const sinks = createSinks(parseSinksConfig({ sinks: [{ name: 'hook', type: 'webhook', url: 'http://127.0.0.1:9/hook' }, { name: 'team-hook', type: 'webhook', url: 'http://127.0.0.1:9/team' }] }));
  const notices = createNoticeSender({ owners: config.owners, defaults: ['hook'], sinks, outbox: { enqueue: async (items) => store.enqueue(items, T0) } });
  const sendDigests = createDigests({ store: asAsync(store), owners: config.owners, notices, publicUrl: '', now: () => T0 });

  // Two days ago: a critical alert (still open, not new) and a high one (resolved since).
  store.ingest('node-1', [deviationOf({ i: 1, namespace: 'shop', exe: '/usr/bin/critical-tool' }), deviationOf({ i: 2, namespace: 'shop', exe: '/usr/bin/high-tool' })], [], T0 - 2 * DAY, policy);
  // Today: a medium one (acknowledged), 21 low ones, and one of no team.
  const today = [deviationOf({ i: 3, namespace: 'shop', exe: '/usr/bin/medium-tool' }), deviationOf({ i: 4, namespace: 'other', exe: '/usr/bin/critical-elsewhere' })];
  for (let i = 0; i < 21; i++) today.push(deviationOf({ i: 10 + i, namespace: 'shop', exe: `/usr/bin/low-tool-${i}` }));
  store.ingest('node-1', today, [], T0 - 3_600_000, policy);
  const alerts = store.listAlerts({ limit: 100 }).items;
  const fp = (exe: string) => alerts.find((a) => a.entry.type === 'process' && a.entry.exe === exe)!.fingerprint;
  t.true(store.transitionAlert(fp('/usr/bin/high-tool'), { to: 'resolved', by: 'alice', at: T0 - DAY, comment: '' }).ok);
  t.true(store.transitionAlert(fp('/usr/bin/medium-tool'), { to: 'acknowledged', by: 'alice', at: T0 - 60_000, comment: '' }).ok);

  t.is(await sendDigests(), 2);
  const outbox = (subject: string) => store.deliveriesOf(subject);
  t.deepEqual(outbox('digest-storefront').map((d) => d.sink), ['team-hook']);
  t.deepEqual(outbox('digest-payments').map((d) => d.sink), ['hook'], 'a team without receivers of its own: the defaults');

  const shop = JSON.parse(outbox('digest-storefront')[0]!.body);
  t.like(shop, { kind: 'digest', team: 'storefront', at: T0, title: 'Driftwatch daily digest for storefront: 23 open alerts, 22 new' });
  t.is(shop.lines.length, 21);
  t.regex(shop.lines[0], /^\[CRITICAL\] docker\.io\/library\/nginx: \/usr\/bin\/critical-tool -c id \(parent nginx, root\) — 1×, last 2026-11-23T10:00:01\.000Z$/);
  t.regex(shop.lines[1], /^\[MEDIUM\] \(ack\) docker\.io\/library\/nginx: \/usr\/bin\/medium-tool /);
  const low = (shop.lines as string[]).slice(2, 20);
  t.true(low.every((l) => l.startsWith('[LOW] ')));
  const lastSeen = low.map((l) => /last (\S+)$/.exec(l)![1]!);
  t.deepEqual(lastSeen, [...lastSeen].sort().reverse(), 'the most recent first within a severity');
  t.is(shop.lines[20], '… and 3 more');
  t.false((shop.lines as string[]).some((l) => l.includes('high-tool') || l.includes('elsewhere')), 'closed alerts and other teams are left out');

  const pay = JSON.parse(outbox('digest-payments')[0]!.body);
  t.like(pay, { team: 'payments', title: 'Driftwatch daily digest for payments: 0 open alerts, 0 new', lines: ['nothing open'] });
});
