/**
 * An alert's transition over a real SQLite store used as every consumer uses it (asynchronously):
 * its follow-ups go to the sinks its trigger went to, even when the alert fires again between the
 * read of its deliveries and the transaction of the change (the store's callback cannot wait for a
 * read of its own; the transaction checks what was read and the change is tried again).
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import type { AlertPolicy, OutboxEntry } from '../../../collector/alerting/alert.js';
import { createLifecycle } from '../../../collector/alerting/lifecycle.js';
import type { AlertFeed } from '../../../collector/http/feed.js';
import { asAsync } from '../../../collector/store/async.js';
import { openSqliteStore } from '../../../collector/store/sqlite/index.js';
import { deviationOf } from '../../helpers/ingest.js';

const T0 = Date.UTC(2026, 10, 23, 12, 0, 0);

test('an alert that fires again while its acknowledgement is read is acknowledged on the pager its new trigger went to', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-lifecycle-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const store = openSqliteStore(join(dir, 'c.db'));
  t.teardown(() => store.close());
  // An exception covers the deviations while `covered`: the trigger is written skipped, the pager is not told.
  let covered = true;
  const policy: AlertPolicy = {
    decide: () => ({ severity: 'high', ruleId: 'test', ruleReason: 'test', team: '', receivers: ['pager'] }),
    exceptionFor: () => (covered ? 'ex-1' : ''),
    notify: (alert) => [{ alert: alert.fingerprint, sink: 'pager', action: 'trigger', body: '{}', state: alert.suppressedBy ? 'skipped' : 'pending', lastError: alert.suppressedBy ? 'exception: ex-1' : '' }],
  };
  const created = store.ingest('node-1', [deviationOf({ i: 1 })], [], T0, policy).newAlerts[0]!;
  t.like(store.deliveriesOf(created.fingerprint), [{ sink: 'pager', action: 'trigger', state: 'skipped' }]);

  // The first read of the deliveries is overtaken: the exception ends and the alert fires again (the
  // ingest worker commits on its own connection), its trigger now pending for the pager.
  const slices = asAsync(store);
  let reads = 0;
  const lifecycle = createLifecycle({
    store: {
      ...slices,
      async deliveriesOf(fp) {
        const seen = store.deliveriesOf(fp);
        if (reads++ === 0) {
          covered = false;
          t.is(store.ingest('node-1', [deviationOf({ i: 2 })], [], T0 + 1000, policy).reopened.length, 1);
        }
        return seen;
      },
    },
    outbox: { enqueue: async (items: readonly OutboxEntry[]) => store.enqueue(items, T0), written: () => {} },
    feed: { size: 0, publish: () => {} } as unknown as AlertFeed,
    publicUrl: '',
    metrics: { known: new Counter({ name: 'known', help: 'known', registers: [new Registry()] }) },
    logger: pino({ level: 'silent' }),
    now: () => T0 + 2000,
  });

  const result = await lifecycle.transition(created.fingerprint, { to: 'acknowledged', by: 'rita', at: T0 + 2000, comment: '' });
  t.true(result.ok);
  t.is(reads, 2, 'read again after the transaction found the alert changed');
  if (!result.ok) return;
  t.deepEqual(
    result.notifications.map((n) => [n.sink, n.action]),
    [['pager', 'acknowledge']],
  );
  t.deepEqual(
    store.deliveriesOf(created.fingerprint).map((d) => [d.action, d.state]),
    [
      ['acknowledge', 'pending'],
      ['trigger', 'pending'],
      ['trigger', 'skipped'],
    ],
    'one acknowledgement, written with the change',
  );
  t.is(store.getAlert(created.fingerprint)?.state, 'acknowledged');
});
