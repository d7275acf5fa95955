/**
 * Where each source got to: an opaque JSON position per source, saved in the same transaction as the
 * baselines learned up to it.
 */
import type Database from 'better-sqlite3';

/** The positions table; save runs inside the caller's transaction. */
export interface Positions {
  save(source: string, position: unknown): void;
  /** The saved position, or undefined. */
  load(source: string): unknown;
}

/** The positions table of `db`. */
export function createPositions(db: Database.Database): Positions {
  const upsertPosition = db.prepare(`INSERT OR REPLACE INTO positions (source, position) VALUES (?, ?)`);
  const selectPosition = db.prepare(`SELECT position FROM positions WHERE source = ?`).pluck();
  return {
    save(source, position) {
      upsertPosition.run(source, JSON.stringify(position));
    },
    load(source) {
      const raw = selectPosition.get(source) as string | undefined;
      return raw === undefined ? undefined : (JSON.parse(raw) as unknown);
    },
  };
}
