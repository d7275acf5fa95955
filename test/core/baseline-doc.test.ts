import test from 'ava';
import { parse, parseAllDocuments } from 'yaml';
import {
  BaselineDocError,
  DOC_LIMITS,
  baselineName,
  falcoString,
  parseBaselineDocument,
  parseBaselineDocuments,
  parseSelector,
  toBaselineDocument,
  toFalcoRules,
  toNetworkPolicy,
  type BaselineView,
  type BaselineViewEntry,
  type EntryStatus,
} from '../../core/baseline-doc.js';
import { describeEntry, entryId, type Entry } from '../../core/entry.js';
// The model's validator (generated from the Kubernetes OpenAPI). test/helpers/k8s-schema.ts adds a
// TypeScript excess-property check that costs seconds; here the exact deep-equal of the spec below
// rejects any field the generator should not write.
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';

function ve(entry: Entry, status: EntryStatus = 'learned', count = 5): BaselineViewEntry {
  return { ...entry, id: entryId(entry), summary: describeEntry(entry), status, firstSeen: '2026-11-23T08:00:00.000Z', lastSeen: '2026-11-23T09:00:00.000Z', count, nodes: ['node-1'], examples: ['x'] };
}

const proc = (exe: string, parent = 'containerd-shim', args = '', user: 'root' | 'system' | 'user' | 'unknown' = 'root'): Entry => ({ type: 'process', exe, parent, user, args });
const net = (direction: 'egress' | 'ingress' | 'listen', peer: string, port: number, protocol: 'tcp' | 'udp' = 'tcp'): Entry => ({ type: 'network', direction, protocol, peer, port });

function view(entries: BaselineViewEntry[], over: Partial<BaselineView> = {}): BaselineView {
  return {
    key: 'docker.io/library/nginx',
    state: 'locked',
    version: 7,
    windowStart: '2026-11-23T08:00:00.000Z',
    learnUntil: '2026-11-23T09:00:00.000Z',
    enforcingSince: '2026-11-23T09:10:00.000Z',
    images: [{ repository: 'docker.io/library/nginx', tag: '1.25.3', digest: '' }],
    nodes: ['node-1'],
    partial: false,
    entries,
    ...over,
  };
}

const NGINX = [
  ve(proc('/usr/sbin/nginx', 'containerd-shim', '-g daemon off;')),
  ve(proc('/docker-entrypoint.sh', 'containerd-shim', '', 'root'), 'approved'),
  ve(net('egress', 'cluster', 5432)),
  ve(net('egress', '203.0.113.50', 443), 'added'),
  ve(net('listen', 'any', 80)),
  ve(proc('/bin/sh', 'nginx', '-c id'), 'removed'),
  ve(net('egress', '198.51.100.7', 4444), 'removed'),
];

