/**
 * Baselines: per key (an image, by default its repository), the entries learned during a learning
 * window measured on the events' own clock, then checked against. Pure: no I/O, no wall clock.
 */
import { isDrift, mergeOrigin, originText, type ActivityEvent, type ExecutableOrigin, type ImageRef } from './event.js';
import { describeEntry, entryFromId, entryId, exampleOf, generalPeerCovers, generalPeerOf, networkEntryOfId, programLabel, PUBLIC_PEER, sameServiceEntries, type Entry, type GeneralPeer, type NetworkEntry } from './entry.js';
import { cidrContains, classifyAddress, coveringCidr, formatIp, isGlobalAddress, parseCidr, parseIp, prefixOf, type Cidr, type ParsedIp } from './ip.js';
import { stripDeleted } from './normalize.js';
import { globMatch } from './severity.js';

/** How events are grouped into baselines. */
export type KeyMode = 'repository' | 'tag' | 'digest';

/** Key of the baseline that host processes (no container) learn into; never an image's. */
export const HOST_KEY = '@host';

/** Life cycle of a baseline. */
export type BaselineState = 'learning' | 'enforcing' | 'locked';

/** Most distinct images (tags/digests) a baseline remembers having seen. */
const MAX_IMAGES = 32;
/** Most nodes an entry remembers. */
const MAX_NODES = 32;
/** Most raw examples an entry keeps. */
export const MAX_EXAMPLES = 3;
/** Longest raw example kept, in characters. */
const MAX_EXAMPLE_LENGTH = 256;

/** The baseline key of an event, or null when its container has no known image. */
export function baselineKey(event: ActivityEvent, mode: KeyMode): string | null {
  const c = event.container;
  if (!c) return HOST_KEY;
  const img = c.image;
  if (img.repository === '') return null;
  if (mode === 'digest' && img.digest !== '') return `${img.repository}@${img.digest}`;
  if (mode !== 'repository' && img.tag !== '') return `${img.repository}:${img.tag}`;
  return img.repository;
}

/** What a baseline knows about one entry. */
export interface EntryStats {
  id: string;
  entry: Entry;
  firstSeen: number;
  lastSeen: number;
  count: number;
  nodes: string[];
  /** A few raw values it was learned from (command lines or peer addresses), bounded. */
  examples: string[];
  /** Learned during a new image version's grace period: that version (tag@digest), for review. */
  addedBy?: string;
  /**
   * Where its executable came from (process entries; mergeOrigin of every exec seen): `image`, or a
   * drift origin for an executable the baseline's drift allow list let through. Absent: no source told.
   */
  origin?: ExecutableOrigin;
}

/**
 * What a baseline holds in memory for one entry. An agent may hold hundreds of thousands of entries,
 * so this is the least that learning and matching need: not the parsed entry (the id encodes it; see
 * entryFromId) and not the raw examples, which go to the agent's state with the next delta and are
 * only counted here.
 */
export interface LearnedEntry {
  id: string;
  firstSeen: number;
  lastSeen: number;
  count: number;
  nodes: string[];
  /** How many raw examples were recorded for it (at most MAX_EXAMPLES). */
  examples: number;
  /** Changed since the last delta was taken (then it is in its baseline's `changed` list). */
  dirty: boolean;
  /** Where its executable came from (EntryStats.origin); undefined for network entries and when no source told. */
  origin: ExecutableOrigin | undefined;
}

/** An entry as persisted or received: its stats and examples, without the parsed entry. */
export type StoredEntry = Omit<EntryStats, 'entry'>;

/** A baseline in memory. Mutated only by the engine. */
export interface Baseline {
  key: string;
  state: BaselineState;
  /** Bumped on every change of entries or state; deviations name the version they were checked against. */
  version: number;
  /** Event time of the first event seen for this key. */
  windowStart: number;
  /** Event time at which learning ends. */
  learnUntil: number;
  /** Event time the baseline became enforcing, or 0. */
  enforcingSince: number;
  /** Events counted into this baseline (learned or matched). */
  events: number;
  /** Entries not learned because the baseline was full. */
  overflow: number;
  images: ImageRef[];
  entries: Map<string, LearnedEntry>;
  /** Entries changed since the last delta, each once (see takeDelta). */
  changed: LearnedEntry[];
  /** Raw examples recorded since the last delta, by entry id; null when none. */
  fresh: Map<string, string[]> | null;
  /** Learning began while a container of the key was already running (its start-up was missed). */
  partial: boolean;
  /** Namespaces of the pods it saw (bounded), or null. */
  namespaces: string[] | null;
  /** Entry ids security removed: never learned, they deviate. Null when none. */
  removed: Set<string> | null;
  /** Quiet period of this key: a new entry pushes learnUntil to at least its time plus this. */
  quietMs: number;
  /** Learning ends by this event time whatever appears (windowStart + max). */
  maxUntil: number;
  /** Grace period of a new image version: its new entries are learned (flagged) until then, not alerted. */
  graceMs: number;
  /** The version in grace now, or null. */
  grace: { version: string; until: number } | null;
  /** Entries learned during a grace period, with the version that brought them; null when none. */
  addedBy: Map<string, string> | null;
  /**
   * Generalized peers (blocks and the public class), by `direction|protocol|port`: each and the id
   * of its entry. Null when none. Consulted only when an exact lookup missed.
   */
  aggregates: Map<string, { peer: GeneralPeer; id: string }[]> | null;
  /** Public addresses learned per `direction|protocol|port`, the evidence for generalizing; null when none. */
  publicPeers: Map<string, ParsedIp[]> | null;
  /**
   * Executable path globs whose drift (a binary not from the image) security allowed for this key
   * (ClusterBaseline.driftAllowed); null when none: then every drift exec deviates, in every state.
   */
  driftAllowed: readonly string[] | null;
}

