/**
 * The hot path's inputs, shared by the agent-hot-path, growth and memory scenarios: a learning
 * stream (its baselines learned through the real pipeline, then enforcing) and a check stream of the
 * same cluster with fresh values (another seed: new pids, ports, pod names, container ids), with about
 * 0.1% deviating events injected.
 */
import type { BaselineSnapshot } from '../../core/baseline.js';
import { T0, MINUTE, cachedJson, enforcing, streamFile, type StreamFile, type StreamSpec } from './data.js';
import { pipelinePass } from './pipeline.js';
import type { ScenarioContext } from './types.js';

/** Images beyond the demo's five: registry.example.com/team-<i>/svc-<i> over node-1..node-8. */
export const EXTRA_IMAGES = 300;

export interface HotPathInputs {
  learn: StreamFile;
  check: StreamFile;
  /** Enforcing baselines learned from `learn`. */
  baselines: BaselineSnapshot[];
}

/** Learning stream and window: long enough that every image's window closes inside it. */
export function learnSpec(quick: boolean): { spec: StreamSpec; windowMs: number } {
  return quick
    ? { spec: { seed: 11, startMs: T0, durationMs: 12 * MINUTE, eventsPerMinute: 3_000, extraImages: EXTRA_IMAGES }, windowMs: 8 * MINUTE }
    : { spec: { seed: 11, startMs: T0, durationMs: 40 * MINUTE, eventsPerMinute: 6_000, extraImages: EXTRA_IMAGES }, windowMs: 25 * MINUTE };
}

/** The check stream: after the learning stream, another seed, one deviating line per 1,000. */
export function checkSpec(quick: boolean): StreamSpec {
  return quick
    ? { seed: 22, startMs: T0 + 60 * MINUTE, durationMs: 2 * MINUTE, eventsPerMinute: 15_000, extraImages: EXTRA_IMAGES, deviateEvery: 1_000 }
    : { seed: 22, startMs: T0 + 60 * MINUTE, durationMs: 8 * MINUTE, eventsPerMinute: 30_000, extraImages: EXTRA_IMAGES, deviateEvery: 1_000 };
}

/** Generate (or load from the cache) the hot path's inputs. */
export async function hotPathInputs(ctx: ScenarioContext): Promise<HotPathInputs> {
  const { spec, windowMs } = learnSpec(ctx.quick);
  ctx.log('hot path data: learning stream');
  const learn = streamFile(ctx.cacheDir, spec);
  ctx.log('hot path data: check stream');
  const check = streamFile(ctx.cacheDir, checkSpec(ctx.quick));
  const baselines = await cachedJson(ctx.cacheDir, 'baselines', { spec, windowMs, v: 1 }, async () => {
    ctx.log(`hot path data: learning ${learn.events} events through the pipeline`);
    const pass = await pipelinePass(ctx.workDir, learn.path, [], { learningWindowMs: windowMs, keepSnapshots: true });
    return enforcing(pass.snapshots ?? []);
  });
  return { learn, check, baselines };
}
