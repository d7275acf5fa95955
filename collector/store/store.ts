/**
 * The collector's store interface. SQLite (better-sqlite3, WAL) is the embedded implementation;
 * nothing outside collector/store/ speaks SQL.
 */
import type { BaselineSnapshot, BaselineState, EntryStats } from '../../core/baseline.js';
import type { Deviation } from '../../core/deviation.js';
import type { Entry } from '../../core/entry.js';
import type { EventKind } from '../../core/event.js';
import type { MergedBaseline } from '../../core/merge.js';
import type { BaselineFacts, Severity } from '../../core/severity.js';

/**
 * Life cycle of an alert: `firing` → `acknowledged` (someone is on it) → `resolved`; or `accepted`
 * (the behaviour is fine: its entry joins the baseline). A resolved alert fires again when its
 * behaviour comes back; an accepted one cannot, as the collector drops deviations its baseline knows.
 */
export type AlertState = 'firing' | 'acknowledged' | 'resolved' | 'accepted';

/** All alert states. */
export const ALERT_STATES: readonly AlertState[] = ['firing', 'acknowledged', 'resolved', 'accepted'];

/** What alerting decides for a new alert, from its first deviation. */
export interface AlertDecision {
  severity: Severity;
  ruleId: string;
  ruleReason: string;
  /** Owning team from the ownership map, or ''. */
  team: string;
  /** Names of the sinks it is routed to. */
  receivers: string[];
}

/** The policy the store consults inside the ingest transaction. */
export interface AlertPolicy {
  /** Decide severity, owner and routing of a new alert; `facts` reads the merged baseline of its key. */
  decide(d: Deviation, facts: () => BaselineFacts): AlertDecision;
  /** The id of an active exception that covers this deviation at `at`, or ''. */
  exceptionFor(d: Deviation, at: number): string;
  /** Notifications of a new or reopened alert at `at` (the batch's arrival), written to the outbox in the same transaction. */
  notify?(alert: Alert, at: number): OutboxEntry[];
}

/** A notification to write to the outbox; `notBefore` (ms) holds a pending one back until then (default: due at once). */
export type OutboxEntry = Pick<OutboxItem, 'alert' | 'sink' | 'action' | 'body' | 'state' | 'lastError'> & { notBefore?: number };

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
  severity: Severity;
  /** The severity rule that decided, and its reason. */
  ruleId: string;
  ruleReason: string;
  team: string;
  /** Namespace of the first pod it was seen in, or ''. */
  namespace: string;
  /** Pod labels of the first deviation (bounded). */
  labels: Record<string, string>;
  /** Sink names it is routed to. */
  receivers: string[];
  /** Id of the exception that covered its latest deviations, or '' (then it notifies). */
  suppressedBy: string;
  /** Who made the last life-cycle change, when, and their comment. */
  stateBy: string;
  stateAt: number;
  stateComment: string;
}

/** A life-cycle change asked for through the API. */
export interface AlertTransition {
  to: Exclude<AlertState, 'firing'>;
  by: string;
  at: number;
  comment: string;
}

/** The outcome of a transition: the alert before and after, or why not. */
export type TransitionResult =
  | { ok: true; before: Alert; after: Alert; /** What `followUps` wrote to the outbox with the change. */ notifications: OutboxEntry[] }
  | { ok: false; reason: 'not-found' }
  | { ok: false; reason: 'conflict'; alert: Alert };

/** One notification waiting for, or done with, delivery to one sink. */
export interface OutboxItem {
  seq: number;
  /** The alert fingerprint, or a synthetic id (storm summaries). */
  alert: string;
  sink: string;
  action: string;
  /** The notification, as JSON. */
  body: string;
  state: 'pending' | 'delivered' | 'failed' | 'skipped';
  attempts: number;
  nextAt: number;
  lastError: string;
  createdAt: number;
  doneAt: number;
}

/** A risk accepted by security: deviations it matches are stored and shown, but not notified. */
export interface AlertException {
  id: string;
  /** Glob over the baseline key ('' = any). */
  key: string;
  /** Glob over the entry as describeEntry shows it ('' = any). */
  entry: string;
  /** Exact namespace ('' = any). */
  namespace: string;
  reason: string;
  owner: string;
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  /** When it was revoked, or 0. */
  revokedAt: number;
  revokedBy: string;
  /** When the owner was told that it expires soon, or 0. */
  remindedAt: number;
}

