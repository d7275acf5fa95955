/**
 * Generalization of public peers (core/baseline PeerGeneralization), as a table: what a key learned
 * on one port, what it generalized to, and what then matches and what still alerts.
 */
import test from 'ava';
import { baselineKey, createBaselineEngine, generalizationOf, snapshotOf, type BaselineEngine, type Observation } from '../../core/baseline.js';
import { coveringEntryId, entryFromId, entryId, entryOf, peerName, PUBLIC_PEER, type Entry } from '../../core/entry.js';
import type { ActivityEvent } from '../../core/event.js';
import { parseCidr } from '../../core/ip.js';

const T0 = Date.UTC(2026, 10, 23, 8, 0, 0);
const MIN = 60_000;
const KEY = 'registry.example/batch/exporter';
const options = { clusterRanges: ['10.0.0.0/8', 'fd00::/8'].map(parseCidr) };

function connect(minute: number, remote: string, port = 443, protocol: 'tcp' | 'udp' = 'tcp', name = ''): ActivityEvent {
  return {
    time: T0 + minute * MIN,
    node: 'node-1',
    source: 'test',
    container: { id: 'c1', name: 'exporter', image: { repository: KEY, tag: '2.1', digest: '' } },
    pod: { namespace: 'batch', name: 'exporter-1', labels: {}, workload: '' },
    kind: 'connect',
    process: { pid: 77, exe: '/usr/local/bin/exporter', name: 'exporter', args: [], parentExe: '', parentName: 'containerd-shim', uid: 1000, user: '' },
    network: { protocol, localAddress: '10.244.1.5', localPort: 40000, remoteAddress: remote, remotePort: port, remoteName: name },
  };
}

function observe(engine: BaselineEngine, ev: ActivityEvent): Observation {
  const entry = entryOf(ev, options) as Entry;
  return engine.observe(ev, baselineKey(ev, 'repository')!, entry, entryId(entry));
}

/** A small deterministic generator, so "fresh values" differ from the learned ones but are reproducible. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}
const byte = (r: () => number) => Math.floor(r() * 256);

/** Learn `peers` (one connection each) during the first hour, then close the window. */
function learn(peers: string[], engineOptions: Parameters<typeof createBaselineEngine>[0] = {}): BaselineEngine {
  const engine = createBaselineEngine({ learningWindowMs: 60 * MIN, quietPeriodMs: 0, ...engineOptions });
  observe(engine, connect(0, '10.244.9.9', 5432));
  peers.forEach((p, i) => observe(engine, connect(1 + (i * 58) / Math.max(1, peers.length), p)));
  observe(engine, connect(61, '10.244.9.9', 5432));
  return engine;
}

const generalized = (engine: BaselineEngine) =>
  [...engine.get(KEY)!.entries.keys()]
    .map((id) => entryFromId(id))
    .flatMap((e) => (e.type === 'network' && (e.peer.includes('/') || e.peer === PUBLIC_PEER) ? [`${e.peer}:${e.port}`] : []))
    .sort();

const s3 = (n: number, seed: number) => {
  const r = rng(seed);
  return Array.from({ length: n }, () => `52.216.${byte(r)}.${1 + byte(r) % 254}`);
};
/** Addresses in as many different /16s as asked (a CDN, a cloud API answering from everywhere). */
const spread = (n: number, seed: number) => {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => `${[23, 34, 35, 44, 54, 104, 151, 173, 185, 199][i % 10]}.${byte(r)}.${byte(r)}.${1 + (byte(r) % 254)}`);
};

