/** The SBOM joins' pure parts: a baseline key's repository, and hostile package text in export comments. */
import test from 'ava';
import { parse } from 'yaml';
import { repositoryOfKey, sbomExportComment } from '../../collector/sbom/links.js';

test('the repository of a baseline key', (t) => {
  t.is(repositoryOfKey('docker.io/library/debian'), 'docker.io/library/debian');
  t.is(repositoryOfKey('docker.io/library/debian:12'), 'docker.io/library/debian');
  t.is(repositoryOfKey(`registry:5000/app@sha256:${'a'.repeat(64)}`), 'registry:5000/app');
  t.is(repositoryOfKey('registry:5000/app:1.2'), 'registry:5000/app');
  t.is(repositoryOfKey('@host'), '');
});

test('export comments stay comments, whatever a package name holds', (t) => {
  const hostile = 'evil\nspec:\n  state: learning\u2028x\r\u0085y';
  const comment = sbomExportComment({
    key: 'k',
    repository: 'r',
    sbom: { digest: 'sha256:1', repository: 'r', format: 'spdx', tool: 'syft', filesListed: true, basis: 'digest', note: '' },
    versions: [],
    entries: [{ id: 'x', exe: '/usr/bin/x', status: 'package', package: { name: hostile, version: '1', purl: '', type: '' }, text: `/usr/bin/x, package ${hostile} 1`, notInSbom: false }],
    notice: null,
  });
  t.is(comment.split('\n').length, 3, comment);
  for (const line of comment.trimEnd().split('\n')) t.true(line.startsWith('# '));
  t.is(parse(`a: 1\n${comment}`).spec, undefined);
  t.deepEqual(parse(`a: 1\n${comment}`), { a: 1 });
});

test('a document parsed in a worker thread reads as on the main thread; a refusal keeps its code', async (t) => {
  const { readFileSync } = await import('node:fs');
  const { parseSbom, SbomError } = await import('../../core/sbom/parse.js');
  const { parseSbomInWorker } = await import('../../collector/sbom/parse-in-worker.js');
  const text = readFileSync(new URL('../../../fixtures/sbom/trivy-fluentd-debian-10.cdx.json', import.meta.url), 'utf8');
  t.deepEqual(await parseSbomInWorker(text), parseSbom(text));
  const err = await t.throwsAsync(parseSbomInWorker('{"spdxVersion": "SPDX-9"}'), { instanceOf: SbomError });
  t.is(err?.code, 'invalid_document');
});

test('links of more executables than one lookup takes are all resolved', async (t) => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { openSqliteStore } = await import('../../collector/store/sqlite/index.js');
  const { asAsync } = await import('../../collector/store/async.js');
  const { linkAll } = await import('../../collector/sbom/links.js');
  const dir = mkdtempSync(join(tmpdir(), 'dw-sbom-links-'));
  const store = openSqliteStore(join(dir, 'c.db'));
  t.teardown(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const exes = Array.from({ length: 12_000 }, (_, i) => `/usr/bin/tool-${i}`);
  const record = { digest: `sha256:${'9'.repeat(64)}`, repository: 'r', format: 'spdx' as const, specVersion: 'SPDX-2.3', tool: 't', importedAt: 1, importedBy: 'a', filesListed: true, packages: [{ name: 'tools', version: '1', purl: '', type: 'deb' }], files: new Map(exes.map((e) => [e, 0])) };
  store.putSbom(record);
  const links = await linkAll(asAsync(store), store.getSbom(record.digest)!, exes);
  t.is(links.filter((l) => l.status === 'package').length, 12_000);
});

test('the SBOM of the digest a node reports counts only when it was imported for the alert\'s repository; else the repository\'s own, saying why', async (t) => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { openSqliteStore } = await import('../../collector/store/sqlite/index.js');
  const { asAsync } = await import('../../collector/store/async.js');
  const { chooseSbom } = await import('../../collector/sbom/links.js');
  const dir = mkdtempSync(join(tmpdir(), 'dw-sbom-choose-'));
  const store = openSqliteStore(join(dir, 'c.db'));
  t.teardown(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const sbom = (digit: string, repository: string, importedAt: number) => ({ digest: `sha256:${digit.repeat(64)}`, repository, format: 'spdx' as const, specVersion: 'SPDX-2.3', tool: 't', importedAt, importedBy: 'a', filesListed: true, packages: [], files: new Map<string, number>() });
  const shop = sbom('1', 'docker.io/acme/shop', 1);
  const payroll = sbom('2', 'docker.io/acme/payroll', 2);
  const nginx = sbom('3', 'docker.io/library/nginx', 3);
  for (const s of [shop, payroll, nginx]) store.putSbom(s);
  const s = asAsync(store);

  t.like(await chooseSbom(s, 'docker.io/acme/shop', shop.digest), { basis: 'digest', note: '', sbom: { digest: shop.digest } }, 'its own digest');
  t.like(await chooseSbom(s, 'nginx', nginx.digest), { basis: 'digest', sbom: { digest: nginx.digest } }, 'the same repository, named short');
  const pointed = await chooseSbom(s, 'docker.io/acme/shop', payroll.digest);
  t.like(pointed, { basis: 'repository', sbom: { digest: shop.digest, repository: 'docker.io/acme/shop' } }, 'another image\'s digest: the repository\'s own SBOM');
  t.regex(pointed!.note, new RegExp(`the SBOM imported for ${payroll.digest} is of another repository: the latest SBOM imported for docker.io/acme/shop`));
  t.false(pointed!.note.includes('payroll'), 'the other repository is not named');
  t.is(await chooseSbom(s, 'docker.io/acme/billing', payroll.digest), null, 'a repository without an SBOM of its own gets none');
});
