/**
 * `driftwatch baselines` against a local HTTP server that answers like the collector's baseline
 * routes and records every request: the exact requests (method, path with the key encoded as one
 * segment, body) and what the command prints. The real-collector test comes with the routes.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runBaselines } from '../../cli/baselines.js';
import { toBaselineDocument, toFalcoRules, type BaselineView, type BaselineViewEntry } from '../../core/baseline-doc.js';
import { describeEntry, entryId, type Entry } from '../../core/entry.js';
import { startRecorder, type Received, type Reply } from '../helpers/recorder.js';
import { CLI } from '../helpers/processes.js';

const NGINX = 'docker.io/library/nginx';
const NGINX_PATH = '/api/v1/baselines/docker.io%2Flibrary%2Fnginx';

function ve(entry: Entry, status: BaselineViewEntry['status'] = 'learned'): BaselineViewEntry {
  return { ...entry, id: entryId(entry), summary: describeEntry(entry), status, firstSeen: '2026-11-23T08:00:00.000Z', lastSeen: '2026-11-23T09:00:00.000Z', count: 12, nodes: ['node-1', 'node-2'], examples: [] };
}

const SH: Entry = { type: 'process', exe: '/bin/sh', parent: 'nginx', user: 'root', args: '-c <...>' };
const NGINX_EXE: Entry = { type: 'process', exe: '/usr/sbin/nginx', parent: 'containerd-shim', user: 'root', args: '-g daemon off;' };
const EGRESS: Entry = { type: 'network', direction: 'egress', protocol: 'tcp', peer: '203.0.113.50', port: 443 };

function viewOf(key: string, entries: BaselineViewEntry[], state: BaselineView['state'] = 'enforcing'): BaselineView {
  return { key, state, version: 4, windowStart: '2026-11-23T08:00:00.000Z', learnUntil: '2026-11-23T09:00:00.000Z', enforcingSince: '2026-11-23T09:10:00.000Z', images: [{ repository: key, tag: '1.25.3', digest: '' }], nodes: ['node-1', 'node-2'], partial: false, entries };
}

const VIEW = viewOf(NGINX, [ve(NGINX_EXE, 'approved'), ve(SH, 'removed'), ve(EGRESS)]);
const json = (body: unknown, status = 200): Reply => ({ status, body: JSON.stringify(body) });

/** A fake collector: answers from `routes` by "METHOD path", 404 otherwise. */
async function collector(t: ExecutionContext, routes: Record<string, Reply | ((r: Received) => Reply)>) {
  return startRecorder(t, (req) => {
    const route = routes[`${req.method} ${req.path}`];
    if (!route) return json({ error: { code: 'not_found', message: `no ${req.method} ${req.path}` } }, 404);
    return typeof route === 'function' ? route(req) : route;
  });
}

