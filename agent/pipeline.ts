/**
 * The agent's hot path: a source batch → attribution → key → entry → learn or check → deviations
 * into the spool → the source's batch acknowledged. Synchronous per batch (better-sqlite3 is
 * synchronous), so batches of different sources never interleave inside a commit.
 */
import { baselineKey, takeDelta, type Baseline, type BaselineEngine, type BaselineSnapshot, type ClusterBaseline } from '../core/baseline.js';
import { deviationId, type Deviation } from '../core/deviation.js';
import { entryFromId, entryId, entryOf, type EntryOptions } from '../core/entry.js';
import { EVENT_KINDS, type ActivityEvent } from '../core/event.js';
import { baselineFactsOf, classify, type BaselineFacts } from '../core/severity.js';
import type { Logger } from '../runtime/logger.js';
import type { Attributor } from './attribution.js';
import type { AgentMetrics } from './metrics.js';
import type { SourceBatch } from './sources/source.js';
import type { AgentState, SpoolDeviation } from './state.js';

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
}

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
  /** Persist what changed in the baselines with the source positions they reflect, and queue the deltas for the collector. */
  flush(force: boolean): void;
  /** Newest event time processed. */
  readonly watermark: number;
  /** Deviations the spool's overflow policy dropped since start. */
  readonly dropped: number;
}

/** Create the pipeline. */
export function createPipeline(options: PipelineOptions, deps: PipelineDeps): Pipeline {
  const { engine, state, attributor, metrics, logger } = deps;
  const keyMode = engine.options.keyMode;
  const touched = new Set<string>();
  const persisted = new Map<string, { version: number; events: number; at: number }>();
  const positions = new Map<string, unknown>();
  let watermark = 0;
  let dropped = 0;
  const kindIndex: Record<string, number> = Object.fromEntries(EVENT_KINDS.map((k, i) => [k, i]));
  // Events waiting for their container's image, by container id, in arrival order.
  const held = new Map<string, ActivityEvent[]>();
  let heldCount = 0;
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

  /** Hold an event whose container has no known image yet (bounded; overflow counts as unattributed). */
  function hold(ev: ActivityEvent, counts: { unattributed: number }): void {
    const id = ev.container?.id;
    if (id === undefined) return;
    let list = held.get(id);
    if (!list) {
      if (held.size >= MAX_HELD_CONTAINERS) {
        counts.unattributed++;
        return;
      }
      held.set(id, (list = []));
    }
    if (list.length >= MAX_HELD_PER_CONTAINER) {
      counts.unattributed++;
      return;
    }
    list.push(ev);
    heldCount++;
  }

  /** Give up on containers whose first held event is older (in event time) than the wait. */
  function expireHeld(counts: { unattributed: number }): void {
    for (const [id, list] of held) {
      if ((list[0] as ActivityEvent).time >= watermark - options.attributionWaitMs) continue;
      held.delete(id);
      heldCount -= list.length;
      counts.unattributed += list.length;
    }
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
    process(batch, source) {
      const endTimer = metrics.batchSeconds.startTimer();
      const deviations: SpoolDeviation[] = [];
      const kinds = new Float64Array(EVENT_KINDS.length);
      const counts = { unattributed: 0, incomplete: 0, overflowed: 0, learned: 0, learning: 0, matched: 0 };

      const handle = (ev: ActivityEvent) => {
        const key = baselineKey(ev, keyMode);
        if (key === null) {
          counts.unattributed++;
          return;
        }
        const entry = entryOf(ev, options.entryOptions);
        if (!entry) {
          counts.incomplete++;
          return;
        }
        const id = entryId(entry);
        const obs = engine.observe(ev, key, entry, id);
        if (obs.verdict === 'dropped') {
          counts.overflowed++;
          return;
        }
        touched.add(key);
        if (obs.verdict === 'learned') {
          counts.learning++;
          if (obs.isNew) counts.learned++;
        } else if (obs.verdict === 'matched') {
          counts.matched++;
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
          deviations.push({ deviation, severity });
        }
      };

      for (const ev of batch.events) {
        kinds[kindIndex[ev.kind] as number] = (kinds[kindIndex[ev.kind] as number] as number) + 1;
        if (ev.time > watermark) watermark = ev.time;
        if (!attributor.attribute(ev)) {
          hold(ev, counts);
          continue;
        }
        if (heldCount > 0 && ev.container) {
          const waiting = held.get(ev.container.id);
          if (waiting) {
            held.delete(ev.container.id);
            heldCount -= waiting.length;
            for (const w of waiting) {
              attributor.attribute(w);
              handle(w);
            }
          }
        }
        handle(ev);
      }
      if (heldCount > 0) expireHeld(counts);
      if (batch.position !== undefined) positions.set(source, batch.position);
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
        for (const { deviation: d } of deviations) metrics.deviations.inc({ kind: d.event.kind });
        if (spooled > 0) deps.onSpooled();
      }
      batch.ack?.();
      for (let i = 0; i < kinds.length; i++) if (kinds[i]) metrics.events.inc({ source, kind: EVENT_KINDS[i] as string }, kinds[i] as number);
      if (counts.unattributed) metrics.unattributed.inc({ source }, counts.unattributed);
      if (counts.incomplete) metrics.dropped.inc({ reason: 'incomplete' }, counts.incomplete);
      if (counts.overflowed) metrics.dropped.inc({ reason: 'too-many-baselines' }, counts.overflowed);
      if (counts.learned) metrics.learned.inc(counts.learned);
      if (counts.learning) metrics.verdicts.inc({ verdict: 'learned' }, counts.learning);
      if (counts.matched) metrics.verdicts.inc({ verdict: 'matched' }, counts.matched);
      if (deviations.length) metrics.verdicts.inc({ verdict: 'deviation' }, deviations.length);
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
    flush(force) {
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
