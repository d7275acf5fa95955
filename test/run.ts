/**
 * `npm test`: runs ava (arguments passed through), then lists the slowest test files so they can be watched
 * (test/helpers/file-timing.ts records them). Exits with ava's code.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';

const SHOWN = 10;
const TIMINGS = resolve('test-results/timings.jsonl');

const require = createRequire(import.meta.url);
// ava's package exports hide its CLI; it sits beside the main entry point.
const avaCli = join(dirname(require.resolve('ava')), 'cli.mjs');
mkdirSync(dirname(TIMINGS), { recursive: true });
rmSync(TIMINGS, { force: true });
const started = Date.now();
const child = spawn(process.execPath, [avaCli, ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, DRIFTWATCH_TEST_TIMINGS: TIMINGS } });
const code = await new Promise<number>((done) => child.on('exit', (c, signal) => done(c ?? (signal ? 1 : 0))));

const rows = existsSync(TIMINGS)
  ? readFileSync(TIMINGS, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { file: string; ms: number })
  : [];
if (rows.length > 0) {
  rows.sort((a, b) => b.ms - a.ms);
  const shown = rows.slice(0, SHOWN);
  const width = Math.max(...shown.map((r) => r.file.length));
  console.log(`\nSlowest test files (wall time of each file's worker; ${rows.length} files, whole run ${Math.round((Date.now() - started) / 1000)} s):`);
  for (const r of shown) console.log(`  ${r.file.padEnd(width)}  ${(r.ms / 1000).toFixed(1).padStart(6)} s`);
}
process.exit(code);
