import test from 'ava';
import { appendFileSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSource } from '../../agent/sources/index.js';
import type { SourceBatch } from '../../agent/sources/source.js';
import type { ActivityEvent } from '../../core/event.js';
import { testSourceContext } from '../helpers/source-context.js';

const FIXTURE = new URL('../../../fixtures/tetragon/events.jsonl', import.meta.url);

test('follows a Tetragon export file: recorded events, then appended ones; bad lines counted', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-tetragon-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'tetragon.log');
  copyFileSync(FIXTURE, path);
  const ctx = testSourceContext();
  const src = createSource(`tetragon-file:${path}`, ctx);
  t.is(src.name, `tetragon-file:${path}`);
  const ac = new AbortController();
  const iter = src.batches(ac.signal)[Symbol.asyncIterator]() as AsyncIterator<SourceBatch>;
  const events: ActivityEvent[] = [];
  const until = async (n: number) => {
    const deadline = Date.now() + 5_000;
    while (events.length < n && Date.now() < deadline) {
      const r = await iter.next();
      if (r.done) break;
      events.push(...r.value.events);
      t.truthy(r.value.position);
    }
  };
  await until(10);
  t.deepEqual(
    events.map((e) => `${e.kind} ${e.process.exe} ${e.network ? `${e.network.remoteAddress}:${e.network.remotePort}` : ''}`.trim()),
    [
      'exec /usr/sbin/nginx',
      'listen /usr/sbin/nginx :-1',
      'accept /usr/sbin/nginx 10.244.1.7:43512',
      'connect /usr/sbin/nginx 10.96.0.10:8080',
      'connect /usr/sbin/nginx 2001:db8::50:443',
      'exec /bin/sh',
      'exec /usr/bin/curl',
      'connect /usr/bin/curl 203.0.113.50:80',
      'exec /usr/sbin/logrotate',
      'exec /docker-entrypoint.sh',
    ],
  );
  t.true(events.every((e) => e.source === `tetragon-file:${path}` && e.node === 'node-1'));
  appendFileSync(path, 'garbage\n{"process_exec":{"process":{"binary":"/usr/bin/id","pod":{"namespace":"shop","name":"web-1","container":{"id":"containerd://abcdefabcdef0123","image":{"name":"ghcr.io/acme/api:2.1"}}}}},"time":"2026-11-23T12:00:00Z"}\n');
  await until(11);
  ac.abort();
  await iter.return?.();
  t.is(events[10]?.process.exe, '/usr/bin/id');
  t.deepEqual(events[10]?.container?.image, { repository: 'ghcr.io/acme/api', tag: '2.1', digest: '' });
  t.deepEqual(ctx.rejects.sort(), ['not_json', 'unsupported', 'unsupported']);
});
