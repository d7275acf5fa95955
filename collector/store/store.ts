/**
 * The collector's store: one small interface per aggregate, and `Store`, their union. Each consumer
 * takes only the slices it uses (ingest writes through IngestStore and reads BaselineStore, the node
 * tracker takes NodeStore, alerting the alert, outbox, exception and retention slices, the HTTP API
 * what it shows and reviews, the audit log its rows). SQLite (better-sqlite3, WAL) is the embedded
 * implementation, one file per slice under ./sqlite/; nothing outside collector/store/ speaks SQL.
 */
import type { BaselineSnapshot, BaselineState, ClusterBaseline, EntryStats } from '../../core/baseline.js';
import type { Deviation } from '../../core/deviation.js';
import type { Entry } from '../../core/entry.js';
import type { EventKind } from '../../core/event.js';
import type { ContainerReport, ImageSighting } from '../../core/inventory.js';
import type { MergedBaseline } from '../../core/merge.js';
import type { SbomPackage } from '../../core/sbom/parse.js';
import type { Severity } from '../../core/severity.js';
import type { Alert, AlertException, AlertPolicy, AlertState, AlertTransition, OutboxEntry, OutboxItem, StormCount } from '../alerting/alert.js';

/** What agents enforce for a key (core/baseline.ts). */
export type { ClusterBaseline } from '../../core/baseline.js';

/** The store: every slice, and closing it. */
export interface Store
  extends IngestStore,
    AlertStore,
    DeviationStore,
    BaselineStore,
    OutboxStore,
    JobLeaseStore,
    StormStore,
    ExceptionStore,
    NodeStore,
    QuarantineStore,
    RetentionStore,
    AuditStore,
    ImageStore,
    TicketStore,
    SbomStore {
  close(): void;
}

/** A page of results; `next` is the cursor for the following page, or null. */
export interface Page<T> {
  items: T[];
  next: string | null;
}

/** Raised for a malformed pagination cursor. */
export class CursorError extends Error {
  readonly code = 'invalid_cursor' as const;
  constructor() {
    super('cursor is not one this API returned');
    this.name = 'CursorError';
  }
}

// ---- ingest: agent batches, committed in one transaction with what they change ----

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
  /**
   * Its reason is drift (a binary not from the image): stored and alerted even when the cluster
   * baseline knows its entry, since the entry names a path, and this run of it did not come from the image.
   */
  drift?: boolean;
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

/**
 * Where agent batches are committed: deviations stored (once per id), grouped into alerts, their
 * notifications written to the outbox, and the batches' baseline deltas merged, in one transaction.
 */
export interface IngestStore {
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
}

// ---- alerts: listed, read, and moved through their life cycle ----

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

/** The outcome of a transition: the alert before and after, or why not. */
export type TransitionResult =
  | { ok: true; before: Alert; after: Alert; /** What `followUps` wrote to the outbox with the change. */ notifications: OutboxEntry[] }
  | { ok: false; reason: 'not-found' }
  | { ok: false; reason: 'conflict'; alert: Alert };

/** The alerts. */
export interface AlertStore {
  listAlerts(query: AlertQuery): Page<Alert>;
  getAlert(fingerprint: string): Alert | null;
  /**
   * Acknowledge, resolve or accept an alert. Accepting also adds its entry to the cluster-wide
   * baseline of its key, so the collector drops further deviations of it.
   */
  transitionAlert(fingerprint: string, change: AlertTransition, followUps?: (change: { before: Alert; after: Alert }) => OutboxEntry[]): TransitionResult;
}

// ---- deviations: what agents reported, as stored ----

/** One stored deviation. */
export interface StoredDeviation {
  deviation: Deviation;
  fingerprint: string;
  receivedAt: number;
  /** Its node is quarantined (what it sent is kept for the investigation, marked). */
  nodeQuarantined: boolean;
}

/** Filters for listing deviations. */
export interface DeviationQuery {
  limit: number;
  cursor?: string | undefined;
  fingerprint?: string | undefined;
  baselineKey?: string | undefined;
  node?: string | undefined;
}

/** The stored deviations. */
export interface DeviationStore {
  listDeviations(query: DeviationQuery): Page<StoredDeviation>;
  countDeviations(): number;
}