/**
 * A plain-JSON copy of a baseline: its header and entries. As a delta (what the agent persists and
 * sends), `entries` lists only the entries changed since the previous delta, with their absolute
 * stats and only the examples recorded since; a full snapshot is the delta that lists every entry.
 * Absolute stats make applying a delta twice, or an older one after a newer one, harmless.
 */
export interface BaselineSnapshot {
  key: string;
  state: BaselineState;
  version: number;
  windowStart: number;
  learnUntil: number;
  enforcingSince: number;
  events: number;
  overflow: number;
  images: ImageRef[];
  entries: EntryStats[];
  /** Learning began while a container of the key was already running: its start-up was missed. */
  partial?: boolean;
  /** Namespaces of the pods it was learned from (bounded). */
  namespaces?: string[];
}

/**
 * What the cluster enforces for one key: the collector's merged, reviewed baseline, pushed to
 * agents. They add its entries, drop (and never learn again) the removed ones and take its state;
 * on `relearn` they forget what they learned for the key and start a new window.
 */
export interface ClusterBaseline {
  key: string;
  state: BaselineState;
  relearn: boolean;
  /** Review version on the collector. */
  version: number;
  windowStart: number;
  learnUntil: number;
  entryIds: string[];
  removedIds: string[];
  /**
   * Executable path globs (core/severity globMatch) whose drift security approved for this key: an
   * image that legitimately writes and runs code (JIT caches, plugin installers). Absent or empty: none.
   */
  driftAllowed?: string[];
}

/** Most drift allow patterns one key holds, and the longest one. */
export const DRIFT_ALLOW_LIMITS = Object.freeze({ patterns: 64, length: 256 });

/**
 * Whether a drift allow list covers an executable: a glob with a `/` against the path as run (and
 * ` (deleted)` stripped) or as normalized in the entry; one without a `/` against its basename.
 */
export function driftAllowedFor(patterns: readonly string[] | null | undefined, exe: string, entryExe: string): boolean {
  if (!patterns || patterns.length === 0) return false;
  const raw = stripDeleted(exe);
  const base = raw.slice(raw.lastIndexOf('/') + 1);
  for (const g of patterns) {
    if (g.includes('/') ? globMatch(g, raw) || globMatch(g, entryExe) : globMatch(g, base)) return true;
  }
  return false;
}

/** Why an event did not match: the closest thing the baseline does know. */
export type DeviationReason =
  | 'new-executable'
  | 'new-parent'
  | 'new-user'
  | 'new-arguments'
  | 'new-peer'
  | 'new-port'
  | 'new-listen-port'
  | 'new-protocol'
  /**
   * The executable is not from the image (written after start, in memory, deleted): alerted in every
   * state, learning included, unless the key's drift allow list covers it. See ExecutableOrigin.
   */
  | 'drift';

/** The outcome of observing one event. */
export type Observation =
  | { verdict: 'learned'; baseline: Baseline; isNew: boolean }
  | { verdict: 'matched'; baseline: Baseline }
  | { verdict: 'deviation'; baseline: Baseline; reason: DeviationReason; explanation: string; nearest: string[] }
  | { verdict: 'dropped'; reason: 'too-many-baselines' };

/** How long a key learns: at least `windowMs`, until nothing new appeared for `quietMs`, never past `maxMs`. */
export interface LearningWindow {
  windowMs: number;
  quietMs: number;
  maxMs: number;
  /** Grace period of a new image version under an enforcing baseline (0: none, it alerts). */
  graceMs?: number;
}

/** Engine settings. */
export interface BaselineEngineOptions {
  /** The least time a key learns (event time). */
  learningWindowMs: number;
  /** Learning goes on until no new entry appeared for this long (0: the window alone decides). */
  quietPeriodMs: number;
  /** Learning never lasts longer than this. */
  maxLearningMs: number;
  /** A new image version's new behaviour is learned (flagged for review) for this long instead of alerting (0: off). */
  versionGraceMs: number;
  /** Per-key windows (by namespace or image), consulted when a key starts learning; default: the above. */
  windowFor?: ((key: string, event: ActivityEvent | null) => LearningWindow) | undefined;
  keyMode: KeyMode;
  /** Most entries one baseline holds; further new behaviour during learning is counted as overflow. */
  maxEntriesPerBaseline: number;
  /** Most baselines held; events of further keys are dropped and counted. */
  maxBaselines: number;
  /** When many public addresses on one port are learned as a block or as the public class. */
  generalize: PeerGeneralization;
  /**
   * An event more than this far (event time) from the engine's clock moves no learning window
   * until a second event confirms the jump (see advanceClock); 0: every event moves it.
   */
  maxClockJumpMs: number;
}