/** One stored deviation. */
export interface StoredDeviation {
  deviation: Deviation;
  fingerprint: string;
  receivedAt: number;
  /** Its node is quarantined (what it sent is kept for the investigation, marked). */
  nodeQuarantined: boolean;
}

/** A page of results; `next` is the cursor for the following page, or null. */
export interface Page<T> {
  items: T[];
  next: string | null;
}

/** One agent batch, as ingestMany takes it. */
export interface IngestBatch {
  node: string;
  deviations: readonly Deviation[];
  deltas: readonly BaselineSnapshot[];
}

/**
 * A deviation ready to be written: its row's columns worked out and its body serialized, once, by
 * whoever decoded it (the gRPC thread), so that the thread that commits (the ingest worker) does
 * only SQL. Plain data: it crosses to a worker thread as it is.
 */
export interface PreparedDeviation {
  id: string;
  fingerprint: string;
  /** The id of its entry (core/entry entryId). */
  entryId: string;
  key: string;
  kind: EventKind;
  time: number;
  node: string;
  /** `namespace/name` of its pod, or ''. */
  pod: string;
  /** The whole deviation as JSON: the stored body. */
  body: string;
  /** The deviation itself, when at hand (the same thread); else the store parses `body` when it needs it. */
  deviation?: Deviation | undefined;
}

/** A batch of prepared deviations. */
export interface PreparedBatch {
  node: string;
  deviations: readonly PreparedDeviation[];
  deltas: readonly BaselineSnapshot[];
}

/** What one committed batch did. */

export interface IngestResult {
  stored: number;
  duplicates: number;
  /** Alerts this batch created (first deviation of their fingerprint). */
  newAlerts: Alert[];
  /** Baseline deltas applied. */
  snapshots: number;
  /** Deviations dropped because the cluster-wide baseline already has their entry (another node learned it). */
  known: number;
  /** Fingerprints of existing alerts that grew. */
  updated: string[];
  /** Alerts that fire again: resolved ones whose behaviour came back, or ones an exception no longer covers. */
  reopened: Alert[];
  /** Keys whose cluster baseline agents should be told about (past learning and grew, or changed state). */
  clusterChanged: string[];
  /** Notifications the batch wrote to the outbox (policy.notify). */
  notifications: OutboxEntry[];
  /**
   * Baseline deltas and entries the store refused, by reason: `locked` (security pinned the key:
   * it takes nothing from agents), `quarantined` (the node is), `key_full` (the key has
   * MAX_ENTRIES_PER_KEY entries). Counted per node by ingest.
   */
  refused: Partial<Record<StoreRefusal, number>>;
}

/** Why the store refused part of a batch. */
export type StoreRefusal = 'locked' | 'quarantined' | 'key_full';

/** A node whose agent is not trusted any more: its deltas are refused, its deviations kept and marked. */
export interface QuarantinedNode {
  node: string;
  by: string;
  at: number;
  reason: string;
}

/** What quarantining a node or dropping its share of a key removed. */
export interface NodeDropResult {
  /** Keys whose baseline changed (each has a new version). */
  keys: string[];
  /** Entries removed because only that node taught them (approved or added ones stay). */
  entriesRemoved: number;
  /** Entries that stay (other nodes taught them, or security approved or added them), their stats recomputed without the node's share. */
  entriesRecomputed: number;
  /** Of those, entries whose first/last seen or examples could not be told apart from security's own exactly: narrowed to what provably remains (core/merge withoutShare). */
  entriesNarrowed: number;
}

/** Filters for listing alerts. */
export interface AlertQuery {
  limit: number;
  cursor?: string | undefined;
  image?: string | undefined;
  kind?: EventKind | undefined;
  state?: AlertState | undefined;
  /** This severity or a more urgent one. */
  severity?: Severity | undefined;
  namespace?: string | undefined;
}

/** Filters for listing deviations. */
export interface DeviationQuery {
  limit: number;
  cursor?: string | undefined;
  fingerprint?: string | undefined;
  baselineKey?: string | undefined;
  node?: string | undefined;
}