const table: { name: string; peers: string[]; learns: string[]; matches: string[]; alerts: string[] }[] = [
  {
    name: 'four addresses of one /24: their covering block',
    peers: ['198.51.100.10', '198.51.100.20', '198.51.100.33', '198.51.100.40'],
    learns: ['198.51.100.0/26:443'],
    matches: ['198.51.100.50'],
    alerts: ['198.51.100.200', '198.51.101.1'],
  },
  {
    name: 'three addresses are not many: nothing generalized',
    peers: ['203.0.113.1', '203.0.113.2', '203.0.113.3'],
    learns: [],
    matches: ['203.0.113.2'],
    alerts: ['203.0.113.4'],
  },
  {
    name: 'an object store spread over a /16 (each connection a new address): the /16',
    peers: ['52.216.1.5', '52.216.77.2', '52.216.130.9', '52.216.200.9', '52.216.13.7', '52.216.250.1', '52.216.99.3', '52.216.45.45'],
    learns: ['52.216.0.0/16:443'],
    matches: ['52.216.180.4', '52.216.0.1'],
    alerts: ['52.217.0.1', '3.5.0.1'],
  },
  {
    name: 'seven addresses over a /16 are not yet enough for it',
    peers: ['52.216.1.5', '52.216.77.2', '52.216.130.9', '52.216.200.9', '52.216.13.7', '52.216.250.1', '52.216.99.3'],
    learns: [],
    matches: [],
    alerts: ['52.216.180.4'],
  },
  {
    name: 'many addresses across unrelated networks: the public class',
    peers: spread(16, 7),
    learns: [`${PUBLIC_PEER}:443`],
    matches: ['8.8.4.4', '2600:1f18::1'],
    alerts: ['172.31.9.9', '100.64.1.1', '192.168.1.1', 'fd12::1'],
  },
  {
    name: 'fifteen spread addresses are not enough for the class',
    peers: spread(15, 7),
    learns: [],
    matches: [],
    alerts: ['8.8.4.4'],
  },
  {
    name: 'two tight services on one port: two blocks, not the class',
    peers: [...['1.2.3.4', '1.2.77.4', '1.2.130.4', '1.2.200.4', '1.2.13.4', '1.2.250.4', '1.2.99.4', '1.2.45.4'], ...['9.9.1.4', '9.9.77.4', '9.9.130.4', '9.9.200.4', '9.9.13.4', '9.9.250.4', '9.9.99.4', '9.9.45.4']],
    learns: ['1.2.0.0/16:443', '9.9.0.0/16:443'],
    matches: ['1.2.5.5', '9.9.5.5'],
    alerts: ['8.8.8.8'],
  },
  {
    name: 'IPv6 addresses of one /32: their block',
    peers: ['2600:1f18:1::1', '2600:1f18:2::1', '2600:1f18:33::1', '2600:1f18:4000::1', '2600:1f18:5::1', '2600:1f18:6::1', '2600:1f18:7777::1', '2600:1f18:8000::1'],
    learns: ['2600:1f18::/32:443'],
    matches: ['2600:1f18:abcd::9'],
    alerts: ['2600:1f19::1'],
  },
  {
    name: 'private addresses outside the cluster ranges never make the class',
    peers: [...Array.from({ length: 16 }, (_, i) => `172.${16 + i}.3.4`), ...[1, 2, 3, 4].map((i) => `192.168.${i}.4`)],
    learns: [],
    matches: [],
    alerts: ['172.20.1.1', '8.8.8.8'],
  },
];

for (const row of table) {
  test(`generalization: ${row.name}`, (t) => {
    const engine = learn(row.peers);
    t.deepEqual(generalized(engine), row.learns);
    t.is(engine.get(KEY)!.state, 'enforcing');
    for (const a of row.matches) t.is(observe(engine, connect(70, a)).verdict, 'matched', `${a} matches`);
    for (const a of row.alerts) t.is(observe(engine, connect(70, a)).verdict, 'deviation', `${a} alerts`);
  });
}

test('generalization never reaches another port, another protocol, or a key that never went public', (t) => {
  const engine = learn(spread(40, 3));
  t.deepEqual(generalized(engine), [`${PUBLIC_PEER}:443`]);
  const port = observe(engine, connect(70, '8.8.8.8', 8443));
  t.is(port.verdict, 'deviation', 'another port');
  t.is(observe(engine, connect(70, '8.8.8.8', 443, 'udp')).verdict, 'deviation', 'another protocol (QUIC)');
  // A key that only ever talked inside the cluster: its first public address alerts as a new peer.
  const quiet = learn([]);
  const first = observe(quiet, connect(70, '8.8.8.8'));
  t.is(first.verdict, 'deviation');
  t.is(first.verdict === 'deviation' ? first.reason : '', 'new-peer');
});

