/**
 * What a node owned by an attacker sends (its certificate is valid; what it says is not), one
 * attack a row: what the collector must refuse or cut, the counter that must show it, and checks of
 * what the attack must not achieve. The `hostile node` suite (test/hostile/agent-stream.test.ts)
 * runs them against a collector with mTLS, the fault table (`npm run faults`) against a collector
 * process; both then check that real agents still connect, alert and get their baselines.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Deviation } from '../../core/deviation.js';
import { entryId, type Entry } from '../../core/entry.js';
import { deviationToWire, snapshotToWire, type WireBaselineSnapshot } from '../../proto/index.js';
import { deltaOf, statsOf, T0 } from '../helpers/baseline-delta.js';
import { scriptedNode, type ScriptedNode } from '../helpers/hostile-node.js';
import { deviationOf } from '../helpers/ingest.js';

/** Where the attacks go. */
export interface Target {
  grpcPort: number;
  /** The collector's HTTP base URL. */
  url: string;
  /** Headers for API calls (a token, when the API has tokens). */
  headers: Record<string, string>;
  /** Credentials of a node's agent. */
  credentials(node: string): grpc.ChannelCredentials;
}

/** One attack. */
export interface Attack {
  name: string;
  /** What the collector refuses, cuts or keeps apart. */
  refused: string;
  /** The counter that shows it: name, labels, and the least it must have grown by. */
  counted: { metric: string; labels: Record<string, string>; atLeast: number } | null;
  /** Send the attack; `check` records what must hold afterwards. */
  run(target: Target, check: (ok: boolean, what: string) => void): Promise<void>;
}

export const EVIL = 'node-evil';
export const GOOD = 'node-good';
/** A key the attacker runs, one it does not, one security locked, one it floods. */
export const SHOP = 'docker.io/acme/shop';
export const PAYMENTS = 'docker.io/acme/payments';
export const VAULT = 'docker.io/acme/vault';
export const BIG = 'docker.io/acme/big';

const proc = (exe: string, args = ''): Entry => ({ type: 'process', exe, parent: 'sh', user: 'root', args });
const seen = { firstSeen: T0, lastSeen: T0 + 60_000, count: 3 };

