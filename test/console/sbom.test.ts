/**
 * The SBOM in the console, in a real Chromium against a real collector (issue 22): the baseline
 * page's Package column (the package behind each process entry, or "not in the image's SBOM"), the
 * notice of a new image version that dropped a package the baseline uses, and an alert naming the
 * package of its executable. The SBOMs are built in the test in syft's SPDX 2.3 shape (packages with
 * purls, files, CONTAINS); the parser's tests read syft's and trivy's own documents.
 */
import test from 'ava';
import { entryId, type Entry } from '../../core/entry.js';
import { deviationId } from '../../core/deviation.js';
import { snapshotToWire } from '../../proto/index.js';
import { T0, deltaOf, statsOf } from '../helpers/baseline-delta.js';
import { TOKENS, launchBrowser, openPage, problemsOf, screenshot, signIn, startTestCollector } from '../helpers/browser.js';
import { converse, deviationOf, sendDeviations } from '../helpers/ingest.js';

const DEBIAN = 'docker.io/library/debian';
const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const proc = (exe: string): Entry => ({ type: 'process', exe, parent: 'sh', user: 'root', args: '' });

function spdx(packages: { name: string; version: string; files: string[] }[]): string {
  return JSON.stringify({
    spdxVersion: 'SPDX-2.3',
    creationInfo: { creators: ['Tool: syft-1.18.1'] },
    packages: packages.map((p, i) => ({ SPDXID: `SPDXRef-P${i}`, name: p.name, versionInfo: p.version, externalRefs: [{ referenceType: 'purl', referenceCategory: 'PACKAGE-MANAGER', referenceLocator: `pkg:deb/debian/${p.name}@${p.version}` }] })),
    files: packages.flatMap((p, i) => p.files.map((f, j) => ({ SPDXID: `SPDXRef-F${i}-${j}`, fileName: f }))),
    relationships: packages.flatMap((p, i) => p.files.map((_, j) => ({ spdxElementId: `SPDXRef-P${i}`, relationshipType: 'CONTAINS', relatedSpdxElement: `SPDXRef-F${i}-${j}` }))),
  });
}

test('the baseline page shows each process entry\'s package and the version notice; the alert page names the package', async (t) => {
  const [browser, c] = await Promise.all([launchBrowser(), startTestCollector()]);
  t.teardown(async () => {
    await browser.close();
    await c.stop();
  });
  const { collector } = c;
  const entries = ['/usr/bin/curl', '/usr/bin/wget', '/tmp/.cache/miner'].map((exe, i) => statsOf(proc(exe), 'node-1', { firstSeen: T0, lastSeen: T0 + i, count: 2 }));
  const images = [
    { repository: DEBIAN, tag: '12.7', digest: D1 },
    { repository: DEBIAN, tag: '12.8', digest: D2 },
  ];
  const fed = await converse(collector.grpcPort, 'node-1', [{ batch: { batchId: 1, deviations: [], baselines: [snapshotToWire(deltaOf(DEBIAN, entries, { images, namespaces: ['shop'] }))] } }], 1);
  t.is(fed.error, null);
  const post = (digest: string, body: string) =>
    fetch(`${collector.url}/api/v1/sboms?image=${encodeURIComponent(`debian@${digest}`)}`, { method: 'POST', body, headers: { 'content-type': 'application/spdx+json', authorization: `Bearer ${TOKENS.reviewer.token}` } });
  t.is((await post(D1, spdx([{ name: 'curl', version: '7.88.1-10+deb12u8', files: ['/usr/bin/curl'] }, { name: 'wget', version: '1.21.3-1+b2', files: ['/usr/bin/wget'] }]))).status, 201);
  t.is((await post(D2, spdx([{ name: 'curl', version: '8.5.0-2', files: ['/usr/bin/curl'] }, { name: 'bash', version: '5.2.15-2+b7', files: ['/bin/bash'] }]))).status, 201);
  const d = deviationOf({ i: 1, image: DEBIAN, exe: '/usr/bin/curl', args: 'http://203.0.113.9/x' });
  d.event.container!.image = { repository: DEBIAN, tag: '12.7', digest: D1 };
  d.id = deviationId(d.event, DEBIAN, d.entry);
  await sendDeviations(collector.grpcPort, [d], 'node-1', 2);

  const page = await openPage(t, browser);
  await signIn(page, collector.url, TOKENS.viewer.token);
  await page.goto(`${collector.url}/console/#/baselines/${encodeURIComponent(DEBIAN)}`);
  await page.getByRole('heading', { level: 1, name: `Baseline ${DEBIAN}` }).waitFor();
  const row = (exe: string) => page.locator(`tr[data-entry-id=${JSON.stringify(entryId(proc(exe)))}]`);
  await row('/usr/bin/curl').locator('td.package').waitFor();
  t.deepEqual(await page.locator('section[aria-labelledby="proc"] thead th').allInnerTexts().then((h) => h.slice(0, 3)), ['Entry', 'Package', 'Status']);
  t.is(await row('/usr/bin/curl').locator('td.package').innerText(), 'curl 8.5.0-2');
  t.is(await row('/usr/bin/wget').locator('td.package').innerText(), "not in the image's SBOM");
  t.is(await row('/tmp/.cache/miner').locator('td.package').getAttribute('data-not-in-sbom'), 'true');
  t.regex(await page.locator('dl.facts').innerText(), new RegExp(`SBOM\\s+${D2} \\(syft-1\\.18\\.1\\)`));
  const notice = page.locator('#sbom-notice');
  await notice.getByRole('heading', { name: 'New image version changes packages' }).waitFor();
  t.regex(await notice.innerText(), /1 dropped, 1 upgraded/);
  t.deepEqual(await notice.locator('tr[data-change]').evaluateAll((rows) => rows.map((r) => (r as unknown as { innerText: string }).innerText.replace(/\s+/g, ' ').trim()).sort()), [
    '/usr/bin/curl upgraded curl 7.88.1-10+deb12u8 curl 8.5.0-2',
    '/usr/bin/wget dropped wget 1.21.3-1+b2 —',
  ]);
  await screenshot(page, 'baseline-sbom');

  await page.goto(`${collector.url}/console/#/alerts`);
  await page.getByRole('link', { name: /\/usr\/bin\/curl/ }).first().click();
  await page.locator('#alert-package').waitFor();
  t.is(await page.locator('#alert-package').innerText(), '/usr/bin/curl, package curl 7.88.1-10+deb12u8');
  await screenshot(page, 'alert-sbom');
  t.deepEqual(problemsOf(page), []);
});