/**
 * Generalization of public peers, per key, direction, protocol and port, while learning (counts
 * are distinct addresses; 0 switches a rule off):
 *
 * | rule        | when                                                                | learns                              |
 * | ----------- | ------------------------------------------------------------------- | ----------------------------------- |
 * | block       | `blockAt` addresses within one /24 (IPv6 /64)                        | their smallest covering block       |
 * | wide block  | `wideBlockAt` addresses within one /`widestPrefix4` (IPv6 /`widestPrefix6`) | their smallest covering block |
 * | class       | `classAt` globally routable addresses that no learned block covers  | `@public`: any public peer          |
 *
 * The wider the block, the more addresses it takes; the class needs the most, and only counts
 * addresses the blocks do not explain, so two tight services on one port become two blocks, not
 * "anything". Single addresses stay learned beside what generalizes them: they are the evidence a
 * reviewer sees (generalizationOf) and what remains when the reviewer removes the broad entry.
 * Never generalized: names (a name is learned as such), cluster, loopback, link-local peers, and
 * another port or protocol: a key that never reached a public address on a port alerts on its first.
 */
export interface PeerGeneralization {
  blockAt: number;
  wideBlockAt: number;
  /** The widest IPv4 block learned (prefix length, 8..24). */
  widestPrefix4: number;
  /** The widest IPv6 block learned (prefix length, 16..64). */
  widestPrefix6: number;
  classAt: number;
}

/** Default generalization: /24 from 4 addresses, up to /16 (/32) from 8, the class from 16 spread addresses. */
export const DEFAULT_GENERALIZATION: PeerGeneralization = Object.freeze({ blockAt: 4, wideBlockAt: 8, widestPrefix4: 16, widestPrefix6: 32, classAt: 16 });

/** Most public addresses remembered per port as evidence while learning (bounds `classAt` too). */
export const MAX_PEER_EVIDENCE = 256;

/** Default engine settings. */
export const DEFAULT_ENGINE_OPTIONS: BaselineEngineOptions = Object.freeze({
  learningWindowMs: 3_600_000,
  quietPeriodMs: 600_000,
  maxLearningMs: 86_400_000,
  versionGraceMs: 0,
  keyMode: 'repository',
  maxEntriesPerBaseline: 2_000,
  maxBaselines: 20_000,
  generalize: DEFAULT_GENERALIZATION,
  maxClockJumpMs: 86_400_000,
});

/** A baseline as read back from storage: the header and its entries, which may be a lazy sequence. */
export type BaselineRecord = Omit<BaselineSnapshot, 'entries'> & { entries: Iterable<RestoredEntry> };

/** An entry to restore: its examples as the strings or, when they stay in storage, just how many. */
export type RestoredEntry = Omit<StoredEntry, 'examples'> & { examples: readonly string[] | number };

/** Learns and checks baselines. Holds them in memory; the caller persists snapshots. */
export interface BaselineEngine {
  readonly options: BaselineEngineOptions;
  /** Learn or check one event whose entry and key were already derived. */
  observe(event: ActivityEvent, key: string, entry: Entry, id: string): Observation;
  get(key: string): Baseline | undefined;
  all(): IterableIterator<Baseline>;
  /** Replace or add a baseline from a persisted header and entries (restore after restart, or a collector push). */
  restore(record: BaselineRecord): Baseline;
  /**
   * Take what the cluster enforces for a key: its entries (added without local stats), its removed
   * entries (dropped, never learned again), its state; entries it gave before and no longer lists
   * (never seen here) are forgotten; on relearn, forget and learn from the next event on. Returns
   * the baseline when anything changed, else null.
   */
  applyCluster(cluster: ClusterBaseline): Baseline | null;
  readonly size: number;
  /** Events whose time was too far from the engine's clock to move a window (see maxClockJumpMs). */
  readonly clockOutliers: number;
}

