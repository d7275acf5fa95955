/**
 * What every slice of the SQLite store shares: the connection (one file, WAL, synchronous=FULL, so
 * that a batch is acknowledged only after its commit is on disk), write transactions, the cache of
 * list statements, and page cursors. Prepared statements only.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { CursorError } from '../store.js';

/** A connection to the store's file. */
export type Db = Database.Database;

/** What the store logs: rows it repaired or skipped. */
export interface StoreLogger {
  warn(fields: Record<string, unknown>, message: string): void;
}

/** Open (creating the file and its directory if needed) a connection to the store at `path`. */
export function openDatabase(path: string, busyTimeoutMs: number): Db {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  // How long a write waits for the other connection's transaction (see writeTransaction).
  db.pragma(`busy_timeout = ${Math.trunc(busyTimeoutMs)}`);
  db.pragma('foreign_keys = ON');
  return db;
}

/**
 * A write transaction that takes the write lock at BEGIN (BEGIN IMMEDIATE). The collector writes
 * through two connections (the ingest worker's and the main thread's), and a deferred transaction
 * that read first could not upgrade to writing after the other committed (SQLITE_BUSY_SNAPSHOT, which
 * the busy timeout does not wait out). Nested calls run as savepoints, as with db.transaction.
 */
export function writeTransaction<A extends unknown[], R>(db: Db, fn: (...args: A) => R): (...args: A) => R {
  const tx = db.transaction(fn);
  return (...args) => tx.immediate(...args);
}

/**
 * Filtered list queries differ only in which fixed WHERE fragments they use: this prepares each
 * shape once. Only ever given SQL assembled from fixed fragments; every value is a bound parameter.
 */
export function statementCache(db: Db): (sql: string) => Database.Statement {
  const statements = new Map<string, Database.Statement>();
  return (sql) => {
    let st = statements.get(sql);
    if (!st) statements.set(sql, (st = db.prepare(sql)));
    return st;
  };
}

/** The cursor of the page that follows the row `seq`. */
export function encodeCursor(seq: number): string {
  return Buffer.from(`s${seq}`).toString('base64url');
}

/** The `seq` a cursor continues below (no cursor: from the newest row); CursorError when it is not one of ours. */
export function decodeCursor(cursor: string | undefined): number {
  if (cursor === undefined) return Number.MAX_SAFE_INTEGER;
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^s\d{1,15}$/.test(text)) throw new CursorError();
  return Number(text.slice(1));
}
