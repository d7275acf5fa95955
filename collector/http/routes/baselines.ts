/**
 * Baselines: reading them, their versions and diffs, exporting them as documents; and the
 * reviewer's changes (lock, unlock, relearn, add, approve and remove entries, drop one node's
 * share, allow or disallow drift, bulk changes, imports), each a new version, audited, and pushed to the agents.
 */
import { z } from 'zod';
import { entryFromId, entryId, type Entry } from '../../../core/entry.js';
import {
  baselineName,
  DriftPatternSchema,
  parseBaselineDocuments,
  parseSelector,
  toBaselineDocument,
  toFalcoRules,
  toNetworkPolicy,
  type BaselineView as DocView,
} from '../../../core/baseline-doc.js';
import type { BaselineChange, BaselineView } from '../../store/store.js';
import { ApiError } from '../errors.js';
import { readTextBody } from '../request-body.js';
import { route, type Route, type RouteContext } from '../route.js';
import { ReasonBody, namespaceName, query, queryOneOf, queryText } from '../schemas.js';
import { baselineSummaryView, baselineView, entryView, versionView } from '../views.js';
import { baselineSbom, sbomExportComment } from '../../sbom/links.js';

const REVIEWED_STATES = ['learning', 'enforcing', 'locked', 'relearn'] as const;

/** Most baselines one bulk change touches. */
const MAX_BULK = 5_000;

/** Largest import (a folder of Baseline documents), in bytes. */
const MAX_IMPORT_BYTES = 8 << 20;
const YAML_TYPES = ['application/yaml', 'text/yaml', 'application/x-yaml', 'text/plain'] as const;

const field = z.string().min(1).max(1024).regex(/^[^\0\n]*$/, 'must be one line without NUL');
const EntryBody = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('process'), exe: field, applet: z.string().min(1).max(15).regex(/^[^\0\n|]*$/).optional(), parent: z.string().max(256).regex(/^[^\0\n]*$/).default(''), user: z.enum(['root', 'system', 'user', 'unknown']), args: z.string().max(1024).regex(/^[^\0\n]*$/).default('') }),
  z.strictObject({ type: z.literal('network'), direction: z.enum(['egress', 'ingress', 'listen']), protocol: z.enum(['tcp', 'udp']), peer: field, port: z.number().int().min(0).max(65535) }),
]);
const AddEntryBody = z.strictObject({ entry: EntryBody, reason: z.string().trim().max(1000).default('') });

const DriftBody = z.strictObject({ pattern: DriftPatternSchema, reason: z.string().trim().max(1000).default('') });

const BulkBody = z.strictObject({
  action: z.enum(['lock', 'unlock', 'relearn']),
  filter: z
    .strictObject({
      namespace: namespaceName.optional(),
      prefix: z.string().min(1).max(512).optional(),
      state: z.enum(REVIEWED_STATES).optional(),
    })
    .refine((f) => f.namespace !== undefined || f.prefix !== undefined || f.state !== undefined, 'give at least one of namespace, prefix, state: a bulk change of everything is refused'),
  reason: z.string().trim().max(1000).default(''),
});

/** A version number, `current`, or (`from` only) absent: since the last review. */
const versionParam = z.string().regex(/^(\d{1,9}|current)$/, 'must be a version number or current').optional();

async function baselineOf(ctx: RouteContext): Promise<BaselineView> {
  const key = ctx.params.key as string;
  const view = await ctx.deps.store.getBaseline(key);
  if (!view) throw new ApiError(404, 'not_found', `no baseline with key ${JSON.stringify(key.slice(0, 256))}`);
  return view;
}

/** Apply a review change (one transaction), audit it, tell the agents, answer with the new view. */
async function review(ctx: RouteContext, change: BaselineChange, reason: string) {
  const key = ctx.params.key as string;
  const result = await ctx.deps.store.reviewBaseline(key, change, ctx.actor, reason, ctx.deps.now());
  if (!result.ok) throw new ApiError(result.status, result.status === 409 ? 'conflict' : result.status === 404 ? 'not_found' : 'invalid_body', result.message);
  const summary = (v: BaselineView | null) =>
    v && {
      state: v.state,
      version: v.version,
      ...('entryId' in change ? { entry: v.entries.find((e) => e.id === change.entryId)?.status ?? null } : {}),
      ...(change.action === 'add' ? { entry: v.entries.find((e) => e.id === entryId(change.entry))?.status ?? null } : {}),
    };
  await ctx.record(`baseline.${change.action}`, key, summary(result.before), { ...summary(result.after), ...result.dropped });
  ctx.deps.onBaselineChanged(key);
  return { json: baselineView(result.after) };
}

