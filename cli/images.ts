/**
 * `driftwatch images ...`: the image inventory of a collector (what runs, which versions, where),
 * the running set for scanners, and one question answered directly: is this version gone?
 * Thin client of the collector's HTTP API; tables for people, `--json` for scripts.
 * Exit codes: 0 done, 1 the collector refused or failed, 2 bad usage; `images gone`: 0 gone, 1 still
 * running (or ran since --since), 2 on usage or any error (a CI step must not pass on a failure),
 * 3 never seen (a typo in the name must not pass either, unless --allow-unseen).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { canonicalRepository } from '../core/event.js';
import { parseDuration } from '../core/duration.js';
import { CLIENT_OPTIONS as COMMON, UsageError, clip, createApiClient, printable, query, table } from './api-client.js';

/** Help of `driftwatch images`. */
export const IMAGES_HELP = `driftwatch images — what runs in the cluster, by image, from the agents' container reports
  driftwatch images list [--namespace NS] [--prefix P] [--running true|false] [--since TIME] [--limit N]
                                                  repositories with their versions, where and since when
  driftwatch images show REPOSITORY               each version (tag, digest): running now where
                                                  (node, namespace, pod), and where it was seen
  driftwatch images gone REPOSITORY --tag T | --digest D [--since TIME] [--allow-unseen]
                                                  is a version that ran gone? exit codes:
                                                    0 gone: seen, and no container of it runs now
                                                      (with --since, none ran since TIME either)
                                                    1 still runs (or ran since TIME), listing where
                                                    2 bad usage or any error
                                                    3 never seen by this collector (a typo?); 0
                                                      with --allow-unseen
  driftwatch images export [--format json|csv] [--output FILE]
                                                  the running set with digests, for scanners
TIME is RFC 3339 (2026-12-01T00:00:00Z) or a duration ago (24h, 7d). REPOSITORY as in the pod spec
(nginx is docker.io/library/nginx).
Common flags: --url, --token-file, --json (see driftwatch alerts --help)`;

/** Exit codes of `images gone`. */
const GONE = 0;
const STILL_THERE = 1;
const ERROR = 2;
const NEVER_SEEN = 3;

const s = (v: unknown) => printable(String(v ?? ''));
const imagePath = (repository: string) => `/api/v1/images/${encodeURIComponent(canonicalRepository(repository))}`;

/** `--since`: an RFC 3339 time, or a duration before now. */
export function parseSince(text: string, now: number): number {
  if (/^\d{4}-\d{2}-\d{2}T/.test(text)) {
    const t = Date.parse(text);
    if (Number.isFinite(t)) return t;
  } else {
    try {
      return now - parseDuration(text);
    } catch {
      // said below
    }
  }
  throw new UsageError(`--since must be an RFC 3339 time or a duration ago (24h, 7d), not ${JSON.stringify(text.slice(0, 40))}`);
}

const place = (p: any) => `${s(p.namespace) || '-'}/${s(p.pod) || '-'} on ${s(p.node)}${p.workload ? ` (${s(p.workload)})` : ''}`;
const version = (v: any) => `${s(v.tag) || '-'}${v.digest ? `@${clip(s(v.digest), 19)}` : ''}`;

/** Which versions of an image the flags name. */
function matching(versions: any[], tag: string | undefined, digest: string | undefined): any[] {
  return versions.filter((v) => (tag === undefined || v.tag === tag) && (digest === undefined || v.digest === digest));
}

