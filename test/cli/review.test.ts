/**
 * `driftwatch alerts` and `driftwatch exceptions` as child processes against a real collector
 * process fed over gRPC: what on-call types, what they read back, and the exit codes.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { deviationOf, sendDeviations } from '../helpers/ingest.js';
import { CLI, getJson, spawnCollector } from '../helpers/processes.js';

const exec = promisify(execFile);

async function cli(url: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, ...args, '--url', url], { timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('on-call lists, shows, acknowledges and accepts alerts; security adds and removes an exception', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-review-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const c = await spawnCollector(t, join(dir, 'c.db'));
  await sendDeviations(c.grpcPort, [deviationOf({ i: 1 }), deviationOf({ i: 2, exe: '/usr/bin/curl', args: 'http://x' })]);

  const list = await cli(c.url, 'alerts', 'list');
  t.is(list.code, 0, list.stderr);
  t.regex(list.stdout, /^ID\s+SEVERITY\s+STATE\s+COUNT/);
  t.regex(list.stdout, /critical\s+firing\s+1 .*\/bin\/sh -c id \(parent nginx, root\)/);
  t.regex(list.stdout, /high\s+firing\s+1 .*\/usr\/bin\/curl/);
  const alerts = (await getJson(`${c.url}/api/v1/alerts`)).items as { id: string; summary: string }[];
  const shell = alerts.find((a) => a.summary.startsWith('/bin/sh'))!;
  const short = shell.id.slice(0, 12);

  const show = await cli(c.url, 'alerts', 'show', short);
  t.is(show.code, 0, show.stderr);
  t.regex(show.stdout, /^CRITICAL {2}\/bin\/sh -c id/);
  t.regex(show.stdout, /why {8}shell-where-none: a shell or interpreter ran/);

  const ack = await cli(c.url, 'alerts', 'ack', short, '--comment', 'on it');
  t.is(ack.code, 0, ack.stderr);
  t.regex(ack.stdout, new RegExp(`${short} is now acknowledged`));
  const again = await cli(c.url, 'alerts', 'ack', short);
  t.is(again.code, 1);
  t.regex(again.stderr, /409: the alert is acknowledged; it cannot become acknowledged/);
  t.is((await cli(c.url, 'alerts', 'accept', shell.id, '--json')).stdout.includes('"state": "accepted"'), true);
  t.regex((await cli(c.url, 'alerts', 'list', '--state', 'accepted')).stdout, /critical\s+accepted/);

  const add = await cli(c.url, 'exceptions', 'add', '--key', 'docker.io/library/*', '--entry', '/usr/bin/curl *', '--reason', 'smoke test calls out', '--owner', 'storefront', '--expires-in', '30d');
  t.is(add.code, 0, add.stderr);
  const id = /added (ex-[0-9a-f]+)/.exec(add.stdout)?.[1];
  t.truthy(id);
  t.regex((await cli(c.url, 'exceptions', 'list', '--status', 'active')).stdout, new RegExp(`${id}  active  owner storefront`));
  const missing = await cli(c.url, 'exceptions', 'add', '--key', 'x', '--owner', 'o', '--expires-in', '1d');
  t.is(missing.code, 1);
  t.regex(missing.stderr, /400: reason: /);
  t.regex((await cli(c.url, 'exceptions', 'remove', id!)).stdout, new RegExp(`revoked ${id}`));

  const usage = await cli(c.url, 'alerts', 'explode', short);
  t.is(usage.code, 2);
  t.regex(usage.stderr, /one of: list, show, ack, resolve, accept/);
  const down = await cli('http://127.0.0.1:1', 'alerts', 'list');
  t.is(down.code, 1);
  t.regex(down.stderr, /cannot reach the collector at http:\/\/127\.0\.0\.1:1/);
});
