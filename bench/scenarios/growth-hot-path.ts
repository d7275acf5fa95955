/**
 * Scenario 5 (agent part) — the hot path with 10, 1,000 and 10,000 enforcing image baselines of 100
 * entries each. The cluster of the stream has 10 images; for N baselines every image's learned
 * baseline is cloned into N/10 keys (`<repository>-g000123`, padded to 100 entries). A node runs a
 * bounded set of images whatever the number of baselines it holds, so the events go to 10 clones of
 * each image (100 active baselines; 10 at N = 10): each size is measured against the split +
 * JSON.parse floor of its own file, and the curve (floor-relative ratio at 10,000 over that at 10)
 * must stay flat, since finding a baseline and an entry is a Map lookup. A last pass spreads the
 * events over all 10,000 (no locality: the worst case for caches) and times the forced flush of
 * every touched baseline.
 */
import { existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import type { BaselineSnapshot, EntryStats } from '../../core/baseline.js';
import { entryId, type Entry } from '../../core/entry.js';
import { HOST_KEY } from '../../core/baseline.js';
import { T0, MINUTE, cachedJson, enforcing, streamFile, type StreamSpec } from '../lib/data.js';
import { letters } from '../lib/deviations.js';
import { median } from '../lib/measure.js';
import { jsonParseFloor, pipelinePass } from '../lib/pipeline.js';
import { figure, type Figure, type Scenario, type ScenarioContext } from '../lib/types.js';

const NAME = 'growth';
const ENTRIES = 100;

export function specs(quick: boolean): { learn: StreamSpec; windowMs: number; check: StreamSpec } {
  return quick
    ? {
        learn: { seed: 33, startMs: T0, durationMs: 12 * MINUTE, eventsPerMinute: 2_000, extraImages: 5 },
        windowMs: 8 * MINUTE,
        check: { seed: 44, startMs: T0 + 60 * MINUTE, durationMs: 1 * MINUTE, eventsPerMinute: 10_000, extraImages: 5, deviateEvery: 1_000 },
      }
    : {
        learn: { seed: 33, startMs: T0, durationMs: 30 * MINUTE, eventsPerMinute: 3_000, extraImages: 5 },
        windowMs: 15 * MINUTE,
        check: { seed: 44, startMs: T0 + 60 * MINUTE, durationMs: 4 * MINUTE, eventsPerMinute: 25_000, extraImages: 5, deviateEvery: 1_000 },
      };
}

const suffix = (j: number) => `-g${String(j).padStart(6, '0')}`;

/**
 * The check stream with each line's image repository replaced by one of its `clones` clones; with
 * `active`, only that many clones of each image (spread over the range) get events.
 */
export function cloneFile(src: string, clones: number, active = clones): string {
  const used = Math.min(clones, active);
  const out = `${src.replace(/\.jsonl$/, '')}.clones-${clones}${used < clones ? `-active-${used}` : ''}.jsonl`;
  if (existsSync(out)) return out;
  const lines = readFileSync(src, 'utf8').split('\n');
  const stride = Math.floor(clones / used);
  let i = 0;
  const rewritten = lines.map((line) =>
    line.replace(/"container\.image\.repository":"([^"]+)"/, (_m, repo: string) => {
      const j = ((Math.imul(i++, 2654435761) >>> 0) % used) * stride;
      return `"container.image.repository":"${repo}${suffix(j)}"`;
    }),
  );
  writeFileSync(`${out}.tmp`, rewritten.join('\n'));
  renameSync(`${out}.tmp`, out);
  return out;
}

/**
 * N image baselines: clones of the learned ones, each padded to ENTRIES entries, made one at a time
 * (so that nothing but the engine holds them once restored, as in an agent).
 */
export function* cloneBaselines(learned: readonly BaselineSnapshot[], clones: number): Generator<BaselineSnapshot> {
  for (const b of learned) {
    if (b.key === HOST_KEY) {
      yield b;
      continue;
    }
    for (let j = 0; j < clones; j++) {
      const entries: EntryStats[] = b.entries.map((e) => ({ ...e, nodes: [...e.nodes], examples: [...e.examples] }));
      for (let p = 0; entries.length < ENTRIES; p++) {
        const entry: Entry = { type: 'process', exe: `/opt/pad/${letters(p)}`, parent: 'containerd-shim', user: 'user', args: '--serve' };
        entries.push({ id: entryId(entry), entry, firstSeen: b.windowStart, lastSeen: b.windowStart, count: 1, nodes: ['node-1'], examples: [`/opt/pad/${letters(p)} --serve`] });
      }
      yield { ...b, key: `${b.key}${suffix(j)}`, images: b.images.map((img) => ({ ...img, repository: `${img.repository}${suffix(j)}` })), entries };
    }
  }
}

