/**
 * The Dockerfile, checked without a Docker engine: its build stage runs the project's own build
 * (the same `tsc -p tsconfig.json` that `npm test` has just run on these sources) from files it
 * copies in; its runtime stage, assembled here from that build's output by its own COPY lines,
 * runs the CLI and loads every proto; labels, users and targets are what the manifests expect.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; engines: { node: string }; scripts: Record<string, string>; allowScripts: Record<string, boolean> };
const tsconfig = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { include: string[] };

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name: string;
  steps: Instruction[];
}

/** Stages of the Dockerfile: instructions with continuation lines joined and comments dropped. */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const logical = text.replace(/\\\n\s*/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  for (const line of logical) {
    const [op, ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (op!.toUpperCase() === 'FROM') {
      const m = /^(\S+) AS (\S+)$/i.exec(args);
      if (!m) throw new Error(`FROM without a stage name: ${line}`);
      stages.push({ from: m[1]!, name: m[2]!, steps: [] });
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`${op!} before FROM`);
      stage.steps.push({ op: op!.toUpperCase(), args });
    }
  }
  return stages;
}

const stages = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const stage = (name: string): Stage => {
  const s = stages.find((x) => x.name === name);
  if (!s) throw new Error(`no stage ${name}`);
  return s;
};
const execForm = (args: string): string[] => JSON.parse(args) as string[];
const copies = (s: Stage) => s.steps.filter((x) => x.op === 'COPY').map((x) => {
  const parts = x.args.split(/\s+/);
  const from = parts[0]!.startsWith('--from=') ? parts.shift()!.slice('--from='.length) : undefined;
  return { from, sources: parts.slice(0, -1), dest: parts.at(-1)! };
});

test('stages: build on Node of package.json\'s major, slim runtime by default, agent variant with bpftrace', (t) => {
  t.deepEqual(stages.map((s) => s.name), ['build', 'runtime-base', 'agent', 'runtime']);
  const major = /(\d+)/.exec(pkg.engines.node)![1];
  t.regex(stage('build').from, new RegExp(`^node:${major!}-`));
  t.regex(stage('runtime-base').from, new RegExp(`^node:${major!}-.*slim$`));
  t.is(stage('agent').from, 'runtime-base');
  t.is(stages.at(-1)!.name, 'runtime', 'a plain docker build gives the image without bpftrace');
  const agentRuns = stage('agent').steps.filter((s) => s.op === 'RUN').map((s) => execForm(s.args));
  t.true(agentRuns.some((argv) => argv[0] === 'apt-get' && argv[1] === 'install' && argv.includes('bpftrace')));
});

test('every RUN is in exec form: no shell parses anything', (t) => {
  const runs = stages.flatMap((s) => s.steps.filter((x) => x.op === 'RUN'));
  t.true(runs.length > 0);
  for (const r of runs) t.notThrows(() => execForm(r.args), r.args);
  for (const s of stages) for (const x of s.steps.filter((y) => y.op === 'ENTRYPOINT' || y.op === 'CMD')) t.notThrows(() => execForm(x.args), x.args);
});

