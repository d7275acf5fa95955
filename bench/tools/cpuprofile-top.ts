/**
 * Summarise a V8 .cpuprofile (from `node --cpu-prof` or `npm run bench -- --cpu-prof`): the functions
 * with the most self time, with their share of all samples.
 *
 *   node dist/bench/tools/cpuprofile-top.js PROFILE.cpuprofile [TOP=25] [--by-file]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function main(argv: string[]): void {
  const [path, topArg] = argv.filter((a) => !a.startsWith('--'));
  if (!path) throw new Error('usage: cpuprofile-top PROFILE [TOP] [--by-file]');
  const byFile = argv.includes('--by-file');
  const top = Number(topArg ?? 25);
  const prof = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const nodes = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const node = nodes.get(prof.samples[i] as number);
    if (!node) continue;
    const dt = prof.timeDeltas[i] ?? 0;
    const cf = node.callFrame;
    const file = cf.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/');
    const key = byFile ? file || `(${cf.functionName || 'native'})` : `${cf.functionName || '(anonymous)'}  ${file}${file ? `:${cf.lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  }
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [k, t] of rows) console.log(`${((100 * t) / total).toFixed(1).padStart(5)}%  ${(t / 1000).toFixed(0).padStart(7)} ms  ${k}`);
  console.log(`total ${(total / 1000).toFixed(0)} ms in ${prof.samples.length} samples`);
}

main(process.argv.slice(2));
