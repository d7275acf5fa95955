/**
 * SBOMs through a real collector (issue 22): imported over HTTP (real syft documents from
 * fixtures/sbom/, and documents built here in syft's SPDX shape for a Debian image, marked so),
 * refused with a reason (400) or for size (413, on this route's own bound while every other route
 * keeps the API's), an alert showing the package of its executable or that the SBOM does not list
 * it, and the notice a reviewer gets when a new image version changes the packages a baseline uses.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { deviationId, type Deviation } from '../../core/deviation.js';
import type { Entry } from '../../core/entry.js';
import { MAX_SBOM_BYTES } from '../../core/sbom/parse.js';
import { snapshotToWire } from '../../proto/index.js';
import { deltaOf, statsOf } from '../helpers/baseline-delta.js';
import { withCollector } from '../helpers/collector.js';
import { converse, deviationOf, sendDeviations } from '../helpers/ingest.js';
import { debianSpdx } from '../helpers/sbom.js';

const fixture = (name: string) => readFileSync(fileURLToPath(new URL(`../../../fixtures/sbom/${name}`, import.meta.url)), 'utf8');
const D = (c: string) => `sha256:${c.repeat(64)}`;
const DEBIAN = 'docker.io/library/debian';

/** Plain HTTP, as curl would: status, headers and parsed JSON. */
function http(port: number, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; json: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown = null;
        try {
          json = JSON.parse(text);
        } catch {
          json = text;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const bookworm = debianSpdx([
  { name: 'curl', version: '7.88.1-10+deb12u8', files: ['/usr/bin/curl'] },
  { name: 'bash', version: '5.2.15-2+b7', files: ['/bin/bash'] },
  { name: 'wget', version: '1.21.3-1+b2', files: ['/usr/bin/wget'] },
]);

/** A deviation of `exe` in `repository`, its event carrying `digest` ('' when the runtime did not say). */
function deviationIn(repository: string, digest: string, exe: string, i: number): Deviation {
  const d = deviationOf({ i, image: repository, exe });
  d.event.container!.image = { repository, tag: '12', digest };
  d.id = deviationId(d.event, repository, d.entry);
  return d;
}

test('import: a syft SPDX document of alpine 3.10, its summary, listed per repository; an alert on /bin/busybox names its package', async (t) => {
  const c = await withCollector(t);
  const digest = D('a');
  const r = await http(c.httpPort, 'POST', `/api/v1/sboms?image=${encodeURIComponent(`alpine:3.10@${digest}`)}`, fixture('syft-alpine-3.10.spdx.json'), { 'content-type': 'application/spdx+json' });
  t.is(r.status, 201, JSON.stringify(r.json));
  t.like(r.json, { digest, repository: 'docker.io/library/alpine', format: 'spdx', specVersion: 'SPDX-2.2', tool: 'syft-[not provided]', packages: 3, files: 2, filesListed: true, replaced: false });
  const s = await http(c.httpPort, 'GET', `/api/v1/sboms/${digest}`);
  t.is(s.status, 200);
  t.like(s.json, { digest, packageCount: 3, fileCount: 2, importedBy: 'anonymous' });
  t.deepEqual(s.json.packages.map((p: any) => `${p.name} ${p.version}`), ['busybox 1.30.1-r5', 'libssl1.1 1.1.1k-r0', 'ssl_client 1.30.1-r5']);
  t.deepEqual((await http(c.httpPort, 'GET', '/api/v1/sboms?repository=alpine')).json.items.map((x: any) => x.digest), [digest]);
  t.is((await http(c.httpPort, 'GET', `/api/v1/sboms/${D('b')}`)).status, 404);
  // Again: replaced, 200.
  t.like((await http(c.httpPort, 'POST', `/api/v1/sboms?image=alpine@${digest}`, fixture('syft-alpine-3.10.spdx.json'))).json, { replaced: true });

  await sendDeviations(c.grpcPort, [deviationIn('docker.io/library/alpine', digest, '/bin/busybox', 1)]);
  const alerts = (await http(c.httpPort, 'GET', '/api/v1/alerts')).json.items;
  const a = (await http(c.httpPort, 'GET', `/api/v1/alerts/${alerts[0].id}`)).json;
  t.like(a.sbom, { status: 'package', basis: 'digest', digest, imageDigest: digest, text: '/bin/busybox, package busybox 1.30.1-r5', notInSbom: false });
  t.is(a.sbom.package.purl, 'pkg:apk/alpine/busybox@1.30.1-r5?arch=x86_64&distro=alpine-3.10.9');
  const audit = (await http(c.httpPort, 'GET', '/api/v1/audit')).json.items;
  t.true(audit.some((x: any) => x.action === 'sbom.import' && x.target === digest));
});

test('alerts: /usr/bin/curl with its package; a binary the SBOM does not list is drift evidence; an unknown digest falls back to the latest SBOM and says so', async (t) => {
  const c = await withCollector(t);
  t.is((await http(c.httpPort, 'POST', `/api/v1/sboms?image=debian@${D('1')}`, bookworm)).status, 201);
  await sendDeviations(c.grpcPort, [deviationIn(DEBIAN, D('1'), '/usr/bin/curl', 1), deviationIn(DEBIAN, D('1'), '/tmp/.x/kinsing', 2), deviationIn(DEBIAN, '', '/usr/bin/bash', 3), deviationIn('docker.io/library/nginx', '', '/usr/bin/curl', 4)]);
  const items = (await http(c.httpPort, 'GET', '/api/v1/alerts?limit=10')).json.items as any[];
  const byExe = async (image: string, exe: string) => (await http(c.httpPort, 'GET', `/api/v1/alerts/${items.find((x) => x.image === image && x.process?.exe === exe).id}`)).json.sbom;
  t.like(await byExe(DEBIAN, '/usr/bin/curl'), { status: 'package', text: '/usr/bin/curl, package curl 7.88.1-10+deb12u8', package: { name: 'curl', version: '7.88.1-10+deb12u8', type: 'deb' }, basis: 'digest' });
  t.like(await byExe(DEBIAN, '/tmp/.x/kinsing'), { status: 'not-listed', notInSbom: true, text: "/tmp/.x/kinsing, not in the image's SBOM" });
  // The runtime gave no digest; the merged-/usr twin /bin/bash is what the package lists.
  const bash = await byExe(DEBIAN, '/usr/bin/bash');
  t.like(bash, { status: 'package', basis: 'repository', imageDigest: '', text: '/usr/bin/bash, package bash 5.2.15-2+b7' });
  t.regex(bash.note, /image digest is not known: the latest SBOM imported for docker\.io\/library\/debian \(sha256:1{64}\) is used/);
  t.is(await byExe('docker.io/library/nginx', '/usr/bin/curl'), null, 'no SBOM for nginx');
});

test('refusals: 400 with the reason for a document or image Driftwatch cannot read, 413 over the route\'s bound; other routes keep the API bound', async (t) => {
  const c = await withCollector(t);
  const post = (body: string, image = `debian@${D('2')}`, type = 'application/json') => http(c.httpPort, 'POST', `/api/v1/sboms?image=${encodeURIComponent(image)}`, body, { 'content-type': type });
  const bad: [string, RegExp][] = [
    ['{"bomFormat": "CycloneDX"', /not valid JSON/],
    ['{"artifacts": [], "source": {}}', /neither CycloneDX JSON .* nor SPDX JSON/],
    ['{"bomFormat": "CycloneDX", "specVersion": "9.9"}', /specVersion "9.9" is not one Driftwatch reads/],
  ];
  for (const [body, message] of bad) {
    const r = await post(body);
    t.is(r.status, 400, body);
    t.like(r.json.error, { code: 'invalid_document' });
    t.regex(r.json.error.message, message);
  }
  const noDigest = await post(bookworm, 'debian:12');
  t.is(noDigest.status, 400);
  t.regex(noDigest.json.error.message, /image must be REPOSITORY@sha256/);
  t.is((await http(c.httpPort, 'POST', '/api/v1/sboms', bookworm)).status, 400);
  t.is((await post(bookworm, `debian@${D('2')}`, 'text/yaml')).status, 415);
  // More packages than the bound: 413 with the count named.
  const many = JSON.stringify({ spdxVersion: 'SPDX-2.3', packages: Array.from({ length: 50_001 }, (_, i) => ({ SPDXID: `p${i}`, name: `p${i}` })) });
  const tooMany = await post(many);
  t.is(tooMany.status, 413);
  t.regex(tooMany.json.error.message, /more than 50000 packages/);
  // Announced larger than 64 MiB: refused before the body is read.
  const huge = await announced(c.httpPort, '/api/v1/sboms?image=debian@' + D('2'), MAX_SBOM_BYTES + 1);
  t.is(huge.status, 413);
  t.is(huge.connection, 'close');
  // 2 MiB is fine for an SBOM and over the API's 1 MiB bound elsewhere.
  const padded = JSON.stringify({ spdxVersion: 'SPDX-2.3', packages: [{ SPDXID: 'p', name: 'x', description: 'y'.repeat(2 << 20) }] });
  t.is((await post(padded)).status, 201);
  t.is((await announced(c.httpPort, '/api/v1/baselines/import', 2 << 20)).status, 413);
  t.is((await http(c.httpPort, 'GET', `/api/v1/sboms/${D('2')}`)).json.packageCount, 1, 'the refused documents stored nothing');
});

/** A POST that announces `length` bytes and sends a few: the status of the answer. */
function announced(port: number, path: string, length: number): Promise<{ status: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path, headers: { 'content-type': 'application/json', 'content-length': String(length) } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
    });
    req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' || (err as NodeJS.ErrnoException).code === 'EPIPE' ? undefined : reject(err)));
    req.write('{"spdxVersion": "SPDX-2.3"');
  });
}

