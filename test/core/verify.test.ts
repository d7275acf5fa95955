/**
 * core/verify: which events are checked under which key mode, what matched (generalized peers
 * count the addresses they cover), removed entries, and — the contract — that a finding's severity,
 * rule and why are what the collector's alert policy decides for the same deviation, and its reason
 * and explanation what the agent's engine says.
 */
import test from 'ava';
import { parseBaselineDocument } from '../../core/baseline-doc.js';
import { createBaselineEngine } from '../../core/baseline.js';
import { entryId, entryOf, type Entry } from '../../core/entry.js';
import type { ActivityEvent } from '../../core/event.js';
import { DEFAULT_CLUSTER_CIDRS, parseCidr } from '../../core/ip.js';
import { baselineFactsOf } from '../../core/severity.js';
import { atOrAbove, createVerifier, keyModeOf } from '../../core/verify.js';
import { AlertingConfigSchema } from '../../collector/alerting/config.js';
import { createAlertPolicy } from '../../collector/alerting/policy.js';

const entryOptions = { clusterRanges: DEFAULT_CLUSTER_CIDRS.map((c) => parseCidr(c)) };
const REPO = 'registry.example.com/team/api';

function exec(exe: string, args: string[], parent: string, opts: { tag?: string; digest?: string; repo?: string; uid?: number; container?: boolean } = {}): ActivityEvent {
  return {
    time: 1_800_000_000_000,
    node: 'ci',
    source: 'test',
    container: opts.container === false ? null : { id: 'c0ffee'.padEnd(64, '0'), name: 'api', image: { repository: opts.repo ?? REPO, tag: opts.tag ?? '1.2', digest: opts.digest ?? '' } },
    pod: null,
    kind: 'exec',
    process: { pid: 40, exe, name: exe.slice(exe.lastIndexOf('/') + 1), args, parentExe: `/usr/bin/${parent}`, parentName: parent, uid: opts.uid ?? 0, user: '' },
    network: null,
  };
}

function connect(address: string, port: number): ActivityEvent {
  return {
    ...exec('/usr/local/bin/api', [], 'containerd-shim'),
    kind: 'connect',
    network: { protocol: 'tcp', localAddress: '10.1.2.3', localPort: -1, remoteAddress: address, remotePort: port, remoteName: '' },
  };
}

const DOC = `apiVersion: driftwatch.dev/v1alpha1
kind: Baseline
metadata:
  name: api
spec:
  key: ${REPO}
  state: enforcing
  processes:
    - exe: /usr/local/bin/api
      parent: containerd-shim
      user: root
      args: "--port <num>"
    - exe: /bin/sh
      parent: api
      user: root
      args: "-c <...>"
  network:
    - direction: egress
      protocol: tcp
      peer: 52.216.0.0/16
      port: 443
  removed:
    processes:
      - exe: /usr/bin/curl
        parent: sh
        user: root
        args: "-s https://example.com/x"
    network: []
`;

test('key modes follow how the key is written', (t) => {
  t.is(keyModeOf('docker.io/library/nginx'), 'repository');
  t.is(keyModeOf('localhost:5000/team/api'), 'repository', 'a registry port is not a tag');
  t.is(keyModeOf('localhost:5000/team/api:1.2'), 'tag');
  t.is(keyModeOf(`docker.io/library/nginx@sha256:${'a'.repeat(64)}`), 'digest');
  t.true(atOrAbove('critical', 'high'));
  t.true(atOrAbove('high', 'high'));
  t.false(atOrAbove('medium', 'high'));
  t.true(atOrAbove('low', 'low'));
});

