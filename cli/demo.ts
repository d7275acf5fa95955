/**
 * `driftwatch demo`: a real collector and a real agent (the same code as in production, in one
 * process, over loopback gRPC and a real SQLite file) replay a recorded Falco stream, then the demo
 * reads the collector's HTTP API and shows what was learned, what was caught, and why.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { startAgent, loadAgentConfig } from '../agent/main.js';
import { formatDuration, parseDuration } from '../core/duration.js';
import { loadCollectorConfig, startCollector } from '../collector/main.js';
import { certsInit, certsNode } from './certs.js';

/** The recorded stream shipped with Driftwatch. */
export const DEMO_EVENTS = fileURLToPath(new URL('../../fixtures/falco/demo.jsonl', import.meta.url));

/** Demo options. */
export interface DemoOptions {
  events?: string | undefined;
  learningWindow?: string | undefined;
  serve: boolean;
  keep: boolean;
  /** Where to write (defaults to stdout). */
  out?: (line: string) => void;
}

interface AlertJson {
  id: string;
  image: string;
  kind: string;
  summary: string;
  explanation: string;
  example: string;
  count: number;
  pods: string[];
  nodes: string[];
  firstSeen: string;
  severity: string;
  rule: { id: string; reason: string };
}

interface BaselineJson {
  key: string;
  state: string;
  windowStart: string;
  learnUntil: string;
  events: number;
  processEntries: number;
  networkEntries: number;
}

const tty = process.stdout.isTTY === true;
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (tty ? `\x1b[2m${s}\x1b[0m` : s);
const red = (s: string) => (tty ? `\x1b[31m${s}\x1b[0m` : s);

function cut(s: string, width: number): string {
  return s.length <= width ? s.padEnd(width) : `${s.slice(0, width - 1)}…`;
}

function table(rows: string[][], widths: number[]): string[] {
  return rows.map((r) => r.map((c, i) => cut(c, widths[i] as number)).join('  ').trimEnd());
}

function hhmm(isoTime: string): string {
  return isoTime.slice(11, 19);
}

async function getJson<T>(url: string, token: string): Promise<T> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

