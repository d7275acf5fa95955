/**
 * The pieces routes build their query and body schemas from (zod), and the two functions that
 * apply them: a refusal names the parameter or field and what it must be.
 */
import { z } from 'zod';
import { firstIssue } from '../../core/zod-issue.js';
import { ApiError } from './errors.js';
import type { QuerySchema } from './route.js';

/** Most items one page of a list holds. */
export const MAX_LIMIT = 1000;
const DEFAULT_LIMIT = 100;

/** A query parameter of at most `max` characters. */
export function queryText(max = 512) {
  return z.string().max(max, `longer than ${max} characters`).optional();
}

/** A query parameter that is one of `values`. */
export function queryOneOf<const T extends string>(values: readonly T[]) {
  return z.enum(values as readonly [T, ...T[]], { error: `must be one of: ${values.join(', ')}` }).optional();
}

/** `limit`: a page size from 1 to MAX_LIMIT, DEFAULT_LIMIT when absent. */
export const queryLimit = z
  .string()
  .regex(/^\d{1,8}$/, `must be an integer from 1 to ${MAX_LIMIT}`)
  .transform(Number)
  .refine((n) => n >= 1 && n <= MAX_LIMIT, `must be an integer from 1 to ${MAX_LIMIT}`)
  .optional()
  .transform((n) => n ?? DEFAULT_LIMIT);

/** `cursor`: the `next` of a previous page. */
export const queryCursor = queryText(64);

/** A query of the given parameters (and no other). */
export function query<S extends z.core.$ZodShape>(shape: S) {
  return z.strictObject(shape);
}

/**
 * Parse `params` with `schema` (no schema: no parameter is allowed; `ignored`: any, unread). A parameter given twice, one
 * the route does not take, or a value the schema refuses is a 400 naming it.
 */
export function parseQuery(schema: QuerySchema | 'ignored' | undefined, params: URLSearchParams): unknown {
  if (schema === 'ignored') return {};
  const allowed = schema === undefined ? [] : Object.keys(schema.shape);
  for (const name of params.keys()) {
    if (!allowed.includes(name)) throw new ApiError(400, 'unknown_parameter', `unknown query parameter ${JSON.stringify(name.slice(0, 64))}; allowed: ${allowed.join(', ') || 'none'}`);
  }
  const values: Record<string, string> = {};
  for (const [name, value] of params) {
    if (Object.hasOwn(values, name)) throw new ApiError(400, 'invalid_parameter', `${name} given more than once`);
    values[name] = value;
  }
  if (schema === undefined) return {};
  const r = schema.safeParse(values);
  if (r.success) return r.data;
  const { path, message } = firstIssue(r.error);
  throw new ApiError(400, 'invalid_parameter', `${path} ${message}`);
}

/** Validate `body` against `schema`; a 400 names the first wrong field. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const { path, unknownKeys, message } = firstIssue(r.error);
  if (unknownKeys.length > 0) throw new ApiError(400, 'invalid_body', `unknown field(s): ${unknownKeys.join(', ')}`);
  throw new ApiError(400, 'invalid_body', `${path || 'body'}: ${message}`);
}

/** A Kubernetes namespace name. */
export const namespaceName = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a namespace name');

/** A one-line text of 1 to `max` characters, trimmed. */
export function oneLine(max: number) {
  return z.string().trim().min(1).max(max).regex(/^[^\0\r\n]*$/, 'must be one line without NUL');
}

/** `{reason}`: why, kept in the version history and the audit log. */
export const ReasonBody = z.strictObject({ reason: z.string().trim().max(1000).default('') });