async function run(url: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runBaselines([...args, '--url', url], {}, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const requests = (rec: { received: Received[] }) => rec.received.map((r) => `${r.method} ${r.path}${r.body ? ` ${r.body}` : ''}`);

test('list and show: the key is one encoded path segment; what comes from the wire is printed safely', async (t) => {
  const hostile = ve({ ...SH, exe: '/tmp/\u001b[2J\u001b]0;pwned\u0007x' });
  const rec = await collector(t, {
    'GET /api/v1/baselines': json({
      items: [
        { key: NGINX, state: 'locked', version: 4, processEntries: 10, networkEntries: 3, openAlerts: 2, learnUntil: '2026-11-23T09:00:00.000Z', partial: false },
        { key: '@host', state: 'learning', version: 0, processEntries: 40, networkEntries: 0, openAlerts: 0, learnUntil: null, partial: true },
      ],
    }),
    [`GET ${NGINX_PATH}`]: json({ ...VIEW, entries: [...VIEW.entries, hostile] }),
    'GET /api/v1/baselines/%40host': json(viewOf('@host', [])),
  });
  const list = await run(rec.url, 'list');
  t.is(list.code, 0, list.err);
  t.is(list.out, [
    'KEY                      STATE     VERSION  PROCESSES  NETWORK  OPEN ALERTS  LEARN UNTIL',
    'docker.io/library/nginx  locked    4        10         3        2            2026-11-23T09:00:00.000Z',
    '@host (partial)          learning  0        40         0        0            -',
  ].join('\n'));
  const locked = await run(rec.url, 'list', '--state', 'locked', '--json');
  t.deepEqual(JSON.parse(locked.out).items.map((b: { key: string }) => b.key), [NGINX]);

  const show = await run(rec.url, 'show', NGINX);
  t.is(show.code, 0, show.err);
  t.regex(show.out, /^docker\.io\/library\/nginx {2}enforcing {2}version 4\n/);
  t.regex(show.out, /\n {2}images {5}docker\.io\/library\/nginx:1\.25\.3\n/);
  t.regex(show.out, /\nremoved {3}12 {5}2 {6}2026-11-23T09:00:00\.000Z {2}exec\|\/bin\/sh\|nginx\|root\|-c <\.\.\.>\n/);
  t.false(/[\u0000-\u001f]/.test(show.out.replace(/\n/g, '')), 'no control character reaches the terminal');
  t.true(show.out.includes('/tmp/\\u001b[2J\\u001b]0;pwned\\u0007x'));
  t.is((await run(rec.url, 'show', '@host')).code, 0);
  // show also asks for the image's SBOM join (none for the host key).
  t.deepEqual(requests(rec), ['GET /api/v1/baselines', 'GET /api/v1/baselines', `GET ${NGINX_PATH}`, `GET ${NGINX_PATH}/sbom`, 'GET /api/v1/baselines/%40host']);
});

test('lock, unlock, relearn, approve, remove and add send the reason; entry ids are encoded and may be abbreviated', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-baselines-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'token'), 'secret-token\n');
  const state = (s: string) => json({ ...VIEW, state: s, version: 5 });
  const shId = encodeURIComponent(entryId(SH));
  const rec = await collector(t, {
    [`POST ${NGINX_PATH}/lock`]: state('locked'),
    [`POST ${NGINX_PATH}/unlock`]: state('enforcing'),
    [`POST ${NGINX_PATH}/relearn`]: state('learning'),
    [`GET ${NGINX_PATH}`]: json(VIEW),
    [`POST ${NGINX_PATH}/entries/${shId}/approve`]: json({ key: NGINX, version: 6 }),
    [`POST ${NGINX_PATH}/entries/${encodeURIComponent(entryId(EGRESS))}/remove`]: json({ key: NGINX, version: 7 }),
    [`POST ${NGINX_PATH}/entries`]: json({ key: NGINX, version: 8 }),
  });
  const lock = await runBaselines(['lock', NGINX, '--server', rec.url, '--reason', 'reviewed by sec', '--token-file', join(dir, 'token')], {}, { out: (s) => t.is(s, 'docker.io/library/nginx is now locked (version 5)'), err: t.log });
  t.is(lock, 0);
  t.is(rec.received[0]?.headers.authorization, 'Bearer secret-token');
  t.is(rec.received[0]?.headers['content-type'], 'application/json');
  t.is((await run(rec.url, 'unlock', NGINX, '--comment', 'changing')).out, 'docker.io/library/nginx is now enforcing (version 5)');
  t.is((await run(rec.url, 'relearn', NGINX)).code, 0);

  // A prefix of the id is looked up among the baseline's entries; a full id is used as is.
  const approve = await run(rec.url, 'approve', NGINX, 'exec|/bin/sh|', '--reason', 'entrypoint');
  t.is(approve.code, 0, approve.err);
  t.is(approve.out, 'approved exec|/bin/sh|nginx|root|-c <...> in docker.io/library/nginx (version 6)');
  t.is((await run(rec.url, 'remove', NGINX, entryId(EGRESS))).code, 0);
  const add = await run(rec.url, 'add', NGINX, 'exec|/usr/bin/curl|sh|root|-s <...>', '--reason', 'health check');
  t.is(add.code, 0, add.err);
  t.deepEqual(requests(rec), [
    `POST ${NGINX_PATH}/lock {"reason":"reviewed by sec"}`,
    `POST ${NGINX_PATH}/unlock {"reason":"changing"}`,
    `POST ${NGINX_PATH}/relearn {"reason":""}`,
    `GET ${NGINX_PATH}`,
    `POST ${NGINX_PATH}/entries/exec%7C%2Fbin%2Fsh%7Cnginx%7Croot%7C-c%20%3C...%3E/approve {"reason":"entrypoint"}`,
    `POST ${NGINX_PATH}/entries/egress%7Ctcp%7C203.0.113.50%7C443/remove {"reason":""}`,
    `POST ${NGINX_PATH}/entries {"entry":{"type":"process","exe":"/usr/bin/curl","parent":"sh","user":"root","args":"-s <...>"},"reason":"health check"}`,
  ]);

  const ambiguous = await run(rec.url, 'approve', NGINX, 'e');
  t.is(ambiguous.code, 1);
  t.regex(ambiguous.err, /e is the start of 3 entries; give more of the id/);
  const bad = await run(rec.url, 'add', NGINX, 'not an id');
  t.is(bad.code, 2);
  t.regex(bad.err, /is not an entry id/);
  const refused = await run(rec.url, 'lock', 'docker.io/library/redis');
  t.is(refused.code, 1);
  t.regex(refused.err, /the collector answered 404: no POST \/api\/v1\/baselines\/docker\.io%2Flibrary%2Fredis\/lock/);
});