/** Run the demo; returns the exit code. */
export async function runDemo(options: DemoOptions): Promise<number> {
  const print = options.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const started = Date.now();
  const events = options.events ?? DEMO_EVENTS;
  const windowText = options.learningWindow ?? '1h';
  const windowMs = parseDuration(windowText);
  statSync(events);
  const dir = mkdtempSync(join(tmpdir(), 'driftwatch-demo-'));
  // Logs of both components go to a file in the demo directory, so the screen shows only the result.
  const logFile = join(dir, 'driftwatch.log');
  const logger = pino({ level: 'info', timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: logFile, sync: true }));

  // Secure like a real installation: a CA minted for the demo, mutual TLS between agent and
  // collector (the node's name is in its certificate), and an API token.
  const pki = join(dir, 'pki');
  await certsInit(pki, { names: ['localhost', '127.0.0.1'], days: 1, caDays: 1 });
  await certsNode(pki, ['demo-node-1'], { days: 1 });
  const token = randomBytes(24).toString('base64url');
  const tokensFile = join(dir, 'api-tokens.yaml');
  writeFileSync(tokensFile, `tokens:\n  - name: demo\n    role: admin\n    token: ${token}\n`, { mode: 0o600 });
  const collector = await startCollector(
    loadCollectorConfig(
      {
        db: join(dir, 'collector.db'),
        grpcListen: '127.0.0.1:0',
        httpListen: '127.0.0.1:0',
        tlsCert: join(pki, 'collector.crt'),
        tlsKey: join(pki, 'collector.key'),
        tlsCa: join(pki, 'ca.crt'),
        apiTokensFile: tokensFile,
      },
      {},
    ),
    { logger: logger.child({ name: 'collector' }) },
  );
  try {
    const agent = await startAgent(
      loadAgentConfig(
        {
          node: 'demo-node-1',
          sources: [`falco-file:${events}`],
          collector: `127.0.0.1:${collector.grpcPort}`,
          stateDir: join(dir, 'agent'),
          learningWindow: windowText,
          httpListen: '127.0.0.1:0',
          exitWhenDone: true,
          tlsCa: join(pki, 'ca.crt'),
          tlsCert: join(pki, 'node-demo-node-1.crt'),
          tlsKey: join(pki, 'node-demo-node-1.key'),
          tlsServerName: 'localhost',
        },
        {},
      ),
      { logger: logger.child({ name: 'agent' }) },
    );
    await agent.done;
    const read = (await agent.metrics.events.get()).values.reduce((n, v) => n + v.value, 0);
    const rejected = (await agent.metrics.rejected.get()).values.reduce((n, v) => n + v.value, 0);
    const verdicts = new Map((await agent.metrics.verdicts.get()).values.map((v) => [String(v.labels.verdict), v.value]));
    const learnedEvents = verdicts.get('learned') ?? 0;
    const matched = verdicts.get('matched') ?? 0;
    const deviated = verdicts.get('deviation') ?? 0;

    const baselines = (await getJson<{ items: BaselineJson[] }>(`${collector.url}/api/v1/baselines`, token)).items;
    const alerts: AlertJson[] = [];
    let next: string | null = null;
    do {
      const page: { items: AlertJson[]; next: string | null } = await getJson(`${collector.url}/api/v1/alerts?limit=100${next ? `&cursor=${next}` : ''}`, token);
      alerts.push(...page.items);
      next = page.next;
    } while (next);
    alerts.reverse();
    const deviations = alerts.reduce((n, a) => n + a.count, 0);
    const first = baselines.reduce((t, b) => Math.min(t, Date.parse(b.windowStart)), Infinity);

    print('');
    print(bold('Driftwatch demo') + dim(` — replaying ${events === DEMO_EVENTS ? 'a recorded Falco stream' : events}`));
    print(
      `Read ${read.toLocaleString('en-US')} Falco events from one node${rejected ? ` (${rejected} malformed, skipped)` : ''}; ` +
        `each image learns for at least ${formatDuration(windowMs)} of event time from ${Number.isFinite(first) ? new Date(first).toISOString().slice(11, 16) : '?'} UTC (longer while new behaviour keeps appearing), then enforces.`,
    );
    print('');
    print(bold(`What it learned — ${baselines.length} baselines`));
    const bRows = [['BASELINE (image)', 'STATE', 'PROCESSES', 'NETWORK', 'LEARNED FROM']];
    for (const b of baselines) {
      bRows.push([b.key, b.state, String(b.processEntries), String(b.networkEntries), `${b.events.toLocaleString('en-US')} events`]);
    }
    for (const line of table(bRows, [42, 10, 9, 7, 16])) print(`  ${line}`);
    print('');
    print(
      bold(`What it caught — ${alerts.length} alerts from ${deviations} deviations`) +
        dim(` (after learning from ${learnedEvents.toLocaleString('en-US')} events, ${(matched + deviated).toLocaleString('en-US')} were checked: ${matched.toLocaleString('en-US')} matched their baseline)`),
    );
    const aRows = [['#', 'SEVERITY', 'IMAGE', 'WHAT', 'COUNT', 'PODS', 'FIRST SEEN']];
    alerts.forEach((a, i) => {
      const what = a.kind === 'exec' ? a.example : a.summary;
      aRows.push([String(i + 1), a.severity, a.image.replace(/^docker\.io\/library\//, ''), what, `×${a.count}`, String(a.pods.length), hhmm(a.firstSeen)]);
    });
    const lines = table(aRows, [2, 8, 24, 44, 5, 4, 10]);
    print(`  ${lines[0]}`);
    alerts.forEach((a, i) => {
      const line = lines[i + 1] as string;
      print(`  ${a.severity === 'critical' || a.severity === 'high' ? red(line) : line}`);
      print(`  ${dim(`   why: ${a.explanation}; ${a.rule.reason}`)}`);
    });
    const bySeverity = ['critical', 'high', 'medium', 'low'].map((s) => [s, alerts.filter((a) => a.severity === s).length] as const).filter(([, n]) => n > 0);
    print(dim(`  ${bySeverity.map(([s, n]) => `${n} ${s}`).join(', ')}: severity comes from a rule table (a service starting a shell, binaries from /tmp, reverse shells → critical; network tools, public egress, new listening ports → high)`));
    print('');
    print(`API:  ${collector.url}/api/v1/alerts   ${collector.url}/api/v1/baselines   ${collector.url}/metrics`);
    if (options.serve) print(`      with the header  Authorization: Bearer ${token}`);
    else print(dim(`      (stops with the demo; \`npx driftwatch demo --serve\` keeps it running)`));
    print(dim(`Data: ${dir}${options.keep || options.serve ? '' : ' (removed; --keep keeps it)'}   Finished in ${((Date.now() - started) / 1000).toFixed(1)}s.`));
    if (options.serve) {
      print(bold('Serving the API until Ctrl-C.'));
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
    }
    return 0;
  } finally {
    await collector.stop();
    logger.flush();
    if (!options.keep && !options.serve) rmSync(dir, { recursive: true, force: true });
  }
}