/** The baseline routes. */
export const baselineRoutes: readonly Route[] = [
  route({
    method: 'GET',
    path: '/api/v1/baselines',
    role: 'viewer',
    query: query({ state: queryOneOf(REVIEWED_STATES), prefix: queryText() }),
    async handle({ query: q, deps }) {
      const items = (await deps.store.listBaselines()).filter((b) => (q.state === undefined || b.state === q.state) && (q.prefix === undefined || b.key.startsWith(q.prefix)));
      return { json: { items: items.map(baselineSummaryView) } };
    },
  }),
  route({
    method: 'GET',
    path: '/api/v1/baselines/{key}',
    role: 'viewer',
    handle: async (ctx) => ({ json: baselineView(await baselineOf(ctx)) }),
  }),
  route({
    method: 'GET',
    path: '/api/v1/baselines/{key}/versions',
    role: 'viewer',
    async handle(ctx) {
      await baselineOf(ctx);
      return { json: { items: (await ctx.deps.store.listVersions(ctx.params.key as string)).map(versionView) } };
    },
  }),
  route({
    method: 'GET',
    path: '/api/v1/baselines/{key}/diff',
    role: 'viewer',
    query: query({ from: versionParam, to: versionParam }),
    async handle(ctx) {
      const view = await baselineOf(ctx);
      const key = ctx.params.key as string;
      const version = async (raw: string | undefined): Promise<{ version: number | null; ids: string[]; removed: string[] }> => {
        if (raw === undefined || raw === 'current') {
          const active = view.entries.filter((e) => e.status !== 'removed');
          return { version: null, ids: active.map((e) => e.id), removed: view.entries.filter((e) => e.status === 'removed').map((e) => e.id) };
        }
        if (raw === '0') return { version: 0, ids: [], removed: [] };
        const v = await ctx.deps.store.getVersion(key, Number(raw));
        if (!v) throw new ApiError(404, 'not_found', `no version ${raw} of this baseline`);
        return { version: v.version, ids: v.entryIds, removed: v.removedIds };
      };
      // Without `from`: since the last review version (what changed that nobody reviewed yet).
      const from = await version(ctx.query.from ?? String(view.version));
      const to = await version(ctx.query.to);
      const before = new Set(from.ids);
      const after = new Set(to.ids);
      const entry = (id: string) => entryView({ id, entry: entryFromId(id) });
      return {
        json: {
          key,
          from: from.version,
          to: to.version,
          added: to.ids.filter((id) => !before.has(id)).map(entry),
          removed: from.ids.filter((id) => !after.has(id)).map(entry),
        },
      };
    },
  }),
  route({
    method: 'GET',
    path: '/api/v1/baselines/{key}/export',
    role: 'viewer',
    query: query({ format: queryOneOf(['yaml', 'networkpolicy', 'falco']), selector: queryText(1024), status: queryText(5) }),
    async handle(ctx) {
      const view = await baselineOf(ctx);
      const format = ctx.query.format ?? 'yaml';
      const json = baselineView(view) as unknown as DocView;
      let text: string;
      // A document error (a key Falco cannot match: 422) is answered by errors.ts.
      // With the package behind each executable as comments, when the image has an SBOM (issue 22).
      if (format === 'yaml') text = toBaselineDocument(json, { status: ctx.query.status === 'true' }) + sbomExportComment(await baselineSbom(ctx.deps.store, view));
      else if (format === 'falco') text = toFalcoRules(json);
      else {
        if (ctx.query.selector === undefined) throw new ApiError(400, 'invalid_parameter', 'a NetworkPolicy needs selector=LABEL=VALUE[,...] naming the pods of this image');
        text = toNetworkPolicy(json, { podSelector: parseSelector(ctx.query.selector) });
      }
      const name = `${baselineName(ctx.params.key as string)}${format === 'yaml' ? '' : `-${format}`}.yaml`;
      return {
        text,
        headers: { 'content-type': 'application/yaml; charset=utf-8', 'content-disposition': `attachment; filename="${name}"`, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' },
      };
    },
  }),
  route({
    method: 'POST',
    path: '/api/v1/baselines/bulk',
    role: 'reviewer',
    body: BulkBody,
    async handle(ctx) {
      // "Lock every enforcing baseline in shop": one change per matching key, each its own version.
      const { body: b, deps } = ctx;
      const matching = (await deps.store.listBaselines()).filter((x) => (b.filter.state === undefined || x.state === b.filter.state) && (b.filter.prefix === undefined || x.key.startsWith(b.filter.prefix)) && (b.filter.namespace === undefined || x.namespaces.includes(b.filter.namespace)));
      const applied = [];
      const skipped = [];
      for (const x of matching.slice(0, MAX_BULK)) {
        const result = await deps.store.reviewBaseline(x.key, { action: b.action }, ctx.actor, b.reason, deps.now());
        if (!result.ok) {
          skipped.push({ key: x.key, reason: result.message });
          continue;
        }
        await ctx.record(`baseline.${b.action}`, x.key, { state: result.before?.state, version: result.before?.version }, { state: result.after.state, version: result.version, bulk: b.filter });
        deps.onBaselineChanged(x.key);
        applied.push({ key: x.key, state: result.after.state, version: result.version });
      }
      return { json: { applied, skipped, truncated: matching.length > MAX_BULK } };
    },
  }),
  route({
    method: 'POST',
    path: '/api/v1/baselines/import',
    role: 'reviewer',
    async handle(ctx) {
      // The folder-as-desired-state of GitOps: every document is applied; all are checked first.
      const { deps } = ctx;
      const docs = parseBaselineDocuments(await readTextBody(ctx.req, MAX_IMPORT_BYTES, YAML_TYPES));
      if (docs.length === 0) throw new ApiError(400, 'invalid_document', 'no Baseline document in the body');
      const keys = new Set<string>();
      for (const d of docs) {
        if (keys.has(d.key)) throw new ApiError(400, 'invalid_document', `key ${JSON.stringify(d.key.slice(0, 256))} appears in two documents`);
        keys.add(d.key);
      }
      const applied = [];
      for (const d of docs) {
        const result = await deps.store.reviewBaseline(d.key, { action: 'import', state: d.state, entries: d.entries, removed: d.removed, driftAllowed: d.driftAllowed }, ctx.actor, 'import', deps.now());
        if (!result.ok) throw new ApiError(result.status, 'conflict', `${d.key}: ${result.message}`);
        const active = (v: BaselineView | null) => new Set((v?.entries ?? []).filter((e) => e.status !== 'removed').map((e) => e.id));
        const before = active(result.before);
        const after = active(result.after);
        const summary = { key: d.key, version: result.version, state: result.after.state, added: [...after].filter((id) => !before.has(id)).length, removed: [...before].filter((id) => !after.has(id)).length };
        await ctx.record('baseline.import', d.key, result.before && { state: result.before.state, version: result.before.version }, summary);
        deps.onBaselineChanged(d.key);
        applied.push(summary);
      }
      return { json: { applied } };
    },
  }),
  ...(['lock', 'unlock', 'relearn'] as const).map((action) =>
    route({
      method: 'POST',
      path: `/api/v1/baselines/{key}/${action}`,
      role: 'reviewer',
      body: ReasonBody,
      handle: (ctx) => review(ctx, { action }, ctx.body.reason),
    }),
  ),
  route({
    method: 'POST',
    path: '/api/v1/baselines/{key}/entries',
    role: 'reviewer',
    body: AddEntryBody,
    handle: (ctx) => review(ctx, { action: 'add', entry: ctx.body.entry as Entry }, ctx.body.reason),
  }),
  ...(['approve', 'remove'] as const).map((action) =>
    route({
      method: 'POST',
      path: `/api/v1/baselines/{key}/entries/{id}/${action}`,
      role: 'reviewer',
      body: ReasonBody,
      handle: (ctx) => review(ctx, { action, entryId: ctx.params.id as string }, ctx.body.reason),
    }),
  ),
  ...(['allow-drift', 'disallow-drift'] as const).map((action) =>
    route({
      method: 'POST',
      path: `/api/v1/baselines/{key}/drift/${action === 'allow-drift' ? 'allow' : 'disallow'}`,
      role: 'reviewer',
      body: DriftBody,
      // A reviewed change like an entry's: a new version, audited, pushed to agents.
      handle: (ctx) => review(ctx, { action, pattern: ctx.body.pattern }, ctx.body.reason),
    }),
  ),
  route({
    method: 'POST',
    path: '/api/v1/baselines/{key}/nodes/{node}/drop',
    role: 'reviewer',
    body: ReasonBody,
    // One node's share of the key: what it taught goes (entries only it taught, its counts).
    handle: (ctx) => review(ctx, { action: 'drop-node', node: ctx.params.node as string }, ctx.body.reason),
  }),
];
