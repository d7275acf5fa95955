/**
 * The agent's hot path: a source batch → attribution → key → entry → learn or check → deviations
 * into the spool → the source's batch acknowledged. Synchronous per batch (better-sqlite3 is
 * synchronous), so batches of different sources never interleave inside a commit.
 */
import { baselineKey, snapshotOf, type BaselineEngine, type BaselineSnapshot } from '../core/baseline.js';
import { deviationId, type Deviation } from '../core/deviation.js';
import { entryId, entryOf, type EntryOptions } from '../core/entry.js';
import { EVENT_KINDS } from '../core/event.js';
import type { Logger } from '../runtime/logger.js';
import type { Attributor } from './attribution.js';
import type { AgentMetrics } from './metrics.js';
import type { SourceBatch } from './sources/source.js';
import type { AgentState } from './state.js';

/** Pipeline settings. */
export interface PipelineOptions {
  entryOptions: EntryOptions;
  /** A baseline whose only change is counts/last-seen is re-persisted and re-sent at most this often. */
  statsIntervalMs: number;
}

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
  /** Process and commit one batch, then acknowledge it to its source. */
  process(batch: SourceBatch, source: string): void;
  /** Persist changed baselines with the source positions they reflect (and spool their snapshots). */
  flush(force: boolean): void;
  /** Newest event time processed. */
  readonly watermark: number;
}

/** Create the pipeline. */
export function createPipeline(options: PipelineOptions, deps: PipelineDeps): Pipeline {
  const { engine, state, attributor, metrics, logger } = deps;
  const keyMode = engine.options.keyMode;
  const touched = new Set<string>();
  const persisted = new Map<string, { version: number; events: number; at: number }>();
  const positions = new Map<string, unknown>();
  let watermark = 0;
  const kindIndex: Record<string, number> = Object.fromEntries(EVENT_KINDS.map((k, i) => [k, i]));

  for (const b of engine.all()) persisted.set(b.key, { version: b.version, events: b.events, at: deps.now() });

  function updateBaselineGauge(): void {
    const counts = { learning: 0, enforcing: 0, locked: 0 };
    for (const b of engine.all()) counts[b.state]++;
    for (const [state, n] of Object.entries(counts)) metrics.baselines.set({ state }, n);
  }

  return {
    get watermark() {
      return watermark;
    },
    process(batch, source) {
      const endTimer = metrics.batchSeconds.startTimer();
      const deviations: Deviation[] = [];
      const kinds = new Float64Array(EVENT_KINDS.length);
      let unattributed = 0;
      let incomplete = 0;
      let overflowed = 0;
      let learned = 0;
      for (const ev of batch.events) {
        (kinds[kindIndex[ev.kind] as number] as number)++;
        if (ev.time > watermark) watermark = ev.time;
        if (!attributor.attribute(ev)) {
          unattributed++;
          continue;
        }
        const key = baselineKey(ev, keyMode);
        if (key === null) {
          unattributed++;
          continue;
        }
        const entry = entryOf(ev, options.entryOptions);
        if (!entry) {
          incomplete++;
          continue;
        }
        const id = entryId(entry);
        const obs = engine.observe(ev, key, entry, id);
        if (obs.verdict === 'dropped') {
          overflowed++;
          continue;
        }
        touched.add(key);
        if (obs.verdict === 'learned') {
          if (obs.isNew) learned++;
        } else if (obs.verdict === 'deviation') {
          deviations.push({
            id: deviationId(ev, key, entry),
            key,
            baselineVersion: obs.baseline.version,
            entry,
            reason: obs.reason,
            explanation: obs.explanation,
            nearest: obs.nearest,
            event: ev,
          });
        }
      }
      if (batch.position !== undefined) positions.set(source, batch.position);
      if (deviations.length > 0) {
        const { spooled, evicted } = state.commit({ deviations });
        if (evicted > 0) {
          metrics.spoolEvicted.inc(evicted);
          logger.warn({ evicted }, 'spool full: dropped the oldest deviations');
        }
        for (const d of deviations) metrics.deviations.inc({ kind: d.event.kind });
        if (spooled > 0) deps.onSpooled();
      }
      batch.ack?.();
      for (let i = 0; i < kinds.length; i++) if (kinds[i]) metrics.events.inc({ source, kind: EVENT_KINDS[i] as string }, kinds[i] as number);
      if (unattributed) metrics.unattributed.inc({ source }, unattributed);
      if (incomplete) metrics.dropped.inc({ reason: 'incomplete' }, incomplete);
      if (overflowed) metrics.dropped.inc({ reason: 'too-many-baselines' }, overflowed);
      if (learned) metrics.learned.inc(learned);
      if (watermark > 0) metrics.watermark.set(watermark / 1000);
      endTimer();
    },
    flush(force) {
      const now = deps.now();
      const snapshots: BaselineSnapshot[] = [];
      for (const key of touched) {
        const b = engine.get(key);
        if (!b) {
          touched.delete(key);
          continue;
        }
        const p = persisted.get(key);
        const changed = !p || p.version !== b.version;
        const statsDue = p !== undefined && p.events !== b.events && (force || now - p.at >= options.statsIntervalMs);
        if (changed || statsDue) {
          snapshots.push(snapshotOf(b));
          persisted.set(key, { version: b.version, events: b.events, at: now });
          touched.delete(key);
        } else if (p && p.events === b.events) {
          touched.delete(key);
        }
      }
      if (snapshots.length === 0 && positions.size === 0) return;
      state.commit({ snapshots, positions });
      positions.clear();
      if (snapshots.length > 0) {
        updateBaselineGauge();
        deps.onSpooled();
      }
    },
  };
}