test('a Baseline document holds the desired state only, sorted by entry id, with removed entries kept', (t) => {
  const text = toBaselineDocument(view(NGINX));
  t.is(
    text,
    `# Driftwatch baseline of "docker.io/library/nginx": the desired state, for Git.
# Apply with \`driftwatch baselines import FILE_OR_DIR\`; entries under \`removed\` stay removed (they alert).
apiVersion: driftwatch.dev/v1alpha1
kind: Baseline
metadata:
  name: docker-io-library-nginx-${baselineName('docker.io/library/nginx').slice(-8)}
  annotations:
    driftwatch.dev/key: docker.io/library/nginx
spec:
  key: docker.io/library/nginx
  state: locked
  processes:
    - exe: /docker-entrypoint.sh
      parent: containerd-shim
      user: root
      args: ""
    - exe: /usr/sbin/nginx
      parent: containerd-shim
      user: root
      args: "-g daemon off;"
  network:
    - direction: egress
      protocol: tcp
      peer: "203.0.113.50"
      port: 443
    - direction: egress
      protocol: tcp
      peer: cluster
      port: 5432
    - direction: listen
      protocol: tcp
      peer: any
      port: 80
  removed:
    processes:
      - exe: /bin/sh
        parent: nginx
        user: root
        args: "-c id"
    network:
      - direction: egress
        protocol: tcp
        peer: "198.51.100.7"
        port: 4444
`,
  );
  // The same desired state gives the same bytes: order of entries and statistics do not matter.
  const churned = [...NGINX].reverse().map((e) => ({ ...e, count: e.count * 1000, lastSeen: '2027-01-01T00:00:00.000Z', nodes: ['a', 'b'] }));
  t.is(toBaselineDocument(view(churned, { version: 99, enforcingSince: null })), text);
  // relearn is an action: the document asks for learning.
  t.regex(toBaselineDocument(view(NGINX, { state: 'relearn' })), /\n {2}state: learning\n/);
  t.regex(toBaselineDocument(view(NGINX, { partial: true })), /^# partial: containers were already running/m);
});

test('round trip: parse(toBaselineDocument(view)) gives the same entry ids and state, also for hostile strings', (t) => {
  const hostile = [
    'yes', 'on', 'No', '~', 'null', '1:20', '0o17', '.inf', '-', '- x', '? x', 'a: b', 'a #b', '#c', '*alias', '&anchor', '!tag', '%YAML', '@x', '`x',
    ' lead', 'trail ', 'line\nbreak', 'cr\rlf', '\ttab', 'q"uote', "s'ingle", 'back\\slash', 'pipe|id', 'bar\\|esc', 'nel\u0085x', 'ls\u2028ps\u2029',
    '\ufeffbom', 'bidi\u202eevil', 'esc\u001b[31mred', 'del\u007f', 'c1\u009b', 'é ü 漢字', '😀 emoji', '{a: 1}', '[1, 2]', '---', '...', '"', '',
  ];
  const entries: BaselineViewEntry[] = [];
  for (const s of hostile) {
    entries.push(ve(proc(`/opt/${s}`, s, s, 'user')));
    if (s !== '' && !/\s|[\u0000-\u001f\u007f-\u009f]/.test(s)) entries.push(ve(net('egress', s, 8080), 'removed'));
  }
  entries.push(ve(net('ingress', 'cluster', 0, 'udp')), ve(net('egress', '2001:db8::1', 65535)));
  const v = view(entries, { key: 'registry.example.com:5000/team/app:v1.2', state: 'enforcing' });
  const doc = parseBaselineDocument(toBaselineDocument(v));
  t.is(doc.key, v.key);
  t.is(doc.state, 'enforcing');
  const ids = (list: Entry[]) => list.map(entryId);
  t.deepEqual(ids(doc.entries), v.entries.filter((e) => e.status !== 'removed').map((e) => e.id).sort());
  t.deepEqual(ids(doc.removed), v.entries.filter((e) => e.status === 'removed').map((e) => e.id).sort());
  // A YAML 1.1 reader must not see booleans or line breaks: every such value is quoted and escaped.
  const text = toBaselineDocument(v);
  t.false(/[\u0085\u2028\u2029\ufeff\u202e\u001b\u007f\u009b]/.test(text));
  t.regex(text, /parent: "yes"\n/);
  t.regex(text, /parent: "on"\n/);

  // Random strings over the whole of Unicode (surrogate pairs included) survive too.
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed / 2 ** 31);
  const pick = () => {
    const r = rnd();
    if (r < 0.3) return String.fromCharCode(Math.floor(rnd() * 0x80));
    if (r < 0.5) return String.fromCharCode(0x80 + Math.floor(rnd() * 0x780));
    if (r < 0.8) return String.fromCharCode(0x800 + Math.floor(rnd() * 0xd000));
    return String.fromCodePoint(0x10000 + Math.floor(rnd() * 0xfffff));
  };
  const random: BaselineViewEntry[] = [];
  for (let i = 0; i < 300; i++) {
    const points = Array.from({ length: 1 + Math.floor(rnd() * 12) }, pick);
    const s = points.join('').replace(/\0/g, '0');
    random.push(ve(proc(`/r${i}/${s}`, points.slice(0, 6).join('').replace(/\0/g, '0'), s)));
  }
  const again = parseBaselineDocument(toBaselineDocument(view(random)));
  t.deepEqual(ids(again.entries), random.map((e) => e.id).sort());
});