/**
 * What security decided about an entry: `learned` (from agents, not reviewed), `flagged` (learned
 * during a new image version's grace period: allowed, waiting for review), `approved`, `added` (by
 * hand, by accepting an alert, or by import), `removed` (never learned again: it alerts).
 */
export type EntryStatus = 'learned' | 'flagged' | 'approved' | 'added' | 'removed';

/** A baseline's state as reviewers see it: `relearn` until the agents report their new window. */
export type ReviewedState = BaselineState | 'relearn';

/** An entry with its review status. */
export interface ReviewedEntry extends EntryStats {
  /** Nodes whose share of this entry was dropped (quarantined, or dropped by a reviewer), at most 16: it stays because of other nodes or security. */
  droppedNodes: string[];
  status: EntryStatus;
  /** Why it has its status: the reviewer's reason, or `new in version TAG@DIGEST ...` for `flagged`; '' when learned. */
  statusReason: string;
}

/** One baseline key across the cluster, with what security decided. */
export interface BaselineView extends Omit<MergedBaseline, 'entries' | 'state'> {
  state: ReviewedState;
  /** Review version: bumped by every review change (0 = never reviewed). */
  version: number;
  /** Some of its learning missed containers' start-up (they were already running). */
  partial: boolean;
  /** Namespaces of the pods it was learned from. */
  namespaces: string[];
  entries: ReviewedEntry[];
}

/** A version of a baseline: who changed what, when and why, and the active entries after it. */
export interface BaselineVersion {
  key: string;
  version: number;
  at: number;
  by: string;
  action: string;
  reason: string;
  state: ReviewedState;
  entryIds: string[];
  removedIds: string[];
}

/** A review change. */
export type BaselineChange =
  | { action: 'lock' | 'unlock' | 'relearn' }
  | { action: 'approve' | 'remove'; entryId: string }
  | { action: 'add'; entry: Entry }
  /** Drop what one node taught this key: its counts, and the entries only it taught (not those security approved or added). */
  | { action: 'drop-node'; node: string }
  | { action: 'import'; state: BaselineState; entries: Entry[]; removed: Entry[] };

/** The outcome of a review change. */
export type ReviewResult =
  | { ok: true; before: BaselineView | null; after: BaselineView; version: number; /** What a drop-node took out. */ dropped?: Omit<NodeDropResult, 'keys'> }
  | { ok: false; status: 400 | 404 | 409; message: string };

/** What agents enforce for a key (core/baseline.ts). */
export type { ClusterBaseline } from '../../core/baseline.js';
import type { ClusterBaseline } from '../../core/baseline.js';

/** A baseline in a list: the merged header without entries. */
export type BaselineSummary = Omit<MergedBaseline, 'entries' | 'state'> & {
  state: ReviewedState;
  version: number;
  partial: boolean;
  namespaces: string[];
  processEntries: number;
  networkEntries: number;
  /** Alerts firing or acknowledged for this key. */
  openAlerts: number;
};

