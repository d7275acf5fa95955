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