test('the status block carries the statistics, is optional and ignored on import', (t) => {
  const text = toBaselineDocument(view(NGINX), { status: true });
  const js = parse(text) as { status: { version: number; entries: { id: string; count: number }[] } };
  t.is(js.status.version, 7);
  t.is(js.status.entries.length, NGINX.length);
  t.true(js.status.entries.every((e) => e.count === 5));
  t.deepEqual(parseBaselineDocument(text), parseBaselineDocument(toBaselineDocument(view(NGINX))));
});

test('a view with a malformed entry from the wire is refused, naming the entry', (t) => {
  const bad = [...NGINX, { ...ve(proc('/x')), user: 'admin' } as unknown as BaselineViewEntry];
  const err = t.throws(() => toBaselineDocument(view(bad)), { instanceOf: BaselineDocError });
  t.is(err.path, `entries.${NGINX.length}.user`);
  t.throws(() => toBaselineDocument(view(NGINX, { key: 'bad key\n' })), { message: /^key: / });
  t.throws(() => toBaselineDocument(view([ve(proc('a'.repeat(DOC_LIMITS.exe + 1)))])), { message: /^entries\.0\.exe: / });
});

const GOOD = toBaselineDocument(view(NGINX));

test('parsing is strict and every error names the field', (t) => {
  const cases: [string, string, RegExp][] = [
    ['unknown field in an entry', GOOD.replace('      args: "-g daemon off;"', '      args: "-g daemon off;"\n      color: red'), /^spec\.processes\.1: Unrecognized key.*color/],
    ['a user class that does not exist', GOOD.replace('    - exe: /usr/sbin/nginx\n      parent: containerd-shim\n      user: root', '    - exe: /usr/sbin/nginx\n      parent: containerd-shim\n      user: admin'), /^spec\.processes\.1\.user: /],
    ['a port out of range', GOOD.replace('port: 5432', 'port: 70000'), /^spec\.network\.1\.port: /],
    ['a port as text', GOOD.replace('port: 5432', 'port: "5432"'), /^spec\.network\.1\.port: /],
    ['a state that does not exist', GOOD.replace('state: locked', 'state: frozen'), /^spec\.state: /],
    ['another apiVersion', GOOD.replace('driftwatch.dev/v1alpha1', 'driftwatch.dev/v2'), /^apiVersion: /],
    ['another kind', GOOD.replace('kind: Baseline', 'kind: Policy'), /^kind: /],
    ['an unknown top-level field', `${GOOD}extra: 1\n`, /Unrecognized key.*extra/],
    ['a peer with a space', GOOD.replace('peer: cluster', 'peer: "clu ster"'), /^spec\.network\.1\.peer: /],
    ['a NUL in an executable', GOOD.replace('exe: /bin/sh', 'exe: "/bin/\\0sh"'), /^spec\.removed\.processes\.0\.exe: must not contain NUL/],
    ['an executable longer than PATH_MAX', GOOD.replace('exe: /bin/sh', `exe: /${'a'.repeat(DOC_LIMITS.exe)}`), /^spec\.removed\.processes\.0\.exe: /],
    ['a name that is not DNS-1123', GOOD.replace(/name: .*/, 'name: Not_Valid'), /^metadata\.name: /],
    ['a key annotation that disagrees', GOOD.replace('driftwatch.dev/key: docker.io/library/nginx', 'driftwatch.dev/key: docker.io/library/redis'), /^metadata\.annotations\.driftwatch\.dev\/key: is "docker\.io\/library\/redis"/],
    ['the same entry twice', GOOD.replace('  removed:\n    processes:\n      - exe: /bin/sh\n        parent: nginx', '  removed:\n    processes:\n      - exe: /usr/sbin/nginx\n        parent: containerd-shim\n        user: root\n        args: "-g daemon off;"\n      - exe: /bin/sh\n        parent: nginx'), /^spec\.removed\.processes\.0: the same entry as spec\.processes\.1/],
    ['a repeated key', GOOD.replace('  state: locked\n', '  state: locked\n  state: learning\n'), /Map keys must be unique/],
    ['an alias', GOOD.replace('  processes:\n    - exe: /docker-entrypoint.sh', '  processes:\n    - &a\n      exe: /docker-entrypoint.sh').replace('    - exe: /usr/sbin/nginx\n      parent: containerd-shim\n      user: root\n      args: "-g daemon off;"\n', '    - *a\n'), /Alias/],
    ['a custom tag', GOOD.replace('state: locked', 'state: !lock locked'), /tag/i],
    ['not YAML at all', '{{{', /^line \d+|Flow/],
  ];
  for (const [what, text, re] of cases) {
    const err = t.throws(() => parseBaselineDocument(text), { instanceOf: BaselineDocError }, what);
    t.regex(err?.message ?? '', re, what);
  }
});

