/**
 * The baselines the agent learned, stored row by row (a header per baseline, a row per entry) and
 * written as deltas: a flush costs what changed, not the size of what was learned. Raw examples live
 * only here, not in the agent's memory. Also the last ClusterBaseline the collector pushed per key.
 */
import type Database from 'better-sqlite3';
import { MAX_EXAMPLES, type BaselineRecord, type BaselineSnapshot, type ClusterBaseline, type EntryStats } from '../../core/baseline.js';
import { entryFromId } from '../../core/entry.js';
import { unite } from '../../core/merge.js';

/** The baseline tables; writes run inside the caller's transaction. */
export interface BaselineTables {
  /** Persist one delta's header and entries; examples are united with those already stored. */
  persist(delta: BaselineSnapshot): void;
  /** Keep what the cluster pushed for a key (without its relearn: that happened when it was applied). */
  saveCluster(cluster: ClusterBaseline): void;
  /** Every persisted baseline, its entries read lazily and their examples only counted. */
  load(): IterableIterator<BaselineRecord>;
  /** The last ClusterBaseline pushed for each key. */
  loadClusters(): ClusterBaseline[];
  /** One persisted baseline in full, examples included, or null. */
  read(key: string): BaselineSnapshot | null;
}

/** The baseline tables of `db`. */
export function createBaselineTables(db: Database.Database): BaselineTables {
  const upsertHeader = db.prepare(`INSERT OR REPLACE INTO baselines (key, header) VALUES (?, ?)`);
  // Stats are absolute and only grow, so writing an older delta after a newer one changes nothing.
  const upsertEntry = db.prepare(`
    INSERT INTO entries (key, id, first_seen, last_seen, count, nodes, examples) VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (key, id) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen),
      count = max(count, excluded.count), nodes = excluded.nodes,
      examples = CASE WHEN excluded.examples = '[]' THEN examples ELSE excluded.examples END`);
  const selectExamples = db.prepare(`SELECT examples FROM entries WHERE key = ? AND id = ?`).pluck();
  const selectHeaders = db.prepare(`SELECT header FROM baselines`).pluck();
  const selectHeader = db.prepare(`SELECT header FROM baselines WHERE key = ?`).pluck();
  const selectEntryCounts = db.prepare(`SELECT id, first_seen, last_seen, count, nodes, json_array_length(examples) AS examples FROM entries WHERE key = ?`);
  const selectEntries = db.prepare(`SELECT id, first_seen, last_seen, count, nodes, examples FROM entries WHERE key = ? ORDER BY id`);
  const upsertCluster = db.prepare(`INSERT OR REPLACE INTO cluster_baselines (key, body) VALUES (?, ?)`);
  const selectClusters = db.prepare(`SELECT body FROM cluster_baselines ORDER BY key`).pluck();

  interface EntryRow {
    id: string;
    first_seen: number;
    last_seen: number;
    count: number;
    nodes: string;
    examples: string | number;
  }

  /** Persist one delta's header and entries; examples are united with those already stored. */
  function persist(delta: BaselineSnapshot): void {
    const { entries, ...header } = delta;
    upsertHeader.run(delta.key, JSON.stringify(header));
    for (const e of entries) {
      let examples = '[]';
      if (e.examples.length > 0) {
        const stored = selectExamples.get(delta.key, e.id) as string | undefined;
        examples = JSON.stringify(unite(stored === undefined ? [] : (JSON.parse(stored) as string[]), e.examples, MAX_EXAMPLES));
      }
      upsertEntry.run(delta.key, e.id, e.firstSeen, e.lastSeen, e.count, JSON.stringify(e.nodes), examples);
    }
  }

  return {
    persist,
    // A relearn happened when it was applied; re-applying it at every start would forget again.
    saveCluster(c) {
      upsertCluster.run(c.key, JSON.stringify({ ...c, relearn: false }));
    },
    *load() {
      for (const text of selectHeaders.iterate() as IterableIterator<string>) {
        const header = JSON.parse(text) as Omit<BaselineSnapshot, 'entries'>;
        yield {
          ...header,
          entries: (function* () {
            for (const r of selectEntryCounts.iterate(header.key) as IterableIterator<EntryRow>) {
              yield { id: r.id, firstSeen: r.first_seen, lastSeen: r.last_seen, count: r.count, nodes: JSON.parse(r.nodes) as string[], examples: r.examples as number };
            }
          })(),
        };
      }
    },
    loadClusters: () => (selectClusters.all() as string[]).map((body) => JSON.parse(body) as ClusterBaseline),
    read(key) {
      const text = selectHeader.get(key) as string | undefined;
      if (text === undefined) return null;
      const entries: EntryStats[] = (selectEntries.all(key) as EntryRow[]).map((r) => ({
        id: r.id,
        entry: entryFromId(r.id),
        firstSeen: r.first_seen,
        lastSeen: r.last_seen,
        count: r.count,
        nodes: JSON.parse(r.nodes) as string[],
        examples: JSON.parse(r.examples as string) as string[],
      }));
      return { ...(JSON.parse(text) as Omit<BaselineSnapshot, 'entries'>), entries };
    },
  };
}
