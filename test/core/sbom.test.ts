/**
 * SBOM documents syft, trivy and the specifications' authors really wrote (fixtures/sbom/, each
 * cited in its README), read by core/sbom/parse.ts. Counts are checked against an independent walk
 * of the same JSON in the test (a plain traversal, not the parser), and known entries by name.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MAX_COMPONENT_DEPTH, MAX_SBOM_PACKAGES, normalizeSbomPath, parseSbom, SbomError, type ParsedSbom } from '../../core/sbom/parse.js';
import { describeLink, linkExecutable, ownerChanges, pathCandidates, addsOrDrops, type SbomLink } from '../../core/sbom/link.js';
import type { SbomPackage } from '../../core/sbom/parse.js';

const fixture = (name: string) => readFileSync(fileURLToPath(new URL(`../../../fixtures/sbom/${name}`, import.meta.url)), 'utf8');
type J = Record<string, any>;

/** Every CycloneDX component, nested ones included (the independent walk). */
function allComponents(list: J[] = []): J[] {
  return list.flatMap((c) => [c, ...allComponents(c.components)]);
}

function ownerOf(s: ParsedSbom, path: string): SbomPackage | null | undefined {
  const i = s.files.get(path);
  return i === undefined ? undefined : i === -1 ? null : s.packages[i];
}

test('trivy CycloneDX 1.6 of a Debian 10 image (fluentd): every library a package, gem paths owned', (t) => {
  const text = fixture('trivy-fluentd-debian-10.cdx.json');
  const doc = JSON.parse(text) as J;
  const s = parseSbom(text);
  const libs = allComponents(doc.components).filter((c) => c.type === 'library');
  const paths = new Set(libs.flatMap((c) => (c.properties ?? []).filter((p: J) => p.name === 'aquasecurity:trivy:FilePath').map((p: J) => `/${p.value}`)));
  t.is(s.format, 'cyclonedx');
  t.is(s.specVersion, '1.6');
  t.is(s.tool, 'trivy dev');
  t.is(s.packages.length, libs.length);
  t.is(libs.length, 160);
  t.is(s.files.size, paths.size);
  t.is(paths.size, 55);
  t.false(s.filesListed, 'trivy lists where packages were found, not the image files');
  t.deepEqual(s.packages.find((p) => p.name === 'bash'), { name: 'bash', version: '5.0-4', purl: 'pkg:deb/debian/bash@5.0-4?arch=amd64&distro=debian-10.2', type: 'deb' });
  t.is(ownerOf(s, '/var/lib/gems/2.5.0/specifications/activesupport-6.0.2.1.gemspec')?.name, 'activesupport');
  t.is(s.skipped, 0);
});

test('syft CycloneDX (image encoder snapshot, 1.7): package locations become owned paths; the OS is no package', (t) => {
  const s = parseSbom(fixture('syft-image-encoder.cdx.json'));
  t.is(s.tool, 'syft v0.42.0-bogus');
  t.deepEqual(s.packages.map((p) => `${p.name}@${p.version}:${p.type}`), ['package-1@1.0.1:python', 'package-2@2.0.1:deb']);
  t.is(ownerOf(s, '/somefile-2.txt')?.name, 'package-2');
  t.is(s.files.size, 2);
});

test('syft CycloneDX 1.6 identify fixture and the 1.6 evidence example: tools and occurrences', (t) => {
  const syft = parseSbom(fixture('syft-identify-1.6.cdx.json'));
  t.is(syft.tool, 'syft [not provided]');
  t.is(syft.packages[0]?.type, 'golang');
  t.is(ownerOf(syft, '/go.mod')?.name, 'github.com/wagoodman/go-partybus');
  const spec = parseSbom(fixture('cyclonedx-spec-valid-evidence-1.6.cdx.json'));
  t.is(spec.packages.length, 2);
  t.is(ownerOf(spec, '/path/to/component')?.name, 'findbugs-project');
  t.is(ownerOf(spec, '/another/path/to/component')?.purl, 'pkg:maven/com.google.code.findbugs/findbugs-project@3.0.0');
});