/** The store. */
export interface Store {
  /**
   * Commit a batch from `node` in one transaction. Deviations whose id is already stored are skipped;
   * baseline deltas (see core takeDelta) merge into the cluster-wide baselines, idempotently.
   */
  ingest(node: string, deviations: readonly Deviation[], deltas: readonly BaselineSnapshot[], receivedAt: number, policy?: AlertPolicy): IngestResult;
  /**
   * Group commit: several batches in one transaction, so that they share one commit (one fsync)
   * instead of paying one each. Each batch runs in its own savepoint, in order: a batch that fails is
   * rolled back alone and reported as its Error; the others commit. Throws (nothing committed) only
   * when the transaction itself fails.
   */
  ingestMany(batches: readonly IngestBatch[], receivedAt: number, policy?: AlertPolicy): (IngestResult | Error)[];
  /** ingestMany of batches already prepared (see PreparedDeviation and createDeviationPreparer). */
  ingestPrepared(batches: readonly PreparedBatch[], receivedAt: number, policy?: AlertPolicy): (IngestResult | Error)[];
  listAlerts(query: AlertQuery): Page<Alert>;
  getAlert(fingerprint: string): Alert | null;
  /**
   * Acknowledge, resolve or accept an alert. Accepting also adds its entry to the cluster-wide
   * baseline of its key, so the collector drops further deviations of it.
   */
  transitionAlert(fingerprint: string, change: AlertTransition, followUps?: (change: { before: Alert; after: Alert }) => OutboxEntry[]): TransitionResult;
  /** Add notifications to the outbox. */
  enqueue(items: readonly OutboxEntry[], now: number): void;
  /** The oldest pending notification for `sink` due at `now`, or null. */
  nextDelivery(sink: string, now: number): OutboxItem | null;
  /** When the next pending notification for `sink` is due, or null when none is pending. */
  nextDueAt(sink: string): number | null;
  /** Record the outcome of one delivery attempt. */
  settleDelivery(seq: number, outcome: { state: 'delivered' | 'failed' | 'pending'; attempts: number; nextAt: number; error: string; at: number }): void;
  /** Deliveries of an alert, newest first (bounded). */
  deliveriesOf(alert: string): OutboxItem[];
  /** Pending notifications in the outbox. */
  pendingDeliveries(): number;
  addException(e: AlertException): void;
  listExceptions(): AlertException[];
  getException(id: string): AlertException | null;
  revokeException(id: string, by: string, at: number): AlertException | null;
  markReminded(id: string, at: number): void;
  /** Delete deviations received before `deviationsBefore` and resolved/accepted alerts last seen before `alertsBefore`. */
  prune(deviationsBefore: number, alertsBefore: number): { deviations: number; alerts: number; deliveries: number };
  listDeviations(query: DeviationQuery): Page<StoredDeviation>;
  countDeviations(): number;
  listBaselines(): BaselineSummary[];
  getBaseline(key: string): BaselineView | null;
  /** Apply a review change as `by`, making a new version. */
  reviewBaseline(key: string, change: BaselineChange, by: string, reason: string, at: number): ReviewResult;
  listVersions(key: string): BaselineVersion[];
  getVersion(key: string, version: number): BaselineVersion | null;
  /** What agents should enforce for `key`, or null when the collector knows nothing of it. */
  clusterBaseline(key: string): ClusterBaseline | null;
  /** Keys with a cluster baseline past learning (what a connecting agent is sent). */
  clusterKeys(): string[];
  /**
   * Quarantine a node: from now on its baseline deltas are refused, what it taught is dropped from
   * every key (as drop-node, a new version each), and its deviations stay, marked. Null when already quarantined.
   */
  quarantineNode(node: string, by: string, reason: string, at: number): NodeDropResult | null;
  /** Lift a quarantine (what was dropped stays dropped); false when the node was not quarantined. */
  releaseNode(node: string): boolean;
  listQuarantined(): QuarantinedNode[];
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

// ---- nodes: each agent's last contact and lag (issue 7, delivery) ----

/** What the collector knows about one node's agent, kept across collector restarts. */
export interface NodeRecord {
  node: string;
  agentVersion: string;
  /** The agent's `--source` values, from its Hello (bounded). */
  sources: string[];
  /** First and last message from this node's agent (collector wall clock, ms). */
  firstSeen: number;
  lastContact: number;
  /** From the latest heartbeat: records and bytes in its spool, age (ms) of the oldest unacknowledged one. */
  spooled: number;
  spoolBytes: number;
  lagMs: number;
  /** Deviations its full spool dropped since the agent process started (from heartbeats). */
  spoolDropped: number;
  /** Event time of the newest event the agent processed (ms), or 0. */
  watermark: number;
  /** Since when it is marked silent (no contact for `silentAfter`), or 0. */
  silentSince: number;
  /** When its agent last said goodbye (a clean stop: drained, then closed its stream), or 0 once it is back. */
  stoppedAt: number;
}

/** The store's node records. */
export interface NodeStore {
  /** Insert or replace node records, in one transaction. */
  saveNodes(records: readonly NodeRecord[]): void;
  /** Every node record, by name. */
  listNodes(): NodeRecord[];
  /** Forget a node; false when there was none. */
  deleteNode(node: string): boolean;
}