/** Create an engine. */
export function createBaselineEngine(options: Partial<BaselineEngineOptions> = {}): BaselineEngine {
  const opts: BaselineEngineOptions = Object.freeze({ ...DEFAULT_ENGINE_OPTIONS, ...options });
  const baselines = new Map<string, Baseline>();

  // The engine's clock (event time): what moves learning windows. See advanceClock.
  let clock = 0;
  let pendingJump = 0;
  let outOfBounds = 0;

  /**
   * The time an event moves windows by. An event within maxClockJumpMs of the clock moves it (only
   * forward) and uses its own time; one farther away, ahead or behind, uses the clock instead and
   * is counted, unless it confirms the previous far event (both within maxClockJumpMs of each
   * other): then the clock jumps to it, as after an agent that was stopped for days. So one event
   * stamped years ahead cannot close every learning window, and one stamped years back cannot
   * start a window that is already over.
   */
  function advanceClock(time: number): number {
    const jump = opts.maxClockJumpMs;
    if (jump <= 0) return time;
    if (clock === 0 || Math.abs(time - clock) <= jump) {
      if (time > clock) clock = time;
      pendingJump = 0;
      return time;
    }
    if (pendingJump !== 0 && Math.abs(time - pendingJump) <= jump) {
      clock = time;
      pendingJump = 0;
      return time;
    }
    pendingJump = time;
    outOfBounds++;
    return clock;
  }

  const windowOf = (key: string, event: ActivityEvent | null): LearningWindow =>
    opts.windowFor?.(key, event) ?? { windowMs: opts.learningWindowMs, quietMs: opts.quietPeriodMs, maxMs: opts.maxLearningMs, graceMs: opts.versionGraceMs };

  function create(key: string, time: number, event: ActivityEvent | null = null): Baseline {
    const w = windowOf(key, event);
    const b: Baseline = {
      key,
      state: 'learning',
      version: 1,
      windowStart: time,
      learnUntil: time + w.windowMs,
      enforcingSince: 0,
      events: 0,
      overflow: 0,
      images: [],
      entries: new Map(),
      changed: [],
      fresh: null,
      partial: false,
      namespaces: null,
      removed: null,
      quietMs: w.quietMs,
      maxUntil: time + Math.max(w.maxMs, w.windowMs),
      graceMs: w.graceMs ?? opts.versionGraceMs,
      grace: null,
      addedBy: null,
      aggregates: null,
      publicPeers: null,
      driftAllowed: null,
    };
    baselines.set(key, b);
    return b;
  }

  return {
    options: opts,
    get size() {
      return baselines.size;
    },
    get clockOutliers() {
      return outOfBounds;
    },
    get: (key) => baselines.get(key),
    all: () => baselines.values(),
    restore(record) {
      const entries = new Map<string, LearnedEntry>();
      for (const e of record.entries) {
        // A literal in the same field order as observe() makes: one compact object shape for all entries.
        entries.set(e.id, {
          id: e.id,
          firstSeen: e.firstSeen,
          lastSeen: e.lastSeen,
          count: e.count,
          nodes: shareNodes(e.nodes),
          examples: Math.min(typeof e.examples === 'number' ? e.examples : e.examples.length, MAX_EXAMPLES),
          dirty: false,
          origin: e.origin,
        });
      }
      const b: Baseline = {
        key: record.key,
        state: record.state,
        version: record.version,
        windowStart: record.windowStart,
        learnUntil: record.learnUntil,
        enforcingSince: record.enforcingSince,
        events: record.events,
        overflow: record.overflow,
        images: record.images.slice(0, MAX_IMAGES),
        entries,
        changed: [],
        fresh: null,
        partial: record.partial === true,
        namespaces: record.namespaces && record.namespaces.length > 0 ? record.namespaces.slice(0, MAX_NAMESPACES) : null,
        removed: null,
        quietMs: 0,
        maxUntil: 0,
        graceMs: 0,
        grace: null,
        addedBy: null,
        aggregates: null,
        publicPeers: null,
        driftAllowed: null,
      };
      for (const id of entries.keys()) {
        noteAggregate(b, id);
        // Still learning: the public addresses learned so far stay evidence for generalizing.
        if (b.state === 'learning' && !id.startsWith('exec|')) restoreEvidence(b, id);
      }
      const w = windowOf(b.key, null);
      b.quietMs = w.quietMs;
      b.graceMs = w.graceMs ?? opts.versionGraceMs;
      b.maxUntil = b.windowStart + Math.max(w.maxMs, w.windowMs);
      baselines.set(b.key, b);
      return b;
    },
    applyCluster(c) {
      let b = baselines.get(c.key);
      let changed = false;
      if (!b) {
        if (c.entryIds.length === 0 && c.removedIds.length === 0 && c.state === 'learning' && !c.driftAllowed?.length) return null;
        if (baselines.size >= opts.maxBaselines) return null;
        // Learned elsewhere: the window is the cluster's, so a new node enforces as soon as the cluster does.
        b = create(c.key, c.windowStart);
        if (c.learnUntil > 0) b.learnUntil = c.learnUntil;
        // No window known (a key security imported or added to): it starts at the next event.
        if (c.windowStart === 0) b.learnUntil = 0;
        changed = true;
      }
      if (c.relearn && b.learnUntil !== 0) {
        b.entries.clear();
        b.changed = [];
        b.fresh = null;
        b.state = 'learning';
        b.enforcingSince = 0;
        b.events = 0;
        b.overflow = 0;
        b.partial = false;
        // The new window starts at the next event (event time, as always).
        b.windowStart = 0;
        b.learnUntil = 0;
        changed = true;
      }
      for (const id of c.entryIds) {
        if (b.entries.has(id)) continue;
        b.entries.set(id, { id, firstSeen: 0, lastSeen: 0, count: 0, nodes: NO_NODES, examples: 0, dirty: false, origin: undefined });
        // A block another node aggregated (or security added) matches addresses inside it here too.
        noteAggregate(b, id);
        changed = true;
      }
      for (const id of c.removedIds) {
        if (!b.entries.delete(id)) continue;
        changed = true;
        forgetAggregate(b, id);
      }
      // An entry only the cluster gave (never seen here) that the cluster no longer lists goes too:
      // the share of a node found compromised (quarantine, drop) leaves every agent, not only the collector.
      if (!c.relearn && b.entries.size > c.entryIds.length) {
        const listed = new Set(c.entryIds);
        for (const [id, e] of b.entries) {
          if (e.count !== 0 || listed.has(id)) continue;
          b.entries.delete(id);
          forgetAggregate(b, id);
          changed = true;
        }
      }
      const removed = c.removedIds.length > 0 ? new Set(c.removedIds) : null;
      if ((removed?.size ?? 0) !== (b.removed?.size ?? 0) || [...(removed ?? [])].some((id) => !b!.removed?.has(id))) changed = true;
      b.removed = removed;
      const allowed = c.driftAllowed && c.driftAllowed.length > 0 ? c.driftAllowed.slice(0, DRIFT_ALLOW_LIMITS.patterns) : null;
      if ((allowed ?? []).join('\n') !== (b.driftAllowed ?? []).join('\n')) changed = true;
      b.driftAllowed = allowed;
      if (!c.relearn && c.state !== b.state && !(c.state === 'learning' && b.state === 'enforcing')) {
        // locked, enforcing (the cluster's window closed, or an unlock) or learning after an unlock.
        if (b.state === 'learning' && c.state !== 'learning') b.enforcingSince = Math.max(b.windowStart, c.learnUntil);
        b.state = c.state;
        changed = true;
      }
      if (!changed) return null;
      b.version++;
      return b;
    },
    observe(event, key, entry, id) {
      // Windows and grace periods move by the engine's clock, not by a lone outlier's time.
      const now = advanceClock(event.time);
      let b = baselines.get(key);
      if (!b) {
        if (baselines.size >= opts.maxBaselines) return { verdict: 'dropped', reason: 'too-many-baselines' };
        b = create(key, now, event);
        b.partial = !startsContainer(event);
      }
      b.events++;
      // (The first image a node notes is not "new": a node that joined later starts with none.)
      if (event.container && noteImage(b, event.container.image) && b.state === 'enforcing' && b.images.length > 1) {
        // A new version under an enforcing baseline: recorded (a new baseline version), and with a
        // grace period its new behaviour is learned and flagged for review instead of alerting.
        b.version++;
        if (b.graceMs > 0) b.grace = { version: versionLabel(event.container.image), until: now + b.graceMs };
      }
      const ns = event.pod?.namespace;
      if (ns !== undefined && ns !== '' && (b.namespaces === null || (b.namespaces.length < MAX_NAMESPACES && !b.namespaces.includes(ns)))) {
        if (b.namespaces === null) b.namespaces = [ns];
        else b.namespaces.push(ns);
      }
      // The window closes on event time, so a replay of recorded hours learns exactly what live traffic would.
      if (b.state === 'learning' && now >= b.learnUntil) {
        if (b.learnUntil === 0) {
          // Relearning: the new window starts now.
          const w = windowOf(key, event);
          b.windowStart = now;
          b.learnUntil = now + w.windowMs;
          b.quietMs = w.quietMs;
          b.maxUntil = now + Math.max(w.maxMs, w.windowMs);
          b.partial = !startsContainer(event);
        } else {
          b.state = 'enforcing';
          b.enforcingSince = now;
          b.version++;
        }
      }
      // Drift deviates in every state, learning included: a binary added at runtime is never part of
      // what an image normally does, so it is neither learned nor matched unless security allowed it.
      if (event.kind === 'exec' && entry.type === 'process' && isDrift(event.process.origin) && !driftAllowedFor(b.driftAllowed, event.process.exe, entry.exe)) {
        return { verdict: 'deviation', baseline: b, reason: 'drift', explanation: driftExplanation(b, entry, event.process.origin), nearest: [] };
      }
      let known = b.entries.get(id);
      // A public peer inside a block the baseline aggregated counts as that block's entry.
      if (!known && b.aggregates !== null && entry.type === 'network') known = aggregateOf(b, entry);
      if (known) {
        touch(b, known, event);
        return b.state === 'learning' ? { verdict: 'learned', baseline: b, isNew: false } : { verdict: 'matched', baseline: b };
      }
      if (b.state === 'learning' && !b.removed?.has(id)) {
        if (b.entries.size >= opts.maxEntriesPerBaseline) {
          b.overflow++;
          return { verdict: 'learned', baseline: b, isNew: false };
        }
        const learned: LearnedEntry = {
          id,
          firstSeen: event.time,
          lastSeen: event.time,
          count: 1,
          nodes: shareNodes([event.node]),
          examples: 1,
          dirty: true,
          origin: event.kind === 'exec' ? mergeOrigin(undefined, event.process.origin) : undefined,
        };
        b.entries.set(id, learned);
        b.changed.push(learned);
        (b.fresh ??= new Map()).set(id, [clip(exampleOf(event))]);
        b.version++;
        if (entry.type === 'network') aggregatePeers(b, entry, event, opts.generalize);
        // Adaptive window: something new appeared, so learning goes on for a quiet period, up to the maximum.
        if (b.quietMs > 0 && now + b.quietMs > b.learnUntil) b.learnUntil = Math.min(now + b.quietMs, b.maxUntil);
        return { verdict: 'learned', baseline: b, isNew: true };
      }
      const g = b.grace;
      if (g !== null && b.state === 'enforcing' && !b.removed?.has(id) && event.container && b.entries.size < opts.maxEntriesPerBaseline) {
        if (now >= g.until) b.grace = null;
        else if (versionLabel(event.container.image) === g.version) {
          const learned: LearnedEntry = { id, firstSeen: event.time, lastSeen: event.time, count: 1, nodes: shareNodes([event.node]), examples: 1, dirty: true, origin: mergeOrigin(undefined, event.process.origin) };
          b.entries.set(id, learned);
          b.changed.push(learned);
          (b.fresh ??= new Map()).set(id, [clip(exampleOf(event))]);
          (b.addedBy ??= new Map()).set(id, g.version);
          b.version++;
          return { verdict: 'learned', baseline: b, isNew: true };
        }
      }
      return { verdict: 'deviation', baseline: b, ...explain(b, entry) };
    },
  };
}

