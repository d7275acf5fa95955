/**
 * Exception reminders on their own, over a real SQLite store and a clock the test moves: an owner is
 * told once, when its exception enters the reminder window, through the receivers its owner entry
 * names (else the default receivers), on sinks that take notices only; revoked and expired
 * exceptions are not reminded; a restart does not tell again.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { AlertingConfigSchema } from '../../../collector/alerting/config.js';
import { createNoticeSender } from '../../../collector/alerting/notices.js';
import { createReminders } from '../../../collector/alerting/reminders.js';
import { createSinks, parseSinksConfig } from '../../../collector/sinks/index.js';
import { asAsync } from '../../../collector/store/async.js';
import { openSqliteStore } from '../../../collector/store/sqlite/index.js';
import type { AlertException } from '../../../collector/alerting/alert.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 10, 23, 9, 0, 0);

function exception(id: string, owner: string, expiresAt: number, revokedAt = 0): AlertException {
  return { id, key: 'docker.io/library/nginx', entry: '/bin/sh -c *', namespace: '', reason: `reason of ${id}`, owner, createdBy: 'alice', createdAt: T0 - DAY, expiresAt, revokedAt, revokedBy: revokedAt ? 'bob' : '', remindedAt: 0 };
}

test('an owner is told once, when its exception enters the window, on its own receivers or the defaults that take notices', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-reminders-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const store = openSqliteStore(join(dir, 'c.db'));
  t.teardown(() => store.close());
  let clock = T0;
  const config = AlertingConfigSchema.parse({ owners: [{ match: { namespace: ['shop'] }, team: 'storefront', receivers: ['team-hook'] }] });
  const sinks = createSinks(
    parseSinksConfig({
      sinks: [
        { name: 'hook', type: 'webhook', url: 'http://127.0.0.1:9/hook' },
        { name: 'am', type: 'alertmanager', url: 'http://127.0.0.1:9' },
        { name: 'team-hook', type: 'webhook', url: 'http://127.0.0.1:9/team' },
      ],
    }),
  );
  const notices = createNoticeSender({ owners: config.owners, defaults: ['hook', 'am'], sinks, outbox: { enqueue: async (items) => store.enqueue(items, clock) } });
  let refreshed = 0;
  const deps = { store: asAsync(store), notices, reminderBefore: 7 * DAY, refreshExceptions: async () => void refreshed++, publicUrl: 'https://dw.example/', logger: pino({ level: 'silent' }), now: () => clock };
  const remind = createReminders(deps);

  store.addException(exception('ex-team', 'storefront', T0 + 10 * DAY));
  store.addException(exception('ex-default', 'payments', T0 + 8 * DAY));
  store.addException(exception('ex-revoked', 'storefront', T0 + 2 * DAY, T0 - 1));
  store.addException(exception('ex-expired', 'storefront', T0 - 1));
  const outboxOf = (id: string) => store.deliveriesOf(`exception-${id}`);

  t.is(await remind(), 0, 'nothing inside the window yet');

  clock = T0 + 2 * DAY; // ex-default: 6 days left
  t.is(await remind(), 1);
  const [told] = outboxOf('ex-default');
  t.like(told, { sink: 'hook', action: 'notice', state: 'pending' }, 'the defaults, less the Alertmanager sink that takes no notices');
  t.is(outboxOf('ex-default').length, 1);
  t.like(JSON.parse(told!.body), {
    kind: 'exception-expiring',
    team: 'payments',
    title: `Exception ex-default expires ${new Date(T0 + 8 * DAY).toISOString()}`,
    url: 'https://dw.example/api/v1/exceptions/ex-default',
  });
  t.is(store.getException('ex-default')?.remindedAt, clock);

  clock = T0 + 3 * DAY + 1; // ex-team: just under 7 days left
  t.is(await remind(), 1);
  t.deepEqual(outboxOf('ex-team').map((d) => d.sink), ['team-hook'], "the team's own receivers");
  t.is(await remind(), 0, 'told once');
  t.deepEqual([...outboxOf('ex-revoked'), ...outboxOf('ex-expired')], []);

  t.is(await createReminders(deps)(), 0, 'a restart does not tell again');
  t.is(refreshed, 5, 'every round lets the expired exceptions stop matching');
});
