import test from 'ava';
import { parse as parseYaml } from 'yaml';
import type { DeviationReason } from '../../core/baseline.js';
import type { Entry, NetworkEntry, ProcessEntry } from '../../core/entry.js';
import type { EventKind } from '../../core/event.js';
import {
  DEFAULT_SEVERITY_RULES,
  SeverityConfigError,
  UNMATCHED,
  baselineFactsOf,
  classify,
  globMatch,
  parseSeverityRules,
  peerClass,
  type BaselineFacts,
  type Severity,
  type SeverityInput,
} from '../../core/severity.js';

const NO_SHELL: BaselineFacts = { hasShell: false, hasRoot: true };
const WITH_SHELL: BaselineFacts = { hasShell: true, hasRoot: true };
const NEVER_ROOT: BaselineFacts = { hasShell: true, hasRoot: false };

function proc(exe: string, user: ProcessEntry['user'] = 'root', reason: DeviationReason = 'new-executable', baseline = WITH_SHELL, rawExe?: string): SeverityInput {
  return { kind: 'exec', reason, entry: { type: 'process', exe, parent: 'nginx', user, args: '' }, exe: rawExe, baseline };
}

function net(direction: NetworkEntry['direction'], peer: string, port: number, reason: DeviationReason = 'new-peer'): SeverityInput {
  const kind: EventKind = direction === 'egress' ? 'connect' : direction === 'ingress' ? 'accept' : 'listen';
  return { kind, reason, entry: { type: 'network', direction, protocol: 'tcp', peer, port }, baseline: WITH_SHELL };
}

// The default table, case by case: [what, input, expected severity, expected rule].
const cases: [string, SeverityInput, Severity, string][] = [
  ['a shell where the baseline has none', proc('/bin/sh', 'root', 'new-executable', NO_SHELL), 'critical', 'shell-where-none'],
  ['bash where the baseline has none', proc('/usr/bin/bash', 'user', 'new-executable', NO_SHELL), 'critical', 'shell-where-none'],
  ['python3.11 where the baseline has none', proc('/usr/local/bin/python3.11', 'user', 'new-executable', NO_SHELL), 'critical', 'shell-where-none'],
  ['a shell where the baseline has one, under a new parent (nginx → sh)', proc('/usr/bin/dash', 'root', 'new-parent', WITH_SHELL), 'high', 'shell-new-parent'],
  ['a shell where the baseline has one, same parent, new arguments', proc('/usr/bin/dash', 'root', 'new-arguments', WITH_SHELL), 'medium', 'new-process'],
  ['apt-get', proc('/usr/bin/apt-get'), 'high', 'package-manager'],
  ['pip3.12', proc('/usr/local/bin/pip3.12'), 'high', 'package-manager'],
  ['apk', proc('/sbin/apk'), 'high', 'package-manager'],
  ['curl', proc('/usr/bin/curl'), 'high', 'network-tool'],
  ['wget', proc('/usr/bin/wget'), 'high', 'network-tool'],
  ['nc.openbsd', proc('/bin/nc.openbsd'), 'high', 'network-tool'],
  ['ncat', proc('/usr/bin/ncat'), 'high', 'network-tool'],
  ['nmap', proc('/usr/bin/nmap'), 'high', 'network-tool'],
  ['ssh', proc('/usr/bin/ssh'), 'high', 'network-tool'],
  ['scp', proc('/usr/bin/scp'), 'high', 'network-tool'],
  ['socat', proc('/usr/bin/socat'), 'high', 'network-tool'],
  ['curl where no shell is known: the shell rule does not take it', proc('/usr/bin/curl', 'root', 'new-executable', NO_SHELL), 'high', 'network-tool'],
  ['a binary in /tmp', proc('/tmp/<rand>'), 'high', 'writable-dir-binary'],
  ['a binary in /dev/shm', proc('/dev/shm/x'), 'high', 'writable-dir-binary'],
  ['a binary in /var/tmp', proc('/var/tmp/kworker'), 'high', 'writable-dir-binary'],
  ['/tmpfoo is not /tmp', proc('/tmpfoo/bin'), 'medium', 'new-process'],
  ['a deleted binary', proc('/usr/lib/x (deleted)'), 'high', 'deleted-binary'],
  ['a deleted binary seen only in the raw exe', proc('/usr/lib/x', 'root', 'new-executable', WITH_SHELL, '/usr/lib/x (deleted)'), 'high', 'deleted-binary'],
  ['a memfd binary', proc('memfd:payload'), 'high', 'deleted-binary'],
  ['a deleted curl is a network tool first', proc('/usr/bin/curl (deleted)'), 'high', 'network-tool'],
  ['a new listening port', net('listen', 'any', 4444, 'new-listen-port'), 'high', 'new-listen-port'],
  ['egress to a public address', net('egress', '203.0.113.50', 80), 'high', 'public-egress'],
  ['egress to a public IPv6 address', net('egress', '2001:db8::1', 443), 'high', 'public-egress'],
  ['egress to a resolved name', net('egress', 'evil.example.com', 443), 'high', 'public-egress'],
  ['egress to a known cluster peer on a new port', net('egress', 'cluster', 6379, 'new-port'), 'high', 'unknown-port-egress'],
  ['root where the baseline never ran as root', proc('/usr/local/bin/app', 'root', 'new-user', NEVER_ROOT), 'high', 'root-where-none'],
  ['root where the baseline did', proc('/usr/local/bin/app', 'root', 'new-user', WITH_SHELL), 'medium', 'new-process'],
  ['a non-root new process where the baseline never ran as root', proc('/usr/local/bin/app', 'user', 'new-executable', NEVER_ROOT), 'medium', 'new-process'],
  ['another new process', proc('/usr/bin/find', 'user'), 'medium', 'new-process'],
  ['a new in-cluster peer (egress)', net('egress', 'cluster', 5432), 'low', 'new-cluster-peer'],
  ['a new in-cluster peer (ingress)', net('ingress', 'cluster', 80), 'low', 'new-cluster-peer'],
  ['ingress from a public address', net('ingress', '198.51.100.7', 80), 'medium', 'other-network'],
  ['egress to loopback', net('egress', 'loopback', 9000), 'medium', 'other-network'],
];

