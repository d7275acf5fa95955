/**
 * `npm run bench [-- --quick] [-- --only NAME[,NAME]] [-- --huge] [-- --cpu-prof]`
 *
 * Runs every scenario in its own Node.js process (so that one scenario's heap, JIT state and
 * children never skew another's), collects their figures, prints the table, and writes:
 * - full run:  bench/RESULTS.md and bench/results.json (the committed results);
 * - --quick:   bench/out/RESULTS.quick.md and bench/out/results.quick.json (a smoke run, not committed);
 * - --only:    bench/out/RESULTS.partial.md and bench/out/results.partial.json.
 * --cpu-prof writes a V8 CPU profile of every scenario process to $DWBENCH_PROF (default
 * /tmp/driftwatch-bench-prof). Exits non-zero only when a scenario fails to run; goals not met are
 * reported, never fatal (CI runs --quick as a smoke test).
 */
import { fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt } from './lib/measure.js';
import type { Figure } from './lib/types.js';
import { SCENARIOS } from './scenarios/index.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** bench/ in the source tree (dist/bench/ → ../../bench/). */
const BENCH_SRC = join(HERE, '..', '..', 'bench');
const SCENARIO_MAIN = join(HERE, 'scenario-main.js');

interface Outcome {
  scenario: string;
  seconds: number;
  figures: Figure[];
  error?: string;
}

function argValue(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i !== -1) return argv[i + 1];
  const eq = argv.find((a) => a.startsWith(`${name}=`));
  return eq?.slice(name.length + 1);
}

function profDirOf(execArgv: string[]): string {
  return (execArgv.find((a) => a.startsWith('--cpu-prof-dir=')) ?? '').slice('--cpu-prof-dir='.length);
}

/** Kill every process of a group (a scenario and whatever it started), ignoring a group already gone. */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** The scenario process group running now, killed if the bench itself is interrupted. */
let current: number | undefined;
let currentWorkDir: string | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killGroup(current);
    if (currentWorkDir && !process.env.DWBENCH_KEEP) rmSync(currentWorkDir, { recursive: true, force: true });
    process.exit(130);
  });
}

function runScenario(name: string, args: string[], execArgv: string[], timeoutMs: number): Promise<Outcome> {
  const started = Date.now();
  const root = process.env.DWBENCH_DIR ?? join(tmpdir(), 'driftwatch-bench');
  mkdirSync(root, { recursive: true });
  const workDir = mkdtempSync(join(root, `run-${name}-`));
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, DWBENCH_WORKDIR: workDir };
    if (execArgv.length > 0) env.DWBENCH_CPU_PROF = profDirOf(execArgv);
    // Its own process group: a scenario that overruns is killed with every child it started.
    const child = fork(SCENARIO_MAIN, [name, ...args], { execArgv, env, detached: true, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const onExit = () => killGroup(child.pid);
    process.on('exit', onExit);
    current = child.pid;
    currentWorkDir = workDir;
    let result: Outcome | null = null;
    const timer = setTimeout(() => {
      process.stderr.write(`[bench] ${name}: over its ${timeoutMs / 1000} s budget, killing it\n`);
      killGroup(child.pid);
    }, timeoutMs);
    child.on('message', (m: { type: string; figures: Figure[]; seconds: number }) => {
      if (m.type === 'result') result = { scenario: name, seconds: m.seconds, figures: m.figures };
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // Anything the scenario left behind goes with it.
      killGroup(child.pid);
      process.off('exit', onExit);
      if (!process.env.DWBENCH_KEEP) rmSync(workDir, { recursive: true, force: true });
      const seconds = (Date.now() - started) / 1000;
      if (result && code === 0) resolve({ ...result, seconds });
      else resolve({ scenario: name, seconds, figures: result?.figures ?? [], error: `exited with ${signal ?? code}` });
    });
  });
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return (m[1] as string).trim();
  } catch {
    // not Linux
  }
  return cpus()[0]?.model ?? 'unknown';
}

