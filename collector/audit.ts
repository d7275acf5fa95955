/**
 * The audit log: every change made through the API (and every change of who may make one), with
 * who, what, when, and the object before and after. Append-only, in the store's audit slice (a table
 * of the collector's SQLite file); every field bounded here (a huge before/after is stored as a
 * truncated preview that says so).
 *
 * Refused requests are not mutations and are not recorded here; they are counted in
 * driftwatch_collector_api_requests_denied_total.
 */
import type { Async } from './store/async.js';
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
  /** Append one entry; resolves to its id once committed. */
  record(input: AuditInput): Promise<number>;
  /** Entries newest first; `next` is the cursor of the following page, or null. */
  list(cursor: string | undefined, limit: number): Promise<{ items: AuditEntry[]; next: string | null }>;
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
export function createAuditLog(store: Async<AuditStore>, now: () => number = Date.now): AuditLog {
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
    async list(cursor, limit) {
      let before = Number.MAX_SAFE_INTEGER;
      if (cursor !== undefined) {
        const text = Buffer.from(cursor, 'base64url').toString('utf8');
        if (!/^a\d{1,15}$/.test(text)) throw new AuditCursorError();
        before = Number(text.slice(1));
      }
      const rows = await store.listAudit(before, limit + 1);
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