// ---- baselines: the cluster-wide merge, security's review, versions, what agents enforce ----

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
  /** Executable path globs whose drift security allowed for this key (core/baseline driftAllowedFor); reviewed like entries. */
  driftAllowed: string[];
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
  | { action: 'import'; state: BaselineState; entries: Entry[]; removed: Entry[]; driftAllowed?: string[] }
  /** Allow (or stop allowing) drift of executables matching a path glob: a JIT cache, a plugin installer. */
  | { action: 'allow-drift' | 'disallow-drift'; pattern: string };

/** The outcome of a review change. */
export type ReviewResult =
  | { ok: true; before: BaselineView | null; after: BaselineView; version: number; /** What a drop-node took out. */ dropped?: Omit<NodeDropResult, 'keys'> }
  | { ok: false; status: 400 | 404 | 409; message: string };

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

/** The cluster-wide baselines (agents' deltas merge into them through IngestStore). */
export interface BaselineStore {
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
}

// ---- outbox: notifications waiting for, or done with, delivery ----

/**
 * The outbox: written with the change that decides a notification, read by the outbox workers. Several
 * collectors (replicas) may share one store: a worker takes a notification by claiming it under a
 * lease in its own name, and only the holder of a live lease sends and settles it; a lease that
 * expires (its replica died mid-delivery) lets another replica's worker claim the notification.
 */
export interface OutboxStore {
  /** Add notifications to the outbox. */
  enqueue(items: readonly OutboxEntry[], now: number): void;
  /**
   * Claim the oldest pending notification for `sink` due at `now` that no live lease holds: it is
   * leased to `owner` until `now + leaseMs`. Null when none is due and free.
   */
  claimDelivery(sink: string, now: number, owner: string, leaseMs: number): OutboxItem | null;
  /** Extend `owner`'s lease on `seq` to `until`; false when `owner` does not hold it any more (expired and claimed by another, or settled). */
  renewDelivery(seq: number, owner: string, until: number): boolean;
  /**
   * When the next pending notification for `sink` is due and free (its due time, or when the lease
   * on it ends, whichever is later), or null when none is pending.
   */
  nextDueAt(sink: string): number | null;
  /**
   * Record the outcome of one delivery attempt and release the lease: only by `owner`, the lease's
   * holder. False (nothing written) when `owner` does not hold the lease any more.
   */
  settleDelivery(seq: number, owner: string, outcome: { state: 'delivered' | 'failed' | 'pending' | 'skipped'; attempts: number; nextAt: number; error: string; at: number }): boolean;
  /** Deliveries of an alert, newest first (bounded). */
  deliveriesOf(alert: string): OutboxItem[];
  /** Pending notifications in the outbox. */
  pendingDeliveries(): number;
}

// ---- job leases: periodic jobs run by one replica at a time ----

/**
 * Leases on periodic jobs (silent nodes, digests, reminders, re-send, retention): of several
 * collectors on one store, the one holding a job's live lease runs it. The holder renews it with
 * each run; when it stops (its replica died), the lease expires and another replica takes it.
 */
export interface JobLeaseStore {
  /**
   * Lead `job` as `owner` until `now + ttlMs`: true when the job had no lease, an expired one, or
   * `owner`'s own (renewed); false while another owner's lease is live.
   */
  tryLead(job: string, owner: string, ttlMs: number, now: number): boolean;
  /** Give up `owner`'s lease on `job` (a clean shutdown), so another replica takes it at once. */
  resign(job: string, owner: string): void;
}

// ---- storm control shared by replicas (issue 20) ----

/** What each replica counted in its open storm-control windows, so that N replicas keep one rate. */
export interface StormStore {
  /**
   * Record `owner`'s `counts` (each replaces what it recorded before for that window), forget
   * windows that ended by `now`, and return what the other replicas counted in windows still open,
   * summed per scope and window.
   */
  shareStorm(owner: string, counts: readonly StormCount[], now: number): StormCount[];
}

// ---- exceptions: risks accepted by security ----

/** The exceptions. */
export interface ExceptionStore {
  addException(e: AlertException): void;
  listExceptions(): AlertException[];
  getException(id: string): AlertException | null;
  revokeException(id: string, by: string, at: number): AlertException | null;
  markReminded(id: string, at: number): void;
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
  /**
   * Insert or update node records, in one transaction. Several replicas save the nodes they hear
   * from: a stored row keeps the latest last contact of any save and the earliest first sight; its
   * other fields come from the save with the latest last contact (on a tie, the newer save). A record
   * whose last contact is older than the stored one changes nothing but first sight.
   */
  saveNodes(records: readonly NodeRecord[]): void;
  /** Every node record, by name. */
  listNodes(): NodeRecord[];
  /** Forget a node; false when there was none. */
  deleteNode(node: string): boolean;
}

