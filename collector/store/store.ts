/**
 * The collector's store interface. SQLite (better-sqlite3, WAL) is the embedded implementation;
 * nothing outside collector/store/ speaks SQL.
 */
import type { BaselineSnapshot } from '../../core/baseline.js';
import type { Deviation } from '../../core/deviation.js';
import type { Entry } from '../../core/entry.js';
import type { EventKind } from '../../core/event.js';
import type { MergedBaseline } from '../../core/merge.js';

/** Life cycle of an alert (only `firing` is produced so far). */
export type AlertState = 'firing' | 'acknowledged' | 'resolved' | 'accepted';

/** A group of deviations with one fingerprint (baseline key + entry). */
export interface Alert {
  fingerprint: string;
  state: AlertState;
  baselineKey: string;
  /** Image repository of the key. */
  image: string;
  kind: EventKind;
  entry: Entry;
  reason: string;
  explanation: string;
  nearest: string[];
  firstSeen: number;
  lastSeen: number;
  count: number;
  nodes: string[];
  /** `namespace/name` of pods it was seen in (bounded). */
  pods: string[];
  /** The most recent deviation's id and raw example. */
  lastDeviationId: string;
  example: string;
  createdAt: number;
}

/** One stored deviation. */
export interface StoredDeviation {
  deviation: Deviation;
  fingerprint: string;
  receivedAt: number;
}

/** A page of results; `next` is the cursor for the following page, or null. */
export interface Page<T> {
  items: T[];
  next: string | null;
}

/** What one committed batch did. */
export interface IngestResult {
  stored: number;
  duplicates: number;
  /** Alerts this batch created (first deviation of their fingerprint). */
  newAlerts: Alert[];
  /** Baseline deltas applied. */
  snapshots: number;
}

/** Filters for listing alerts. */
export interface AlertQuery {
  limit: number;
  cursor?: string | undefined;
  image?: string | undefined;
  kind?: EventKind | undefined;
  state?: AlertState | undefined;
}

/** Filters for listing deviations. */
export interface DeviationQuery {
  limit: number;
  cursor?: string | undefined;
  fingerprint?: string | undefined;
  baselineKey?: string | undefined;
  node?: string | undefined;
}

/** A baseline in a list: the merged header without entries. */
export type BaselineSummary = Omit<MergedBaseline, 'entries'> & { processEntries: number; networkEntries: number };

/** The store. */
export interface Store {
  /**
   * Commit a batch from `node` in one transaction. Deviations whose id is already stored are skipped;
   * baseline deltas (see core takeDelta) merge into the cluster-wide baselines, idempotently.
   */
  ingest(node: string, deviations: readonly Deviation[], deltas: readonly BaselineSnapshot[], receivedAt: number): IngestResult;
  listAlerts(query: AlertQuery): Page<Alert>;
  getAlert(fingerprint: string): Alert | null;
  listDeviations(query: DeviationQuery): Page<StoredDeviation>;
  countDeviations(): number;
  listBaselines(): BaselineSummary[];
  getBaseline(key: string): MergedBaseline | null;
  close(): void;
}

/** Raised for a malformed pagination cursor. */
export class CursorError extends Error {
  readonly code = 'invalid_cursor' as const;
  constructor() {
    super('cursor is not one this API returned');
    this.name = 'CursorError';
  }
}
