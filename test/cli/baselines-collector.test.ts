/**
 * `driftwatch baselines` as a child process against a real collector process fed over gRPC: bulk
 * lock by namespace, export to a file, import into a second collector (GitOps), diff.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { BaselineSnapshot } from '../../core/baseline.js';
import type { Entry } from '../../core/entry.js';
import { snapshotToWire } from '../../proto/index.js';
import { T0, deltaOf, statsOf } from '../helpers/baseline-delta.js';
import { converse } from '../helpers/ingest.js';
import { CLI, getJson, spawnCollector } from '../helpers/processes.js';

const exec = promisify(execFile);

async function cli(url: string, ...args: string[]) {
  try {
    const { stdout } = await exec(process.execPath, [CLI, 'baselines', ...args, '--server', url], { timeout: 20_000 });
    return { code: 0, stdout, stderr: '' };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function delta(key: string, namespace: string, entries: Entry[]): BaselineSnapshot {
  return deltaOf(key, entries.map((entry) => statsOf(entry, 'node-1', { firstSeen: T0, lastSeen: T0 + 1, count: 1 })), { version: 3, events: 10, images: [{ repository: key, tag: '1', digest: '' }], namespaces: [namespace] });
}

test('security locks every enforcing baseline in a namespace, exports one to Git and applies the folder to another cluster', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-baselines-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const a = await spawnCollector(t, join(dir, 'a.db'));
  const web: Entry = { type: 'process', exe: '/usr/sbin/nginx', parent: 'containerd-shim', user: 'root', args: '-g daemon off;' };
  const api: Entry = { type: 'process', exe: '/app/server', parent: 'containerd-shim', user: 'user', args: '' };
  await converse(a.grpcPort, 'node-1', [{ batch: { batchId: 1, deviations: [], baselines: [delta('docker.io/library/nginx', 'shop', [web]), delta('ghcr.io/acme/api', 'payments', [api])].map(snapshotToWire) } }], 1);

  const bulk = await cli(a.url, 'bulk', 'lock', '--namespace', 'shop', '--state', 'enforcing', '--reason', 'quarterly review');
  t.is(bulk.code, 0, bulk.stderr);
  t.is(bulk.stdout.trim(), 'docker.io/library/nginx: locked (version 1)');
  const list = await cli(a.url, 'list');
  t.regex(list.stdout, /docker\.io\/library\/nginx\s+locked\s+1/);
  t.regex(list.stdout, /ghcr\.io\/acme\/api\s+enforcing\s+-?0?/);
  t.is((await cli(a.url, 'bulk', 'lock')).code, 2, 'a bulk change of everything is refused');

  const repo = join(dir, 'git');
  mkdirSync(repo);
  const out = join(repo, 'nginx.yaml');
  const exported = await cli(a.url, 'export', 'docker.io/library/nginx', '--out', out);
  t.is(exported.code, 0, exported.stderr);
  t.regex(readFileSync(out, 'utf8'), /state: locked/);

  const b = await spawnCollector(t, join(dir, 'b.db'));
  const imported = await cli(b.url, 'import', repo);
  t.is(imported.code, 0, imported.stderr);
  const view = await getJson<{ state: string; entries: { exe: string; status: string }[] }>(`${b.url}/api/v1/baselines/${encodeURIComponent('docker.io/library/nginx')}`);
  t.is(view.state, 'locked');
  t.deepEqual(view.entries.map((e) => [e.exe, e.status]), [['/usr/sbin/nginx', 'added']]);
  const diff = await cli(b.url, 'diff', 'docker.io/library/nginx', '--from', '0', '--to', '1');
  t.is(diff.code, 0, diff.stderr);
  t.regex(diff.stdout, /\+.*\/usr\/sbin\/nginx/);
});

test('security allows drift from a JIT cache, sees it in show, takes it back; a bad pattern is refused with the reason', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-baselines-drift-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const c = await spawnCollector(t, join(dir, 'c.db'));
  const KEY = 'ghcr.io/acme/jvm-app';
  const java: Entry = { type: 'process', exe: '/opt/java/bin/java', parent: 'containerd-shim', user: 'user', args: '-jar app.jar' };
  await converse(c.grpcPort, 'node-1', [{ batch: { batchId: 1, deviations: [], baselines: [snapshotToWire(delta(KEY, 'shop', [java]))] } }], 1);
  const viewOf = () => getJson<{ version: number; driftAllowed: string[] }>(`${c.url}/api/v1/baselines/${encodeURIComponent(KEY)}`);

  const before = await cli(c.url, 'show', KEY);
  t.is(before.code, 0, before.stderr);
  t.regex(before.stdout, /^ {2}drift {6}none allowed: every binary not from the image alerts$/m);

  const allowed = await cli(c.url, 'drift', 'allow', KEY, '/var/cache/jit/*', '--reason', 'JIT cache, SEC-201');
  t.is(allowed.code, 0, allowed.stderr);
  t.is(allowed.stdout.split('\n')[0], `allowed drift from /var/cache/jit/* in ${KEY} (version 1)`);
  t.is((await cli(c.url, 'drift', 'allow', KEY, 'plugin-*', '--reason', 'plugin installer')).code, 0);
  const shown = await cli(c.url, 'show', KEY);
  t.is(shown.code, 0, shown.stderr);
  t.regex(shown.stdout, /^ {2}drift {6}allowed from (\/var\/cache\/jit\/\*, plugin-\*|plugin-\*, \/var\/cache\/jit\/\*)$/m);
  const versions = await getJson<{ items: { version: number; action: string; reason: string }[] }>(`${c.url}/api/v1/baselines/${encodeURIComponent(KEY)}/versions`);
  t.true(versions.items.some((v) => v.version === 1 && v.reason === 'JIT cache, SEC-201'), JSON.stringify(versions.items));

  // A second allow of the same pattern is a conflict the collector names: exit 1, nothing changed.
  const again = await cli(c.url, 'drift', 'allow', KEY, '/var/cache/jit/*');
  t.is(again.code, 1);
  t.regex(again.stderr, /answered 409: the pattern is already allowed/);

  const disallowed = await cli(c.url, 'drift', 'disallow', KEY, '/var/cache/jit/*', '--reason', 'JIT moved to the image');
  t.is(disallowed.code, 0, disallowed.stderr);
  t.is(disallowed.stdout.split('\n')[0], `disallowed drift from /var/cache/jit/* in ${KEY} (version 3)`);
  t.regex((await cli(c.url, 'show', KEY)).stdout, /^ {2}drift {6}allowed from plugin-\*$/m);
  const notListed = await cli(c.url, 'drift', 'disallow', KEY, '/var/cache/jit/*');
  t.is(notListed.code, 1);
  t.regex(notListed.stderr, /answered 409: the pattern is not allowed/);

  // Patterns the API refuses are bad usage, with the API's reason: anything at all, a relative path.
  const anything = await cli(c.url, 'drift', 'allow', KEY, '*');
  t.is(anything.code, 2);
  t.regex(anything.stderr, /answered 400: .*must name something more than "anything"/);
  const relative = await cli(c.url, 'drift', 'allow', KEY, 'cache/jit/*');
  t.is(relative.code, 2);
  t.regex(relative.stderr, /answered 400: .*a pattern with a \/ must be an absolute path glob/);
  t.is((await cli(c.url, 'drift', 'allow', KEY)).code, 2, 'no PATTERN');
  t.like(await viewOf(), { version: 3, driftAllowed: ['plugin-*'] });
});