/**
 * Interned one-node arrays: on an agent nearly every entry's node list is just that node, and a
 * separate array per entry costs more than the rest of the entry's bookkeeping.
 */
const oneNode = new Map<string, string[]>();

function shareNodes(nodes: string[]): string[] {
  if (nodes.length !== 1) return nodes;
  const node = nodes[0] as string;
  let shared = oneNode.get(node);
  if (!shared) {
    if (oneNode.size >= 10_000) oneNode.clear();
    oneNode.set(node, (shared = Object.freeze([node]) as string[]));
  }
  return shared;
}

function clip(s: string): string {
  return s.length > MAX_EXAMPLE_LENGTH ? `${s.slice(0, MAX_EXAMPLE_LENGTH)}…` : s;
}

function touch(b: Baseline, stats: LearnedEntry, event: ActivityEvent): void {
  stats.count++;
  if (event.kind === 'exec') stats.origin = mergeOrigin(stats.origin, event.process.origin);
  if (event.time > stats.lastSeen) stats.lastSeen = event.time;
  // firstSeen 0: an entry the cluster gave this node, seen here for the first time.
  if (event.time < stats.firstSeen || stats.firstSeen === 0) stats.firstSeen = event.time;
  if (!stats.dirty) {
    stats.dirty = true;
    b.changed.push(stats);
  }
  // Copy on write: most entries share one frozen one-node array (an agent sees only its own node).
  if (stats.nodes.length < MAX_NODES && !stats.nodes.includes(event.node)) stats.nodes = [...stats.nodes, event.node];
  if (stats.examples < MAX_EXAMPLES && (stats.count & (stats.count - 1)) === 0) {
    // Examples are few: the text is built only while there is room, and only at counts that are
    // powers of two, so a behaviour that always looks the same costs log2(count) string builds.
    // Only examples not yet persisted are at hand to compare with; the state store drops repeats.
    const raw = clip(exampleOf(event));
    const fresh = (b.fresh ??= new Map());
    const list = fresh.get(stats.id);
    if (!list) fresh.set(stats.id, [raw]);
    else if (list.includes(raw)) return;
    else list.push(raw);
    stats.examples++;
  }
}