test('a document is bounded: more than 10,000 entries are refused before they are validated', (t) => {
  // Items that are not even entries: the count is checked first, so the bound is what answers.
  const items = (n: number, pad: string) => Array.from({ length: n }, () => `${pad}- x`).join('\n');
  const text = `apiVersion: driftwatch.dev/v1alpha1\nkind: Baseline\nmetadata: {name: big}\nspec:\n  key: big\n  state: locked\n  processes:\n${items(6000, '    ')}\n  removed:\n    network:\n${items(4001, '      ')}\n`;
  const err = t.throws(() => parseBaselineDocument(text), { instanceOf: BaselineDocError });
  t.is(err.code, 'too_large');
  t.is(err.message, 'spec: 10001 entries; at most 10000');
  t.throws(() => parseBaselineDocuments('a'.repeat(DOC_LIMITS.textChars + 1)), { message: /at most/ });
});

test('a stream or folder of documents: empty documents skipped, errors name the document', (t) => {
  const redis = toBaselineDocument(view([ve(proc('/usr/local/bin/redis-server'))], { key: 'docker.io/library/redis', state: 'enforcing' }));
  const docs = parseBaselineDocuments(`${GOOD}---\n---\n${redis}`);
  t.deepEqual(docs.map((d) => [d.key, d.state, d.entries.length, d.removed.length]), [
    ['docker.io/library/nginx', 'locked', 5, 2],
    ['docker.io/library/redis', 'enforcing', 1, 0],
  ]);
  const err = t.throws(() => parseBaselineDocuments(`${GOOD}---\n${redis.replace('user: root', 'user: nobody')}`), { instanceOf: BaselineDocError });
  t.is(err.document, 1);
  t.regex(err.message, /^document 2: spec\.processes\.0\.user: /);
  t.throws(() => parseBaselineDocument(`${GOOD}---\n${redis}`), { message: /expected one Baseline document, found 2/ });
  t.deepEqual(parseBaselineDocuments(''), []);
});

