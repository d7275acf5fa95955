/**
 * The audit log: every change made through the API (and every change of who may make one), with
 * who, what, when, and the object before and after. Append-only, in its own table of the
 * collector's SQLite file, created idempotently; prepared statements only; every field bounded
 * (a huge before/after is stored as a truncated preview that says so).
 *
 * Refused requests are not mutations and are not recorded here; they are counted in
 * driftwatch_collector_api_requests_denied_total.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

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
  close(): void;
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

interface Row {
  seq: number;
  time: number;
  actor: string;
  role: string;
  action: string;
  target: string;
  before: string;
  after: string;
}

/** An audit log in `db` (its own table, created if missing). */
export function createAuditLog(db: Database.Database, now: () => number = Date.now): AuditLog {
  db.exec(`
    CREATE TABLE IF NOT EXISTS audit_log (
      seq     INTEGER PRIMARY KEY AUTOINCREMENT,
      time    INTEGER NOT NULL,
      actor   TEXT NOT NULL,
      role    TEXT NOT NULL,
      action  TEXT NOT NULL,
      target  TEXT NOT NULL,
      before  TEXT NOT NULL,
      after   TEXT NOT NULL
    );
  `);
  const insert = db.prepare('INSERT INTO audit_log (time, actor, role, action, target, before, after) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const page = db.prepare('SELECT seq, time, actor, role, action, target, before, after FROM audit_log WHERE seq < ? ORDER BY seq DESC LIMIT ?');
  const cut = (s: string, n: number) => String(s).slice(0, n);
  return {
    record(e) {
      const info = insert.run(now(), cut(e.actor, LIMITS.actor), cut(e.role, LIMITS.role), cut(e.action, LIMITS.action), cut(e.target, LIMITS.target), bounded(e.before), bounded(e.after));
      return Number(info.lastInsertRowid);
    },
    list(cursor, limit) {
      let before = Number.MAX_SAFE_INTEGER;
      if (cursor !== undefined) {
        const text = Buffer.from(cursor, 'base64url').toString('utf8');
        if (!/^a\d{1,15}$/.test(text)) throw new AuditCursorError();
        before = Number(text.slice(1));
      }
      const rows = page.all(before, limit + 1) as Row[];
      const items = rows.slice(0, limit).map((r) => ({
        id: r.seq,
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
    close() {},
  };
}

/**
 * Open the audit log on the collector's SQLite file with a connection of its own (WAL lets it sit
 * beside the store's; synchronous=FULL like the store, so a recorded change is on disk).
 */
export function openAuditLog(path: string, now: () => number = Date.now): AuditLog {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  const log = createAuditLog(db, now);
  return { ...log, close: () => db.close() };
}