/** Note the image version of an event; true when it is one the baseline had not seen. */
function noteImage(b: Baseline, image: ImageRef): boolean {
  const imgs = b.images;
  // Almost every event carries the image noted last: check that one before scanning.
  const last = imgs[imgs.length - 1];
  if (last !== undefined && last.tag === image.tag && last.digest === image.digest && last.repository === image.repository) return false;
  for (let i = 0; i < imgs.length; i++) {
    const x = imgs[i] as ImageRef;
    if (x.tag === image.tag && x.digest === image.digest && x.repository === image.repository) return false;
  }
  if (imgs.length >= MAX_IMAGES) return false;
  imgs.push({ repository: image.repository, tag: image.tag, digest: image.digest });
  return true;
}

/** Distinct public addresses of one /24 (/64) on one port that make the baseline learn their block (the default blockAt). */
export const AGGREGATE_AT = DEFAULT_GENERALIZATION.blockAt;

function groupOf(e: NetworkEntry): string {
  return `${e.direction}|${e.protocol}|${e.port}`;
}

/** Register a generalized entry (a network entry whose peer is a block or the class) for matching; other ids are ignored. */
function noteAggregate(b: Baseline, id: string): void {
  // Cheap test first: restores call this for every entry, and only a network id with a '/' or '@' can be one.
  if (id.startsWith('exec|') || (!id.includes('/') && !id.includes(PUBLIC_PEER))) return;
  const e = networkEntryOfId(id);
  if (!e) return;
  const peer = generalPeerOf(e.peer);
  if (!peer) return;
  const group = groupOf(e);
  const list = (b.aggregates ??= new Map()).get(group);
  if (list) {
    if (!list.some((a: { id: string }) => a.id === id)) list.push({ peer, id });
  } else b.aggregates.set(group, [{ peer, id }]);
}

/** Count a restored single public address as evidence again (a restart while learning does not start the count over). */
function restoreEvidence(b: Baseline, id: string): void {
  const e = networkEntryOfId(id);
  if (!e) return;
  const ip = parseIp(e.peer);
  if (ip && classifyAddress(ip) === 'public') noteEvidence(b, e, ip);
}

/** Forget a generalized entry for matching (removed by security). */
function forgetAggregate(b: Baseline, id: string): void {
  for (const [group, list] of b.aggregates ?? []) {
    const kept = list.filter((a) => a.id !== id);
    if (kept.length === 0) b.aggregates?.delete(group);
    else if (kept.length !== list.length) b.aggregates?.set(group, kept);
  }
}

/** The generalized entry whose block or class holds this entry's peer, if any (blocks before the class). */
function aggregateOf(b: Baseline, e: NetworkEntry): LearnedEntry | undefined {
  const list = b.aggregates?.get(groupOf(e));
  if (!list) return undefined;
  const ip = parseIp(e.peer);
  if (!ip) return undefined;
  let cls: string | null = null;
  for (const a of list) {
    if (a.peer.kind === 'class') cls = a.id;
    else if (generalPeerCovers(a.peer, ip)) return b.entries.get(a.id);
  }
  return cls !== null && isGlobalAddress(ip) ? b.entries.get(cls) : undefined;
}

/** Remember a learned public address of a network entry as evidence for its port (bounded). */
function noteEvidence(b: Baseline, e: NetworkEntry, ip: ParsedIp): ParsedIp[] | null {
  const group = groupOf(e);
  const seen = (b.publicPeers ??= new Map()).get(group) ?? [];
  if (seen.length >= MAX_PEER_EVIDENCE) return null;
  seen.push(ip);
  b.publicPeers.set(group, seen);
  return seen;
}

/**
 * While learning, after a new public address was learned: apply the rules of PeerGeneralization
 * to the addresses seen on its port, and learn what they support (a block, a wider block, the
 * class), each with its evidence as its example. The single addresses stay as learned.
 */