test('names are stable DNS-1123 labels and distinct for keys that slug alike', (t) => {
  const names = ['docker.io/library/nginx', 'a/b', 'a-b', '@host', 'X'.repeat(500), 'registry:5000/App@sha256:abc'].map(baselineName);
  for (const n of names) t.regex(n, /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
  t.not(names[1], names[2]);
  t.is(baselineName('docker.io/library/nginx'), names[0] as string);
  t.regex(names[3] as string, /^host-[0-9a-f]{8}$/);
});

test('NetworkPolicy: egress and ingress from the network baseline, valid against the Kubernetes schema', (t) => {
  const entries = [
    ...NGINX,
    ve(net('egress', 'cluster', 53, 'udp')),
    ve(net('egress', '203.0.113.50', 8443)),
    ve(net('egress', '2001:db8::7', 443)),
    ve(net('egress', 'api.stripe.com', 443)),
    ve(net('egress', 'loopback', 9000)),
    ve(net('egress', 'link-local', 80)),
    ve(net('ingress', 'cluster', 8080)),
    ve(net('listen', 'any', 8080)),
    ve(net('listen', 'loopback', 9901)),
    ve(net('ingress', '198.51.100.9', 443)),
  ];
  const text = toNetworkPolicy(view(entries), { podSelector: { app: 'web' }, namespace: 'shop' });
  const policy = parse(text) as { metadata: Record<string, unknown>; spec: { egress: unknown[]; ingress: unknown[] } };
  t.notThrows(() => new NetworkPolicy(policy as never).validate());
  // The validator is able to fail: a port that is not a port, policy types that does not exist.
  t.throws(() => new NetworkPolicy({ ...policy, spec: { ...policy.spec, egress: [{ ports: [{ protocol: 'TCP', port: true }] }] } } as never).validate());
  t.throws(() => new NetworkPolicy({ ...policy, spec: { ...policy.spec, policyTypes: 'Ingress' } } as never).validate());
  t.is(policy.metadata.name, `driftwatch-${baselineName('docker.io/library/nginx')}`);
  t.is(policy.metadata.namespace, 'shop');
  t.deepEqual((policy.spec as Record<string, unknown>).podSelector, { matchLabels: { app: 'web' } });
  t.deepEqual((policy.spec as Record<string, unknown>).policyTypes, ['Ingress', 'Egress']);
  t.deepEqual(policy.spec.egress, [
    { to: [{ ipBlock: { cidr: '169.254.0.0/16' } }, { ipBlock: { cidr: 'fe80::/10' } }], ports: [{ protocol: 'TCP', port: 80 }] },
    { to: [{ ipBlock: { cidr: '2001:db8::7/128' } }], ports: [{ protocol: 'TCP', port: 443 }] },
    { to: [{ ipBlock: { cidr: '203.0.113.50/32' } }], ports: [{ protocol: 'TCP', port: 443 }, { protocol: 'TCP', port: 8443 }] },
    { to: [{ namespaceSelector: {} }], ports: [{ protocol: 'TCP', port: 5432 }, { protocol: 'UDP', port: 53 }] },
    { to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }], ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] },
  ]);
  // The removed egress to 198.51.100.7:4444 is not allowed; the loopback listener needs no rule;
  // port 80 has no client seen, so it is open; 8080 only from the cluster, 443 only from its client.
  t.false(text.includes('198.51.100.7'));
  t.deepEqual(policy.spec.ingress, [
    { from: [{ ipBlock: { cidr: '198.51.100.9/32' } }], ports: [{ protocol: 'TCP', port: 443 }] },
    { from: [{ namespaceSelector: {} }], ports: [{ protocol: 'TCP', port: 8080 }] },
    { ports: [{ protocol: 'TCP', port: 80 }] },
  ]);
  t.regex((policy.metadata.annotations as Record<string, string>)['driftwatch.dev/not-expressed'] ?? '', /^egress tcp api\.stripe\.com:443 \(a DNS name: NetworkPolicy selects by address and labels only\)$/);
  t.regex(text, /^# Not expressible .*1 entries; DNS names need ipBlocks/m);

  // No egress learned: all egress denied, and no DNS rule either.
  const quiet = parse(toNetworkPolicy(view([ve(net('listen', 'any', 80))]), { podSelector: { app: 'web', tier: 'front' } })) as { spec: { egress: unknown[] }; metadata: Record<string, unknown> };
  t.deepEqual(quiet.spec.egress, []);
  t.false('namespace' in quiet.metadata);
  t.throws(() => toNetworkPolicy(view(NGINX), { podSelector: {} }), { message: /podSelector: give the labels/ });
  t.throws(() => toNetworkPolicy(view(NGINX), { podSelector: { 'bad label!': 'x' } }), { instanceOf: BaselineDocError });
  t.deepEqual(parseSelector('app=web, app.kubernetes.io/part-of=shop'), { app: 'web', 'app.kubernetes.io/part-of': 'shop' });
  t.throws(() => parseSelector('app'), { message: /not label=value/ });
  t.throws(() => parseSelector('app=web,app=api'), { message: /given twice/ });
});

