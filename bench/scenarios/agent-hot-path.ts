/**
 * Scenario 1 — agent hot path: a file of realistic Falco JSON events through the agent's real
 * pipeline (read, parse, normalize, attribute, key, match against enforcing baselines, spool the
 * deviations), against the floor of `split('\n')` + `JSON.parse` of the same file in the same process.
 */
import { hotPathInputs } from '../lib/hot-path-data.js';
import { median } from '../lib/measure.js';
import { jsonParseFloor, pipelinePass } from '../lib/pipeline.js';
import { figure, type Figure, type Scenario, type ScenarioContext } from '../lib/types.js';

const NAME = 'agent-hot-path';

async function run(ctx: ScenarioContext): Promise<Figure[]> {
  const { check, baselines } = await hotPathInputs(ctx);
  const rounds = ctx.quick ? 2 : 4;
  const floorRates: number[] = [];
  const pipeRates: number[] = [];
  let last: Awaited<ReturnType<typeof pipelinePass>> | null = null;
  // Warm-up: one of each, not counted (JIT, page cache).
  jsonParseFloor(check.path);
  await pipelinePass(ctx.workDir, check.path, baselines);
  for (let r = 0; r < rounds; r++) {
    const f = jsonParseFloor(check.path);
    floorRates.push(f.lines / (f.ms / 1000));
    const p = await pipelinePass(ctx.workDir, check.path, baselines);
    pipeRates.push(p.events / (p.ms / 1000));
    last = p;
    ctx.log(`round ${r + 1}/${rounds}: floor ${Math.round(floorRates[r] as number)}/s, pipeline ${Math.round(pipeRates[r] as number)}/s`);
  }
  const p = last!;
  const floor = median(floorRates);
  const rate = median(pipeRates);
  const avgBytes = check.bytes / check.events;
  return [
    figure.rate(NAME, 'pipeline events/s', rate, 'events/s', 'split + JSON.parse events/s', floor, 0.6,
      `${check.events} events, ${Math.round(avgBytes)} B/event, ${baselines.length} enforcing baselines, median of ${rounds}`),
    figure.info(NAME, 'deviating fraction', p.deviations / p.events, 'fraction', `${p.deviations} deviations of ${p.events} events (${check.injected} injected)`),
    figure.info(NAME, 'pipeline MB/s', (check.bytes / (1024 * 1024)) / (check.events / rate), 'MiB/s'),
  ];
}

export const scenario: Scenario = { name: NAME, title: 'Agent hot path', run };
