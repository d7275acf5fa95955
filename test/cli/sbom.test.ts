/**
 * `driftwatch sbom` and the SBOM lines of `driftwatch baselines show`, as child processes against a
 * real collector process: the real syft alpine 3.10 SPDX document (fixtures/sbom/) imported from a
 * file, shown, and a baseline whose image version changed packages printing the notice.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Entry } from '../../core/entry.js';
import { snapshotToWire } from '../../proto/index.js';
import { T0, deltaOf, statsOf } from '../helpers/baseline-delta.js';
import { converse } from '../helpers/ingest.js';
import { CLI, spawnCollector } from '../helpers/processes.js';

const exec = promisify(execFile);
const ALPINE = fileURLToPath(new URL('../../../fixtures/sbom/syft-alpine-3.10.spdx.json', import.meta.url));
const D = (c: string) => `sha256:${c.repeat(64)}`;

async function cli(url: string, ...args: string[]) {
  try {
    const { stdout } = await exec(process.execPath, [CLI, ...args, '--url', url], { timeout: 20_000 });
    return { code: 0, stdout, stderr: '' };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('sbom import, show and list; baselines show names each executable\'s package and the new version\'s changes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-sbom-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const c = await spawnCollector(t, join(dir, 'c.db'));
  const KEY = 'docker.io/library/alpine';
  const proc = (exe: string): Entry => ({ type: 'process', exe, parent: 'sh', user: 'root', args: '' });
  const images = [
    { repository: KEY, tag: '3.10.8', digest: D('a') },
    { repository: KEY, tag: '3.10.9', digest: D('b') },
  ];
  const entries = ['/bin/busybox', '/usr/bin/ssl_client'].map((exe) => statsOf(proc(exe), 'node-1', { firstSeen: T0, lastSeen: T0 + 1, count: 1 }));
  await converse(c.grpcPort, 'node-1', [{ batch: { batchId: 1, deviations: [], baselines: [snapshotToWire(deltaOf(KEY, entries, { images }))] } }], 1);

  const imported = await cli(c.url, 'sbom', 'import', ALPINE, '--image', `alpine@${D('a')}`);
  t.is(imported.code, 0, imported.stderr);
  t.is(imported.stdout.trim(), `${D('a')}  docker.io/library/alpine: spdx SPDX-2.2 by syft-[not provided], 3 packages, 2 files`);
  const shown = await cli(c.url, 'sbom', 'show', D('a'));
  t.regex(shown.stdout, /busybox\s+1\.30\.1-r5\s+apk\s+pkg:apk\/alpine\/busybox@1\.30\.1-r5/);
  t.regex((await cli(c.url, 'sbom', 'list', 'alpine')).stdout, new RegExp(`${D('a')}\\s+spdx SPDX-2.2`));

  // The next version ships busybox without its applet package but with ssl_client's binary listed.
  const next = join(dir, 'next.spdx.json');
  writeFileSync(
    next,
    JSON.stringify({
      spdxVersion: 'SPDX-2.3',
      creationInfo: { creators: ['Tool: syft-1.18.1'] },
      packages: [{ SPDXID: 'SPDXRef-p1', name: 'ssl_client', versionInfo: '1.30.1-r6' }],
      files: [{ SPDXID: 'SPDXRef-f1', fileName: '/usr/bin/ssl_client' }, { SPDXID: 'SPDXRef-f2', fileName: '/bin/busybox' }],
      relationships: [{ spdxElementId: 'SPDXRef-p1', relationshipType: 'CONTAINS', relatedSpdxElement: 'SPDXRef-f1' }],
    }),
  );
  const second = await cli(c.url, 'sbom', 'import', next, '--image', `docker.io/library/alpine:3.10.9@${D('b')}`);
  t.is(second.code, 0, second.stderr);
  t.regex(second.stdout, /notice {2}docker\.io\/library\/alpine: image version sha256:b{64} changes the packages of executables this baseline uses: 1 added, 1 dropped/);
  const show = await cli(c.url, 'baselines', 'show', KEY);
  t.is(show.code, 0, show.stderr);
  t.regex(show.stdout, new RegExp(`sbom {7}${D('b')} \\(syft-1\\.18\\.1\\)`));
  t.regex(show.stdout, /package {4}\/bin\/busybox, in the image's SBOM without a package/);
  t.regex(show.stdout, /package {4}\/usr\/bin\/ssl_client, package ssl_client 1\.30\.1-r6/);
  t.regex(show.stdout, /NOTICE {2}image version sha256:b{64}/);
  t.regex(show.stdout, /dropped {3}\/bin\/busybox: busybox 1\.30\.1-r5 -> -/);
  t.regex(show.stdout, /added {5}\/usr\/bin\/ssl_client: - -> ssl_client 1\.30\.1-r6/);

  const usage = await cli(c.url, 'sbom', 'import', ALPINE, '--image', 'alpine:3.10');
  t.is(usage.code, 2);
  t.regex(usage.stderr, /--image REPO@sha256/);
  const refused = await cli(c.url, 'sbom', 'import', fileURLToPath(import.meta.url), '--image', `alpine@${D('c')}`);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /the collector answered 400: the document is not valid JSON/);
});