// Falco's condition lexer (libsinsp filter/parser.cpp lex_quoted_str): a quoted string ends at
// the first quote not preceded by a backslash. Returns the strings and the text outside them.
function falcoLex(condition: string): { strings: string[]; outside: string } {
  const strings: string[] = [];
  let outside = '';
  for (let i = 0; i < condition.length; i++) {
    const c = condition[i] as string;
    if (c !== '"' && c !== "'") {
      outside += c;
      continue;
    }
    let j = i + 1;
    let prev = '\\';
    let value = '';
    while (j < condition.length && !(condition[j] === c && prev !== '\\')) {
      prev = condition[j] as string;
      value += prev;
      j++;
    }
    strings.push(value);
    outside += '""';
    i = j;
  }
  return { strings, outside };
}

// Falco pastes list items into conditions as text (rule_loader_compiler.cpp resolve_list).
function resolveLists(condition: string, lists: Map<string, string[]>): string {
  let out = condition;
  for (const [name, items] of lists) out = out.replace(new RegExp(`(?<=^|[\\s(),=])${name}(?=$|[\\s(),=])`, 'g'), items.join(', '));
  return out;
}

interface FalcoItem {
  rule?: string;
  desc?: string;
  condition?: string;
  output?: string;
  priority?: string;
  source?: string;
  tags?: string[];
  list?: string;
  items?: string[];
  macro?: string;
  required_engine_version?: string;
}