function aggregatePeers(b: Baseline, e: NetworkEntry, event: ActivityEvent, rules: PeerGeneralization): void {
  const ip = parseIp(e.peer);
  if (!ip || classifyAddress(ip) !== 'public') return;
  const seen = noteEvidence(b, e, ip);
  if (!seen) return;
  const v = ip.version;
  const tight = v === 4 ? 24 : 64;
  const widest = v === 4 ? rules.widestPrefix4 : rules.widestPrefix6;
  const blockRule = (at: number, within: number, rule: string) => {
    if (at <= 0) return;
    const near = seen.filter((x) => x.version === v && prefixOf(x, within) === prefixOf(ip, within));
    if (near.length < at) return;
    const cidr = coveringCidr(near, within);
    if (cidr) learnGeneral(b, { ...e, peer: cidr.text }, event, evidenceText(rule, near, v));
  };
  blockRule(rules.blockAt, tight, 'block');
  if (widest < tight) blockRule(rules.wideBlockAt, widest, 'wide block');
  if (rules.classAt > 0) {
    // Only addresses no learned block explains count towards "any public peer".
    const blocks = (b.aggregates?.get(groupOf(e)) ?? []).filter((a) => a.peer.kind === 'block');
    const spread = seen.filter((x) => isGlobalAddress(x) && !blocks.some((a) => generalPeerCovers(a.peer, x)));
    if (spread.length >= rules.classAt) learnGeneral(b, { ...e, peer: PUBLIC_PEER }, event, evidenceText('class', spread, v));
  }
}

/** `generalized (wide block): 9 addresses, 9 /24s, 1 /16, e.g. 52.216.1.5, ...`: the evidence, as an example a reviewer reads. */
function evidenceText(rule: string, ips: readonly ParsedIp[], v: 4 | 6): string {
  const [narrow, wide] = v === 4 ? [24, 16] : [64, 32];
  const count = (len: number) => new Set(ips.map((x) => prefixOf(x, len))).size;
  return `generalized (${rule}): ${ips.length} addresses, ${count(narrow)} /${narrow}s, ${count(wide)} /${wide}s, e.g. ${ips.slice(0, 3).map((x) => formatIp(x)).join(', ')}`;
}

/** Learn one generalized entry (unless known, removed by security, or the baseline is full). */
function learnGeneral(b: Baseline, g: NetworkEntry, event: ActivityEvent, evidence: string): void {
  const id = entryId(g);
  if (b.entries.has(id) || b.removed?.has(id)) return;
  const learned: LearnedEntry = { id, firstSeen: event.time, lastSeen: event.time, count: 1, nodes: shareNodes([event.node]), examples: 1, dirty: true, origin: undefined };
  b.entries.set(id, learned);
  b.changed.push(learned);
  (b.fresh ??= new Map()).set(id, [clip(evidence)]);
  b.version++;
  noteAggregate(b, id);
}

/** What a reviewer is shown about a generalized entry: its rule and the evidence the baseline holds for it. */
export interface Generalization {
  /** `block` (a CIDR block) or `class` (any public peer). */
  kind: 'block' | 'class';
  /** The block's prefix length; for the class, the prefix length that would cover all its addresses (how spread they are). */
  prefixLength: number;
  /** Distinct single addresses the baseline learned on the same direction, protocol and port that it covers. */
  addresses: number;
  /** How many distinct networks those addresses fall in, by prefix length (24 and 16 for IPv4, 64 and 32 for IPv6). */
  prefixes: { length: number; count: number }[];
}

/**
 * The evidence for a generalized entry, from the entries beside it (ids of one baseline): the single
 * addresses it covers. Null for an entry that is not generalized. Pure; the collector's review API
 * and the CLI show it, so the evidence is always what the baseline really holds.
 */
export function generalizationOf(entry: Entry, ids: Iterable<string>): Generalization | null {
  if (entry.type !== 'network') return null;
  const g = generalPeerOf(entry.peer);
  if (!g) return null;
  const ips: ParsedIp[] = [];
  for (const { entry: e } of sameServiceEntries(entry, ids)) {
    const ip = parseIp(e.peer);
    if (ip && generalPeerCovers(g, ip)) ips.push(ip);
  }
  const lengths = [...new Set(ips.map((x) => x.version))].flatMap((v) => (v === 4 ? [24, 16] : [64, 32]));
  const prefixes = [...new Set(lengths)].map((length) => ({ length, count: new Set(ips.filter((x) => (x.version === 4) === length <= 24).map((x) => prefixOf(x, length))).size }));
  let prefixLength = g.kind === 'block' ? g.cidr.prefix : 0;
  if (g.kind === 'class' && ips.length > 0 && ips.every((x) => x.version === ips[0]!.version)) prefixLength = coveringCidr(ips, 0)?.prefix ?? 0;
  return { kind: g.kind, prefixLength, addresses: ips.length, prefixes };
}

/** How a version is named in reviews: `tag@digest`, either part may be empty. */
export function versionLabel(image: ImageRef): string {
  return image.digest === '' ? image.tag : `${image.tag}@${image.digest}`;
}

/** Parent names of a container's first process: the runtime that started it. */
const RUNTIME_PARENTS = new Set(['runc', 'runc:[2:INIT]', 'crun', 'containerd-shim', 'containerd-shim-runc-v2', 'containerd-shim-runc-v1', 'conmon', 'docker-init', 'tini', 'dumb-init', 'pause']);

/**
 * Whether the first event of a new baseline looks like its container's start: an exec whose parent
 * is the runtime. Anything else means the container was already running, and its start-up (the
 * entrypoint, its init scripts) was missed: the baseline is partial.
 */
