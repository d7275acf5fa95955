/**
 * The audit log: every change made through the API (and every change of who may make one), with
 * who, what, when, and the object before and after. Append-only, in the store's audit slice (a table
 * of the collector's SQLite file); every field bounded here (a huge before/after is stored as a
 * truncated preview that says so).
 *
 * Refused requests are not mutations and are not recorded here; they are counted in
 * driftwatch_collector_api_requests_denied_total.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuditStore } from './store/store.js';

/** One change to record. `before`/`after` are JSON-serialisable (null for create/delete). */
export interface AuditInput {
  /** Who: the token's name, `system` for the collector itself. */
  actor: string;
  /** The role the actor acted with. */
  role: string;
  /** What, as `resource.verb`: `alert.acknowledge`, `baseline.lock`, `exception.create`. */
  action: string;
  /** Which object: an alert id, a baseline key, an exception id. */
  target: string;
  before: unknown;
  after: unknown;
}

/** A stored audit entry. */
export interface AuditEntry {
  id: number;
  /** RFC 3339. */
  time: string;
  actor: string;
  role: string;
  action: string;
  target: string;
  before: unknown;
  after: unknown;
}

/** The audit log. */
export interface AuditLog {
  /** Append one entry (synchronously committed); returns its id. */
  record(input: AuditInput): number;
  /** Entries newest first; `next` is the cursor of the following page, or null. */
  list(cursor: string | undefined, limit: number): { items: AuditEntry[]; next: string | null };
}

/** An audit cursor that is not one of ours. */
export class AuditCursorError extends Error {
  readonly code = 'invalid_cursor' as const;
  constructor() {
    super('cursor is not valid');
    this.name = 'AuditCursorError';
  }
}

/** Largest stored before/after, in characters of JSON. */
export const MAX_AUDIT_VALUE_CHARS = 16 << 10;
const LIMITS = { actor: 128, role: 32, action: 64, target: 1024 } as const;

function bounded(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value ?? null) ?? 'null';
  } catch {
    text = JSON.stringify({ unserialisable: true });
  }
  if (text.length <= MAX_AUDIT_VALUE_CHARS) return text;
  return JSON.stringify({ truncated: true, chars: text.length, preview: text.slice(0, MAX_AUDIT_VALUE_CHARS - 200) });
}

/** The audit log over the store's audit slice; `now` stamps each entry. */
export function createAuditLog(store: AuditStore, now: () => number = Date.now): AuditLog {
  const cut = (s: string, n: number) => String(s).slice(0, n);
  return {
    record(e) {
      return store.appendAudit({
        time: now(),
        actor: cut(e.actor, LIMITS.actor),
        role: cut(e.role, LIMITS.role),
        action: cut(e.action, LIMITS.action),
        target: cut(e.target, LIMITS.target),
        before: bounded(e.before),
        after: bounded(e.after),
      });
    },
    list(cursor, limit) {
      let before = Number.MAX_SAFE_INTEGER;
      if (cursor !== undefined) {
        const text = Buffer.from(cursor, 'base64url').toString('utf8');
        if (!/^a\d{1,15}$/.test(text)) throw new AuditCursorError();
        before = Number(text.slice(1));
      }
      const rows = store.listAudit(before, limit + 1);
      const items = rows.slice(0, limit).map((r) => ({
        id: r.id,
        time: new Date(r.time).toISOString(),
        actor: r.actor,
        role: r.role,
        action: r.action,
        target: r.target,
        before: JSON.parse(r.before) as unknown,
        after: JSON.parse(r.after) as unknown,
      }));
      const last = items[items.length - 1];
      return { items, next: rows.length > limit && last ? Buffer.from(`a${last.id}`).toString('base64url') : null };
    },
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(JSON.stringify(body));
}

/**
 * Serve `GET /api/v1/audit?limit=&cursor=` (newest first); false for any other path. Who may read
 * it is the route table's business (reviewer and admin).
 */
export function serveAudit(req: IncomingMessage, res: ServerResponse, audit: AuditLog): boolean {
  const rawUrl = req.url ?? '/';
  const q = rawUrl.indexOf('?');
  const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
  if (path !== '/api/v1/audit' && path !== '/api/v1/audit/') return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendJson(res, 405, { error: { code: 'method_not_allowed', message: `${req.method} is not allowed here` } });
    return true;
  }
  const params = new URLSearchParams(q === -1 ? '' : rawUrl.slice(q + 1));
  for (const name of params.keys()) {
    if (name !== 'limit' && name !== 'cursor') {
      sendJson(res, 400, { error: { code: 'unknown_parameter', message: `unknown query parameter ${JSON.stringify(name.slice(0, 64))}; allowed: limit, cursor` } });
      return true;
    }
  }
  const limitText = params.get('limit') ?? '100';
  if (!/^\d{1,4}$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > 1000) {
    sendJson(res, 400, { error: { code: 'invalid_parameter', message: 'limit must be an integer from 1 to 1000' } });
    return true;
  }
  const cursor = params.get('cursor') ?? undefined;
  if (cursor !== undefined && cursor.length > 64) {
    sendJson(res, 400, { error: { code: 'invalid_parameter', message: 'cursor longer than 64 characters' } });
    return true;
  }
  try {
    sendJson(res, 200, audit.list(cursor, Number(limitText)));
  } catch (err) {
    if (!(err instanceof AuditCursorError)) throw err;
    sendJson(res, 400, { error: { code: err.code, message: err.message } });
  }
  return true;
}
