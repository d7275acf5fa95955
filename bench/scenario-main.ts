/**
 * Runs one scenario in this (child) process and sends its figures to the orchestrator over IPC
 * (or prints them as JSON when run by hand: node dist/bench/scenario-main.js NAME [--quick]).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SCENARIOS } from './scenarios/index.js';
import type { Figure } from './lib/types.js';

async function main(argv: string[]): Promise<void> {
  const name = argv.find((a) => !a.startsWith('--'));
  const quick = argv.includes('--quick');
  const scenario = SCENARIOS.find((s) => s.name === name);
  if (!scenario) throw new Error(`unknown scenario ${name}; one of: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  const root = process.env.DWBENCH_DIR ?? join(tmpdir(), 'driftwatch-bench');
  mkdirSync(root, { recursive: true });
  // The orchestrator gives a work dir it removes itself (even after a kill); run by hand, make one.
  const given = process.env.DWBENCH_WORKDIR;
  const workDir = given ?? mkdtempSync(join(root, `run-${scenario.name}-`));
  const started = Date.now();
  try {
    const figures: Figure[] = await scenario.run({
      quick,
      workDir,
      cacheDir: join(root, 'cache'),
      log: (m) => process.stderr.write(`[${scenario.name} +${((Date.now() - started) / 1000).toFixed(1)}s] ${m}\n`),
    });
    const message = { type: 'result', scenario: scenario.name, figures, seconds: (Date.now() - started) / 1000 };
    if (process.send) await new Promise<void>((resolve) => process.send!(message, () => resolve()));
    else console.log(JSON.stringify(message, null, 2));
  } finally {
    if (!given && !process.env.DWBENCH_KEEP) rmSync(workDir, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`scenario failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