function startsContainer(event: ActivityEvent): boolean {
  return event.kind === 'exec' && RUNTIME_PARENTS.has(event.process.parentName);
}

/** Most namespaces a baseline lists. */
const MAX_NAMESPACES = 16;

/** The node list of an entry the cluster gave: no local node saw it yet. */
const NO_NODES: string[] = Object.freeze([]) as unknown as string[];

function headerOf(b: Baseline): Omit<BaselineSnapshot, 'entries'> {
  return {
    key: b.key,
    state: b.state,
    version: b.version,
    windowStart: b.windowStart,
    learnUntil: b.learnUntil,
    enforcingSince: b.enforcingSince,
    events: b.events,
    overflow: b.overflow,
    images: b.images.map((i) => ({ ...i })),
    ...(b.partial ? { partial: true } : {}),
    ...(b.namespaces ? { namespaces: [...b.namespaces] } : {}),
  };
}

function statsOf(b: Baseline, e: LearnedEntry): EntryStats {
  const stats: EntryStats = { id: e.id, entry: entryFromId(e.id), firstSeen: e.firstSeen, lastSeen: e.lastSeen, count: e.count, nodes: [...e.nodes], examples: [...(b.fresh?.get(e.id) ?? [])] };
  const by = b.addedBy?.get(e.id);
  if (by !== undefined) stats.addedBy = by;
  if (e.origin !== undefined) stats.origin = e.origin;
  return stats;
}

/**
 * Copy a whole baseline into plain JSON. Its entries carry only the examples not yet taken by a
 * delta: the others live in the agent's state.
 */
export function snapshotOf(b: Baseline): BaselineSnapshot {
  return { ...headerOf(b), entries: [...b.entries.values()].map((e) => statsOf(b, e)) };
}

/**
 * Take what changed in a baseline since the last delta: its header and the changed entries with
 * their absolute stats and new examples. The baseline's change list starts over.
 */
export function takeDelta(b: Baseline): BaselineSnapshot {
  const entries = b.changed.map((e) => statsOf(b, e));
  for (const e of b.changed) e.dirty = false;
  b.changed = [];
  b.fresh = null;
  return { ...headerOf(b), entries };
}

/**
 * Say why an entry is new relative to what the baseline knows, and name the nearest known entries.
 * Runs only for deviations, so a scan of the entries is fine.
 */
export function explain(b: Baseline, entry: Entry): { reason: DeviationReason; explanation: string; nearest: string[] } {
  const nearest: string[] = [];
  const add = (e: Entry) => {
    if (nearest.length < 3) nearest.push(describeEntry(e));
  };
  if (entry.type === 'process') {
    let sameExe = false;
    let sameExeParent = false;
    let sameExeParentUser = false;
    for (const id of b.entries.keys()) {
      if (!id.startsWith('exec|')) continue;
      const e = entryFromId(id);
      if (e.type !== 'process' || e.exe !== entry.exe || e.applet !== entry.applet) continue;
      sameExe = true;
      add(e);
      if (e.parent === entry.parent) {
        sameExeParent = true;
        if (e.user === entry.user) sameExeParentUser = true;
      }
    }
    if (!sameExe) {
      return { reason: 'new-executable', explanation: `${programLabel(entry)} never ran in ${b.key} while it was learned`, nearest };
    }
    if (!sameExeParent) {
      return { reason: 'new-parent', explanation: `${programLabel(entry)} ran before, but never as a child of ${entry.parent || 'this parent'}`, nearest };
    }
    if (!sameExeParentUser) {
      return { reason: 'new-user', explanation: `${programLabel(entry)} ran before, but never as a ${entry.user} user`, nearest };
    }
    return { reason: 'new-arguments', explanation: `${programLabel(entry)} ran before, but never with arguments like these`, nearest };
  }
  let samePeer = false;
  let samePort = false;
  for (const id of b.entries.keys()) {
    if (!id.startsWith(`${entry.direction}|`)) continue;
    const e = entryFromId(id);
    if (e.type !== 'network' || e.direction !== entry.direction) continue;
    if (e.peer === entry.peer) {
      samePeer = true;
      add(e);
    }
    if (e.port === entry.port) {
      samePort = true;
      if (e.peer !== entry.peer) add(e);
    }
  }
  if (entry.direction === 'listen') {
    const what = samePort ? 'new-protocol' : 'new-listen-port';
    return { reason: what, explanation: `${b.key} never listened on ${entry.protocol} port ${entry.port} while it was learned`, nearest };
  }
  const verb = entry.direction === 'egress' ? 'connected to' : 'accepted from';
  if (samePeer && samePort) {
    return { reason: 'new-protocol', explanation: `${b.key} never used ${entry.protocol} with ${entry.peer}:${entry.port}`, nearest };
  }
  if (samePeer) {
    return { reason: 'new-port', explanation: `${b.key} ${verb} ${entry.peer} before, but never on port ${entry.port}`, nearest };
  }
  return { reason: 'new-peer', explanation: `${b.key} never ${verb} ${entry.peer} while it was learned`, nearest };
}


/** The sentence of a drift deviation: what ran, where it came from, and that it alerts in every state. */
function driftExplanation(b: Baseline, entry: Entry, origin: ExecutableOrigin | undefined): string {
  const program = entry.type === 'process' ? programLabel(entry) : '';
  return `${program} ran in ${b.key} as a ${originText(origin)}; drift alerts in every state, learning included, unless the key's drift allow list covers it`;
}