/** Sum of a counter's samples whose labels include `labels`, from the collector's /metrics. */
export async function counter(target: Pick<Target, 'url' | 'headers'>, metric: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${target.url}/metrics`, { headers: target.headers })).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`) && !line.startsWith(`${metric} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** GET an API path, as JSON, with its status. */
export async function api(target: Target, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${target.url}${path}`, {
    method,
    headers: { ...target.headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // an export in YAML, or an error page
  }
  return { status: res.status, body: parsed };
}

/** Run `fn` with a welcomed scripted node, then close it. */
export async function asNode<T>(target: Target, node: string, runningKeys: string[], fn: (n: ScriptedNode) => Promise<T>, hello: Record<string, unknown> = {}): Promise<T> {
  const n = scriptedNode(target.grpcPort, target.credentials(node), node, { runningKeys, ...hello });
  try {
    await n.welcomed;
    return await fn(n);
  } finally {
    n.close();
  }
}

let batchId = 1;
/** One batch of deltas from `n`, acknowledged. */
const deltas = (n: ScriptedNode, baselines: WireBaselineSnapshot[]) => n.batch({ batchId: batchId++, deviations: [], baselines });
/** One batch of deviations from `n`, acknowledged. */
const deviations = (n: ScriptedNode, ds: Deviation[]) => n.batch({ batchId: batchId++, deviations: ds.map(deviationToWire), baselines: [] });
const enc = encodeURIComponent;

/** A baseline entry whose id says one thing and whose entry another. */
function lying(id: string, entry: Entry) {
  return { ...statsOf(entry, EVIL, seen), id };
}

/** The attacks, in the order they run (some build on the state the previous ones left). */
export const ATTACKS: Attack[] = [
  {
    name: 'bad entry ids (not entry ids at all)',
    refused: 'each entry whose id is not the id of its entry; the valid ones of the same delta are kept',
    counted: { metric: 'driftwatch_collector_agent_records_refused_total', labels: { node: EVIL, reason: 'id_mismatch' }, atLeast: 3 },
    async run(target, check) {
      await asNode(target, EVIL, [SHOP], async (n) => {
        const snap = snapshotToWire(deltaOf(SHOP, [statsOf(proc('/usr/bin/shop'), EVIL, seen), lying('not an id', proc('/bin/true')), lying('exec|x', proc('/bin/true')), lying('', proc('/bin/false'))]));
        const ack = await deltas(n, [snap]);
        check(ack.rejected === 3, `the ack says 3 rejected (${ack.rejected})`);
      });
      const b = await api(target, 'GET', `/api/v1/baselines/${enc(SHOP)}`);
      check(b.status === 200, `GET the baseline answers 200 (${b.status})`);
      check(Array.isArray(b.body.entries) && b.body.entries.map((e: { id: string }) => e.id).join() === entryId(proc('/usr/bin/shop')), 'it holds the one valid entry');
      check((await api(target, 'GET', `/api/v1/baselines/${enc(SHOP)}/export`)).status === 200, 'its export answers 200');
    },
  },
  {
    name: 'entry id of /bin/sh carrying /bin/true',
    refused: 'the entry (its id is recomputed from the entry); other nodes still alert on /bin/sh',
    counted: { metric: 'driftwatch_collector_agent_records_refused_total', labels: { node: EVIL, reason: 'id_mismatch' }, atLeast: 1 },
    async run(target, check) {
      const sh = proc('/bin/sh', '-c id');
      await asNode(target, EVIL, [SHOP], (n) => deltas(n, [snapshotToWire(deltaOf(SHOP, [lying(entryId(sh), proc('/bin/true'))]))]));
      const b = await api(target, 'GET', `/api/v1/baselines/${enc(SHOP)}`);
      check(!b.body.entries.some((e: { id: string }) => e.id === entryId(sh) || e.id.startsWith('exec|/bin/true')), 'neither /bin/sh nor /bin/true joined the baseline');
      const d = deviationOf({ node: GOOD, image: SHOP, exe: '/bin/sh', args: '-c id', i: 1 });
      d.entry = sh;
      const ack = await asNode(target, GOOD, [SHOP], (n) => deviations(n, [d]));
      check(ack.stored === 1, `node-good's /bin/sh deviation is stored, not dropped as known (${JSON.stringify(ack)})`);
    },
  },
  {
    name: 'deltas for a key the node does not run',
    refused: 'the delta: a node teaches only keys it reported running containers of (Hello, heartbeats)',
    counted: { metric: 'driftwatch_collector_agent_records_refused_total', labels: { node: EVIL, reason: 'foreign_key' }, atLeast: 1 },
    async run(target, check) {
      const ack = await asNode(target, EVIL, [SHOP], (n) => deltas(n, [snapshotToWire(deltaOf(PAYMENTS, [statsOf(proc('/bin/sh'), EVIL, seen)]))]));
      check(ack.rejected === 1, `the ack says 1 rejected (${ack.rejected})`);
      check((await api(target, 'GET', `/api/v1/baselines/${enc(PAYMENTS)}`)).status === 404, 'the key was not created');
    },
  },
  {
    name: 'deltas for a locked baseline',
    refused: 'the delta: a locked baseline takes nothing from agents',
    counted: { metric: 'driftwatch_collector_agent_records_refused_total', labels: { node: EVIL, reason: 'locked' }, atLeast: 1 },
    async run(target, check) {
      await asNode(target, GOOD, [VAULT], (n) => deltas(n, [snapshotToWire(deltaOf(VAULT, [statsOf(proc('/usr/bin/vault'), GOOD, seen)]))]));
      const lock = await api(target, 'POST', `/api/v1/baselines/${enc(VAULT)}/lock`, { reason: 'pinned' });
      check(lock.status === 200, `locking answers 200 (${lock.status})`);
      await asNode(target, EVIL, [VAULT], (n) => deltas(n, [snapshotToWire(deltaOf(VAULT, [statsOf(proc('/bin/sh', '-c *'), EVIL, seen)], { version: 9 }))]));
      const b = await api(target, 'GET', `/api/v1/baselines/${enc(VAULT)}`);
      check(b.body.entries.length === 1 && b.body.state === 'locked', `the locked baseline still has its one entry (${b.body.entries?.length})`);
    },
  },
  {
    name: '100,000 entries for one key (10 deltas of 10,000)',
    refused: 'new entries past 20,000 per key; the baseline reaches agents in parts of at most 512 KiB',
    counted: { metric: 'driftwatch_collector_agent_records_refused_total', labels: { node: EVIL, reason: 'key_full' }, atLeast: 80_000 },
    async run(target, check) {
      const pad = 'x'.repeat(80);
      await asNode(target, EVIL, [BIG], async (n) => {
        for (let b = 0; b < 10; b++) {
          const entries = Array.from({ length: 10_000 }, (_v, i) => statsOf(proc(`/opt/${pad}/tool-${b}-${i}`), EVIL, seen));
          await deltas(n, [snapshotToWire(deltaOf(BIG, entries, { version: 10 + b }))]);
        }
      });
      const b = await api(target, 'GET', `/api/v1/baselines/${enc(BIG)}`);
      check(b.status === 200 && b.body.entries.length === 20_000, `the key holds 20,000 entries (${b.body.entries?.length})`);
      // A node that connects now gets it, in parts, and puts it together.
      const got = await asNode(target, GOOD, [], async (n) => {
        await n.until(() => n.baselines.has(BIG));
        return { ids: n.baselines.get(BIG)?.entryIds.length ?? 0, parts: n.replies.filter((r) => r.baseline?.key === BIG).length };
      });
      check(got.ids === 20_000 && got.parts > 1, `a connecting node got all 20,000 ids in ${got.parts} parts`);
    },
  },
  {
    name: "deviation ids colliding with another node's",
    refused: 'nothing: deviation ids are scoped by node, so both are stored',
    counted: null,
    async run(target, check) {
      const mine = deviationOf({ node: GOOD, image: SHOP, exe: '/usr/bin/curl', args: 'http://x', i: 2 });
      const forged = { ...deviationOf({ node: EVIL, image: SHOP, exe: '/bin/true', i: 2 }), id: mine.id };
      const first = await asNode(target, EVIL, [SHOP], (n) => deviations(n, [forged]));
      const second = await asNode(target, GOOD, [SHOP], (n) => deviations(n, [mine]));
      check(first.stored === 1 && second.stored === 1, `both stored (${first.stored}, ${second.stored})`);
      const alerts = await api(target, 'GET', `/api/v1/alerts?image=${enc(SHOP)}`);
      check(alerts.body.items.some((a: { nodes: string[]; summary: string }) => a.nodes.includes(GOOD) && a.summary.startsWith('/usr/bin/curl')), "node-good's alert is there");
    },
  },
  {
    name: 'a 20 KiB argument (and NUL bytes)',
    refused: 'nothing is dropped: the argument is cut at 4,096 characters and marked; NUL and control bytes are stripped',
    counted: { metric: 'driftwatch_collector_bounds_hit_total', labels: { bound: 'arg_length' }, atLeast: 1 },
    async run(target, check) {
      const d = deviationOf({ node: GOOD, image: SHOP, exe: '/usr/bin/python3', i: 3 });
      d.event.process.args = ['-c', `${'A'.repeat(20 * 1024)}`, 'evil\u0000arg\u001b[2J'];
      const ack = await asNode(target, GOOD, [SHOP], (n) => deviations(n, [d]));
      check(ack.stored === 1, `stored (${JSON.stringify(ack)})`);
      const list = await api(target, 'GET', `/api/v1/deviations?node=${GOOD}&limit=5`);
      const got = list.body.items.find((x: { id: string }) => x.id === d.id);
      const args: string[] = got?.process.args ?? [];
      check(args[1]?.startsWith('A'.repeat(4096)) === true && args[1]?.endsWith('…[+16384 chars]') === true, 'the long argument is cut and marked');
      check(args[2] === 'evilarg[2J', `control bytes stripped (${JSON.stringify(args[2])})`);
    },
  },
  {
    name: 'event times in year 3000 and 275760',
    refused: 'the time: kept at the receive time with the reported time alongside; a delta whose window starts in the future is refused',
    counted: { metric: 'driftwatch_collector_bounds_hit_total', labels: { bound: 'event_time_skew' }, atLeast: 2 },
    async run(target, check) {
      const far = deviationOf({ node: GOOD, image: SHOP, exe: '/usr/bin/date', i: 4 });
      far.event.time = 8_640_000_000_000_000;
      const y3000 = deviationOf({ node: GOOD, image: SHOP, exe: '/usr/bin/date', i: 5 });
      y3000.event.time = Date.UTC(3000, 0, 1);
      const ack = await asNode(target, GOOD, [SHOP], (n) => deviations(n, [far, y3000]));
      check(ack.stored === 2, `both stored (${JSON.stringify(ack)})`);
      const list = await api(target, 'GET', `/api/v1/deviations?node=${GOOD}&limit=10`);
      const rfc3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
      for (const d of [far, y3000]) {
        const got = list.body.items.find((x: { id: string }) => x.id === d.id);
        check(got !== undefined && rfc3339.test(got.time) && Date.parse(got.time) <= Date.now() + 60_000, `served at the receive time, RFC 3339 (${got?.time})`);
        check(got?.reportedTime === d.event.time, 'the reported time is kept');
      }
      const skewed = await asNode(target, EVIL, [SHOP], (n) => deltas(n, [snapshotToWire(deltaOf(SHOP, [statsOf(proc('/bin/sh'), EVIL, seen)], { windowStart: Date.UTC(3000, 0, 1), version: 20 }))]));
      check(skewed.rejected === 1, `the future window is refused (${skewed.rejected})`);
    },
  },
  {
    name: 'huge Hello fields (1 MiB version, 100 sources of 10 KiB)',
    refused: 'nothing is refused: the fields are cut in the log (256 characters) and in the node record (64)',
    counted: { metric: 'driftwatch_collector_bounds_hit_total', labels: { bound: 'hello_field' }, atLeast: 1 },
    async run(target, check) {
      const version = 'v'.repeat(1 << 20);
      await asNode(target, EVIL, [], async () => undefined, { agentVersion: version, sources: Array.from({ length: 100 }, () => 's'.repeat(10 * 1024)) });
      const node = await api(target, 'GET', `/api/v1/nodes/${EVIL}`);
      check(node.status === 200 && node.body.agentVersion.length <= 64, `the node record keeps a short version (${node.body.agentVersion?.length})`);
    },
  },
];