function markdown(outcomes: Outcome[], meta: Record<string, string>): string {
  const lines: string[] = [];
  lines.push('# Driftwatch benchmark results', '');
  lines.push('Every figure is set against a floor measured in the same run, on the same data and machine; the ratio is the');
  lines.push('fraction of the floor achieved (higher is better: value ÷ floor for rates, floor ÷ value for times and sizes).');
  lines.push('Absolute numbers are for context only: these machines are shared and noisy. See bench/README.md.', '');
  for (const [k, v] of Object.entries(meta)) lines.push(`- ${k}: ${v}`);
  lines.push('');
  lines.push('| scenario | figure | value | floor | ratio | goal | met |');
  lines.push('| --- | --- | --- | --- | --- | --- | --- |');
  for (const o of outcomes) {
    if (o.error) lines.push(`| ${o.scenario} | **failed: ${o.error}** | | | | | ✗ |`);
    for (const f of o.figures) {
      const value = `${fmt(f.value)} ${f.unit}`;
      const floor = f.floor === null ? '—' : `${fmt(f.floor)}${f.floorName ? ` (${f.floorName})` : ''}`;
      const ratio = f.ratio === null ? '—' : f.ratio.toFixed(2);
      const met = f.met === null ? '' : f.met ? 'yes' : '**no**';
      lines.push(`| ${f.scenario} | ${f.figure} | ${value} | ${floor} | ${ratio} | ${f.goal ?? ''} | ${met} |`);
    }
  }
  lines.push('', '## Notes', '');
  for (const o of outcomes) for (const f of o.figures) if (f.note) lines.push(`- **${f.scenario} / ${f.figure}**: ${f.note}`);
  lines.push('', '## Time per scenario', '');
  for (const o of outcomes) lines.push(`- ${o.scenario}: ${o.seconds.toFixed(1)} s${o.error ? ` (${o.error})` : ''}`);
  return `${lines.join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  const quick = argv.includes('--quick');
  const huge = argv.includes('--huge');
  const only = argValue(argv, '--only')?.split(',').filter(Boolean);
  const prof = argv.includes('--cpu-prof');
  const known = new Set(SCENARIOS.map((s) => s.name));
  for (const n of only ?? []) if (!known.has(n)) throw new Error(`unknown scenario ${n}; one of: ${[...known].join(', ')}`);
  const selected = SCENARIOS.filter((s) => !only || only.includes(s.name));
  const profDir = process.env.DWBENCH_PROF ?? join(tmpdir(), 'driftwatch-bench-prof');
  const execArgv = prof ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
  const args = [...(quick ? ['--quick'] : []), ...(huge ? ['--huge'] : [])];
  const budget = (name: string): number => {
    if (process.env.DWBENCH_BUDGET_S) return Number(process.env.DWBENCH_BUDGET_S) * 1000;
    // Three formats × three phases of real agents; slow while the code under test raises thousands of false alerts.
    if (name === 'detection-quality') return quick ? 240_000 : 600_000;
    return quick ? 90_000 : (name === 'growth-collector' || name === 'growth-postgres') && huge ? 1_500_000 : 300_000;
  };

  const started = Date.now();
  const outcomes: Outcome[] = [];
  for (const s of selected) {
    process.stderr.write(`[bench] ${s.name} (${s.title})${quick ? ' — quick' : ''}\n`);
    const o = await runScenario(s.name, args, execArgv, budget(s.name));
    process.stderr.write(`[bench] ${s.name}: ${o.error ? `FAILED (${o.error})` : 'done'} in ${o.seconds.toFixed(1)} s\n`);
    outcomes.push(o);
  }
  const total = (Date.now() - started) / 1000;
  const meta: Record<string, string> = {
    date: new Date().toISOString(),
    mode: `${quick ? 'quick' : 'full'}${huge ? ' + huge (10M stored deviations)' : ''}${only ? ` (only ${only.join(', ')})` : ''}`,
    node: process.version,
    cpu: `${cpuModel()} × ${cpus().length}`,
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    'total time': `${total.toFixed(0)} s`,
  };
  const md = markdown(outcomes, meta);
  const json = JSON.stringify({ meta, scenarios: outcomes.map((o) => ({ scenario: o.scenario, seconds: o.seconds, error: o.error ?? null })), figures: outcomes.flatMap((o) => o.figures) }, null, 2);
  const outDir = join(BENCH_SRC, 'out');
  const [mdPath, jsonPath] = only
    ? [join(outDir, 'RESULTS.partial.md'), join(outDir, 'results.partial.json')]
    : quick
      ? [join(outDir, 'RESULTS.quick.md'), join(outDir, 'results.quick.json')]
      : [join(BENCH_SRC, 'RESULTS.md'), join(BENCH_SRC, 'results.json')];
  mkdirSync(dirname(mdPath), { recursive: true });
  writeFileSync(mdPath, md);
  writeFileSync(jsonPath, `${json}\n`);
  process.stdout.write(md);
  process.stderr.write(`[bench] wrote ${mdPath} and ${jsonPath} in ${total.toFixed(0)} s${prof ? `; CPU profiles in ${profDir}` : ''}\n`);
  return outcomes.some((o) => o.error) ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(2);
  },
);