test('build stage: the project\'s own install and build, from every file the build needs', (t) => {
  const build = stage('build');
  const runs = build.steps.filter((s) => s.op === 'RUN').map((s) => execForm(s.args));
  const rebuilt = Object.entries(pkg.allowScripts).filter(([, allowed]) => allowed).map(([name]) => name);
  t.deepEqual(runs, [
    ['npm', 'ci', '--ignore-scripts', '--no-audit', '--no-fund'],
    ...rebuilt.map((name) => ['npm', 'rebuild', name]),
    ['npm', 'run', 'build'],
    ['npm', 'prune', '--omit=dev', '--no-audit', '--no-fund'],
  ]);
  // `npm run build` is the compile that `npm test` runs before the tests: the Node code, then
  // the console's browser modules (their own tsconfig, inside a folder the build stage copies).
  t.is(pkg.scripts.build, 'tsc -p tsconfig.json && tsc -p collector/console/tsconfig.json');
  // (after the check of the system packages the tests drive, which the image's build does not need)
  t.true(pkg.scripts.test!.includes(`&& ${pkg.scripts.build} &&`));
  const copied = new Set(copies(build).flatMap((c) => c.sources));
  for (const path of ['package.json', 'package-lock.json', 'tsconfig.json', ...tsconfig.include]) t.true(copied.has(path), `the build stage copies ${path}`);
  // Only the manifests go in before `npm ci`, so that a source change does not reinstall.
  const beforeInstall = build.steps.slice(0, build.steps.findIndex((s) => s.op === 'RUN')).filter((s) => s.op === 'COPY');
  t.deepEqual(beforeInstall.map((s) => s.args), ['package.json package-lock.json ./']);
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  t.true(ignored.includes('node_modules') && ignored.includes('dist'), 'host builds stay out of the context');
  for (const path of copied) t.false(ignored.includes(path), `${path} is not ignored`);
});

test('runtime: version label from package.json, non-root numeric user, the CLI as entrypoint', (t) => {
  const base = stage('runtime-base');
  const labels = base.steps.filter((s) => s.op === 'LABEL').map((s) => s.args).join(' ');
  t.regex(labels, new RegExp(`org\\.opencontainers\\.image\\.version="${pkg.version.replace(/\./g, '\\.')}"`));
  for (const name of ['runtime-base', 'agent']) {
    const users = stage(name).steps.filter((s) => s.op === 'USER').map((s) => s.args);
    t.is(users.at(-1), '65532:65532', `${name} ends as a non-root user`);
  }
  const entry = base.steps.find((s) => s.op === 'ENTRYPOINT')!;
  t.deepEqual(execForm(entry.args), ['node', '/app/dist/cli/driftwatch.js']);
});

test('runtime layout assembled from the build by the runtime stage\'s COPY lines runs the CLI and loads every proto', async (t) => {
  const base = stage('runtime-base');
  const workdir = base.steps.find((s) => s.op === 'WORKDIR')!.args;
  t.is(workdir, '/app');
  const dir = mkdtempSync(join(tmpdir(), 'dw-image-'));
  try {
    const app = join(dir, 'app');
    mkdirSync(app);
    for (const c of copies(base)) {
      t.is(c.from, 'build');
      for (const source of c.sources) {
        const inRepo = join(ROOT, source.replace(/^\/src\//, ''));
        t.true(existsSync(inRepo), `${source} exists after the build`);
        const target = c.dest.endsWith('/') && c.sources.length > 1 ? join(app, c.dest, source.split('/').at(-1)!) : join(app, c.dest);
        mkdirSync(dirname(target), { recursive: true });
        // node_modules is linked, not copied: the same tree, without copying half a gigabyte.
        if (source === '/src/node_modules') symlinkSync(inRepo, target, 'dir');
        else cpSync(inRepo, target, { recursive: true });
      }
    }
    const [node, script] = execForm(base.steps.find((s) => s.op === 'ENTRYPOINT')!.args);
    const entry = join(dir, script!);
    const { stdout } = await run(process.execPath, [entry, 'version'], { cwd: app, timeout: 20_000 });
    t.is(node, 'node');
    t.is(stdout.trim(), pkg.version);
    // The protos are read from /app/proto at first use: load all three packages from the layout.
    const probe = join(dir, 'load-protos.mjs');
    writeFileSync(probe, [
      "import { driftwatchV1 } from './app/dist/proto/index.js';",
      "import { falcoOutputsService, tetragonSensorsService } from './app/dist/proto/third-party.js';",
      'driftwatchV1(); falcoOutputsService(); tetragonSensorsService();',
      "console.log('protos loaded');",
    ].join('\n'));
    const loaded = await run(process.execPath, [probe], { cwd: dir, timeout: 20_000 });
    t.is(loaded.stdout.trim(), 'protos loaded');
    t.true(existsSync(join(app, 'fixtures/falco/demo.jsonl')), 'driftwatch demo has its recording');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