test('diff asks for the versions given and prints what was added and removed', async (t) => {
  const rec = await collector(t, {
    [`GET ${NGINX_PATH}/diff?from=3&to=5`]: json({ from: 3, to: 5, added: [{ ...EGRESS, id: entryId(EGRESS), summary: describeEntry(EGRESS) }], removed: [{ ...SH, id: entryId(SH), summary: describeEntry(SH) }] }),
    [`GET ${NGINX_PATH}/diff`]: json({ from: 4, to: 5, added: [], removed: [] }),
  });
  const d = await run(rec.url, 'diff', NGINX, '--from', '3', '--to', '5');
  t.is(d.code, 0, d.err);
  t.is(d.out, ['docker.io/library/nginx: version 3 → 5', '+ egress tcp 203.0.113.50:443    egress|tcp|203.0.113.50|443', '- /bin/sh -c <...> (parent nginx, root)    exec|/bin/sh|nginx|root|-c <...>'].join('\n'));
  t.is((await run(rec.url, 'diff', NGINX)).out, 'docker.io/library/nginx: version 4 → 5\nno change in entries');
  const bad = await run(rec.url, 'diff', NGINX, '--from', '3;DROP');
  t.is(bad.code, 2);
  t.deepEqual(requests(rec), [`GET ${NGINX_PATH}/diff?from=3&to=5`, `GET ${NGINX_PATH}/diff`]);
});

test('export writes the collector\'s document; a Baseline export is checked before it reaches Git', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-export-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const yaml = toBaselineDocument(VIEW);
  const falco = toFalcoRules(VIEW);
  const rec = await collector(t, {
    [`GET ${NGINX_PATH}/export?format=yaml`]: { status: 200, headers: { 'content-type': 'application/yaml' }, body: yaml },
    [`GET ${NGINX_PATH}/export?format=falco`]: { status: 200, headers: { 'content-type': 'application/yaml' }, body: falco },
    [`GET ${NGINX_PATH}/export?format=networkpolicy&selector=app%3Dweb%2Ctier%3Dfront`]: { status: 200, headers: { 'content-type': 'application/yaml' }, body: 'kind: NetworkPolicy\n' },
    'GET /api/v1/baselines/docker.io%2Flibrary%2Fbroken/export?format=yaml': { status: 200, body: 'apiVersion: driftwatch.dev/v1alpha1\nkind: Baseline\nspec: {}\n' },
  });
  const out = join(dir, 'nginx.yaml');
  const e = await run(rec.url, 'export', NGINX, '--out', out);
  t.is(e.code, 0, e.err);
  t.is(readFileSync(out, 'utf8'), yaml);
  t.is(e.err, `wrote ${out}`);
  t.is((await run(rec.url, 'export', NGINX, '--format', 'falco')).out, falco.replace(/\n$/, ''));
  t.is((await run(rec.url, 'export', NGINX, '--format', 'networkpolicy', '--selector', 'app=web,tier=front')).out, 'kind: NetworkPolicy');

  const broken = await run(rec.url, 'export', 'docker.io/library/broken', '--out', join(dir, 'broken.yaml'));
  t.is(broken.code, 1);
  t.regex(broken.err, /not a valid Baseline document: metadata: /);
  t.false(existsSync(join(dir, 'broken.yaml')));
  for (const args of [['--format', 'networkpolicy'], ['--format', 'html'], ['--format', 'networkpolicy', '--selector', 'app']]) {
    const usage = await run(rec.url, 'export', NGINX, ...args);
    t.is(usage.code, 2, args.join(' '));
  }
  t.is(rec.received.length, 4, 'usage errors send nothing');
});

