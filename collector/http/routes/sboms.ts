/**
 * SBOMs (issue 22): importing one per image digest (a reviewer's act: it decides what alerts and
 * reviews say about packages), reading them, and a baseline joined with its image's SBOMs (the
 * package behind each process entry, and what a new image version changed).
 *
 * An import's body is the document itself (CycloneDX JSON or SPDX JSON, up to MAX_SBOM_BYTES: the
 * route raises the API's body bound for itself only) and the image is `?image=REPO@sha256:…`. The
 * collector parses at most MAX_PARSES documents at once, each in a worker thread with a capped heap
 * (sbom/parse-in-worker.ts), since each parse may hold a few hundred MiB; one more is answered 429.
 */
import { canonicalRepository } from '../../../core/event.js';
import { MAX_SBOM_BYTES, SbomError, type ParsedSbom } from '../../../core/sbom/parse.js';
import { parseSbomInWorker } from '../../sbom/parse-in-worker.js';
import { MAX_NOTICE_KEYS, baselineSbom, repositoryOfKey, versionChangeRecord } from '../../sbom/links.js';
import type { SbomSummary } from '../../store/store.js';
import { ApiError } from '../errors.js';
import { readTextBody } from '../request-body.js';
import { route, type Route, type RouteContext } from '../route.js';
import { query, queryText } from '../schemas.js';
import { iso } from '../views.js';

/** Documents parsed at once (each may hold a few hundred MiB while it is parsed). */
const MAX_PARSES = 2;
const SBOM_TYPES = ['application/json', 'application/vnd.cyclonedx+json', 'application/spdx+json'] as const;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** Documents being parsed, per collector (its route deps). */
const parsing = new WeakMap<object, number>();

/** `REPO@sha256:…` → its canonical repository and digest; throws a 400 naming the parameter. */
export function parseImageRef(image: string): { repository: string; digest: string } {
  const at = image.lastIndexOf('@');
  const repo = at > 0 ? image.slice(0, at) : '';
  const digest = at > 0 ? image.slice(at + 1) : '';
  if (!DIGEST.test(digest) || !/^[a-z0-9][a-z0-9._\-/:]{0,254}$/i.test(repo)) {
    throw new ApiError(400, 'invalid_parameter', 'image must be REPOSITORY@sha256:<64 hex digits> (the digest the SBOM describes, as `crictl images --digests` or `docker inspect` shows it)');
  }
  // A tag in front of the digest (`debian:12@sha256:…`) says nothing the digest does not.
  const colon = repo.lastIndexOf(':');
  const untagged = colon > repo.lastIndexOf('/') ? repo.slice(0, colon) : repo;
  return { repository: canonicalRepository(untagged), digest };
}

function summaryView(s: SbomSummary) {
  return { ...s, importedAt: iso(s.importedAt) };
}

async function parseBounded(ctx: RouteContext): Promise<ParsedSbom> {
  const busy = parsing.get(ctx.deps) ?? 0;
  if (busy >= MAX_PARSES) throw new ApiError(429, 'busy', `${MAX_PARSES} SBOM imports are being parsed; try again in a few seconds`, { 'retry-after': '5' });
  parsing.set(ctx.deps, busy + 1);
  try {
    const text = await readTextBody(ctx.req, MAX_SBOM_BYTES, SBOM_TYPES);
    return await parseSbomInWorker(text);
  } catch (err) {
    if (err instanceof SbomError) throw new ApiError(err.code === 'too_large' ? 413 : 400, err.code === 'too_large' ? 'body_too_large' : 'invalid_document', err.message);
    throw err;
  } finally {
    parsing.set(ctx.deps, (parsing.get(ctx.deps) ?? 1) - 1);
  }
}

/** After an import: each baseline of the repository whose newest image version this SBOM now changes, noticed in the audit log. */
async function noticeVersionChanges(ctx: RouteContext, repository: string, digest: string) {
  const keys = (await ctx.deps.store.listBaselines()).filter((b) => repositoryOfKey(b.key) === repository && b.images.some((i) => i.digest === digest)).slice(0, MAX_NOTICE_KEYS);
  const notices = [];
  for (const b of keys) {
    const view = await ctx.deps.store.getBaseline(b.key);
    if (!view) continue;
    const joined = await baselineSbom(ctx.deps.store, view);
    if (!joined.notice || joined.notice.to !== digest) continue;
    notices.push({ key: b.key, ...joined.notice });
    if (joined.notice.addsOrDrops) {
      const { before, after } = versionChangeRecord(joined.notice);
      await ctx.record('sbom.version-change', b.key, before, after);
    }
  }
  return notices;
}

/** The SBOM routes. */
export const sbomRoutes: readonly Route[] = [
  route({
    method: 'POST',
    path: '/api/v1/sboms',
    role: 'reviewer',
    query: query({ image: queryText(512) }),
    maxBodyBytes: MAX_SBOM_BYTES,
    async handle(ctx) {
      if (ctx.query.image === undefined) throw new ApiError(400, 'invalid_parameter', 'give image=REPOSITORY@sha256:… (the image the SBOM describes)');
      const { repository, digest } = parseImageRef(ctx.query.image);
      const doc = await parseBounded(ctx);
      const record = { digest, repository, format: doc.format, specVersion: doc.specVersion, tool: doc.tool, importedAt: ctx.deps.now(), importedBy: ctx.actor, filesListed: doc.filesListed, packages: doc.packages, files: doc.files };
      const replaced = await ctx.deps.store.putSbom(record);
      const summary = { repository, format: doc.format, specVersion: doc.specVersion, tool: doc.tool, packages: doc.packages.length, files: doc.files.size, filesListed: doc.filesListed, skipped: doc.skipped };
      await ctx.record('sbom.import', digest, replaced ? { replaced: true } : null, summary);
      const notices = await noticeVersionChanges(ctx, repository, digest);
      return { status: replaced ? 200 : 201, json: { digest, ...summary, replaced, notices } };
    },
  }),
  route({
    method: 'GET',
    path: '/api/v1/sboms',
    role: 'viewer',
    query: query({ repository: queryText(512) }),
    async handle({ query: q, deps }) {
      if (q.repository === undefined) throw new ApiError(400, 'invalid_parameter', 'give repository=REPOSITORY');
      return { json: { items: (await deps.store.listSboms(canonicalRepository(q.repository))).map(summaryView) } };
    },
  }),
  route({
    method: 'GET',
    path: '/api/v1/sboms/{digest}',
    role: 'viewer',
    async handle({ params, deps }) {
      const digest = params.digest as string;
      if (!DIGEST.test(digest)) throw new ApiError(400, 'invalid_parameter', 'the digest is sha256:<64 hex digits>');
      const s = await deps.store.getSbom(digest);
      if (!s) throw new ApiError(404, 'not_found', `no SBOM for ${digest}`);
      // The header and the first packages: a summary, not the document.
      return { json: { ...summaryView(s), packages: await deps.store.sbomPackages(digest, 200), packagesShown: Math.min(200, s.packageCount) } };
    },
  }),
  route({
    method: 'GET',
    path: '/api/v1/baselines/{key}/sbom',
    role: 'viewer',
    async handle({ params, deps }) {
      const view = await deps.store.getBaseline(params.key as string);
      if (!view) throw new ApiError(404, 'not_found', `no baseline with key ${JSON.stringify((params.key as string).slice(0, 256))}`);
      return { json: await baselineSbom(deps.store, view) };
    },
  }),
];