async function gone(api: ReturnType<typeof createApiClient>, repository: string, values: Record<string, any>, out: (t: string) => void, now: number): Promise<number> {
  const tag = values.tag as string | undefined;
  const digest = values.digest as string | undefined;
  if (tag === undefined && digest === undefined) throw new UsageError('gone needs --tag T or --digest D');
  const since = values.since === undefined ? null : parseSince(values.since, now);
  const what = `${canonicalRepository(repository)}${tag !== undefined ? `:${tag}` : ''}${digest !== undefined ? `@${digest}` : ''}`;
  let image: any;
  try {
    image = await api.call('GET', imagePath(repository));
  } catch (err) {
    if (!/answered 404/.test((err as Error).message)) throw err;
    image = { versions: [] };
  }
  const versions = matching(Array.isArray(image.versions) ? image.versions : [], tag, digest);
  // Gone means seen and no longer running: a name the collector never saw is most often a typo, which must not pass a CI gate.
  // A cut list (more versions than the collector reads at once) may hold the version unlisted: no answer beats a wrong one.
  if (versions.length === 0 && image.versionsTruncated === true) {
    throw new Error(`${s(what)} is not among the ${image.versions.length} versions listed of ${Number(image.versionCount) || 0}: the collector cannot tell whether it was seen`);
  }
  if (versions.length === 0) return neverSeen(what, values, out);
  const runningIn = versions.flatMap((v) => (Array.isArray(v.runningIn) ? v.runningIn : []));
  const ranIn = since === null ? [] : versions.flatMap((v) => (Array.isArray(v.seenIn) ? v.seenIn : [])).filter((p) => Date.parse(p.lastSeen) >= since);
  const lastSeen = Math.max(0, ...versions.map((v) => Date.parse(v.lastSeen) || 0));
  const still = runningIn.length > 0 || (since !== null && lastSeen >= since);
  if (values.json) {
    out(JSON.stringify({ image: what, seen: true, gone: !still, since: since === null ? null : new Date(since).toISOString(), lastSeen: lastSeen > 0 ? new Date(lastSeen).toISOString() : null, runningIn, ranIn }, null, 2));
    return still ? STILL_THERE : GONE;
  }
  if (!still) {
    out(`${s(what)} is gone: no container of it runs${since === null ? '' : ` or ran since ${new Date(since).toISOString()}`} (last seen ${new Date(lastSeen).toISOString()})`);
    return GONE;
  }
  out(`${s(what)} is not gone${runningIn.length > 0 ? `: it runs in ${runningIn.length} place(s)` : `: it ran since ${new Date(since as number).toISOString()} (last seen ${new Date(lastSeen).toISOString()})`}`);
  const rows = [['WHERE', 'STATE', 'LAST SEEN']];
  for (const p of runningIn) rows.push([place(p), 'running', s(p.lastSeen)]);
  for (const p of ranIn) if (!runningIn.some((r: any) => r.node === p.node && r.namespace === p.namespace && r.pod === p.pod)) rows.push([place(p), 'ran', s(p.lastSeen)]);
  if (rows.length > 1) out(table(rows));
  return STILL_THERE;
}

/** A version the collector has no record of: exit 3, or 0 when the caller allows it (--allow-unseen). */
function neverSeen(what: string, values: Record<string, any>, out: (t: string) => void): number {
  const allowed = values['allow-unseen'] === true;
  const message = `${s(what)} was never seen by this collector: check the name; gone only means seen and no longer running`;
  if (values.json) out(JSON.stringify({ image: what, seen: false, gone: allowed, message }, null, 2));
  else out(allowed ? `${message} (--allow-unseen: passing)` : message);
  return allowed ? GONE : NEVER_SEEN;
}