for (const [what, input, severity, ruleId] of cases) {
  test(`default table: ${what} → ${severity} (${ruleId})`, (t) => {
    const got = classify(input);
    t.is(got.severity, severity);
    t.is(got.ruleId, ruleId);
    t.is(got.reason, DEFAULT_SEVERITY_RULES.find((r) => r.id === ruleId)!.reason);
  });
}

test('every default rule is reachable by some case above', (t) => {
  const hit = new Set(cases.map((c) => c[3]));
  t.deepEqual(DEFAULT_SEVERITY_RULES.map((r) => r.id).filter((id) => !hit.has(id)), []);
});

test('first match wins, and an empty table gives UNMATCHED', (t) => {
  const rules = [
    { id: 'a', severity: 'low' as const, reason: 'first', match: { kind: ['exec' as const] } },
    { id: 'b', severity: 'critical' as const, reason: 'second', match: { kind: ['exec' as const] } },
  ];
  t.deepEqual(classify(proc('/bin/x'), rules), { severity: 'low', ruleId: 'a', reason: 'first' });
  t.deepEqual(classify(proc('/bin/x'), []), UNMATCHED);
});

test('network conditions never match process entries and vice versa', (t) => {
  t.is(classify(proc('/bin/x'), [{ id: 'n', severity: 'low', reason: 'r', match: { peer: ['public'] } }]).ruleId, 'unmatched');
  t.is(classify(net('egress', '203.0.113.1', 1), [{ id: 'p', severity: 'low', reason: 'r', match: { user: ['root'] } }]).ruleId, 'unmatched');
  t.is(classify(net('egress', '203.0.113.1', 1), [{ id: 'p', severity: 'low', reason: 'r', match: { exe: ['*'] } }]).ruleId, 'unmatched');
});

test('baselineFactsOf reads shells and root from entries', (t) => {
  const p = (exe: string, user: ProcessEntry['user']): Entry => ({ type: 'process', exe, parent: 'x', user, args: '' });
  t.deepEqual(baselineFactsOf([p('/usr/sbin/nginx', 'root'), { type: 'network', direction: 'listen', protocol: 'tcp', peer: 'any', port: 80 }]), { hasShell: false, hasRoot: true });
  t.deepEqual(baselineFactsOf([p('/usr/sbin/nginx', 'system'), p('/bin/sh', 'system')]), { hasShell: true, hasRoot: false });
  t.deepEqual(baselineFactsOf([p('/usr/bin/python3.12', 'user')]), { hasShell: true, hasRoot: false });
  t.deepEqual(baselineFactsOf([]), { hasShell: false, hasRoot: false });
});

test('peer classes', (t) => {
  t.is(peerClass('cluster'), 'cluster');
  t.is(peerClass('loopback'), 'loopback');
  t.is(peerClass('invalid'), 'unknown');
  t.is(peerClass(''), 'unknown');
  t.is(peerClass('8.8.8.8'), 'public');
  t.is(peerClass('api.github.com'), 'public');
  t.is(peerClass('127.0.0.1'), 'loopback');
});