// ---- quarantine: nodes whose agents are not trusted any more ----

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

/** The quarantined nodes (ingest refuses their deltas; deviation lists mark what they sent). */
export interface QuarantineStore {
  /**
   * Quarantine a node: from now on its baseline deltas are refused, what it taught is dropped from
   * every key (as drop-node, a new version each), and its deviations stay, marked. Null when already quarantined.
   */
  quarantineNode(node: string, by: string, reason: string, at: number): NodeDropResult | null;
  /** Lift a quarantine (what was dropped stays dropped); false when the node was not quarantined. */
  releaseNode(node: string): boolean;
  listQuarantined(): QuarantinedNode[];
}

// ---- retention: what is old enough to go ----

/** Retention, across deviations, alerts and the outbox (one transaction). */
export interface RetentionStore {
  /** Delete deviations received before `deviationsBefore` and resolved/accepted alerts last seen before `alertsBefore`. */
  prune(deviationsBefore: number, alertsBefore: number): { deviations: number; alerts: number; deliveries: number };
}

// ---- audit: the rows of the audit log (collector/audit.ts bounds what goes in) ----

/** One audit row to append; `before`/`after` are JSON text, already bounded. */
export interface AuditRecord {
  /** When (ms since the epoch). */
  time: number;
  actor: string;
  role: string;
  action: string;
  target: string;
  before: string;
  after: string;
}

/** A stored audit row, with its id (ascending: newer rows have larger ids). */
export interface AuditRow extends AuditRecord {
  id: number;
}

/** The audit log's rows: appended, never changed. */
export interface AuditStore {
  /** Append one row (committed before it returns); its id. */
  appendAudit(record: AuditRecord): number;
  /** Up to `limit` rows with an id below `before`, newest first. */
  listAudit(before: number, limit: number): AuditRow[];
}

// ---- images: the inventory of what runs (issue 21) ----

/**
 * A digest of a repository recorded for the first time (no version row of the repository had it):
 * an image version that first runs (issue 22: its SBOM's notice). Told once, by the write that
 * inserted it, whichever replica that was; a digest pruned by retention and seen again is new again.
 */
export interface NewImageVersion {
  repository: string;
  digest: string;
}

/**
 * The bounds on image versions a write met (collector metric driftwatch_collector_bounds_hit_total,
 * bound `inventory_<name>`): new versions refused past MAX_NEW_VERSIONS_PER_WRITE (`write_versions`),
 * past a node's MAX_NEW_VERSIONS_PER_NODE_HOUR (`node_versions`), past MAX_IMAGE_VERSIONS
 * (`total_versions`), or past MAX_VERSIONS_PER_REPOSITORY with no old version to forget
 * (`repository_versions`); and old versions forgotten to make room in their repository (`repository_evicted`).
 */
export type InventoryBound = 'write_versions' | 'node_versions' | 'total_versions' | 'repository_versions' | 'repository_evicted';

/** What recording image sightings did. */
export interface RecordedSightings {
  newVersions: NewImageVersion[];
  /** Versions refused or forgotten at a bound, by bound (absent: none). */
  bounded: Partial<Record<InventoryBound, number>>;
}

/** What recording a container report did. */
export interface RecordedReport extends RecordedSightings {
  /** False when a newer report of the node is stored (nothing was recorded). */
  stored: boolean;
}

/** When a node's report counts as what runs now, and when a version counts as seen. */
export interface RunningWindow {
  /** The time the answer is for (ms). */
  now: number;
  /** A node's latest report older than this no longer counts (its agent stopped reporting). */
  staleAfterMs: number;
}

/** Filters for listing image repositories (repository order). */
export interface ImageQuery extends RunningWindow {
  limit: number;
  cursor?: string | undefined;
  /** Repositories seen in this namespace (running there now or in the recorded places). */
  namespace?: string | undefined;
  /** Repositories starting with this. */
  prefix?: string | undefined;
  /** Only repositories with (true) or without (false) a container running now. */
  running?: boolean | undefined;
  /** Only repositories last seen at or after this time (ms). */
  seenSince?: number | undefined;
}

/** Where a version runs or ran: one container place. */
export interface ImagePlace {
  node: string;
  namespace: string;
  workload: string;
  pod: string;
  firstSeen: number;
  lastSeen: number;
}