async function images(args: string[], env: NodeJS.ProcessEnv, out: (t: string) => void, now: number): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      ...COMMON,
      namespace: { type: 'string' },
      prefix: { type: 'string' },
      running: { type: 'string' },
      since: { type: 'string' },
      limit: { type: 'string' },
      tag: { type: 'string' },
      digest: { type: 'string' },
      format: { type: 'string' },
      output: { type: 'string', short: 'o' },
      'allow-unseen': { type: 'boolean' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return out(IMAGES_HELP), 0;
  const [verb, repository, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected ${extra.join(' ')}`);
  const api = createApiClient(values, env);
  const json = (v: unknown) => (out(JSON.stringify(v, null, 2)), 0);
  if (verb === 'list' || verb === undefined) {
    if (repository !== undefined) throw new UsageError('list takes no REPOSITORY (use --prefix)');
    if (values.running !== undefined && values.running !== 'true' && values.running !== 'false') throw new UsageError('--running is true or false');
    const q = query({ ...values, seenSince: values.since === undefined ? undefined : new Date(parseSince(values.since, now)).toISOString() }, ['namespace', 'prefix', 'running', 'seenSince', 'limit']);
    const list = await api.call('GET', `/api/v1/images${q}`);
    if (values.json) return json(list);
    if (list.items.length === 0) return out('no images'), 0;
    const rows = [['REPOSITORY', 'RUNNING', 'VERSIONS', 'NAMESPACES', 'OWNER', 'LAST SEEN']];
    for (const i of list.items) {
      const versions = (i.versions as any[]).map((v) => `${version(v)}${v.running ? `×${v.containers}` : ''}`);
      rows.push([clip(s(i.repository), 60), i.running ? `${i.containers}` : 'no', clip(versions.join(' '), 60), clip((i.namespaces as string[]).map(s).join(','), 30) || '-', s(i.owner) || '-', s(i.lastSeen)]);
    }
    out(table(rows));
    if (list.items.some((i: any) => i.versionsTruncated)) out('some repositories have more versions than listed: driftwatch images show REPOSITORY --json gives versionCount');
    if (list.next) out(`more: --limit, or the API with cursor=${s(list.next)}`);
    return 0;
  }
  if (verb === 'show') {
    if (repository === undefined) throw new UsageError('show needs a REPOSITORY');
    const i = await api.call('GET', imagePath(repository));
    if (values.json) return json(i);
    out(`${s(i.repository)}  ${i.running ? `running: ${i.containers} container(s)` : 'not running'}  owner ${s(i.owner) || '-'}  first seen ${s(i.firstSeen)}  last seen ${s(i.lastSeen)}`);
    for (const b of i.baselines ?? []) out(`baseline ${s(b.key)}: ${s(b.state)}, ${Number(b.openAlerts) || 0} open alert(s)`);
    for (const v of i.versions) {
      out(`\n  ${version(v)}  ${v.running ? `running (${v.containers})` : 'not running'}  ${s(v.firstSeen)} .. ${s(v.lastSeen)}${v.digest ? `\n  digest ${s(v.digest)}` : ''}`);
      const rows = [['  WHERE', 'STATE', 'LAST SEEN']];
      for (const p of v.runningIn ?? []) rows.push([`  ${place(p)}`, 'running', s(p.lastSeen)]);
      for (const p of v.seenIn ?? []) if (!(v.runningIn ?? []).some((r: any) => r.node === p.node && r.pod === p.pod && r.namespace === p.namespace)) rows.push([`  ${place(p)}`, 'seen', s(p.lastSeen)]);
      if (rows.length > 1) out(table(rows));
    }
    if (i.versionsTruncated) out(`\n  ${i.versions.length} of ${Number(i.versionCount) || 0} versions shown (those running, then the last seen)`);
    return 0;
  }
  if (verb === 'gone') {
    if (repository === undefined) throw new UsageError('gone needs a REPOSITORY');
    return gone(api, repository, values, out, now);
  }
  if (verb === 'export') {
    if (repository !== undefined) throw new UsageError('export takes no REPOSITORY');
    const format = values.format ?? 'json';
    if (format !== 'json' && format !== 'csv') throw new UsageError('--format is json or csv');
    const r = await api.raw('GET', `/api/v1/images/export?format=${format}`);
    if (values.output !== undefined) {
      writeFileSync(values.output, r.text);
      return 0;
    }
    return out(r.text.trimEnd()), 0;
  }
  throw new UsageError(`unknown images command ${JSON.stringify(verb.slice(0, 40))}; one of: list, show, gone, export`);
}

/** Run `driftwatch images ARGS`. */
export async function runImages(args: string[], env: NodeJS.ProcessEnv = process.env, io = { out: (t: string) => console.log(t), err: (t: string) => console.error(t) }, now = Date.now()): Promise<number> {
  const isGone = args.find((a) => !a.startsWith('-')) === 'gone';
  try {
    return await images(args, env, io.out, now);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`driftwatch images: ${(err as Error).message}\n\n${IMAGES_HELP}`);
      return ERROR;
    }
    io.err(`driftwatch images: ${(err as Error).message}`);
    return isGone ? ERROR : 1;
  }
}