test('Falco rules: lists, macros and rules with the fields Falco requires; hostile values cannot break out', (t) => {
  const hostile = ['/x" or proc.name = "pwn', "/x' or proc.name = 'pwn", '/x\\', '/x\\" or proc.name = "pwn', '/usr/bin/a b', '/x,dwb_list', '/x)or(proc.name=pwn', '/x\nor proc.name = pwn'];
  const entries = [
    ...NGINX,
    ...hostile.map((exe) => ve(proc(exe))),
    ve(proc('/tmp/tmp.<rand>/run-<n>.sh')),
    ve(proc('/tmp/[evil]*<rand>')),
    ve(net('egress', 'api.stripe.com', 443)),
    ve(net('egress', 'evil")or(evt.type=connect', 443)),
    ve(net('egress', '2001:db8::7', 443, 'udp')),
    ve(net('egress', '10.0.0.0/8', 9000)),
  ];
  const text = toFalcoRules(view(entries));
  const items = parse(text) as FalcoItem[];
  t.true(Array.isArray(items));
  const rules = items.filter((i) => i.rule !== undefined);
  const lists = items.filter((i) => i.list !== undefined);
  const macros = items.filter((i) => i.macro !== undefined);
  t.is(rules.length, 2);
  for (const r of rules) {
    for (const f of ['rule', 'desc', 'condition', 'output', 'priority'] as const) t.is(typeof r[f], 'string', `${r.rule} ${f}`);
    t.is(r.priority, 'CRITICAL');
    t.true(r.tags?.includes('driftwatch'));
    t.regex(r.output ?? '', /%container\.id .*%k8s\.pod\.name/);
  }
  t.is(rules[0]?.rule, 'Driftwatch: unexpected process in docker.io/library/nginx');
  t.regex(rules[0]?.condition ?? '', /^dwb_\w+_spawned_process and dwb_\w+_container and not dwb_\w+_allowed_process$/);
  for (const l of lists) t.true(Array.isArray(l.items), l.list);
  for (const m of macros) t.is(typeof m.condition, 'string', m.macro);

  const byName = new Map(lists.map((l) => [l.list as string, l.items as string[]]));
  const exes = [...byName.entries()].find(([n]) => n.endsWith('_allowed_exes'))?.[1];
  // The removed /bin/sh is not allowed; the hostile ones are skipped, the safe ones kept.
  t.deepEqual(exes, ['"/docker-entrypoint.sh"', '"/usr/sbin/nginx"']);
  const repos = [...byName.entries()].find(([n]) => n.endsWith('_repositories'))?.[1];
  t.deepEqual(repos, ['"docker.io/library/nginx"', '"index.docker.io/library/nginx"', '"library/nginx"', '"nginx"']);

  // Every condition, with lists pasted in the way Falco does it, lexes into strings that are
  // exactly the values written, and nothing of the hostile input is left outside a string.
  const allowedStrings = new Set(['/docker-entrypoint.sh', '/usr/sbin/nginx', '/tmp/tmp.*/run-*.sh', 'docker.io/library/nginx', 'index.docker.io/library/nginx', 'library/nginx', 'nginx', '127.0.0.0/8', '::1', '203.0.113.50', '2001:db8::7', 'api.stripe.com', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7', '169.254.0.0/16', 'fe80::/10']);
  for (const item of [...rules, ...macros]) {
    const { strings, outside } = falcoLex(resolveLists(item.condition as string, byName));
    for (const s of strings) t.true(allowedStrings.has(s), `unexpected string ${JSON.stringify(s)} in ${item.rule ?? item.macro}`);
    t.false(/pwn|evil/.test(outside), item.rule ?? item.macro);
    t.regex(outside, /^[A-Za-z0-9_.\s()=,!<>:"-]*$/);
  }
  const allowedProcess = macros.find((m) => m.macro?.endsWith('_allowed_process'));
  t.regex(allowedProcess?.condition ?? '', /proc\.exepath glob "\/tmp\/tmp\.\*\/run-\*\.sh"/);
  const egress = macros.find((m) => m.macro?.endsWith('_allowed_egress'))?.condition ?? '';
  t.regex(egress, /\(fd\.l4proto = tcp and fd\.sport = 5432 and fd\.snet in \(dwb_\w+_cluster_ranges\)\)/);
  t.regex(egress, /\(fd\.l4proto = tcp and fd\.sport = 443 and fd\.sip = "203\.0\.113\.50"\)/);
  t.regex(egress, /\(fd\.l4proto = tcp and fd\.sport = 443 and fd\.sip\.name = "api\.stripe\.com"\)/);
  t.regex(egress, /\(fd\.l4proto = udp and fd\.sport = 443 and fd\.sip = "2001:db8::7"\)/);
  t.false(egress.includes('4444'), 'the removed peer is not allowed');
  // What was skipped is listed in comments, escaped so that it cannot end the comment line.
  const comments = text.split('\n').filter((l) => l.startsWith('#'));
  t.is(comments.filter((l) => l.includes('cannot be written safely')).length, hostile.length + 2);
  t.true(comments.some((l) => l.includes('\\nor proc.name = pwn')));
  t.is(parseAllDocuments(text).length, 1);

  // Enforcing (not locked) baselines warn; keys Falco cannot match are refused.
  t.true((parse(toFalcoRules(view(NGINX, { state: 'enforcing' }))) as FalcoItem[]).filter((i) => i.rule).every((r) => r.priority === 'WARNING'));
  t.throws(() => toFalcoRules(view(NGINX, { key: 'docker.io/x") or ("y' })), { instanceOf: BaselineDocError, message: /key: / });
  t.throws(() => toFalcoRules(view(NGINX, { key: 'docker.io/x:%proc.name' })), { message: /tag cannot be written/ });
  const tagged = parse(toFalcoRules(view(NGINX, { key: 'docker.io/library/nginx:1.25' }))) as FalcoItem[];
  t.regex(tagged.find((i) => i.macro?.endsWith('_container'))?.condition ?? '', /container\.image\.tag = "1\.25"/);
  const host = parse(toFalcoRules(view(NGINX, { key: '@host' }))) as FalcoItem[];
  t.is(host.find((i) => i.macro?.endsWith('_container'))?.condition, '(container.id = host)');
});

test('falcoString writes only values that need no escape', (t) => {
  t.is(falcoString('/usr/bin/python3.11'), '"/usr/bin/python3.11"');
  for (const bad of ['', 'a"b', "a'b", 'a\\', 'a b', 'a\tb', 'a(b', 'a,b', 'a=b', 'a\nb', 'x'.repeat(4097), 'é']) t.is(falcoString(bad), null, JSON.stringify(bad));
});

test('NetworkPolicy and Falco rules show generalized peers: the public class as every global address, blocks as blocks, both named', (t) => {
  const entries = [...NGINX, ve(net('egress', '@public', 443)), ve(net('egress', '52.216.0.0/16', 8443)), ve(net('egress', '52.216.4.7', 8443))];
  const text = toNetworkPolicy(view(entries), { podSelector: { app: 'web' } });
  const policy = parse(text) as { metadata: { annotations: Record<string, string> }; spec: { egress: { to?: unknown[]; ports: unknown[] }[] } };
  t.notThrows(() => new NetworkPolicy(policy as never).validate());
  const publicRule = policy.spec.egress.find((r) => JSON.stringify(r.to).includes('0.0.0.0/0'))!;
  t.deepEqual(publicRule.ports, [{ protocol: 'TCP', port: 443 }]);
  t.deepEqual(publicRule.to, [
    { ipBlock: { cidr: '0.0.0.0/0', except: ['0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.0.0.0/24', '192.168.0.0/16', '198.18.0.0/15', '224.0.0.0/4', '240.0.0.0/4'] } },
    { ipBlock: { cidr: '::/0', except: ['::/127', '64:ff9b:1::/48', '100::/64', 'fc00::/7', 'fe80::/10', 'ff00::/8'] } },
  ]);
  t.true(policy.spec.egress.some((r) => JSON.stringify(r.to) === JSON.stringify([{ ipBlock: { cidr: '52.216.0.0/16' } }])));
  t.is(policy.metadata.annotations['driftwatch.dev/generalized'], 'egress tcp 52.216.0.0/16:8443; egress tcp @public:443 (any public address)');
  t.regex(text, /^# Generalized from many addresses .*2 entries; @public is every globally routable address/m);
  const rules = toFalcoRules(view(entries), {});
  t.regex(rules, /fd\.sport = 443 and not \(fd\.snet = \\"0\.0\.0\.0\/8\\" or .*fd\.snet = \\"10\.0\.0\.0\/8\\"/);
  t.regex(rules, /fd\.sport = 8443 and fd\.snet = \\"52\.216\.0\.0\/16\\"/);
});

test('drift allow list: exported as spec.driftAllowed (sorted), parsed back the same; absent when empty; a hostile pattern is refused', (t) => {
  const v = view(NGINX, { driftAllowed: ['/var/cache/jit/*', 'plugin-*', '/opt/app/plugins/*'] });
  const text = toBaselineDocument(v);
  t.regex(text, /\n {2}driftAllowed:\n {4}- "\/opt\/app\/plugins\/\*"\n {4}- "\/var\/cache\/jit\/\*"\n {4}- "plugin-\*"\n/);
  t.deepEqual(parseBaselineDocument(text).driftAllowed, ['/opt/app/plugins/*', '/var/cache/jit/*', 'plugin-*']);
  t.false(toBaselineDocument(view(NGINX)).includes('driftAllowed'));
  t.deepEqual(parseBaselineDocument(toBaselineDocument(view(NGINX))).driftAllowed, []);
  for (const bad of ['*', '/*', 'relative/path', 'line\nbreak', 'x'.repeat(300)]) {
    t.throws(() => parseBaselineDocument(text.replace('- "plugin-*"', `- ${JSON.stringify(bad)}`)), { instanceOf: BaselineDocError }, JSON.stringify(bad));
  }
});