test('syft SPDX 2.2 of alpine 3.10: CONTAINS links /bin/busybox to busybox; dangling file ids are ignored', (t) => {
  const text = fixture('syft-alpine-3.10.spdx.json');
  const doc = JSON.parse(text) as J;
  const s = parseSbom(text);
  t.is(s.format, 'spdx');
  t.is(s.specVersion, 'SPDX-2.2');
  t.is(s.packages.length, doc.packages.length);
  t.is(s.files.size, doc.files.length);
  t.true(s.filesListed);
  t.deepEqual(ownerOf(s, '/bin/busybox'), { name: 'busybox', version: '1.30.1-r5', purl: 'pkg:apk/alpine/busybox@1.30.1-r5?arch=x86_64&distro=alpine-3.10.9', type: 'apk' });
  t.is(ownerOf(s, '/lib/libssl.so.1.1')?.name, 'libssl1.1');
  // The merged-/usr twin is looked up too, and a binary the SBOM does not list is drift evidence.
  const found = new Map([['/bin/busybox', ownerOf(s, '/bin/busybox') ?? null]]);
  t.is(describeLink(linkExecutable('/usr/bin/busybox', found, true)), '/usr/bin/busybox, package busybox 1.30.1-r5');
  t.is(describeLink(linkExecutable('/tmp/x', new Map(), true)), "/tmp/x, not in the image's SBOM");
  t.is(linkExecutable('/tmp/x', new Map(), false).status, 'unknown');
});

test('the SPDX 2.3 example: hasFiles owns, a file that CONTAINS a package owns nothing, ./ paths made absolute', (t) => {
  const text = fixture('spdx-spec-example-v2.3.spdx.json');
  const doc = JSON.parse(text) as J;
  const s = parseSbom(text);
  t.is(s.packages.length, doc.packages.length);
  t.is(s.files.size, doc.files.length);
  t.is(ownerOf(s, '/lib-source/jena-2.6.3-sources.jar')?.name, 'glibc');
  t.is(ownerOf(s, '/src/org/spdx/parser/DOAPProject.java')?.name, 'glibc');
  t.is(ownerOf(s, '/docs/myspec.pdf')?.name, 'glibc');
  t.is(ownerOf(s, '/package/foo.c'), null, 'listed, no package claims it');
  t.is(s.packages.find((p) => p.name === 'Jena')?.type, 'maven');
});

test('trivy SPDX: centos-7 packages without files, conda files owned through CONTAINS', (t) => {
  const centos = parseSbom(fixture('trivy-centos-7.spdx.json'));
  t.is(centos.tool, 'trivy-dev');
  t.is(centos.packages.length, 4);
  t.is(centos.packages.find((p) => p.name === 'openssl-libs')?.version, '1:1.0.2k-19.el7');
  t.false(centos.filesListed);
  const conda = parseSbom(fixture('trivy-conda.spdx.json'));
  t.is(conda.specVersion, 'SPDX-2.3');
  t.is(ownerOf(conda, '/miniconda3/envs/testenv/conda-meta/openssl-1.1.1q-h7f8727e_0.json')?.name, 'openssl');
  t.is(ownerOf(conda, '/miniconda3/envs/testenv/conda-meta/pip-22.2.2-py38h06a4308_0.json')?.version, '22.2.2');
});

test('syft SPDX 2.3 identify fixture', (t) => {
  const s = parseSbom(fixture('syft-identify-2.3.spdx.json'));
  t.is(s.specVersion, 'SPDX-2.3');
  t.is(s.tool, 'syft-0.91.0');
  t.is(s.files.size, 1);
});

const refusals: [string, string, SbomError['code'], RegExp][] = [
  ['not JSON', '{"bomFormat": "CycloneDX",', 'invalid_document', /not valid JSON/],
  ['an array', '[]', 'invalid_document', /not a JSON object/],
  ['another format', '{"artifacts": []}', 'invalid_document', /neither CycloneDX/],
  ['CycloneDX 2.0', '{"bomFormat": "CycloneDX", "specVersion": "2.0"}', 'invalid_document', /specVersion "2.0"/],
  ['SPDX 3', '{"spdxVersion": "SPDX-3.0"}', 'invalid_document', /SPDX-2.2, SPDX-2.3/],
  ['components an object', '{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": {}}', 'invalid_document', /components is not an array/],
  ['files a string', '{"spdxVersion": "SPDX-2.3", "files": "x"}', 'invalid_document', /files is not an array/],
];
for (const [name, text, code, message] of refusals) {
  test(`refused: ${name}`, (t) => {
    const err = t.throws(() => parseSbom(text), { instanceOf: SbomError, message });
    t.is(err?.code, code);
  });
}

