/**
 * Scenario — detection quality (issue 15, item 7): the seeded multi-node traffic of
 * lib/quality-traffic.ts, with its labelled attacks, replayed through real `driftwatch agent`
 * processes (one per node, each reading its node's file with the agent's file source) into one
 * real `driftwatch collector`, once per source format (Falco JSON, Tetragon JSON export, and the
 * bpftrace output of the agent's own eBPF program, read back with `ebpf-file:`; for it a fake
 * container runtime names every container's image and pod over the CRI, as a node's does). Scored from
 * the collector's HTTP API (lib/quality-score.ts): recall, precision, false alerts per 1,000
 * container-hours, alerts raised by a replay of normal traffic with fresh values, time to enforce,
 * severity per attack, and the false alerts broken down by severity rule and kind of entry.
 *
 * The phases run one after the other, each agent reading its whole file (--exit-when-done), so
 * every phase starts from what the cluster learned before it: learn (5 nodes), enforce (6 nodes:
 * node-6 joins, pods moved, a rollout, the attacks), fresh (normal traffic only). Learning runs on
 * event time: --learning-window 1h, --quiet-period 10m, --max-learning-window 2h; the learn phase
 * lasts 2.5 h (2.25 h with --quick), so every learned key has had its chance to enforce.
 */
import { mkdirSync, openSync, closeSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { parseRecordedLine } from '../../agent/sources/replay.js';
import { createCaptureDecoder } from '../../agent/sources/ebpf/file.js';
import { isRejected } from '../../agent/sources/record.js';
import { startFakeCri, type FakeCri } from '../../test/helpers/cri-server.js';
import { fmt } from '../lib/measure.js';
import { getJson, spawnAgent, spawnCollector } from '../lib/procs.js';
import { QUALITY_FORMATS, bootOf, createRenderer, sourceSpec, type QualityFormat } from '../lib/quality-formats.js';
import { scoreQuality, type AlertItem, type BaselineItem, type DeviationItem, type FalseAlertGroup, type QualityScore } from '../lib/quality-score.js';
import { generateTraffic, type Traffic, type TrafficSpec } from '../lib/quality-traffic.js';
import { T0 } from '../lib/data.js';
import type { Figure, Scenario, ScenarioContext } from '../lib/types.js';

const NAME = 'detection-quality';
const HOUR = 3_600_000;
/** The agent's learning settings for the replay (event time). */
const LEARNING_FLAGS = ['--learning-window', '1h', '--quiet-period', '10m', '--max-learning-window', '2h'];
/** Goals of issue 15 item 7. */
const GOALS = { recall: 1, precision: 0.9, freshAlerts: 0 };

/** The traffic of a run: full or quick. The seed is fixed so that runs compare. */
export function qualitySpec(quick: boolean, seed = 15): TrafficSpec {
  return quick
    ? { seed, startMs: T0, learnMs: 2.25 * HOUR, enforceMs: 1 * HOUR, freshMs: 1 * HOUR, syntheticImages: 6, slowdown: 2 }
    : { seed, startMs: T0, learnMs: 2.5 * HOUR, enforceMs: 1 * HOUR, freshMs: 1 * HOUR, syntheticImages: 8, slowdown: 1 };
}

/** What the agent's own parser makes of one node's lines in `format` (it reads the same bytes): rejects, counted by reason. */
function lineCheck(format: QualityFormat, node: string, bootMs: number, count: (reason: string) => void): (line: string) => void {
  if (format !== 'ebpf') {
    return (line) => {
      const parsed = parseRecordedLine(line, { node, source: format });
      if (isRejected(parsed)) count(`${parsed.reject}: ${parsed.detail ?? ''}`);
    };
  }
  const ctx = { node, logger: pino({ level: 'silent' }), maxRecordBytes: 1 << 20, follow: false, savedPosition: undefined, rejected: (reason: string, detail?: string) => count(`${reason}: ${detail ?? ''}`) };
  const { decoder } = createCaptureDecoder(ctx, format, bootMs);
  return (text) => {
    for (const line of text.split('\n')) decoder.line(line);
    decoder.take();
  };
}

/** Write each phase's per-node files in `format`; returns the paths and what the agent's parser rejects. */
function writeFiles(dir: string, traffic: Traffic, format: QualityFormat, bootMs: number): { files: Map<string, Map<string, string>>; lines: number; bytes: number; rejects: Map<string, number> } {
  const files = new Map<string, Map<string, string>>();
  const rejects = new Map<string, number>();
  const count = (reason: string) => rejects.set(reason.slice(0, 120), (rejects.get(reason.slice(0, 120)) ?? 0) + 1);
  let lines = 0;
  let bytes = 0;
  for (const phase of traffic.phases) {
    const byNode = new Map<string, string>();
    mkdirSync(join(dir, phase.phase), { recursive: true });
    for (const [node, events] of phase.byNode) {
      const path = join(dir, phase.phase, `${node}.jsonl`);
      const fd = openSync(path, 'w');
      const render = createRenderer(format, bootMs);
      const check = lineCheck(format, node, bootMs, count);
      let chunk: string[] = [];
      const flush = () => {
        const buf = Buffer.from(chunk.join(''));
        writeSync(fd, buf);
        bytes += buf.length;
        chunk = [];
      };
      for (const a of events) {
        const line = render(a);
        if (line === null) continue;
        // An eBPF activity is several lines (an exec's header, cgroup, file name and argv; a DNS answer before its connect).
        for (let at = line.indexOf('\n'); at !== -1; at = line.indexOf('\n', at + 1)) lines++;
        lines++;
        check(line);
        chunk.push(line, '\n');
        if (chunk.length > 8192) flush();
      }
      flush();
      closeSync(fd);
      byNode.set(node, path);
    }
    files.set(phase.phase, byNode);
  }
  return { files, lines, bytes, rejects };
}

/** Every item of a paginated list of the collector's API. */
async function listAll<T>(url: string): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 10_000; page++) {
    const sep = url.includes('?') ? '&' : '?';
    const body: { items: T[]; next?: string | null } = await getJson(`${url}${sep}limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    out.push(...body.items);
    cursor = body.next ?? null;
    if (!cursor) return out;
  }
  throw new Error(`${url}: more pages than expected`);
}

/** Replay every phase of `traffic` in `format` through real agents and a real collector; score it. */
async function replay(ctx: ScenarioContext, traffic: Traffic, format: QualityFormat): Promise<{ score: QualityScore; lines: number; bytes: number; rejects: Map<string, number>; seconds: number }> {
  const dir = join(ctx.workDir, format);
  mkdirSync(dir, { recursive: true });
  const bootMs = bootOf(traffic.phases[0]!.startMs);
  const { files, lines, bytes, rejects } = writeFiles(dir, traffic, format, bootMs);
  ctx.log(`${format}: ${lines} lines (${fmt(bytes / 2 ** 20)} MiB) written; the agent's parser rejects ${[...rejects.values()].reduce((a, b) => a + b, 0)}`);
  const started = performance.now();
  // eBPF events name a container by its cgroup only: the node's runtime answers for image and pod.
  const cri = format === 'ebpf' ? await startCri(traffic) : null;
  const collector = await spawnCollector(join(dir, 'collector.db'));
  try {
    for (const phase of traffic.phases) {
      const t0 = performance.now();
      const byNode = files.get(phase.phase) as Map<string, string>;
      const agents = await Promise.all(
        [...byNode].map(([node, path]) =>
          spawnAgent([
            '--source', sourceSpec(format, path, bootMs), '--collector', collector.target, '--node', node, '--state-dir', join(dir, 'state', node),
            ...(cri ? ['--cri-socket', cri.target] : []),
            ...LEARNING_FLAGS, '--exit-when-done', '--drain-timeout', '120s', '--log-level', 'info',
          ]),
        ),
      );
      const codes = await Promise.all(agents.map((a) => a.exited));
      codes.forEach((code, i) => {
        if (code !== 0) throw new Error(`${format} ${phase.phase}: agent ${i + 1} exited with ${code}: ${agents[i]!.stderr.slice(-800)}`);
      });
      for (const a of agents) for (const l of a.logs) if ((l.level as number) >= 40) ctx.log(`${format} ${phase.phase} agent log: ${JSON.stringify(l).slice(0, 300)}`);
      ctx.log(`${format} ${phase.phase}: ${phase.events} events on ${byNode.size} nodes replayed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    const [alerts, deviations, baselines] = await Promise.all([
      listAll<AlertItem>(`${collector.url}/api/v1/alerts`),
      listAll<DeviationItem>(`${collector.url}/api/v1/deviations`),
      getJson<{ items: BaselineItem[] }>(`${collector.url}/api/v1/baselines`).then((b) => b.items),
    ]);
    const enforce = traffic.phases.find((p) => p.phase === 'enforce')!;
    const fresh = traffic.phases.find((p) => p.phase === 'fresh')!;
    const score = scoreQuality({ attacks: traffic.attacks, alerts, deviations, baselines, freshStartMs: fresh.startMs, enforceContainerHours: enforce.containerHours });
    return { score, lines, bytes, rejects, seconds: (performance.now() - started) / 1000 };
  } finally {
    await collector.stop();
    cri?.cleanup();
  }
}

/** A fake container runtime (CRI over a unix socket) that knows every container of the traffic, as each node's runtime would. */
async function startCri(traffic: Traffic): Promise<FakeCri> {
  const seen = new Set<string>();
  const containers: Parameters<typeof startFakeCri>[0] = [];
  for (const phase of traffic.phases) {
    for (const [, events] of phase.byNode) {
      for (const { container: c } of events) {
        if (seen.has(c.id)) continue;
        seen.add(c.id);
        containers.push({
          id: c.id, sandbox: c.podUid, name: c.name, image: `${c.image.repository}:${c.image.tag}`, imageRef: `${c.image.repository}@${c.image.digest}`,
          pod: { name: c.pod, namespace: c.namespace, uid: c.podUid, labels: c.labels },
        });
      }
    }
  }
  return startFakeCri(containers);
}

function groupsText(groups: readonly FalseAlertGroup[], max = 8): string {
  if (groups.length === 0) return 'none';
  const shown = groups.slice(0, max).map((g) => `${g.count} × ${g.rule} / ${g.entry} (e.g. ${g.examples[0] ?? ''})`);
  return `${shown.join('; ')}${groups.length > max ? `; and ${groups.length - max} more kinds` : ''}`;
}

/** A figure with an exact goal (`= 1.0`, `≥ 0.9`, `= 0`). */
function goalFigure(figure: string, value: number, unit: string, goal: string, met: boolean, note?: string): Figure {
  return { scenario: NAME, figure, value, unit, floorName: null, floor: null, ratio: null, goal, met, ...(note ? { note } : {}) };
}

function info(figure: string, value: number, unit: string, note?: string): Figure {
  return { scenario: NAME, figure, value, unit, floorName: null, floor: null, ratio: null, goal: null, met: null, ...(note ? { note } : {}) };
}

/** The table printed on stderr for one format. */
function table(format: QualityFormat, s: QualityScore): string {
  const rows = [
    `| ${format} | value | goal |`,
    '| --- | --- | --- |',
    `| recall | ${s.attacks.filter((a) => a.detected).length}/${s.attacks.length} = ${s.recall.toFixed(2)} | 1.0 |`,
    `| precision | ${s.attackAlerts}/${s.alertsBeforeFresh} = ${s.precision.toFixed(2)} | ≥ 0.9 |`,
    `| false alerts | ${s.falseAlerts} (${s.falsePer1kContainerHours.toFixed(1)} per 1,000 container-hours) | |`,
    `| fresh replay | ${s.freshAlerts} alerts (${s.freshNewAlerts} new), ${s.freshDeviations} deviations | 0 |`,
    `| time to enforce | median ${fmt(s.enforceHours.median)} h, max ${fmt(s.enforceHours.max)} h; ${s.enforceHours.enforcing}/${s.enforceHours.keys} keys enforcing | |`,
    '',
    '| attack | detected | severity | rules | expected |',
    '| --- | --- | --- | --- | --- |',
    ...s.attacks.map((a) => `| ${a.id} | ${a.detected ? 'yes' : '**no**'} | ${a.severity ?? '—'} | ${a.rules.join(', ') || '—'} | ${a.expected} |`),
    '',
    '| false alerts by rule | entry | count | example |',
    '| --- | --- | --- | --- |',
    ...s.falseByKind.map((g) => `| ${g.rule} | ${g.entry} | ${g.count} | ${g.examples[0] ?? ''} |`),
    '',
    `false alerts by image: ${s.falseByKey.map((k) => `${k.key} ${k.count}`).join(', ') || 'none'}`,
  ];
  if (s.freshByKind.length > 0) {
    rows.push('', '| fresh-replay alerts by rule | entry | count | example |', '| --- | --- | --- | --- |', ...s.freshByKind.map((g) => `| ${g.rule} | ${g.entry} | ${g.count} | ${g.examples[0] ?? ''} |`));
  }
  return rows.join('\n');
}

async function run(ctx: ScenarioContext): Promise<Figure[]> {
  const spec = qualitySpec(ctx.quick);
  const traffic = generateTraffic(spec);
  const containerHours = traffic.phases.map((p) => `${p.phase} ${p.containerHours.toFixed(0)}`).join(', ');
  const events = traffic.phases.reduce((n, p) => n + p.events, 0);
  ctx.log(`traffic (seed ${spec.seed}): ${traffic.images.length} images, ${events} events, container-hours ${containerHours}, ${traffic.attacks.length} attacks (${traffic.attacks.reduce((n, a) => n + a.events, 0)} events)`);
  const figures: Figure[] = [];
  for (const format of QUALITY_FORMATS) {
    const r = await replay(ctx, traffic, format);
    const s = r.score;
    process.stderr.write(`\n${table(format, s)}\n\n`);
    const missed = s.attacks.filter((a) => !a.detected).map((a) => a.id);
    const rce = s.attacks.filter((a) => a.id.startsWith('rce-'));
    const rejected = [...r.rejects].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n} × ${k}`).join('; ');
    figures.push(
      goalFigure(`${format}: recall`, s.recall, 'ratio', '= 1.0', s.recall >= GOALS.recall,
        `${s.attacks.length - missed.length} of ${s.attacks.length} attacks alerted${missed.length > 0 ? `; missed: ${missed.join(', ')}` : ''}; severity per attack: ${s.attacks.map((a) => `${a.id} ${a.severity ?? 'none'}${a.rules.length > 0 ? ` (${a.rules.join('+')})` : ''}`).join(', ')}`),
      goalFigure(`${format}: precision`, s.precision, 'ratio', '≥ 0.9', s.precision >= GOALS.precision,
        `${s.attackAlerts} attack alerts of ${s.alertsBeforeFresh}; false alerts by rule / entry: ${groupsText(s.falseByKind)}; by image: ${s.falseByKey.map((k) => `${k.key} ${k.count}`).join(', ') || 'none'}`),
      info(`${format}: false alerts per 1,000 container-hours`, s.falsePer1kContainerHours, 'alerts', `${s.falseAlerts} false alerts over ${traffic.phases[1]!.containerHours.toFixed(1)} container-hours of the enforce phase`),
      goalFigure(`${format}: fresh replay of normal traffic`, s.freshAlerts, 'alerts', '= 0', s.freshAlerts <= GOALS.freshAlerts,
        `${s.freshNewAlerts} of them new fingerprints, ${s.freshDeviations} deviations; by rule / entry: ${groupsText(s.freshByKind)}`),
      info(`${format}: RCE shapes critical`, rce.filter((a) => a.severity === 'critical').length, `of ${rce.length}`, rce.map((a) => `${a.id}: ${a.severity ?? 'not alerted'}`).join(', ')),
      info(`${format}: time to enforce, median`, s.enforceHours.median, 'h', `event time from a key's first event to enforcing; max ${fmt(s.enforceHours.max)} h; ${s.enforceHours.enforcing} of ${s.enforceHours.keys} keys enforcing at the end`),
      info(`${format}: replay wall time`, r.seconds, 's', `${r.lines} lines, ${fmt(r.bytes / 2 ** 20)} MiB over 3 phases; lines the agent's parser rejects: ${rejected || 'none'}`),
    );
  }
  return figures;
}

export const scenario: Scenario = { name: NAME, title: 'Detection quality: recall, precision and noise on seeded multi-node traffic', run };