test('the image\'s events are checked; host, unknown-image and other-image events are counted; a block counts the addresses it covers', (t) => {
  const doc = parseBaselineDocument(DOC);
  const v = createVerifier(doc, { entryOptions });
  v.check(exec('/usr/local/bin/api', ['--port', '8080'], 'containerd-shim'));
  v.check(exec('/usr/local/bin/api', ['--port', '9090'], 'containerd-shim', { tag: '1.3' }));
  v.check(connect('52.216.8.9', 443));
  v.check(connect('52.216.200.1', 443));
  v.check(exec('/bin/ls', [], 'bash', { container: false }));
  v.check(exec('/bin/ls', [], 'sh', { repo: '' }));
  v.check(exec('/bin/ls', [], 'sh', { repo: 'docker.io/library/redis' }));
  v.check(exec('/bin/ls', [], 'sh', { repo: 'docker.io/library/redis' }));
  v.check({ ...connect('52.216.8.9', 443), network: { protocol: 'tcp', localAddress: '', localPort: -1, remoteAddress: '52.216.8.9', remotePort: -1, remoteName: '' } });
  const r = v.result();
  t.deepEqual(r.checked, { exec: 2, connect: 2, accept: 0, listen: 0 });
  t.deepEqual(r.findings, []);
  t.deepEqual([...r.matched].map(([id, n]) => `${n} ${id}`), ['2 egress|tcp|52.216.0.0/16|443', '0 exec|/bin/sh|api|root|-c <...>', '2 exec|/usr/local/bin/api|containerd-shim|root|--port <num>']);
  t.deepEqual({ ...r.ignored, otherKeys: [...r.ignored.otherKeys] }, { host: 1, noImage: 1, otherKeys: [['docker.io/library/redis', 2]], otherKeysOverflow: 0, incomplete: 1 });

  // --all-events: the same events all count as the image (the incomplete one still cannot).
  const all = createVerifier(doc, { entryOptions, allEvents: true });
  for (const ev of [exec('/bin/ls', [], 'bash', { container: false }), exec('/bin/ls', [], 'bash', { repo: 'docker.io/library/redis' })]) all.check(ev);
  t.is(all.result().checked.exec, 2);
  t.is(all.result().findings.length, 1, 'one entry, seen twice');
  t.is(all.result().findings[0]?.count, 2);

  // A tag key checks only that tag.
  const tagged = createVerifier(parseBaselineDocument(DOC.replace(`key: ${REPO}`, `key: ${REPO}:1.3`)), { entryOptions });
  tagged.check(exec('/usr/local/bin/api', ['--port', '8080'], 'containerd-shim'));
  tagged.check(exec('/usr/local/bin/api', ['--port', '8080'], 'containerd-shim', { tag: '1.3' }));
  t.is(tagged.result().checked.exec, 1);
  t.deepEqual([...tagged.result().ignored.otherKeys], [[`${REPO}:1.2`, 1]]);
});

test('a finding is the agent\'s deviation with the severity, rule and why the collector\'s alert policy gives it', (t) => {
  const doc = parseBaselineDocument(DOC);
  const v = createVerifier(doc, { entryOptions });
  const events = [
    exec('/usr/bin/curl', ['-s', 'https://example.com/x'], 'sh'),
    exec('/bin/sh', ['-c', 'id'], 'nginx'),
    exec('/usr/bin/apt-get', ['install', 'nmap'], 'sh', { uid: 1000 }),
    connect('203.0.113.9', 443),
    connect('52.216.1.1', 80),
    connect('10.0.4.4', 5432),
  ];
  for (const ev of events) v.check(structuredClone(ev));
  const findings = v.result().findings;
  t.is(findings.length, events.length);

  // What the agent's engine says, and what the collector's alerting decides, for the same events.
  const engine = createBaselineEngine({ keyMode: 'repository' });
  engine.applyCluster({ key: REPO, state: 'enforcing', relearn: false, version: 1, windowStart: 0, learnUntil: 0, entryIds: doc.entries.map(entryId), removedIds: doc.removed.map(entryId) });
  const policy = createAlertPolicy({ config: AlertingConfigSchema.parse({}), sinks: [], publicUrl: '' }, { suppressed() {}, storm() {} });
  for (const ev of events) {
    const entry = entryOf(ev, entryOptions) as Entry;
    const id = entryId(entry);
    const obs = engine.observe(structuredClone(ev), REPO, entry, id);
    if (obs.verdict !== 'deviation') return t.fail(`${id} is not a deviation for the engine`);
    const decided = policy.decide({ id: 'x', key: REPO, baselineVersion: 1, entry, reason: obs.reason, explanation: obs.explanation, nearest: obs.nearest, event: ev }, () => baselineFactsOf(doc.entries));
    const f = findings.find((x) => x.entryId === id);
    t.like(f, { reason: obs.reason, explanation: obs.explanation, nearest: obs.nearest, severity: decided.severity, ruleId: decided.ruleId, ruleReason: decided.ruleReason }, id);
  }
  t.deepEqual(findings.map((f) => `${f.severity} ${f.ruleId}`), [
    // Most severe first, then by entry id.
    'critical shell-from-service',
    'high public-egress',
    // 52.216.1.1:80: the block is learned for 443 only, so its address is a new public peer on 80.
    'high public-egress',
    'high package-manager',
    'high network-tool',
    'low new-cluster-peer',
  ]);
  t.true(findings.find((f) => f.ruleId === 'network-tool')?.removed, 'curl is under removed: security took it out');
  t.false(findings.find((f) => f.ruleId === 'package-manager')?.removed);
});
