/**
 * The agent's hot path: a source batch → executables resolved in the container (attribution/container-path.ts)
 * → attribution → key → entry → learn or check → deviations
 * into the spool → the source's batch acknowledged. Synchronous per batch (better-sqlite3 is
 * synchronous), so batches of different sources never interleave inside a commit.
 *
 * Nothing is lost silently:
 * - an event held for its container's image is handled when the image becomes known, or counted in
 *   `driftwatch_agent_events_unattributed_total{reason}` (expired, overflow, end_of_input,
 *   shutdown); a source's saved position moves only up to the last batch all of whose held events
 *   were handled or counted, so a restart re-reads what was still waiting at shutdown;
 * - an event time is bounded: more than `maxFutureMs` ahead of the wall clock, more than `maxLagMs`
 *   behind its source's own watermark (the newest in-bound time of that source, so a replay of
 *   recorded hours is judged against itself, not against today), or before its key's learning
 *   window, it is moved to that bound (the source's watermark, or the window's start) and counted
 *   in `driftwatch_agent_events_time_clamped_total{reason}`. The event is still learned or checked
 *   (dropping it would let a forged clock hide an action), but it can neither close a learning
 *   window early nor open one in the past.
 */
import { baselineKey, takeDelta, type Baseline, type BaselineEngine, type BaselineSnapshot, type ClusterBaseline } from '../core/baseline.js';
import { deviationId, type Deviation } from '../core/deviation.js';
import { entryFromId, entryId, entryOf, type EntryOptions } from '../core/entry.js';
import { EVENT_KINDS, type ActivityEvent } from '../core/event.js';
import { baselineFactsOf, classify, type BaselineFacts } from '../core/severity.js';
import type { Logger } from '../runtime/logger.js';
import type { Attributor } from './attribution/attributor.js';
import { NO_EXECUTABLE_RESOLUTION, type ExecutableResolver } from './attribution/container-path.js';
import type { AgentMetrics } from './metrics.js';
import type { SourceBatch } from './sources/source.js';
import type { AgentState, SpoolDeviation } from './state/index.js';

/** Pipeline settings. */
export interface PipelineOptions {
  entryOptions: EntryOptions;
  /**
   * A baseline whose only change is counts/last-seen is persisted and sent at most this often. New
   * entries and state changes go at the next flush (every second).
   */
  statsIntervalMs: number;
  /**
   * How long (in event time) events of a container whose image is not yet known are held, waiting
   * for a later event of the same container to name it. Falco emits a new container's first events
   * (its start-up, the part a baseline most needs) before it has resolved the container's metadata.
   */
  attributionWaitMs: number;
  /** An event time further ahead of the wall clock than this is clamped (default 1 hour). */
  maxFutureMs?: number;
  /** An event time further behind its source's watermark than this is clamped (default 1 hour). */
  maxLagMs?: number;
}

/** Default bounds on event time (see the module doc). */
export const DEFAULT_MAX_FUTURE_MS = 3_600_000;
export const DEFAULT_MAX_LAG_MS = 3_600_000;

/**
 * How far behind its source's watermark, or before its key's window, an event may be without being
 * moved: Falco and Tetragon emit events of different CPUs slightly out of order, and held events
 * come back up to the attribution wait later.
 */
const OUT_OF_ORDER_SLACK_MS = 60_000;

/** Most saved positions remembered per source while its events are held (older ones are dropped: any of them is safe, the newest eligible one is used). */
const MAX_PENDING_POSITIONS = 1_024;

/**
 * Most entries one non-forced flush writes for stats-only changes. The rest wait for the next flush:
 * a busy agent with thousands of active baselines spreads that work over seconds instead of
 * stopping its event loop (and its sources) for one long write.
 */
const MAX_STATS_ENTRIES_PER_FLUSH = 5_000;

/** Most containers with held events, and most events held per container. */
const MAX_HELD_CONTAINERS = 1_000;
const MAX_HELD_PER_CONTAINER = 512;

/** Collaborators. */
export interface PipelineDeps {
  engine: BaselineEngine;
  state: AgentState;
  attributor: Attributor;
  /** Resolves invoked executable paths in their container's root (default: none, for tests that feed resolved paths). */
  executables?: ExecutableResolver;
  metrics: AgentMetrics;
  logger: Logger;
  /** Wall clock, injectable for tests. */
  now: () => number;
  /** Called after a commit put new records in the spool. */
  onSpooled: () => void;
}

