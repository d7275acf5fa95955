import test from 'ava';
import { parse as parseYaml } from 'yaml';
import { baselineKey, createBaselineEngine } from '../../core/baseline.js';
import { parseBaselineDocument, toBaselineDocument, toFalcoRules, type BaselineView, type BaselineViewEntry } from '../../core/baseline-doc.js';
import { describeEntry, entryFromId, entryId, entryOf, exampleOf, programLabel, programName, type Entry, type ProcessEntry } from '../../core/entry.js';
import type { ActivityEvent } from '../../core/event.js';
import { parseCidr } from '../../core/ip.js';
import { appletOf } from '../../core/normalize.js';

// Multi-call binaries: busybox and toybox applets are different programs. Contract with the sources:
// process.exe is the resolved executable, process.name the name it ran as (comm / basename of argv[0]).

const options = { clusterRanges: ['10.0.0.0/8'].map(parseCidr) };
const T0 = Date.UTC(2026, 10, 23, 8, 0, 0);

function exec(exe: string, name: string, args: string[], minute = 0): ActivityEvent {
  return {
    time: T0 + minute * 60_000,
    node: 'node-1',
    source: 'test',
    container: { id: 'c1', name: 'web', image: { repository: 'docker.io/library/nginx', tag: '1.27-alpine', digest: '' } },
    pod: null,
    kind: 'exec',
    process: { pid: 7, exe, name, args, parentExe: '/bin/busybox', parentName: 'sh', uid: 0, user: 'root' },
    network: null,
  };
}

const proc = (e: Entry): ProcessEntry => {
  if (e.type !== 'process') throw new Error('not a process entry');
  return e;
};

// [what, exe, name, args, expected applet (undefined: none), expected argument pattern]
const forms: [string, string, string, string[], string | undefined, string][] = [
  ['through its symlink (/usr/bin/wget → /bin/busybox): the name is the applet', '/bin/busybox', 'wget', ['-q', '-O-', 'http://203.0.113.9/x'], 'wget', '-q -O- http://<ip>/x'],
  ['under its own name: the first argument is the applet, the rest its arguments', '/bin/busybox', 'busybox', ['wget', '-q', 'http://203.0.113.9/x'], 'wget', '-q http://<ip>/x'],
  ['as `busybox /bin/sh` (a path as the applet, as busybox reads it)', '/bin/busybox', 'busybox', ['/bin/sh', '-c', 'id'], 'sh', '-c id'],
  ['the shell through /bin/sh', '/bin/busybox', 'sh', ['/docker-entrypoint.sh'], 'sh', '/docker-entrypoint.sh'],
  ['a source without a name: the first argument', '/bin/busybox', '', ['nc', '-l', '-p', '4444'], 'nc', '-l -p <num>'],
  ['toybox', '/system/bin/toybox', 'nc', ['-l'], 'nc', '-l'],
  ['busybox.static', '/bin/busybox.static', 'busybox.static', ['ash'], 'ash', ''],
  ['a deleted busybox', '/bin/busybox (deleted)', 'wget', [], 'wget', ''],
  ['an applet name past 15 characters is cut as comm is', '/bin/busybox', 'busybox', ['start-stop-daemon', '--start'], 'start-stop-daem', '--start'],
  ['`busybox --list` names no applet', '/bin/busybox', 'busybox', ['--list'], undefined, '--list'],
  ['`busybox` alone names no applet', '/bin/busybox', 'busybox', [], undefined, ''],
  ['a source that reports the symlink: no applet, the path names the program', '/usr/bin/wget', 'wget', ['-q'], undefined, '-q'],
  ['not a multi-call binary, whatever its name', '/usr/bin/python3.12', 'gunicorn', ['app:app'], undefined, 'app:app'],
];

for (const [what, exe, name, args, applet, pattern] of forms) {
  test(`entryOf: ${what}`, (t) => {
    const e = proc(entryOf(exec(exe, name, args), options)!);
    t.is(e.applet, applet);
    t.is('applet' in e, applet !== undefined, 'no applet key at all when there is none');
    t.is(e.args, pattern);
    t.deepEqual(entryFromId(entryId(e)), e);
  });
}

test('both ways of running one applet give one entry; different applets, different entries', (t) => {
  const viaSymlink = entryId(entryOf(exec('/bin/busybox', 'wget', ['http://203.0.113.9/x']), options)!);
  const viaArgument = entryId(entryOf(exec('/bin/busybox', 'busybox', ['wget', 'http://203.0.113.9/x']), options)!);
  const shell = entryId(entryOf(exec('/bin/busybox', 'sh', ['http://203.0.113.9/x']), options)!);
  t.is(viaSymlink, viaArgument);
  t.not(viaSymlink, shell);
  t.is(viaSymlink, 'exec|/bin/busybox|wget|busybox|root|http://<ip>/x');
});

test('entry ids: the five-field form stays for every other program, the six-field form carries the applet', (t) => {
  const plain: ProcessEntry = { type: 'process', exe: '/usr/bin/curl', parent: 'sh', user: 'root', args: '-s <...>' };
  t.is(entryId(plain), 'exec|/usr/bin/curl|sh|root|-s <...>');
  t.is(entryId({ ...plain, applet: undefined }), entryId(plain), 'an undefined applet is no applet');
  const withApplet: ProcessEntry = { type: 'process', exe: '/bin/busybox', applet: 'wget', parent: 'sh', user: 'root', args: '-q' };
  t.is(entryId(withApplet), 'exec|/bin/busybox|wget|sh|root|-q');
});