test('a new image version whose SBOM drops and adds packages the baseline uses: a notice for the reviewer and an audit record', async (t) => {
  const c = await withCollector(t);
  const proc = (exe: string): Entry => ({ type: 'process', exe, parent: 'sh', user: 'root', args: '' });
  const entries = ['/usr/bin/curl', '/usr/bin/bash', '/usr/bin/wget', '/usr/local/bin/app'].map((exe, i) => statsOf(proc(exe), 'node-1', { firstSeen: 1, lastSeen: 2 + i, count: 3, examples: [] }));
  const images = [
    { repository: DEBIAN, tag: '12.7', digest: D('1') },
    { repository: DEBIAN, tag: '12.8', digest: D('2') },
  ];
  const { error } = await converse(c.grpcPort, 'node-1', [{ batch: { batchId: 1, deviations: [], baselines: [snapshotToWire(deltaOf(DEBIAN, entries, { images }))] } }], 1);
  t.is(error, null);
  t.is((await http(c.httpPort, 'POST', `/api/v1/sboms?image=debian@${D('1')}`, bookworm)).status, 201);
  // The next version: curl dropped, bash upgraded, wget now from busybox, the app packaged.
  const next = debianSpdx([
    { name: 'bash', version: '5.2.15-2+b8', files: ['/bin/bash'] },
    { name: 'busybox', version: '1:1.35.0-4+b3', files: ['/usr/bin/wget'] },
    { name: 'app', version: '2.0', files: ['/usr/local/bin/app'] },
  ]);
  const imported = await http(c.httpPort, 'POST', `/api/v1/sboms?image=debian@${D('2')}`, next);
  t.is(imported.status, 201);
  t.is(imported.json.notices.length, 1);
  const notice = imported.json.notices[0];
  t.like(notice, { key: DEBIAN, from: D('1'), to: D('2'), addsOrDrops: true });
  t.deepEqual(notice.changes.map((x: any) => `${x.exe} ${x.change} ${x.before?.name ?? '-'}→${x.after?.name ?? '-'}`).sort(), [
    '/usr/bin/bash upgraded bash→bash',
    '/usr/bin/curl dropped curl→-',
    '/usr/bin/wget replaced wget→busybox',
    '/usr/local/bin/app added -→app',
  ]);
  t.regex(notice.text, /1 added, 1 dropped, 1 replaced, 1 upgraded/);
  const joined = (await http(c.httpPort, 'GET', `/api/v1/baselines/${encodeURIComponent(DEBIAN)}/sbom`)).json;
  t.like(joined.sbom, { digest: D('2'), basis: 'digest' });
  t.deepEqual(joined.versions.map((v: any) => [v.tag, v.sbom]), [['12.7', true], ['12.8', true]]);
  t.deepEqual(joined.entries.map((e: any) => e.text).sort(), ['/usr/bin/bash, package bash 5.2.15-2+b8', "/usr/bin/curl, not in the image's SBOM", '/usr/bin/wget, package busybox 1:1.35.0-4+b3', '/usr/local/bin/app, package app 2.0']);
  t.deepEqual(joined.notice.changes, notice.changes);
  // The export carries the packages as comments, and reads back as the same document.
  const exported = await http(c.httpPort, 'GET', `/api/v1/baselines/${encodeURIComponent(DEBIAN)}/export`);
  t.is(exported.status, 200);
  t.regex(exported.json, /\n# SBOM sha256:2{64} \(syft-1\.18\.1\)\n/);
  t.regex(exported.json, /\n# \/usr\/bin\/wget, package busybox 1:1\.35\.0-4\+b3\n/);
  t.regex(exported.json, /\n# image version sha256:2{64} changes the packages/);
  const reimport = await http(c.httpPort, 'POST', '/api/v1/baselines/import', exported.json, { 'content-type': 'application/yaml' });
  t.is(reimport.status, 200, JSON.stringify(reimport.json));
  const audit = (await http(c.httpPort, 'GET', '/api/v1/audit')).json.items;
  const record = audit.find((x: any) => x.action === 'sbom.version-change');
  t.truthy(record);
  t.is(record.target, DEBIAN);
});