test('DNS names stay names: never counted, never generalized; a name that is not a DNS name is ignored', (t) => {
  const engine = createBaselineEngine({ learningWindowMs: 60 * MIN, quietPeriodMs: 0 });
  for (let i = 0; i < 30; i++) observe(engine, connect(1 + i, `52.${i}.1.1`, 443, 'tcp', 's3.us-east-1.amazonaws.com.'));
  observe(engine, connect(61, '52.99.1.1', 443, 'tcp', 's3.us-east-1.amazonaws.com'));
  const peers = [...engine.get(KEY)!.entries.keys()].map((id) => entryFromId(id)).flatMap((e) => (e.type === 'network' ? [e.peer] : []));
  t.deepEqual(peers, ['s3.us-east-1.amazonaws.com'], 'one name entry, whatever the addresses behind it');
  t.is(observe(engine, connect(70, '8.8.8.8')).verdict, 'deviation', 'the name taught nothing about addresses');
  // A hostile resolver answering "cluster" (or any text that reads as a class, block or id) is not a name.
  for (const bad of ['cluster', '@public', '10.0.0.0/8', 'a|b.example', 'localhost', '1.2.3.4', 'x'.repeat(300)]) t.is(peerName(bad), '', bad);
  t.like(entryOf(connect(70, '6.6.6.6', 443, 'tcp', 'cluster'), options), { peer: '6.6.6.6' }, 'the address is kept, so it alerts as public');
  t.is(peerName('Storage.GoogleAPIs.com'), 'storage.googleapis.com');
});

test('evidence: each generalized entry says how many addresses and networks it was learned from', (t) => {
  const peers = ['52.216.1.5', '52.216.77.2', '52.216.130.9', '52.216.200.9', '52.216.13.7', '52.216.250.1', '52.216.99.3', '52.216.45.45'];
  const engine = learn(peers);
  const snap = snapshotOf(engine.get(KEY)!);
  const ids = snap.entries.map((e) => e.id);
  const block = snap.entries.find((e) => e.entry.type === 'network' && e.entry.peer === '52.216.0.0/16')!;
  t.regex(block.examples[0] ?? '', /^generalized \(wide block\): 8 addresses, 8 \/24s, 1 \/16s, e\.g\. 52\.216\.1\.5/);
  t.deepEqual(generalizationOf(block.entry, ids), { kind: 'block', prefixLength: 16, addresses: 8, prefixes: [{ length: 24, count: 8 }, { length: 16, count: 1 }] });
  t.true(peers.every((p) => ids.includes(entryId({ type: 'network', direction: 'egress', protocol: 'tcp', peer: p, port: 443 }))), 'the single addresses stay: what remains when a reviewer removes the block');
  const cls = learn(spread(16, 7)).get(KEY)!;
  const clsSnap = snapshotOf(cls);
  const any = clsSnap.entries.find((e) => e.entry.type === 'network' && e.entry.peer === PUBLIC_PEER)!;
  const g = generalizationOf(any.entry, clsSnap.entries.map((e) => e.id))!;
  t.is(g.kind, 'class');
  t.is(g.addresses, 16);
  t.is(g.prefixes.find((p) => p.length === 16)?.count, 16);
  t.true(g.prefixLength < 8, 'spread far: no block near it would do');
  t.regex(any.examples[0] ?? '', /^generalized \(class\): 16 addresses/);
  t.is(generalizationOf(entryFromId(entryId({ type: 'network', direction: 'egress', protocol: 'tcp', peer: '8.8.8.8', port: 443 })), []), null);
});

test('entry ids of generalized peers round-trip, and the collector finds the entry that covers a deviation', (t) => {
  const ids = ['egress|tcp|@public|443', 'egress|udp|52.216.0.0/16|443', 'ingress|tcp|2600:1f18::/32|8443', 'egress|tcp|s3.amazonaws.com|443'];
  for (const id of ids) t.is(entryId(entryFromId(id)), id);
  const dev = (peer: string, port = 443, protocol: 'tcp' | 'udp' = 'tcp'): Entry => ({ type: 'network', direction: 'egress', protocol, peer, port });
  t.is(coveringEntryId(dev('8.8.8.8'), ids), 'egress|tcp|@public|443');
  t.is(coveringEntryId(dev('52.216.3.3', 443, 'udp'), ids), 'egress|udp|52.216.0.0/16|443');
  t.is(coveringEntryId(dev('10.1.1.1'), ids), null, 'private: not in the class');
  t.is(coveringEntryId(dev('8.8.8.8', 444), ids), null, 'another port');
  t.is(coveringEntryId(dev('evil.example'), ids), null, 'a name is not covered');
});

test('the reviewer narrows: a removed class is dropped, never relearned, and the single addresses keep matching', (t) => {
  const peers = spread(16, 7);
  const engine = learn(peers);
  const b = engine.get(KEY)!;
  const cls = entryId({ type: 'network', direction: 'egress', protocol: 'tcp', peer: PUBLIC_PEER, port: 443 });
  t.truthy(engine.applyCluster({ key: KEY, state: 'learning', relearn: false, version: 2, windowStart: b.windowStart, learnUntil: b.learnUntil, entryIds: [], removedIds: [cls] }));
  t.false(b.entries.has(cls));
  t.is(observe(engine, connect(70, peers[3]!)).verdict, 'matched', 'a learned address still matches');
  t.is(observe(engine, connect(71, '8.8.4.4')).verdict, 'deviation', 'the class no longer does');
});