/** One version (tag and digest) of an image repository. */
export interface ImageVersion {
  tag: string;
  digest: string;
  firstSeen: number;
  lastSeen: number;
  /** Some node's fresh report lists a container of it. */
  running: boolean;
  /** Containers of it in fresh reports. */
  containers: number;
  /** Where it runs now (from fresh reports, bounded by MAX_IMAGE_PLACES). */
  runningIn: ImagePlace[];
  /** Where it was seen (reports and deviations), most recent first, bounded by MAX_IMAGE_PLACES. */
  seenIn: ImagePlace[];
}

/** An image repository in a list. */
export interface ImageSummary {
  repository: string;
  firstSeen: number;
  lastSeen: number;
  running: boolean;
  /** Containers of it in fresh reports. */
  containers: number;
  /** Namespaces it was seen in (bounded). */
  namespaces: string[];
  /** Its versions without places: at most MAX_VERSIONS_READ, those a node's latest report lists first, then the last seen. */
  versions: Omit<ImageVersion, 'runningIn' | 'seenIn'>[];
  /** How many versions the repository has (more than `versions` when it was cut). */
  versionCount: number;
  /** `versions` lists only MAX_VERSIONS_READ of `versionCount`. */
  versionsTruncated: boolean;
}

/** One repository with its versions and their places. */
export interface ImageDetail extends Omit<ImageSummary, 'versions'> {
  versions: ImageVersion[];
}

/** One version of the running set, for scanners. */
export interface RunningImage {
  repository: string;
  tag: string;
  digest: string;
  containers: number;
  namespaces: string[];
  nodes: string[];
}

/** Most places kept per version (older ones are not recorded once a version has this many). */
export const MAX_IMAGE_PLACES = 256;
/** Most places of one version one node may hold, so that no node takes all MAX_IMAGE_PLACES. */
export const MAX_IMAGE_PLACES_PER_NODE = 64;

// Bounds on the versions nodes can make the inventory keep (every node is a possible attacker). A real
// node runs a few dozen images and a rollout brings a few new versions, so a node that meets them is
// reporting names no cluster runs; 10,000 containers of made-up versions per report otherwise grow the
// tables without end. The versions already known are recorded whatever these bounds say.

/** New versions (repository, tag, digest) one write may add: ~10× a node's whole image set. */
export const MAX_NEW_VERSIONS_PER_WRITE = 200;
/** New versions one node may add in a clock hour: five such writes, or a rollout of every image each minute. */
export const MAX_NEW_VERSIONS_PER_NODE_HOUR = 1_000;
/** Versions kept per repository: a build per hour for six weeks; past it the oldest not running is forgotten. */
export const MAX_VERSIONS_PER_REPOSITORY = 1_000;
/** Versions kept in all: 200 repositories at their bound; new ones past it are refused. */
export const MAX_IMAGE_VERSIONS = 200_000;
/** Versions of a repository a read returns (the most recently seen). */
export const MAX_VERSIONS_READ = 500;
/** Places a repository's detail reads (the most recently seen), whatever its versions hold. */
export const MAX_PLACES_READ = 20_000;

/**
 * The image inventory: each node's latest container report (what runs there now) and, per image
 * version, when and where it was seen. Running now = listed by the latest report of a node whose
 * report is fresh (RunningWindow) and which is neither silent nor quarantined. Several replicas share
 * it through the database: a report older than the stored one for its node changes nothing.
 */
export interface ImageStore {
  /** Replace `node`'s report (received at `receivedAt`) and record its versions and places as seen then. `stored` false when a newer report of the node is stored. */
  recordContainerReport(node: string, report: ContainerReport, receivedAt: number): RecordedReport;
  /**
   * Record versions seen in deviations' events (first/last seen and places); not running by itself.
   * The digests recorded for the first time; new versions count against their first sighting's node
   * in the hour of `receivedAt` (default: the newest sighting's time).
   */
  recordImageSightings(sightings: readonly ImageSighting[], receivedAt?: number): RecordedSightings;
  listImages(query: ImageQuery): Page<ImageSummary>;
  getImage(repository: string, window: RunningWindow): ImageDetail | null;
  /** The running set: every version a fresh report lists (bounded to `limit` versions). */
  runningImages(window: RunningWindow & { limit: number }): RunningImage[];
  /** Forget versions and places last seen before `before` (retention); how many versions went. */
  pruneImages(before: number): number;
}

// ---- image tickets: one ticket per image repository in an issue tracker (collector/sinks/tickets.ts) ----