const ids = [
  'exec|/usr/bin/curl|sh|root|-s <...>',
  'exec|/bin/busybox|sh|root|',
  'exec|/bin/busybox|wget|sh|root|-q -O- http://<ip>/x',
  'exec|/bin/busybox|wget||unknown|',
  'exec|/bin/busybox|a\\|b|sh|user|-c x\\|y',
  'exec|/bin/a\\\\b|root|root|root|root',
  'exec|/bin/busybox|root|root|root',
  'egress|tcp|cluster|5432',
  'listen|udp|any|53',
];
for (const id of ids) {
  test(`entryId(entryFromId(id)) === id: ${id}`, (t) => {
    t.is(entryId(entryFromId(id)), id);
  });
}

test('entryFromId refuses an empty applet and a six-field id without a user class', (t) => {
  t.throws(() => entryFromId('exec|/bin/busybox||sh|root|'), { instanceOf: RangeError });
  t.throws(() => entryFromId('exec|/bin/busybox|wget|sh|admin|'), { instanceOf: RangeError });
  t.throws(() => entryFromId('exec|/bin/busybox|wget|sh|root|x|y'), { instanceOf: RangeError });
});

test('display: the applet is shown next to the binary', (t) => {
  const e = proc(entryOf(exec('/bin/busybox', 'wget', ['-q', 'http://203.0.113.9/x']), options)!);
  t.is(programLabel(e), '/bin/busybox (wget)');
  t.is(programName(e), 'wget');
  t.is(describeEntry(e), '/bin/busybox (wget) -q http://<ip>/x (parent busybox, root)');
  t.is(exampleOf(exec('/bin/busybox', 'wget', ['-q', 'http://203.0.113.9/x'])), '/bin/busybox (wget) -q http://203.0.113.9/x');
  t.is(exampleOf(exec('/bin/busybox', 'busybox', ['wget', 'http://203.0.113.9/x'])), '/bin/busybox wget http://203.0.113.9/x', 'the applet is already on the command line');
  t.is(programName({ type: 'process', exe: '/usr/bin/curl (deleted)', parent: '', user: 'root', args: '' }), 'curl');
});

test('explanations: a new applet of a known busybox is a new executable, named with its applet', (t) => {
  const engine = createBaselineEngine({ learningWindowMs: 60 * 60_000, quietPeriodMs: 0 });
  const observe = (ev: ActivityEvent) => {
    const entry = entryOf(ev, options)!;
    return engine.observe(ev, baselineKey(ev, engine.options.keyMode)!, entry, entryId(entry));
  };
  observe(exec('/bin/busybox', 'sh', ['/docker-entrypoint.sh'], 0));
  observe(exec('/bin/busybox', 'sh', ['/docker-entrypoint.sh'], 61));
  const obs = observe(exec('/bin/busybox', 'wget', ['http://203.0.113.9/x'], 62));
  if (obs.verdict !== 'deviation') return t.fail(obs.verdict);
  t.is(obs.reason, 'new-executable');
  t.is(obs.explanation, '/bin/busybox (wget) never ran in docker.io/library/nginx while it was learned');
});

test('appletOf is bounded by what busybox itself reads', (t) => {
  t.is(appletOf('/bin/busybox', 'busybox', ['busybox', 'wget']), null, 'busybox busybox names no applet');
  t.deepEqual(appletOf('/bin/busybox', 'busybox', ['x'.repeat(10_000)]), { applet: 'x'.repeat(15), args: [] });
  t.is(appletOf('/usr/bin/env', 'env', ['sh']), null);
});

function viewOf(entries: Entry[]): BaselineView {
  const ve = (e: Entry): BaselineViewEntry => ({ ...e, id: entryId(e), summary: describeEntry(e), status: 'learned', firstSeen: null, lastSeen: null, count: 1, nodes: ['node-1'], examples: [] });
  return { key: 'docker.io/library/nginx', state: 'locked', version: 3, windowStart: null, learnUntil: null, enforcingSince: null, images: [], nodes: ['node-1'], partial: false, entries: entries.map(ve) };
}

const ALPINE: Entry[] = [
  { type: 'process', exe: '/usr/sbin/nginx', parent: 'busybox', user: 'root', args: '-g daemon off;' },
  { type: 'process', exe: '/bin/busybox', applet: 'sh', parent: 'containerd-shim', user: 'root', args: '/docker-entrypoint.sh' },
  { type: 'process', exe: '/bin/busybox', applet: 'find', parent: 'busybox', user: 'root', args: '/docker-entrypoint.d/ -mindepth <num>' },
];

test('Baseline documents keep the applet through export and import', (t) => {
  const yaml = toBaselineDocument(viewOf(ALPINE));
  const spec = (parseYaml(yaml) as { spec: { processes: Record<string, unknown>[] } }).spec;
  t.deepEqual(spec.processes.map((p) => p.applet ?? null).sort(), ['find', 'sh', null].sort());
  const doc = parseBaselineDocument(yaml);
  t.deepEqual(doc.entries.map(entryId).sort(), ALPINE.map(entryId).sort());
});

test('the Falco export allows an applet, not every program of the multi-call binary', (t) => {
  const rules = parseYaml(toFalcoRules(viewOf(ALPINE))) as { list?: string; items?: string[]; macro?: string; condition?: string }[];
  const allowed = rules.find((r) => r.macro?.endsWith('_allowed_process'))?.condition ?? '';
  t.true(allowed.includes('(proc.exepath = "/bin/busybox" and proc.name = "sh")'), allowed);
  t.true(allowed.includes('(proc.exepath = "/bin/busybox" and proc.name = "find")'), allowed);
  const list = rules.find((r) => r.list?.endsWith('_allowed_exes'));
  t.deepEqual(list?.items, ['"/usr/sbin/nginx"'], '/bin/busybox itself is not allowed wholesale');
});