/** The pipeline. */
export interface Pipeline {
  /** Take what the cluster enforces for a key (pushed by the collector); persists the change. */
  applyCluster(cluster: ClusterBaseline): boolean;
  /** Process and commit one batch, then acknowledge it to its source. */
  process(batch: SourceBatch, source: string): void;
  /** A finite source ended: its held events are counted (reason end_of_input) and its position may move to its last batch. */
  endOfInput(source: string): void;
  /** Events held for attribution now. */
  readonly held: number;
  /**
   * Persist what changed in the baselines with the source positions they reflect, and queue the
   * deltas for the collector. `force` is the shutdown flush: events still held are counted (reason
   * shutdown) and the positions stay before them, so a file source re-reads them on restart.
   */
  flush(force: boolean): void;
  /** Newest event time processed. */
  readonly watermark: number;
  /** Deviations the spool's overflow policy dropped since start. */
  readonly dropped: number;
}

/** Create the pipeline. */
export function createPipeline(options: PipelineOptions, deps: PipelineDeps): Pipeline {
  const { engine, state, attributor, metrics, logger } = deps;
  const executables = deps.executables ?? NO_EXECUTABLE_RESOLUTION;
  const keyMode = engine.options.keyMode;
  const touched = new Set<string>();
  const persisted = new Map<string, { version: number; events: number; at: number }>();
  const positions = new Map<string, unknown>();
  let watermark = 0;
  let dropped = 0;
  const kindIndex: Record<string, number> = Object.fromEntries(EVENT_KINDS.map((k, i) => [k, i]));
  const maxFutureMs = options.maxFutureMs ?? DEFAULT_MAX_FUTURE_MS;
  const maxLagMs = options.maxLagMs ?? DEFAULT_MAX_LAG_MS;
  // Events waiting for their container's image, by container id, in arrival order.
  const held = new Map<string, HeldEvent[]>();
  let heldCount = 0;
  // Per source: batch sequence, held events by the batch they came in, positions not yet safe to
  // save, and the newest in-bound event time.
  const streams = new Map<string, Stream>();
  // Facts of each baseline at the version they were computed for: a deviation's severity (which only
  // decides what a full spool drops first) needs them, and enforcing baselines rarely change version.
  const facts = new Map<string, { version: number; facts: BaselineFacts }>();

  /** The baseline facts of `b` (cached per version). */
  function factsOf(b: Baseline): BaselineFacts {
    const cached = facts.get(b.key);
    if (cached && cached.version === b.version) return cached.facts;
    const f = baselineFactsOf((function* () {
      for (const id of b.entries.keys()) yield entryFromId(id);
    })());
    if (facts.size >= 20_000) facts.clear();
    facts.set(b.key, { version: b.version, facts: f });
    return f;
  }

  for (const b of engine.all()) persisted.set(b.key, { version: b.version, events: b.events, at: deps.now() });

  function streamOf(source: string): Stream {
    let st = streams.get(source);
    if (!st) streams.set(source, (st = { seq: 0, pending: new Map(), positions: [], watermark: 0 }));
    return st;
  }

  /** Hold an event whose container has no known image yet (bounded; overflow counts as unattributed). */
  function hold(ev: ActivityEvent, source: string, st: Stream): void {
    const id = ev.container?.id;
    if (id === undefined) return;
    let list = held.get(id);
    if (!list) {
      if (held.size >= MAX_HELD_CONTAINERS) {
        metrics.unattributed.inc({ source, reason: 'overflow' });
        return;
      }
      held.set(id, (list = []));
    }
    if (list.length >= MAX_HELD_PER_CONTAINER) {
      metrics.unattributed.inc({ source, reason: 'overflow' });
      return;
    }
    list.push({ ev, source, seq: st.seq });
    st.pending.set(st.seq, (st.pending.get(st.seq) ?? 0) + 1);
    heldCount++;
  }

  /** A held event was handled or counted: its batch no longer holds its source's position back. */
  function release(h: HeldEvent): void {
    const st = streams.get(h.source);
    if (!st) return;
    const n = (st.pending.get(h.seq) ?? 1) - 1;
    if (n <= 0) st.pending.delete(h.seq);
    else st.pending.set(h.seq, n);
  }

  /** Count held events matching `which` as unattributed for `reason`, and release them. */
  function giveUp(reason: 'expired' | 'end_of_input' | 'shutdown', which: (list: HeldEvent[]) => HeldEvent[] | null): void {
    const counted = new Map<string, number>();
    for (const [id, list] of held) {
      const gone = which(list);
      if (!gone || gone.length === 0) continue;
      const kept = gone.length === list.length ? [] : list.filter((h) => !gone.includes(h));
      if (kept.length === 0) held.delete(id);
      else held.set(id, kept);
      heldCount -= gone.length;
      for (const h of gone) {
        counted.set(h.source, (counted.get(h.source) ?? 0) + 1);
        // At shutdown the position stays before them: a file source reads them again on restart.
        if (reason !== 'shutdown') release(h);
      }
    }
    for (const [source, n] of counted) metrics.unattributed.inc({ source, reason }, n);
    metrics.held.set(heldCount);
  }

  /**
   * Give up on held events older than the wait, in the event time of the source that read them (a
   * replay of past hours beside a live source is not expired by the live clock). Each source's events
   * of a container by that source's first one: two sources can hold events of one container, and which
   * read it first is a race — judging the whole list by its first event's clock left the other
   * source's events held forever.
   */
  function expireHeld(): void {
    giveUp('expired', (list) => {
      // Per source: its first held event of the container, in its own clock, decides for all of its events.
      const expiredSources = new Set<string>();
      const judged = new Set<string>();
      for (const h of list) {
        if (judged.has(h.source)) continue;
        judged.add(h.source);
        if (h.ev.time < (streams.get(h.source)?.watermark ?? watermark) - options.attributionWaitMs) expiredSources.add(h.source);
      }
      if (expiredSources.size === 0) return null;
      return list.filter((h) => expiredSources.has(h.source));
    });
  }

  /** Save the newest position of `source` that no held event of it is behind. */
  function advance(source: string, st: Stream): void {
    let min = Infinity;
    // Map keys keep insertion order and sequences only grow: the first key is the oldest pending batch.
    for (const seq of st.pending.keys()) {
      min = seq;
      break;
    }
    let i = st.positions.length - 1;
    while (i >= 0 && (st.positions[i] as { seq: number }).seq >= min) i--;
    if (i < 0) return;
    positions.set(source, (st.positions[i] as { position: unknown }).position);
    st.positions.splice(0, i + 1);
  }

  /**
   * Keep the event's time inside the bounds (module doc); returns the reason when it was moved.
   * `now` is read once per batch: the bound is coarse by design (an hour), a batch takes milliseconds.
   */
  function bound(ev: ActivityEvent, st: Stream, now: number): 'future' | 'past' | null {
    const t = ev.time;
    if (t > now + maxFutureMs) {
      ev.time = st.watermark > 0 ? st.watermark : now;
      return 'future';
    }
    if (st.watermark > 0 && t < st.watermark - maxLagMs) {
      ev.time = st.watermark;
      return 'past';
    }
    if (t > st.watermark) st.watermark = t;
    return null;
  }

  function countVerdicts(source: string, c: { learning: number; matched: number; deviation: number; learned: number }): void {
    if (c.learned) metrics.learned.inc({ source }, c.learned);
    if (c.learning) metrics.verdicts.inc({ source, verdict: 'learned' }, c.learning);
    if (c.matched) metrics.verdicts.inc({ source, verdict: 'matched' }, c.matched);
    if (c.deviation) metrics.verdicts.inc({ source, verdict: 'deviation' }, c.deviation);
  }

  function updateBaselineGauge(): void {
    const counts = { learning: 0, enforcing: 0, locked: 0 };
    for (const b of engine.all()) counts[b.state]++;
    for (const [state, n] of Object.entries(counts)) metrics.baselines.set({ state }, n);
  }

  return {
    get watermark() {
      return watermark;
    },
    get dropped() {
      return dropped;
    },
    get held() {
      return heldCount;
    },
    process(batch, source) {
      const endTimer = metrics.batchSeconds.startTimer();
      const deviations: (SpoolDeviation & { source: string })[] = [];
      const kinds = new Float64Array(EVENT_KINDS.length);
      const counts = { learned: 0, learning: 0, matched: 0, deviation: 0, future: 0, past: 0, beforeWindow: 0 };
      // Verdicts of released held events belong to the source that read them.
      const others = new Map<string, { learning: number; matched: number; deviation: number; learned: number }>();
      const st = streamOf(source);
      st.seq++;
      const now = deps.now();
      // While the process (or its container) still lives, before any event is held for its image.
      executables.resolve(batch.events, source);

      const handle = (ev: ActivityEvent, from: string) => {
        const key = baselineKey(ev, keyMode);
        if (key === null) {
          metrics.unattributed.inc({ source: from, reason: 'no_image' });
          return;
        }
        // An out-of-order event may not start a key's window in the past or land before its window
        // (by more than the disorder sources show anyway).
        const fromStream = from === source ? st : streamOf(from);
        if (ev.time < fromStream.watermark - OUT_OF_ORDER_SLACK_MS) {
          const b = engine.get(key);
          const start = b && b.windowStart > 0 ? b.windowStart : fromStream.watermark;
          if (ev.time < start - OUT_OF_ORDER_SLACK_MS) {
            ev.time = start;
            if (from === source) counts.beforeWindow++;
            else metrics.timeClamped.inc({ source: from, reason: 'before_window' });
          }
        }
        const entry = entryOf(ev, options.entryOptions);
        if (!entry) {
          metrics.dropped.inc({ source: from, reason: 'incomplete' });
          return;
        }
        const id = entryId(entry);
        const obs = engine.observe(ev, key, entry, id);
        if (obs.verdict === 'dropped') {
          metrics.dropped.inc({ source: from, reason: 'too-many-baselines' });
          return;
        }
        touched.add(key);
        let c = counts;
        if (from !== source) {
          let o = others.get(from);
          if (!o) others.set(from, (o = { learning: 0, matched: 0, deviation: 0, learned: 0 }));
          c = o as unknown as typeof counts;
        }
        if (obs.verdict === 'learned') {
          c.learning++;
          if (obs.isNew) c.learned++;
        } else if (obs.verdict === 'matched') {
          c.matched++;
        } else {
          const deviation: Deviation = {
            id: deviationId(ev, key, entry),
            key,
            baselineVersion: obs.baseline.version,
            entry,
            reason: obs.reason,
            explanation: obs.explanation,
            nearest: obs.nearest,
            event: ev,
          };
          // The built-in table against this node's baseline: the collector decides the alert's severity
          // (site rules, cluster-wide baseline); this rank only orders what a full spool drops first.
          const { severity } = classify({ kind: ev.kind, reason: obs.reason, entry, exe: ev.process.exe, baseline: ev.kind === 'exec' ? factsOf(obs.baseline) : { hasShell: false, hasRoot: false } });
          deviations.push({ deviation, severity, source: from });
        }
      };

      for (const ev of batch.events) {
        kinds[kindIndex[ev.kind] as number] = (kinds[kindIndex[ev.kind] as number] as number) + 1;
        const moved = bound(ev, st, now);
        if (moved !== null) counts[moved]++;
        if (ev.time > watermark) watermark = ev.time;
        if (!attributor.attribute(ev)) {
          hold(ev, source, st);
          continue;
        }
        if (heldCount > 0 && ev.container) {
          const waiting = held.get(ev.container.id);
          if (waiting) {
            held.delete(ev.container.id);
            heldCount -= waiting.length;
            for (const w of waiting) {
              attributor.attribute(w.ev);
              handle(w.ev, w.source);
              release(w);
            }
          }
        }
        handle(ev, source);
      }
      if (heldCount > 0) expireHeld();
      metrics.held.set(heldCount);
      if (batch.position !== undefined) {
        st.positions.push({ seq: st.seq, position: batch.position });
        if (st.positions.length > MAX_PENDING_POSITIONS) st.positions.splice(0, st.positions.length - MAX_PENDING_POSITIONS);
      }
      // Releasing held events may let other sources' positions move too.
      for (const [name, other] of streams) advance(name, other);
      if (deviations.length > 0) {
        // The collector judges a deviation against the cluster-wide baseline (severity: "does this
        // image ever run a shell?"; the re-check): the baseline's unsent changes, such as its last
        // learned entries and its switch to enforcing, go ahead of its first deviations.
        const deltas: BaselineSnapshot[] = [];
        for (const { deviation: d } of deviations) {
          const b = engine.get(d.key);
          const p = persisted.get(d.key);
          if (!b || (p && p.version === b.version)) continue;
          deltas.push(takeDelta(b));
          persisted.set(d.key, { version: b.version, events: b.events, at: deps.now() });
        }
        const { spooled, evicted, evictedBySeverity } = state.commit({ deltas, deviations });
        if (evicted > 0) {
          dropped += evicted;
          for (const [severity, n] of Object.entries(evictedBySeverity)) metrics.spoolEvicted.inc({ severity }, n);
          logger.warn({ evicted, bySeverity: evictedBySeverity, spoolBytes: state.spoolBytes() }, 'spool full: dropped the lowest-severity, oldest deviations');
        }
        for (const d of deviations) {
          metrics.deviations.inc({ source: d.source, kind: d.deviation.event.kind });
          if (d.source === source) counts.deviation++;
          else (others.get(d.source) as { deviation: number }).deviation++;
        }
        if (spooled > 0) deps.onSpooled();
      }
      batch.ack?.();
      for (let i = 0; i < kinds.length; i++) if (kinds[i]) metrics.events.inc({ source, kind: EVENT_KINDS[i] as string }, kinds[i] as number);
      if (counts.future) metrics.timeClamped.inc({ source, reason: 'future' }, counts.future);
      if (counts.past) metrics.timeClamped.inc({ source, reason: 'past' }, counts.past);
      if (counts.beforeWindow) metrics.timeClamped.inc({ source, reason: 'before_window' }, counts.beforeWindow);
      countVerdicts(source, counts);
      for (const [name, c] of others) countVerdicts(name, c);
      if (watermark > 0) metrics.watermark.set(watermark / 1000);
      endTimer();
    },
    applyCluster(cluster) {
      const b = engine.applyCluster(cluster);
      // Kept either way: a restart enforces it before the collector is reached again.
      if (!b) {
        state.commit({ clusters: [cluster] });
        return false;
      }
      // Persist the header (state, window) and anything learned meanwhile; the collector hears it too.
      state.commit({ deltas: [takeDelta(b)], clusters: [cluster] });
      persisted.set(b.key, { version: b.version, events: b.events, at: deps.now() });
      updateBaselineGauge();
      deps.onSpooled();
      return true;
    },
    endOfInput(source) {
      giveUp('end_of_input', (list) => {
        const gone = list.filter((h) => h.source === source);
        return gone.length > 0 ? gone : null;
      });
      const st = streams.get(source);
      if (st) advance(source, st);
    },
    flush(force) {
      if (force && heldCount > 0) giveUp('shutdown', (list) => list);
      const now = deps.now();
      const deltas: BaselineSnapshot[] = [];
      let statsEntries = 0;
      for (const key of touched) {
        const b = engine.get(key);
        if (!b) {
          touched.delete(key);
          continue;
        }
        const p = persisted.get(key);
        const changed = !p || p.version !== b.version;
        const statsDue = p !== undefined && p.events !== b.events && (force || (now - p.at >= options.statsIntervalMs && statsEntries < MAX_STATS_ENTRIES_PER_FLUSH));
        if (changed || statsDue) {
          if (!changed) statsEntries += b.changed.length;
          deltas.push(takeDelta(b));
          persisted.set(key, { version: b.version, events: b.events, at: now });
          touched.delete(key);
        } else if (p && p.events === b.events) {
          touched.delete(key);
        }
      }
      if (deltas.length === 0 && positions.size === 0) return;
      state.commit({ deltas, positions });
      positions.clear();
      if (deltas.length > 0) {
        updateBaselineGauge();
        deps.onSpooled();
      }
    },
  };
}

/** An event waiting for its container's image, with the source and batch it came in. */
interface HeldEvent {
  ev: ActivityEvent;
  source: string;
  seq: number;
}

/** What the pipeline tracks per source. */
interface Stream {
  /** Sequence number of the source's current batch. */
  seq: number;
  /** Held events by the batch sequence they came in. */
  pending: Map<number, number>;
  /** Positions of batches not yet safe to save, oldest first. */
  positions: { seq: number; position: unknown }[];
  /** Newest in-bound event time of the source. */
  watermark: number;
}