/** Where an image's ticket is: `open`, `closed` (by us, none of its alerts open), or `none` (not opened yet, or deleted in the tracker). */
export type TicketState = 'open' | 'closed' | 'none';

/** The ticket of one image repository in one ticket sink. */
export interface ImageTicket {
  sink: string;
  repository: string;
  /** The tracker's id of the ticket (GitHub issue number, GitLab iid, Jira key), or '' before one was opened. */
  ref: string;
  /** Its web address, or ''. */
  url: string;
  state: TicketState;
  /** Alerts of the image the sink was told about and not yet told were resolved. */
  openAlerts: number;
  /** Tickets opened for this image so far (a second one only after the first was deleted in the tracker). */
  opened: number;
  updatedAt: number;
}

/** What one step of a ticket sink changes; every field optional. */
export interface ImageTicketChange {
  ref?: string | undefined;
  url?: string | undefined;
  state?: TicketState | undefined;
  /** A ticket was opened (counts `opened`). */
  openedTicket?: boolean | undefined;
  /** This alert is open now (tracked), or was resolved (no longer tracked). */
  alertOpened?: string | undefined;
  alertClosed?: string | undefined;
  at: number;
}

/**
 * The tickets of image repositories, one row per (sink, repository): a restart finds the ticket it
 * opened instead of opening a second. Several replicas deliver for one sink at once, so a step on an
 * image's ticket is taken under a claim on its row (a lease, as the outbox's): of two replicas
 * handling two alerts of one image, one opens the ticket and the other waits, then comments on it.
 */
export interface TicketStore {
  /**
   * Claim the ticket row of (`sink`, `repository`) for `owner` until `now + leaseMs`, creating it
   * (state `none`) when missing: the row as it is, and whether `alert` is among its open alerts; null
   * while another owner's claim is live.
   */
  claimImageTicket(sink: string, repository: string, alert: string, owner: string, now: number, leaseMs: number): { ticket: ImageTicket; alertOpen: boolean } | null;
  /** Record a step; only by the claim's holder. False (nothing written) when `owner` does not hold the claim. */
  recordImageTicket(sink: string, repository: string, owner: string, change: ImageTicketChange): boolean;
  /** Give up `owner`'s claim. */
  releaseImageTicket(sink: string, repository: string, owner: string): void;
  /** The ticket row, or null. */
  getImageTicket(sink: string, repository: string): ImageTicket | null;
}

// ---- SBOMs: what each image digest is made of (issue 22) ----

/** An SBOM as stored for one image digest: its header, packages, and file paths with their owners. */
export interface SbomRecord {
  /** `sha256:…` of the image (manifest or index digest, as the runtime reports it). */
  digest: string;
  /** Canonical repository without tag or digest (`docker.io/library/debian`). */
  repository: string;
  format: 'cyclonedx' | 'spdx';
  specVersion: string;
  tool: string;
  importedAt: number;
  importedBy: string;
  /** The document lists the image's files (not only where packages were found). */
  filesListed: boolean;
  packages: readonly SbomPackage[];
  /** Path → index in `packages`, or -1 when listed without an owner. */
  files: ReadonlyMap<string, number>;
}

/** An SBOM's header, with its counts. */
export type SbomSummary = Omit<SbomRecord, 'packages' | 'files'> & { packageCount: number; fileCount: number };

/** A file the SBOM lists, and the package that owns it (null: listed without one). */
export interface SbomFile {
  path: string;
  package: SbomPackage | null;
}

/** Most paths one sbomFiles call looks up. */
export const MAX_SBOM_LOOKUP = 10_000;

/** The SBOMs, one per image digest; read-time joins link baseline entries and alerts to their packages. */
export interface SbomStore {
  /** Store the SBOM of a digest in one transaction, replacing the one it had; true when it replaced one. */
  putSbom(record: SbomRecord): boolean;
  getSbom(digest: string): SbomSummary | null;
  /** The SBOM imported last for a repository (the fallback when a process's digest is not known), or null. */
  latestSbom(repository: string): SbomSummary | null;
  /** The SBOMs of a repository, last imported first (at most 100). */
  listSboms(repository: string): SbomSummary[];
  /** Of `paths` (at most MAX_SBOM_LOOKUP), those the SBOM of `digest` lists, with their owners. */
  sbomFiles(digest: string, paths: readonly string[]): SbomFile[];
  /** Up to `limit` packages of the SBOM of `digest`, in document order. */
  sbomPackages(digest: string, limit: number): SbomPackage[];
}
