/**
 * Exceptions ("risk accepted"): what they match, why, whose, until when. Reading them is a
 * viewer's, creating and revoking them a reviewer's.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { parseDuration } from '../../../core/duration.js';
import { describeEntry } from '../../../core/entry.js';
import { escapeGlob } from '../../../core/severity.js';
import type { AlertException } from '../../alerting/alert.js';
import { ApiError } from '../errors.js';
import { route, type Route } from '../route.js';
import { namespaceName, oneLine, query, queryOneOf } from '../schemas.js';
import { exceptionView } from '../views.js';

const ExceptionBody = z
  .strictObject({
    /** Fill key and entry from this alert (exactly its baseline key and entry). */
    alert: z.string().regex(/^[0-9a-f]{8,64}$/, 'must be an alert id').optional(),
    key: oneLine(512).optional(),
    entry: oneLine(1024).optional(),
    namespace: namespaceName.optional(),
    reason: oneLine(1000),
    owner: oneLine(128),
    expiresAt: z.iso.datetime({ offset: true }).optional(),
    /** A duration from now such as `30d`. */
    expiresIn: z.string().max(32).optional(),
  })
  .refine((b) => (b.expiresAt === undefined) !== (b.expiresIn === undefined), { message: 'give exactly one of expiresAt and expiresIn', path: ['expiresAt'] })
  .refine((b) => b.alert !== undefined || b.key !== undefined || b.entry !== undefined || b.namespace !== undefined, {
    message: 'give what it matches: alert, or at least one of key, entry, namespace',
    path: ['key'],
  })
  .refine((b) => b.alert === undefined || (b.key === undefined && b.entry === undefined), { message: 'alert sets key and entry; do not give them too', path: ['alert'] });

/** The exception routes. */
export const exceptionRoutes: readonly Route[] = [
  route({
    method: 'GET',
    path: '/api/v1/exceptions',
    role: 'viewer',
    query: query({ status: queryOneOf(['active', 'expired', 'revoked']) }),
    async handle({ query: q, deps }) {
      const t = deps.now();
      return { json: { items: (await deps.store.listExceptions()).map((e) => exceptionView(e, t)).filter((e) => q.status === undefined || e.status === q.status) } };
    },
  }),
  route({
    method: 'GET',
    path: '/api/v1/exceptions/{id}',
    role: 'viewer',
    async handle({ params, deps }) {
      const e = await deps.store.getException(params.id as string);
      if (!e) throw new ApiError(404, 'not_found', 'no exception with this id');
      return { json: exceptionView(e, deps.now()) };
    },
  }),
  route({
    method: 'POST',
    path: '/api/v1/exceptions',
    role: 'reviewer',
    body: ExceptionBody,
    async handle(ctx) {
      const { body: b, deps } = ctx;
      const t = deps.now();
      let expiresAt: number;
      if (b.expiresIn !== undefined) {
        try {
          expiresAt = t + parseDuration(b.expiresIn);
        } catch (err) {
          throw new ApiError(400, 'invalid_body', `expiresIn: ${(err as Error).message}`);
        }
      } else expiresAt = Date.parse(b.expiresAt as string);
      if (expiresAt <= t) throw new ApiError(400, 'invalid_body', 'expiresAt: must be in the future');
      if (expiresAt - t > deps.maxExceptionLifetime) throw new ApiError(400, 'invalid_body', `expiresAt: at most ${Math.floor(deps.maxExceptionLifetime / 86_400_000)} days from now`);
      let key = b.key ?? '';
      let entry = b.entry ?? '';
      if (b.alert !== undefined) {
        const alert = await deps.store.getAlert(b.alert);
        if (!alert) throw new ApiError(400, 'invalid_body', 'alert: no alert with this id');
        key = escapeGlob(alert.baselineKey);
        entry = escapeGlob(describeEntry(alert.entry));
      }
      const e: AlertException = {
        id: `ex-${randomBytes(8).toString('hex')}`,
        key,
        entry,
        namespace: b.namespace ?? '',
        reason: b.reason,
        owner: b.owner,
        createdBy: ctx.actor,
        createdAt: t,
        expiresAt,
        revokedAt: 0,
        revokedBy: '',
        remindedAt: 0,
      };
      await deps.alerting.addException(e);
      await ctx.record('exception.create', e.id, null, exceptionView(e, t));
      return { status: 201, json: exceptionView(e, t) };
    },
  }),
  route({
    method: 'DELETE',
    path: '/api/v1/exceptions/{id}',
    role: 'reviewer',
    async handle(ctx) {
      const { deps } = ctx;
      const id = ctx.params.id as string;
      const before = await deps.store.getException(id);
      if (!before) throw new ApiError(404, 'not_found', 'no exception with this id');
      if (before.revokedAt > 0) throw new ApiError(409, 'already_revoked', 'the exception was already revoked');
      // Null when another request revoked it since the read above (the store revokes only once).
      const after = await deps.alerting.revokeException(id, ctx.actor);
      if (!after) throw new ApiError(409, 'already_revoked', 'the exception was already revoked');
      await ctx.record('exception.revoke', id, exceptionView(before, deps.now()), exceptionView(after, deps.now()));
      return { json: exceptionView(after, deps.now()) };
    },
  }),
];