test('import applies every *.yaml of a folder, checks them all first, and --dry-run shows the plan', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-import-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const nginx = toBaselineDocument({ ...VIEW, state: 'locked', entries: [ve(NGINX_EXE), ve(SH, 'removed'), ve({ ...EGRESS, port: 8443 })] });
  const redis = toBaselineDocument(viewOf('docker.io/library/redis', [ve({ type: 'process', exe: '/usr/local/bin/redis-server', parent: 'containerd-shim', user: 'system', args: '*:<num>' })]));
  writeFileSync(join(dir, 'b-redis.yaml'), redis);
  writeFileSync(join(dir, 'a-nginx.yaml'), nginx);
  writeFileSync(join(dir, 'README.md'), '# not a baseline');
  mkdirSync(join(dir, 'old'));
  writeFileSync(join(dir, 'old', 'x.yaml'), 'not: read');
  const rec = await collector(t, {
    'POST /api/v1/baselines/import': (r) =>
      json({ applied: [{ key: r.body.includes('redis') ? 'docker.io/library/redis' : NGINX, version: 9, added: 1, removed: 0, state: r.body.includes('redis') ? 'enforcing' : 'locked' }] }),
    [`GET ${NGINX_PATH}`]: json(VIEW),
  });

  const dry = await run(rec.url, 'import', dir, '--dry-run');
  t.is(dry.code, 0, dry.err);
  t.is(dry.out, [
    'docker.io/library/nginx  (a-nginx.yaml)  enforcing → locked: +1 -0, 1 on the collector not in the document',
    '  + egress tcp 203.0.113.50:8443',
    'docker.io/library/redis  (b-redis.yaml)  new, enforcing: +1 -0',
    '  + /usr/local/bin/redis-server *:<num> (parent containerd-shim, system)',
    'dry run: nothing was changed',
  ].join('\n'));
  t.deepEqual(requests(rec), [`GET ${NGINX_PATH}`, 'GET /api/v1/baselines/docker.io%2Flibrary%2Fredis']);

  const applied = await run(rec.url, 'import', dir);
  t.is(applied.code, 0, applied.err);
  const posts = rec.received.filter((r) => r.method === 'POST');
  t.deepEqual(posts.map((r) => [r.path, r.headers['content-type'], r.body]), [
    ['/api/v1/baselines/import', 'application/yaml', nginx],
    ['/api/v1/baselines/import', 'application/yaml', redis],
  ]);
  t.is(applied.out, ['KEY                      STATE      VERSION  ADDED  REMOVED', 'docker.io/library/nginx  locked     9        1      0', 'docker.io/library/redis  enforcing  9        1      0'].join('\n'));

  // One bad file: nothing is sent, the error names the file and the field.
  writeFileSync(join(dir, 'c-bad.yaml'), redis.replace('docker.io/library/redis', 'docker.io/library/memcached').replace('user: system', 'user: wheel'));
  const before = rec.received.length;
  const bad = await run(rec.url, 'import', dir);
  t.is(bad.code, 1);
  t.regex(bad.err, /c-bad\.yaml: spec\.processes\.0\.user: /);
  writeFileSync(join(dir, 'c-bad.yaml'), redis);
  const twice = await run(rec.url, 'import', dir);
  t.is(twice.code, 1);
  t.regex(twice.err, /c-bad\.yaml: docker\.io\/library\/redis is also in .*b-redis\.yaml/);
  t.is(rec.received.length, before);
  t.is((await run(rec.url, 'import', join(dir, 'missing'))).code, 1);
});

test('the driftwatch CLI runs the baselines command; bad usage exits 2', async (t) => {
  const rec = await collector(t, { [`POST ${NGINX_PATH}/lock`]: json({ ...VIEW, state: 'locked', version: 5 }) });
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'baselines', 'lock', NGINX, '--server', rec.url, '--reason', 'ok'], { timeout: 20_000 });
  t.is(stdout, 'docker.io/library/nginx is now locked (version 5)\n');
  const usage = await run(rec.url, 'explode', NGINX);
  t.is(usage.code, 2);
  t.regex(usage.err, /one of: list, show, diff, lock/);
});