/** The enforcing baselines of the growth cluster's 10 images (and the host), learned once and cached. */
export async function growthBaselines(ctx: ScenarioContext): Promise<BaselineSnapshot[]> {
  const { learn, windowMs } = specs(ctx.quick);
  const learnFile = streamFile(ctx.cacheDir, learn);
  return cachedJson(ctx.cacheDir, 'growth-baselines', { learn, windowMs, v: 1 }, async () => {
    const pass = await pipelinePass(ctx.workDir, learnFile.path, [], { learningWindowMs: windowMs, keepSnapshots: true });
    return enforcing(pass.snapshots ?? []);
  });
}

/** Active clones per image: a node runs a bounded set of images whatever the number of baselines. */
const ACTIVE_PER_IMAGE = 10;

interface Row {
  n: number;
  active: number;
  rate: number;
  floor: number;
  flushMs: number;
  gcShare: number;
  deviations: number;
  events: number;
}

async function measure(ctx: ScenarioContext, learned: readonly BaselineSnapshot[], src: string, clones: number, active: number, rounds: number, flush: boolean): Promise<Row> {
  const images = learned.filter((b) => b.key !== HOST_KEY).length;
  const file = cloneFile(src, clones, active);
  const floorRates: number[] = [];
  const rates: number[] = [];
  let flushMs = 0;
  let gcShare = 0;
  let deviations = 0;
  let events = 0;
  jsonParseFloor(file);
  for (let r = 0; r < rounds; r++) {
    const f = jsonParseFloor(file);
    floorRates.push(f.lines / (f.ms / 1000));
    // The forced flush of every touched baseline is slow with thousands touched: measured once, in the last round.
    const last = r === rounds - 1;
    const p = await pipelinePass(ctx.workDir, file, cloneBaselines(learned, clones), { clone: false, finalFlush: flush && last });
    rates.push(p.events / (p.ms / 1000));
    if (flush && last) flushMs = p.flushMs;
    gcShare = p.gcMs / p.ms;
    deviations = p.deviations;
    events = p.events;
  }
  const row = { n: clones * images, active: Math.min(clones, active) * images, rate: median(rates), floor: median(floorRates), flushMs, gcShare, deviations, events };
  ctx.log(`${row.n} baselines, ${row.active} active: ${Math.round(row.rate)} events/s (floor ${Math.round(row.floor)}/s), GC ${(100 * gcShare).toFixed(0)}%${flush ? `, forced flush ${Math.round(flushMs)} ms` : ''}, ${deviations} deviations`);
  return row;
}

async function run(ctx: ScenarioContext): Promise<Figure[]> {
  ctx.log('growth data: streams');
  const src = streamFile(ctx.cacheDir, specs(ctx.quick).check).path;
  const learned = await growthBaselines(ctx);
  const images = learned.filter((b) => b.key !== HOST_KEY).length;
  const rounds = ctx.quick ? 1 : 3;
  const targets = ctx.quick ? [10, 100, 1_000] : [10, 1_000, 10_000];
  const rows: Row[] = [];
  for (const target of targets) rows.push(await measure(ctx, learned, src, Math.max(1, Math.round(target / images)), ACTIVE_PER_IMAGE, rounds, false));
  // Worst case: events spread evenly over every one of the most baselines (no locality at all).
  const maxClones = Math.max(1, Math.round((targets[targets.length - 1] as number) / images));
  const spread = await measure(ctx, learned, src, maxClones, maxClones, ctx.quick ? 1 : 2, true);

  const figures: Figure[] = [];
  for (const r of rows) {
    figures.push(figure.rate(NAME, `hot path events/s, ${r.n} baselines × ${ENTRIES} (${r.active} active)`, r.rate, 'events/s', 'split + JSON.parse events/s', r.floor, null,
      `${r.events} events over ${r.active} of ${r.n} enforcing baselines; ${r.deviations} deviations; GC pauses ${(100 * r.gcShare).toFixed(0)}% of the pass`));
  }
  const first = rows[0]!;
  const last = rows[rows.length - 1]!;
  figures.push(figure.flat(NAME, `hot path flatness ${first.n} → ${last.n} baselines`, last.rate / last.floor / (first.rate / first.floor), ctx.quick ? null : 0.75, 'floor-relative rate, largest ÷ smallest'));
  figures.push(figure.rate(NAME, `hot path events/s, events spread over all ${spread.n} baselines`, spread.rate, 'events/s', 'split + JSON.parse events/s', spread.floor, null,
    `worst case, no locality: every event hits a random one of ${spread.n} baselines; GC pauses ${(100 * spread.gcShare).toFixed(0)}% of the pass`));
  figures.push(figure.info(NAME, `forced flush of ${spread.n} touched baselines`, spread.flushMs, 'ms', 'persist + queue the delta of every touched baseline at once, as the agent does at shutdown; running agents write at most 5,000 statistics entries a second'));
  return figures;
}

export const scenario: Scenario = { name: 'growth-hot-path', title: 'Growth: agent hot path', run };
