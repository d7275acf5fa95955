/**
 * The image inventory (issue 21): which image repositories run or ran, each version (tag and digest)
 * with where it runs now and where it was seen, its owning team (alerting.owners) and, from its
 * baselines, their state and open alerts; and the running set for scanners, as JSON or CSV.
 */
import { z } from 'zod';
import type { BaselineSummary, ImageDetail, ImagePlace, ImageSummary, ImageVersion, RunningImage } from '../../store/store.js';
import { ApiError } from '../errors.js';
import { route, type Route, type RouteDeps } from '../route.js';
import { namespaceName, query, queryCursor, queryLimit, queryOneOf, queryText } from '../schemas.js';
import { iso } from '../views.js';

/** Most versions one export lists. */
const MAX_EXPORT = 50_000;

/** `seenSince`: an RFC 3339 time. */
const querySince = z
  .string()
  .max(64)
  .refine((s) => /^\d{4}-\d{2}-\d{2}T/.test(s) && Number.isFinite(Date.parse(s)), 'must be an RFC 3339 time (2026-12-01T00:00:00Z)')
  .transform((s) => Date.parse(s))
  .optional();

/** `running`: true or false. */
const queryBool = queryOneOf(['true', 'false']).transform((v) => (v === undefined ? undefined : v === 'true'));

function inventoryOf(deps: RouteDeps): NonNullable<RouteDeps['images']> {
  return deps.images ?? { staleAfterMs: 180_000, ownerOf: () => '' };
}

/** The baselines of a repository: keyed by it (the default), or by its tags or digests (baselineKey tag|digest). */
function baselinesOf(repository: string, baselines: readonly BaselineSummary[]) {
  const mine = baselines.filter((b) => b.key === repository || b.key.startsWith(`${repository}:`) || b.key.startsWith(`${repository}@`));
  return {
    baselines: mine.map((b) => ({ key: b.key, state: b.state, openAlerts: b.openAlerts })),
    openAlerts: mine.reduce((n, b) => n + b.openAlerts, 0),
  };
}

const placeView = (p: ImagePlace) => ({ node: p.node, namespace: p.namespace, workload: p.workload, pod: p.pod, firstSeen: iso(p.firstSeen), lastSeen: iso(p.lastSeen) });

function versionView(v: Omit<ImageVersion, 'runningIn' | 'seenIn'> & Partial<Pick<ImageVersion, 'runningIn' | 'seenIn'>>) {
  return {
    tag: v.tag,
    digest: v.digest,
    running: v.running,
    containers: v.containers,
    firstSeen: iso(v.firstSeen),
    lastSeen: iso(v.lastSeen),
    ...(v.runningIn ? { runningIn: v.runningIn.map(placeView) } : {}),
    ...(v.seenIn ? { seenIn: v.seenIn.map(placeView) } : {}),
  };
}

function imageView(i: ImageSummary | ImageDetail, deps: RouteDeps, baselines: readonly BaselineSummary[]) {
  return {
    repository: i.repository,
    running: i.running,
    containers: i.containers,
    firstSeen: iso(i.firstSeen),
    lastSeen: iso(i.lastSeen),
    namespaces: i.namespaces,
    owner: inventoryOf(deps).ownerOf(i.repository, i.namespaces[0] ?? ''),
    ...baselinesOf(i.repository, baselines),
    versions: i.versions.map(versionView),
    // The list is cut at MAX_VERSIONS_READ (running ones first, then the last seen): say so.
    versionCount: i.versionCount,
    versionsTruncated: i.versionsTruncated,
  };
}

/**
 * A CSV cell: quoted (RFC 4180), and a text a spreadsheet would take for a formula (=, +, -, @, and
 * tab or carriage return before one) starts with a single quote.
 */
export function csvCell(value: string | number): string {
  let s = String(value);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n']/.test(s) || s !== String(value) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** The running set as CSV, one version a line. */
export function runningCsv(set: readonly RunningImage[]): string {
  const lines = [['repository', 'tag', 'digest', 'image', 'containers', 'namespaces', 'nodes'].join(',')];
  for (const r of set) lines.push([r.repository, r.tag, r.digest, imageReference(r), r.containers, r.namespaces.join(' '), r.nodes.join(' ')].map(csvCell).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

/** `repository@digest` when the digest is known (what a scanner pulls), else `repository:tag`. */
function imageReference(r: Pick<RunningImage, 'repository' | 'tag' | 'digest'>): string {
  return r.digest !== '' ? `${r.repository}@${r.digest}` : r.tag !== '' ? `${r.repository}:${r.tag}` : r.repository;
}

/** The image routes. */
export const imageRoutes: readonly Route[] = [
  route({
    method: 'GET',
    path: '/api/v1/images',
    role: 'viewer',
    query: query({
      limit: queryLimit,
      cursor: queryCursor,
      namespace: namespaceName.optional(),
      prefix: queryText(256),
      running: queryBool,
      seenSince: querySince,
    }),
    async handle({ query: q, deps }) {
      const { staleAfterMs } = inventoryOf(deps);
      const page = await deps.store.listImages({ ...q, now: deps.now(), staleAfterMs });
      const baselines = await deps.store.listBaselines();
      return { json: { items: page.items.map((i) => imageView(i, deps, baselines)), next: page.next } };
    },
  }),
  route({
    method: 'GET',
    path: '/api/v1/images/export',
    role: 'viewer',
    query: query({ format: queryOneOf(['json', 'csv']) }),
    async handle({ query: q, deps }) {
      const set = await deps.store.runningImages({ now: deps.now(), staleAfterMs: inventoryOf(deps).staleAfterMs, limit: MAX_EXPORT });
      const stamp = new Date(deps.now()).toISOString().slice(0, 10);
      if (q.format === 'csv') {
        return { text: runningCsv(set), headers: { 'content-type': 'text/csv; charset=utf-8', 'content-disposition': `attachment; filename="driftwatch-images-${stamp}.csv"`, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' } };
      }
      return { json: { generatedAt: iso(deps.now()), items: set.map((r) => ({ ...r, image: imageReference(r) })) } };
    },
  }),
  route({
    method: 'GET',
    path: '/api/v1/images/{repository}',
    role: 'viewer',
    async handle({ params, deps }) {
      const repository = params.repository as string;
      if (repository.length > 256) throw new ApiError(400, 'invalid_parameter', 'repository longer than 256 characters');
      const image = await deps.store.getImage(repository, { now: deps.now(), staleAfterMs: inventoryOf(deps).staleAfterMs });
      if (!image) throw new ApiError(404, 'not_found', `no image ${JSON.stringify(repository.slice(0, 256))} was seen`);
      return { json: imageView(image, deps, await deps.store.listBaselines()) };
    },
  }),
];