test('hostile documents: deep nesting refused, too many packages refused, bad values skipped', (t) => {
  // 100 000 levels, as text (JSON.stringify itself would overflow the stack building it).
  const depth = 100_000;
  const nested = `${'{"type":"library","name":"n","components":['.repeat(depth)}{"type":"library","name":"leaf"}${']}'.repeat(depth)}`;
  t.throws(() => parseSbom(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[${nested}]}`), { message: new RegExp(`deeper than ${MAX_COMPONENT_DEPTH}`) });
  // Nesting anywhere else (an unknown field) is never walked.
  const deepArray = `${'['.repeat(depth)}${']'.repeat(depth)}`;
  t.is(parseSbom(`{"spdxVersion":"SPDX-2.3","x":${deepArray}}`).packages.length, 0);
  const many = Array.from({ length: MAX_SBOM_PACKAGES + 1 }, (_, i) => ({ SPDXID: `p${i}`, name: 'x' }));
  t.throws(() => parseSbom(JSON.stringify({ spdxVersion: 'SPDX-2.3', packages: many })), { instanceOf: SbomError, message: /more than 50000 packages/ });
  const s = parseSbom(
    JSON.stringify({
      bomFormat: 'CycloneDX',
      specVersion: '1.5',
      components: [
        5,
        { type: 'library', name: { x: 1 }, version: 'a'.repeat(600), properties: [{ name: 'syft:location:0:path', value: `/${'a'.repeat(5000)}` }, { name: 'syft:location:1:path', value: '/x/../etc/shadow' }, { name: 'syft:location:2:path', value: '/usr/bin/ok' }] },
        { type: 'file', name: 'https://evil.example/x' },
      ],
    }),
  );
  t.is(s.packages.length, 1);
  t.deepEqual(s.packages[0], { name: '', version: '', purl: '', type: 'library' });
  t.deepEqual([...s.files.keys()], ['/usr/bin/ok']);
  t.is(s.skipped, 6);
});

test('paths: normalized to absolute, odd ones refused', (t) => {
  t.is(normalizeSbomPath('usr/bin/curl'), '/usr/bin/curl');
  t.is(normalizeSbomPath('./usr//bin/./curl'), '/usr/bin/curl');
  t.is(normalizeSbomPath('/a/../b'), null);
  t.is(normalizeSbomPath('/app/x.jar!/BOOT-INF/lib/y.jar'), null);
  t.is(normalizeSbomPath(''), null);
  t.deepEqual(pathCandidates('/bin/sh'), ['/bin/sh', '/usr/bin/sh']);
  t.deepEqual(pathCandidates('/usr/sbin/nginx'), ['/usr/sbin/nginx', '/sbin/nginx']);
  t.deepEqual(pathCandidates('/app/server'), ['/app/server']);
});

test('owner changes between two image versions', (t) => {
  const curl7 = { name: 'curl', version: '7.88.1-10+deb12u8', purl: '', type: 'deb' };
  const curl8 = { ...curl7, version: '8.5.0-2' };
  const bb = { name: 'busybox', version: '1.36', purl: '', type: 'apk' };
  const l = (exe: string, p: SbomPackage | null): SbomLink => ({ exe, status: p ? 'package' : 'not-listed', package: p });
  const before = [l('/usr/bin/curl', curl7), l('/usr/bin/wget', null), l('/bin/sh', bb), l('/app/x', null)];
  const upgrades = ownerChanges(before, [l('/usr/bin/curl', curl8), l('/usr/bin/wget', null), l('/bin/sh', bb), l('/app/x', null)]);
  t.deepEqual(upgrades.map((c) => `${c.exe} ${c.change}`), ['/usr/bin/curl upgraded']);
  t.false(addsOrDrops(upgrades));
  const changes = ownerChanges(before, [l('/usr/bin/curl', null), l('/usr/bin/wget', bb), l('/bin/sh', curl7), l('/app/x', null)]);
  t.deepEqual(changes.map((c) => `${c.exe} ${c.change}`), ['/usr/bin/curl dropped', '/usr/bin/wget added', '/bin/sh replaced']);
  t.true(addsOrDrops(changes));
});

test('a tool name with NUL (PostgreSQL text refuses it) is skipped and counted, as names and paths are', (t) => {
  const cdx = parseSbom(JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.6', metadata: { tools: { components: [{ type: 'application', name: 'tri\0vy', version: '0.50' }] } }, components: [] }));
  t.is(cdx.tool, '0.50');
  t.is(cdx.skipped, 1);
  const old = parseSbom(JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.4', metadata: { tools: [{ vendor: 'x', name: 'syft', version: '1\0' }] }, components: [] }));
  t.is(old.tool, 'syft');
  t.is(old.skipped, 1);
  const spdx = parseSbom(JSON.stringify({ spdxVersion: 'SPDX-2.3', creationInfo: { creators: ['Organization: x', 'Tool: sy\0ft-1.0'] }, packages: [] }));
  t.is(spdx.tool, '');
  t.is(spdx.skipped, 1);
  const long = parseSbom(JSON.stringify({ spdxVersion: 'SPDX-2.3', creationInfo: { creators: [`Tool: ${'a'.repeat(600)}`] }, packages: [] }));
  t.is(long.tool, '');
  t.is(long.skipped, 1);
  for (const s of [cdx, old, spdx, long]) t.false(s.tool.includes('\0'));
});
