/**
 * Loaded by ava before every test file (package.json `ava.require`): when `npm test` (test/run.ts) names a
 * timings file in DRIFTWATCH_TEST_TIMINGS, appends this file and its wall time to it when its worker exits, so that the slowest files can be listed. Each test file runs in its own worker process, so the process's
 * uptime is the file's time. A plain `npx ava` records nothing.
 */
import { appendFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const timings = process.env.DRIFTWATCH_TEST_TIMINGS;
if (timings) {
  // An exit handler, not an ava hook: hooks declared here would end the test file's declaration phase.
  process.once('exit', () => {
    const file = relative(process.cwd(), test.meta.file.startsWith('file:') ? fileURLToPath(test.meta.file) : test.meta.file);
    // One short line per file with O_APPEND: concurrent workers do not interleave within a line.
    appendFileSync(timings, `${JSON.stringify({ file, ms: Math.round(process.uptime() * 1000) })}\n`);
  });
}