test('globs: *, ?, classes, and no blow-up on hostile input', (t) => {
  t.true(globMatch('python3*', 'python3.11'));
  t.true(globMatch('python3*', 'python3'));
  t.false(globMatch('python3*', 'python'));
  t.true(globMatch('nc.*', 'nc.openbsd'));
  t.false(globMatch('nc.*', 'nc'));
  t.true(globMatch('ruby[0-9]*', 'ruby3.2'));
  t.false(globMatch('ruby[0-9]*', 'rubyx'));
  t.true(globMatch('[!a]b', 'xb'));
  t.false(globMatch('[!a]b', 'ab'));
  t.true(globMatch('a?c', 'abc'));
  t.true(globMatch('[unterminated', '[unterminated'));
  t.true(globMatch('/opt/*/bin/*', '/opt/app/bin/tool'));
  const start = performance.now();
  t.false(globMatch('*a*a*a*a*a*a*a*a*b', 'a'.repeat(4000)));
  t.true(performance.now() - start < 500);
});

test('a user table from YAML goes before the defaults, and can replace a default rule by id', (t) => {
  const rules = parseSeverityRules(
    parseYaml(`
rules:
  - id: crypto-miner
    severity: critical
    reason: a known crypto miner ran
    match: { kind: [exec], exe: [xmrig, "*/minerd"] }
  - id: new-cluster-peer
    severity: medium
    reason: cluster peers matter here
    match: { peer: [cluster] }
`),
  );
  t.is(rules[0]!.id, 'crypto-miner');
  t.is(classify(proc('/opt/xmrig')).ruleId, 'new-process');
  t.is(classify(proc('/opt/xmrig'), rules).severity, 'critical');
  t.is(classify(proc('/usr/local/bin/minerd'), rules).ruleId, 'crypto-miner');
  t.is(classify(net('egress', 'cluster', 5432), rules).severity, 'medium');
  t.is(rules.filter((r) => r.id === 'new-cluster-peer').length, 1);
  t.true(Object.isFrozen(rules) && Object.isFrozen(rules[0]!.match));
  t.is(parseSeverityRules({ rules: [], defaults: false }).length, 0);
  t.is(parseSeverityRules(undefined).length, DEFAULT_SEVERITY_RULES.length);
});

const badTables: [string, unknown, string][] = [
  ['unknown severity', { rules: [{ id: 'x', severity: 'urgent', reason: 'r' }] }, 'rules.0.severity'],
  ['bad id', { rules: [{ id: 'Bad Id', severity: 'low', reason: 'r' }] }, 'rules.0.id'],
  ['empty reason', { rules: [{ id: 'x', severity: 'low', reason: '  ' }] }, 'rules.0.reason'],
  ['unknown match key', { rules: [{ id: 'x', severity: 'low', reason: 'r', match: { image: ['nginx'] } }] }, 'rules.0.match.image'],
  ['bad kind', { rules: [{ id: 'x', severity: 'low', reason: 'r', match: { kind: ['dns'] } }] }, 'rules.0.match.kind.0'],
  ['bad peer class', { rules: [{ id: 'x', severity: 'low', reason: 'r', match: { peer: ['internet'] } }] }, 'rules.0.match.peer.0'],
  ['relative path prefix', { rules: [{ id: 'x', severity: 'low', reason: 'r', match: { pathPrefix: ['tmp/'] } }] }, 'rules.0.match.pathPrefix.0'],
  ['empty exe list', { rules: [{ id: 'x', severity: 'low', reason: 'r', match: { exe: [] } }] }, 'rules.0.match.exe'],
  ['overlong glob', { rules: [{ id: 'x', severity: 'low', reason: 'r', match: { exe: ['a'.repeat(300)] } }] }, 'rules.0.match.exe.0'],
  ['duplicate id', { rules: [{ id: 'x', severity: 'low', reason: 'r' }, { id: 'x', severity: 'high', reason: 'r' }] }, 'rules.1.id'],
  ['unknown top-level key', { rule: [] }, 'rule'],
];

for (const [what, doc, field] of badTables) {
  test(`a bad user table names the field: ${what}`, (t) => {
    const err = t.throws(() => parseSeverityRules(doc), { instanceOf: SeverityConfigError });
    t.is(err?.field, field);
    t.is(err?.code, 'invalid_severity_rules');
    t.true(err!.message.startsWith(`${field}: `), err!.message);
  });
}

test('a bad severity names the allowed values', (t) => {
  const err = t.throws(() => parseSeverityRules({ rules: [{ id: 'x', severity: 'urgent', reason: 'r' }] }));
  t.regex(err!.message, /critical, high, medium, low/);
});