test('a replay of the workload with fresh addresses raises nothing', (t) => {
  // Learn: the object store in its /16 (a new address per connection), a CDN from everywhere on 8443, a database in the cluster.
  const engine = createBaselineEngine({ learningWindowMs: 60 * MIN, quietPeriodMs: 10 * MIN });
  const r = rng(11);
  const cdn = ['23', '34', '104', '151', '185', '199', '13', '18', '52', '99'];
  for (let m = 0; m < 60; m++) {
    observe(engine, connect(m, `52.216.${byte(r)}.${1 + byte(r) % 254}`));
    observe(engine, connect(m, `${cdn[m % cdn.length]}.${byte(r)}.${byte(r)}.${1 + byte(r) % 254}`, 8443));
    observe(engine, connect(m, `10.244.${byte(r)}.${byte(r)}`, 5432));
  }
  // Past the window (and its quiet period): another day's addresses, none seen before.
  let deviations = 0;
  const fresh = rng(12345);
  for (let m = 200; m < 1200; m++) {
    for (const ev of [connect(m, `52.216.${byte(fresh)}.${1 + byte(fresh) % 254}`), connect(m, `${cdn[byte(fresh) % cdn.length]}.${byte(fresh)}.${byte(fresh)}.${1 + byte(fresh) % 254}`, 8443), connect(m, `10.244.${byte(fresh)}.${byte(fresh)}`, 5432)]) {
      if (observe(engine, ev).verdict === 'deviation') deviations++;
    }
  }
  t.is(engine.get(KEY)!.state, 'enforcing');
  t.is(deviations, 0);
  t.true(engine.get(KEY)!.entries.size < 60, `a small baseline: ${engine.get(KEY)!.entries.size} entries`);
});

test('thresholds are options: off, or stricter', (t) => {
  const peers = ['52.216.1.5', '52.216.77.2', '52.216.130.9', '52.216.200.9', '52.216.13.7', '52.216.250.1', '52.216.99.3', '52.216.45.45'];
  t.deepEqual(generalized(learn(peers, { generalize: { blockAt: 0, wideBlockAt: 0, widestPrefix4: 16, widestPrefix6: 32, classAt: 0 } })), []);
  t.deepEqual(generalized(learn(peers, { generalize: { blockAt: 4, wideBlockAt: 8, widestPrefix4: 20, widestPrefix6: 32, classAt: 0 } })), [], 'no /20 holds them');
  t.deepEqual(generalized(learn(peers.slice(0, 6), { generalize: { blockAt: 4, wideBlockAt: 6, widestPrefix4: 16, widestPrefix6: 32, classAt: 0 } })), ['52.216.0.0/16:443']);
});

test('an event time years away moves no learning window; a confirmed jump does', (t) => {
  const engine = createBaselineEngine({ learningWindowMs: 60 * MIN, quietPeriodMs: 0 });
  observe(engine, connect(0, '10.244.9.9', 5432));
  const years = 3 * 365 * 24 * 60;
  t.is(observe(engine, connect(years, '10.244.9.9', 5432)).verdict, 'learned', 'years ahead: still learning');
  t.is(engine.get(KEY)!.state, 'learning');
  t.is(observe(engine, connect(-years, '10.244.9.9', 5432)).verdict, 'learned', 'years back: nothing changes');
  t.is(engine.clockOutliers, 2);
  observe(engine, connect(10, '8.8.8.8'));
  t.is(engine.get(KEY)!.state, 'learning', 'normal time goes on');
  // A new key first seen with a time far back starts its window at the clock, not years ago.
  const other = { ...connect(-years, '8.8.8.8'), container: { id: 'c9', name: 'x', image: { repository: 'registry.example/other', tag: '1', digest: '' } } };
  observe(engine, other);
  t.is(engine.get('registry.example/other')!.windowStart, T0 + 10 * MIN);
  // The node really was off for two days: the second event confirms the jump, and the window closes.
  observe(engine, connect(2 * 24 * 60, '10.244.9.9', 5432));
  t.is(engine.get(KEY)!.state, 'learning');
  observe(engine, connect(2 * 24 * 60 + 1, '10.244.9.9', 5432));
  t.is(engine.get(KEY)!.state, 'enforcing');
});
