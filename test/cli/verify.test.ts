/**
 * `driftwatch verify`, run as a real child process: recorded events (real Falco and Tetragon records
 * from fixtures/real, an eBPF recording in the agent's bpftrace format) checked against Baseline
 * documents on disk; exit codes; the JUnit report validated with xmllint against the Jenkins/Surefire
 * XSD and the SARIF log with Ajv against the OASIS SARIF 2.1.0 schema (fixtures/schemas, cited
 * there); the proposal read back by the importer's parser and verified again. The command mode runs
 * a real command tree under real bpftrace as root (skipped, saying why, where eBPF cannot run).
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parseBaselineDocument } from '../../core/baseline-doc.js';
import { entryId } from '../../core/entry.js';
import { cgroupV2Root, commandModeMissing } from '../../cli/verify/run-command.js';
import { proposalDocument } from '../../cli/verify/proposal.js';
import { writeReport } from '../../cli/verify.js';
import { createVerifier } from '../../core/verify.js';
import { DEFAULT_CLUSTER_CIDRS, parseCidr } from '../../core/ip.js';
import { CLI } from '../helpers/processes.js';

// ajv-formats is CommonJS; its plugin is the module's default export.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const REAL_FALCO = join(ROOT, 'fixtures/real/falco.jsonl');
const REAL_TETRAGON = join(ROOT, 'fixtures/real/tetragon.jsonl');
const JUNIT_XSD = join(ROOT, 'fixtures/schemas/junit-10.xsd');
const SARIF_SCHEMA = join(ROOT, 'fixtures/schemas/sarif-schema-2.1.0.json');

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `driftwatch verify ARGS` in `cwd` as a child process. */
function verify(cwd: string, args: string[], as: { uid?: number; gid?: number } = {}, extraEnv: Record<string, string> = {}, wrapper: string[] = []): Promise<Ran> {
  // Not sudo's caller unless a test says so: it would become the traced command's user.
  const { SUDO_UID: _u, SUDO_GID: _g, ...env } = process.env;
  const argv = [...wrapper, process.execPath, CLI, 'verify', ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] as string, argv.slice(1), { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...env, ...extraEnv }, ...as });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function workdir(t: { teardown(f: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'dw-verify-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A Baseline document as a developer keeps it in Git. */
function baselineYaml(key: string, processes: string, network = '[]', state = 'enforcing'): string {
  return `apiVersion: driftwatch.dev/v1alpha1\nkind: Baseline\nmetadata:\n  name: under-test\nspec:\n  key: ${key}\n  state: ${state}\n  processes:${processes}\n  network: ${network}\n`;
}

/** xmllint's verdict on `file` against the JUnit XSD: null when valid, else its message. */
function junitInvalid(file: string): string | null {
  const r = spawnSync('xmllint', ['--noout', '--schema', JUNIT_XSD, file], { encoding: 'utf8' });
  if (r.error) throw new Error(`xmllint cannot run (scripts/test-prereqs.sh installs libxml2-utils): ${r.error.message}`);
  return r.status === 0 ? null : r.stderr;
}

let sarifValidator: ((data: unknown) => boolean) & { errors?: unknown } | null = null;
/** Ajv's verdict on a SARIF log against the OASIS schema: null when valid, else the errors. */
function sarifInvalid(log: unknown): string | null {
  if (!sarifValidator) {
    const schema = JSON.parse(readFileSync(SARIF_SCHEMA, 'utf8')) as Record<string, unknown>;
    // Draft-04 as published; Ajv 8 reads draft-06+. The forms that differ between them are the root
    // `id` (now `$id`) and a boolean exclusiveMinimum/Maximum, which this schema does not use.
    if (/"exclusive(Minimum|Maximum)"/.test(readFileSync(SARIF_SCHEMA, 'utf8'))) throw new Error('the SARIF schema uses exclusiveMinimum/Maximum: load it with a draft-04 validator');
    const { id, $schema: _drop, ...rest } = schema;
    const ajv = new Ajv({ strict: false, allErrors: true });
    addFormats(ajv);
    sarifValidator = ajv.compile({ ...rest, $id: id as string });
  }
  return sarifValidator(log) ? null : JSON.stringify(sarifValidator.errors, null, 1).slice(0, 3000);
}

const ALPINE = baselineYaml('docker.io/library/alpine', `\n    - exe: sh\n      parent: runc\n      user: root\n      args: "-c uptime"`);

test('real Falco records: the image\'s events are checked, deviations carry the alert\'s why and severity, other images are counted; exit 1, or 0 under --fail-on high', async (t) => {
  const dir = workdir(t);
  writeFileSync(join(dir, 'alpine.yaml'), ALPINE);
  const r = await verify(dir, ['--baseline', 'alpine.yaml', '--events', REAL_FALCO, '--junit', 'junit.xml', '--sarif', 'verify.sarif']);
  t.is(r.code, 1, r.stdout + r.stderr);
  t.regex(r.stdout, /events: .*falco\.jsonl \(falco\)/, 'the format was told from the records');
  // Four `sh -c uptime` execs of alpine match the entry; `sh -c clear; (bash || ash || sh)` does not.
  t.regex(r.stdout, /checked: 5 events \(5 exec\)/);
  t.regex(r.stdout, /ok {3}sh -c uptime \(parent runc, root\) {2}\(4 events\)/);
  t.regex(r.stdout, /FAIL \[medium\] sh -c clear; \(bash \|\| ash \|\| sh\) \(parent runc, root\)\n\s+why: a process ran that the baseline does not know \(rule new-process\)\n\s+sh ran before, but never with arguments like these \(new-arguments\)/);
  t.regex(r.stdout, /not checked: 2 events of 2 other images \(docker\.io\/devopps\/falco-pod-delete: 1, docker\.io\/fission\/fetcher: 1\); 1 event of containers whose image no event named/);
  t.regex(r.stdout, /records of no interest .*: 4/);
  t.regex(r.stdout, /result: FAIL \(exit 1\): 1 deviation at or above --fail-on low$/m);

  t.is(junitInvalid(join(dir, 'junit.xml')), null);
  const junit = readFileSync(join(dir, 'junit.xml'), 'utf8');
  t.regex(junit, /<testsuite name="driftwatch verify docker\.io\/library\/alpine" tests="2" failures="1" errors="0"/);
  t.regex(junit, /<testcase classname="driftwatch\.verify\.processes" name="\[medium\] sh -c clear; \(bash \|\| ash \|\| sh\) \(parent runc, root\)" time="0">\n\s+<failure type="new-process" message="a process ran that the baseline does not know: sh ran before, but never with arguments like these">/);

  const sarif = JSON.parse(readFileSync(join(dir, 'verify.sarif'), 'utf8'));
  t.is(sarifInvalid(sarif), null);
  const run = sarif.runs[0];
  t.deepEqual(run.tool.driver.rules.map((x: { id: string }) => x.id), ['new-process']);
  t.like(run.tool.driver.rules[0], { shortDescription: { text: 'a process ran that the baseline does not know' }, defaultConfiguration: { level: 'warning' }, properties: { 'security-severity': '5.5' } });
  t.is(run.results.length, 1);
  t.like(run.results[0], { ruleId: 'new-process', level: 'warning', locations: [{ physicalLocation: { artifactLocation: { uri: 'alpine.yaml', uriBaseId: '%SRCROOT%' }, region: { startLine: 8 } } }] });
  t.is(ALPINE.split('\n')[7], '  processes:', 'the location is the list the entry would join');
  t.regex(run.results[0].partialFingerprints['driftwatchAlert/v1'], /^[0-9a-f]{32}$/);

  const soft = await verify(dir, ['--baseline', 'alpine.yaml', '--events', REAL_FALCO, '--fail-on', 'high']);
  t.is(soft.code, 0, soft.stdout);
  t.regex(soft.stdout, /warn \[medium\] sh -c clear/);
  t.regex(soft.stdout, /result: PASS \(exit 0\): every deviation is below --fail-on high/);
});

test('real Tetragon records: a locked baseline without curl, nc or public peers gets four high deviations; the proposal imports and passes the same run', async (t) => {
  const dir = workdir(t);
  const key = 'quay.io/isovalent/jobs-app-elasticsearch';
  writeFileSync(join(dir, 'es.yaml'), baselineYaml(key, ' []', '[]', 'locked'));
  const r = await verify(dir, ['--baseline', 'es.yaml', '--events', REAL_TETRAGON, '--write-proposal', 'proposed.yaml', '--sarif', 'es.sarif', '--junit', 'es.xml']);
  t.is(r.code, 1, r.stdout + r.stderr);
  t.regex(r.stdout, /checked: 4 events \(2 exec, 2 connect\)/);
  t.regex(r.stdout, /FAIL \[high\] egress tcp 142\.250\.180\.196:80\n\s+why: the container connected to a public address its baseline never reached \(rule public-egress\)/);
  t.regex(r.stdout, /FAIL \[high\] \/usr\/bin\/curl www\.google\.com \(parent bash, root\)\n\s+why: a network tool ran \(download, remote shell or scan\) \(rule network-tool\)/);
  t.regex(r.stdout, /FAIL \[high\] \/usr\/bin\/nc <rand> <num> \(parent sh, root\)/);
  t.regex(r.stdout, /skipped as malformed: bad_time: 1/, 'the record without a time is refused as on a node');

  t.is(junitInvalid(join(dir, 'es.xml')), null);
  const sarif = JSON.parse(readFileSync(join(dir, 'es.sarif'), 'utf8'));
  t.is(sarifInvalid(sarif), null);
  t.deepEqual(sarif.runs[0].results.map((x: { level: string; ruleId: string }) => `${x.level} ${x.ruleId}`).sort(), ['error network-tool', 'error network-tool', 'error public-egress', 'error public-egress']);
  t.is(sarif.runs[0].automationDetails.id, `driftwatch-verify/${key}/`);

  const text = readFileSync(join(dir, 'proposed.yaml'), 'utf8');
  t.regex(text, /^# 4 entries added for security to review:$/m);
  t.regex(text, /^# {3}\+ \/usr\/bin\/curl www\.google\.com \(parent bash, root\) {2}\[high, network-tool: a network tool ran/m);
  const doc = parseBaselineDocument(text);
  t.is(doc.key, key);
  t.is(doc.state, 'locked');
  t.deepEqual(doc.entries.map(entryId).sort(), ['egress|tcp|142.250.180.196|80', 'egress|tcp|64.225.45.153|443', 'exec|/usr/bin/curl|bash|root|www.google.com', 'exec|/usr/bin/nc|sh|root|<rand> <num>']);
  const again = await verify(dir, ['--baseline', 'proposed.yaml', '--events', REAL_TETRAGON]);
  t.is(again.code, 0, again.stdout);
  t.regex(again.stdout, /matched: 4 of 4 baseline entries were exercised/);
});

const hexOf = (s: string | Buffer, pad = 0) => {
  const b = Buffer.concat([Buffer.from(s), Buffer.alloc(Math.max(0, pad - Buffer.byteLength(s)))]);
  return [...b].map((x) => `\\x${x.toString(16).padStart(2, '0')}`).join('');
};
const printf = (data: string) => JSON.stringify({ type: 'printf', data: `${data}\n` });
const CONTAINER = 'ab12'.padEnd(64, 'e');
const LEAF = hexOf(`cri-containerd-${CONTAINER}.scope`, 128);

/** The bpftrace lines of one exec in the agent's format (agent/sources/ebpf/program.ts). */
function execLines(sec: number, pid: number, ppid: number, parentComm: string, file: string, argv: string[]): string[] {
  const ns = `${sec}000000000`;
  const bytes = Buffer.from(`${argv.join('\0')}\0`);
  return [
    printf(`X ${ns} ${pid} ${ppid} 0 77 ${bytes.length} ${hexOf(parentComm, 16)}`),
    printf(`C ${ns} ${pid} ${LEAF}`),
    printf(`F ${ns} ${pid} ${hexOf(file, 200)}`),
    printf(`A ${ns} ${pid} 0 ${hexOf(bytes)}`),
  ];
}

test('an eBPF recording carries no image: nothing checked is exit 2 saying so; --container and --all-events check it', async (t) => {
  const dir = workdir(t);
  const lines = [
    '{"type": "attached_probes", "data": {"probes": 18}}',
    ...execLines(100, 500, 400, 'containerd-shim', '/usr/local/bin/api', ['api', '--port', '8080']),
    ...execLines(101, 501, 500, 'api', '/usr/bin/wget', ['wget', '-q', 'http://203.0.113.7/x']),
    // Hostile text: a bidi override, markup and a quote in an argument reach every report.
    ...execLines(101, 502, 500, 'api', '/tmp/x\u202e/hs.nib', ['x', '</failure><x a="&">', '\u0007']),
    printf(`N 102000000000 501 0 77 connect tcp ${hexOf(Buffer.from([10, 244, 1, 5]))} 0 ${hexOf(Buffer.from([203, 0, 113, 7]))} 80 ${hexOf('wget', 16)} ${LEAF}`),
    'not json',
  ];
  writeFileSync(join(dir, 'run.jsonl'), `${lines.join('\n')}\n`);
  writeFileSync(join(dir, 'api.yaml'), baselineYaml('registry.example.com/team/api', `\n    - exe: /usr/local/bin/api\n      parent: containerd-shim\n      user: root\n      args: "--port <num>"`));

  const none = await verify(dir, ['--baseline', 'api.yaml', '--events', 'run.jsonl', '--junit', 'none.xml']);
  t.is(none.code, 2, none.stdout);
  t.regex(none.stdout, /events: run\.jsonl \(ebpf\)/);
  t.regex(none.stdout, /not checked: 4 events of containers whose image no event named/);
  t.regex(none.stdout, /NOTHING CHECKED \(exit 2\): no event of registry\.example\.com\/team\/api was checked; .*use --all-events or --container ID/);
  t.is(junitInvalid(join(dir, 'none.xml')), null);
  t.regex(readFileSync(join(dir, 'none.xml'), 'utf8'), /<error type="nothing-checked"/);

  for (const scope of [['--container', CONTAINER.slice(0, 12)], ['--all-events']]) {
    const r = await verify(dir, ['--baseline', 'api.yaml', '--events', 'run.jsonl', '--junit', 'api.xml', '--sarif', 'api.sarif', ...scope]);
    t.is(r.code, 1, r.stdout);
    t.regex(r.stdout, /checked: 4 events \(3 exec, 1 connect\)/);
    t.regex(r.stdout, /FAIL \[critical\] \/tmp\/x\\u202e\/hs\.nib /, 'the bidi override is shown as an escape');
    t.false(r.stdout.includes('\u202e'));
    t.is(junitInvalid(join(dir, 'api.xml')), null);
    const xml = readFileSync(join(dir, 'api.xml'), 'utf8');
    t.false(xml.includes('\u202e') || xml.includes('\u0007') || xml.includes('<x a='));
    t.regex(xml, /&lt;\/failure&gt;&lt;x a=&quot;&amp;&quot;&gt;/);
    t.is(sarifInvalid(JSON.parse(readFileSync(join(dir, 'api.sarif'), 'utf8'))), null);
    t.regex(r.stdout, /ok {3}\/usr\/local\/bin\/api --port <num> \(parent containerd-shim, root\) {2}\(1 event\)/);
    t.regex(r.stdout, /FAIL \[high\] \/usr\/bin\/wget -q http:\/\/<ip>\/x \(parent api, root\)\n\s+why: a network tool ran/);
    t.regex(r.stdout, /FAIL \[high\] egress tcp 203\.0\.113\.7:80/);
    t.regex(r.stdout, /skipped as malformed: not_json: 1/);
  }
});

test('usage and environment errors exit 2 with a message naming what is wrong', async (t) => {
  const dir = workdir(t);
  writeFileSync(join(dir, 'ok.yaml'), ALPINE);
  writeFileSync(join(dir, 'bad.yaml'), ALPINE.replace('user: root', 'user: admin'));
  writeFileSync(join(dir, 'two.yaml'), `${ALPINE}---\n${ALPINE.replace('docker.io/library/alpine', 'docker.io/library/busybox')}`);
  writeFileSync(join(dir, 'other.jsonl'), '{"hello": "world"}\n');
  const cases: [string[], RegExp][] = [
    [['--events', REAL_FALCO], /--baseline FILE is required/],
    [['--baseline', 'missing.yaml', '--events', REAL_FALCO], /cannot read --baseline missing\.yaml/],
    [['--baseline', 'bad.yaml', '--events', REAL_FALCO], /not a valid Baseline document: spec\.processes\.0\.user/],
    [['--baseline', 'two.yaml', '--events', REAL_FALCO], /holds 2 baselines \(docker\.io\/library\/alpine, docker\.io\/library\/busybox\); choose one with --key/],
    [['--baseline', 'ok.yaml'], /give either --events FILE or -- COMMAND/],
    [['--baseline', 'ok.yaml', '--events', REAL_FALCO, '--', 'true'], /give either --events FILE or -- COMMAND/],
    [['--baseline', 'ok.yaml', '--events', REAL_FALCO, '--ignore-command-status'], /--ignore-command-status applies to -- COMMAND only/],
    [['--baseline', 'ok.yaml', '--events', REAL_FALCO, '--user', '1000'], /--user applies to -- COMMAND only/],
    [['--baseline', 'ok.yaml', '--user', 'nobody', '--', '/bin/true'], /--user is a numeric id; not "nobody"/],
    [['--baseline', 'ok.yaml', '--user', '1:2:3', '--', '/bin/true'], /--user is UID or UID:GID/],
    [['--baseline', 'ok.yaml', '--events', REAL_FALCO, '--fail-on', 'urgent'], /--fail-on is one of critical, high, medium, low/],
    [['--baseline', 'ok.yaml', '--events', REAL_FALCO, '--format', 'syslog'], /--format is one of falco, tetragon, ebpf/],
    [['--baseline', 'ok.yaml', '--events', 'other.jsonl'], /cannot tell the format of other\.jsonl .*give --format/],
    [['--baseline', 'ok.yaml', '--events', 'nothing.jsonl'], /cannot read --events nothing\.jsonl/],
    [['--baseline', 'ok.yaml', '--events', REAL_FALCO, '--colour'], /Unknown option '--colour'/],
    [['--baseline', 'ok.yaml', '--events', REAL_FALCO, '--junit', 'no/such/dir/junit.xml'], /cannot write no\/such\/dir\/junit\.xml/],
    [['--baseline', 'ok.yaml', '--bpftrace', '/nonexistent/bpftrace', '--', '/bin/true'], /cannot trace the command: .*bpftrace is not installed/],
  ];
  for (const [args, message] of cases) {
    const r = await verify(dir, args);
    t.is(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    t.regex(r.stderr, message, args.join(' '));
  }
  const help = await verify(dir, ['--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /^Exit codes: 0 everything matched .*\n--fail-on, 2 a usage or environment error/m);
  // --key picks one document of a stream.
  const picked = await verify(dir, ['--baseline', 'two.yaml', '--key', 'docker.io/library/alpine', '--events', REAL_FALCO, '--fail-on', 'high']);
  t.is(picked.code, 0, picked.stderr);
});

// ---------------------------------------------------------------------------------------------
// Command mode: real bpftrace, real processes.

const SH = realpathSync('/bin/sh');

function ebpfUnavailable(): string | null {
  if (process.getuid?.() === 0 && !existsSync('/sys/kernel/tracing/events') && existsSync('/sys/kernel/tracing')) {
    spawnSync('mount', ['-t', 'tracefs', 'tracefs', '/sys/kernel/tracing'], { stdio: 'ignore' });
  }
  const { missing } = commandModeMissing('');
  return missing.length > 0 ? missing.join('; ') : null;
}

test.serial('-- COMMAND: a tree learned as a proposal passes again; the same script that also runs curl to a loopback port and a short-lived grandchild fails naming them, with the command\'s exit code', async (t) => {
  const why = ebpfUnavailable();
  if (why !== null) {
    t.log(`SKIPPED: eBPF command mode is not possible here: ${why}`);
    t.pass();
    return;
  }
  const dir = workdir(t);
  const server = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  writeFileSync(join(dir, 'empty.yaml'), baselineYaml('registry.example.com/team/worker', ' []'));
  // The script's path is the shell's argument: the same path with other contents is the same entry.
  const script = join(dir, 'run.sh');
  writeFileSync(script, '/bin/true\nexit 0\n');

  const learn = await verify(dir, ['--baseline', 'empty.yaml', '--write-proposal', 'worker.yaml', '--', SH, script]);
  t.is(learn.code, 1, learn.stdout + learn.stderr);
  t.regex(learn.stdout, /command: .* — exit code 0/);
  const proposed = parseBaselineDocument(readFileSync(join(dir, 'worker.yaml'), 'utf8'));
  t.deepEqual(
    proposed.entries.map((e) => (e.type === 'process' ? `${e.exe} < ${e.parent}` : entryId(e))).sort(),
    [`${realpathSync('/bin/true')} < ${SH.slice(SH.lastIndexOf('/') + 1)}`, `${SH} < `].sort(),
    'the shell (started by verify: no parent) and true (its child)',
  );

  const same = await verify(dir, ['--baseline', 'worker.yaml', '--', SH, script]);
  t.is(same.code, 0, same.stdout + same.stderr);
  t.regex(same.stdout, /matched: 2 of 2 baseline entries were exercised/);

  // The same tree, but the command fails (`npm test` whose tests fail at once): no deviation is no pass.
  writeFileSync(script, '/bin/true\nexit 3\n');
  const failed = await verify(dir, ['--baseline', 'worker.yaml', '--junit', 'failed.xml', '--sarif', 'failed.sarif', '--', SH, script]);
  t.is(failed.code, 2, failed.stdout + failed.stderr);
  t.regex(failed.stdout, /result: COMMAND FAILED \(exit 2\): the command exited with code 3/);
  t.is(junitInvalid(join(dir, 'failed.xml')), null);
  t.regex(readFileSync(join(dir, 'failed.xml'), 'utf8'), /errors="1"[\s\S]*<error type="command-failed" message="the command exited with code 3"\/>/);
  t.false(JSON.parse(readFileSync(join(dir, 'failed.sarif'), 'utf8')).runs[0].invocations[0].executionSuccessful);
  const ignored = await verify(dir, ['--baseline', 'worker.yaml', '--ignore-command-status', '--', SH, script]);
  t.is(ignored.code, 0, ignored.stdout + ignored.stderr);

  // Also a daemon left behind: it outlives the script, and is killed (and counted) when the script
  // exits. The script waits (shell builtins only) until it runs sleep, so its exec is there to see.
  writeFileSync(
    script,
    `/bin/true\n( ( /usr/bin/cat /etc/hostname >/dev/null ) & )\n/usr/bin/curl -s -o /dev/null http://127.0.0.1:${port}/\n` +
      `/usr/bin/sleep 600 </dev/null >/dev/null 2>&1 &\nwhile :; do read c </proc/$!/comm; [ "$c" = sleep ] && break; done\nexit 7\n`,
  );
  const drift = await verify(dir, ['--baseline', 'worker.yaml', '--junit', 'drift.xml', '--sarif', 'drift.sarif', '--', SH, script]);
  t.is(drift.code, 1, drift.stdout + drift.stderr);
  t.regex(drift.stdout, /command: .* — exit code 7; \d+ process(es)? still running afterwards, killed/);
  t.regex(drift.stdout, /FAIL \[\w+\] \/usr\/bin\/sleep <num> \(parent dash, root\)/);
  t.regex(drift.stdout, /FAIL \[high\] \/usr\/bin\/curl -s -o \/dev\/null http:\/\/<ip>:<n>\/ \(parent \w+, root\)\n\s+why: a network tool ran/);
  t.regex(drift.stdout, /FAIL \[\w+\] \/usr\/bin\/cat \/etc\/hostname \(parent/, 'the grandchild of a subshell that exited at once');
  t.regex(drift.stdout, new RegExp(`FAIL \\[\\w+\\] egress tcp loopback:${port}\\n`));
  t.regex(drift.stdout, /ok {3}\/usr\/bin\/true/);
  t.is(junitInvalid(join(dir, 'drift.xml')), null);
  t.regex(readFileSync(join(dir, 'drift.xml'), 'utf8'), /<property name="command-exit" value="7"\/>/);
  t.is(sarifInvalid(JSON.parse(readFileSync(join(dir, 'drift.sarif'), 'utf8'))), null);
});

test('a proposal adds what deviated, keeps what security removed removed, and says both in its header', (t) => {
  const doc = parseBaselineDocument(`${ALPINE}  removed:\n    processes:\n      - exe: sh\n        parent: runc\n        user: root\n        args: "-c clear; (bash || ash || sh)"\n    network: []\n`);
  const v = createVerifier(doc, { entryOptions: { clusterRanges: DEFAULT_CLUSTER_CIDRS.map((c) => parseCidr(c)) }, allEvents: true });
  const ev = (args: string[], kind: 'exec' | 'connect' = 'exec') => ({
    time: 1, node: 'ci', source: 'test', container: null, pod: null, kind,
    process: { pid: 7, exe: 'sh', name: 'sh', args, parentExe: '', parentName: 'runc', uid: 0, user: '' },
    network: kind === 'connect' ? { protocol: 'tcp' as const, localAddress: '', localPort: -1, remoteAddress: '10.0.0.9', remotePort: 6379, remoteName: '' } : null,
  });
  v.check(ev(['-c', 'clear; (bash || ash || sh)']));
  v.check(ev(['-c', 'uptime']));
  v.check(ev([], 'connect'));
  const findings = v.result().findings;
  t.is(findings.length, 2);
  const text = proposalDocument(doc, findings, 'run.jsonl', new Date(0));
  t.regex(text, /^# 1 entry added for security to review:\n# {3}\+ egress tcp cluster:6379 {2}\[low, new-cluster-peer:/m);
  t.regex(text, /^# Not proposed: security removed these entries, they stay removed:\n# {3}- sh -c clear; \(bash \|\| ash \|\| sh\) \(parent runc, root\)$/m);
  const back = parseBaselineDocument(text);
  t.deepEqual(back.entries.map(entryId).sort(), ['egress|tcp|cluster|6379', 'exec|sh|runc|root|-c uptime']);
  t.deepEqual(back.removed.map(entryId), ['exec|sh|runc|root|-c clear; (bash \\|\\| ash \\|\\| sh)']);
});

test('the drift allow list counts in verify as in the cluster, and a proposal keeps it', (t) => {
  const options = { entryOptions: { clusterRanges: DEFAULT_CLUSTER_CIDRS.map((c) => parseCidr(c)) }, allEvents: true };
  const ev = (args: string[], origin: 'upper-layer' | 'image') => ({
    time: 1, node: 'ci', source: 'test', container: null, pod: null, kind: 'exec' as const,
    process: { pid: 7, exe: 'sh', name: 'sh', args, parentExe: '', parentName: 'runc', uid: 0, user: '', origin },
    network: null,
  });
  // A known entry run from outside the image: drift, unless the key's allow list covers it.
  const strict = createVerifier(parseBaselineDocument(ALPINE), options);
  strict.check(ev(['-c', 'uptime'], 'upper-layer'));
  t.is(strict.result().findings.length, 1, 'no allow list: drift deviates');
  const doc = parseBaselineDocument(`${ALPINE}  driftAllowed:\n    - "sh"\n    - "/opt/jit/*"\n`);
  t.deepEqual(doc.driftAllowed, ['/opt/jit/*', 'sh']);
  const v = createVerifier(doc, options);
  v.check(ev(['-c', 'uptime'], 'upper-layer'));
  t.deepEqual(v.result().findings, [], 'allowed drift is no deviation');
  v.check(ev(['-c', 'date'], 'image'));
  const text = proposalDocument(doc, v.result().findings, 'run.jsonl', new Date(0));
  t.deepEqual(parseBaselineDocument(text).driftAllowed, ['/opt/jit/*', 'sh'], 'the proposal keeps the allow list');
});

test('reports are written through an unguessable temporary file that follows no planted link, and none is left when the write fails', async (t) => {
  const dir = workdir(t);
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'precious\n');
  // The name the writer used before: dot, report name, pid, .tmp.
  symlinkSync(victim, join(dir, `.report.xml.${process.pid}.tmp`));
  await writeReport(join(dir, 'report.xml'), '<report/>\n');
  t.is(readFileSync(victim, 'utf8'), 'precious\n', 'the planted link was not followed');
  t.is(readFileSync(join(dir, 'report.xml'), 'utf8'), '<report/>\n');
  t.false(lstatSync(join(dir, 'report.xml')).isSymbolicLink());
  // The target is a directory: the rename fails, and the temporary file goes with it.
  mkdirSync(join(dir, 'taken'));
  writeFileSync(join(dir, 'taken', 'x'), '');
  await t.throwsAsync(writeReport(join(dir, 'taken'), 'x'), { message: /cannot write/ });
  t.deepEqual(readdirSync(dir).filter((n) => n.startsWith('.taken.')), []);
});

test.serial('-- COMMAND runs as --user, or as sudo\'s caller; a process that leaves the tree\'s cgroup is reported as incomplete', async (t) => {
  const why = ebpfUnavailable();
  if (why !== null) {
    t.log(`SKIPPED: eBPF command mode is not possible here: ${why}`);
    t.pass();
    return;
  }
  const dir = workdir(t);
  writeFileSync(join(dir, 'empty.yaml'), baselineYaml('registry.example.com/team/worker', ' []'));
  // The command's output is verify's (stdio inherited): id prints who it ran as.
  const asUser = await verify(dir, ['--baseline', 'empty.yaml', '--fail-on', 'critical', '--user', '65534:65534', '--', '/usr/bin/id']);
  t.regex(asUser.stdout, /^uid=65534\(\w+\) gid=65534\(\w+\) groups=65534\(\w+\)$/m, 'and no supplementary group of root');
  const bySudo = await verify(dir, ['--baseline', 'empty.yaml', '--fail-on', 'critical', '--', '/usr/bin/id', '-u'], {}, { SUDO_UID: '65534', SUDO_GID: '65534' });
  t.regex(bySudo.stdout, /^65534$/m, bySudo.stdout + bySudo.stderr);
  const asRoot = await verify(dir, ['--baseline', 'empty.yaml', '--fail-on', 'critical', '--user', '0', '--', '/usr/bin/id', '-u'], {}, { SUDO_UID: '65534', SUDO_GID: '65534' });
  t.regex(asRoot.stdout, /^0$/m, '--user 0 keeps root under sudo');

  // As root, the command moves itself to the hierarchy's root cgroup, then execs: that exec is not
  // in the tree, and it must not pass unseen.
  const root = cgroupV2Root(readFileSync('/proc/self/mountinfo', 'utf8')) as string;
  const left = await verify(dir, ['--baseline', 'empty.yaml', '--fail-on', 'critical', '--user', '0', '--', SH, '-c', 'echo $$ > "$1/cgroup.procs"; exec /bin/true', 'sh', root]);
  // The shell itself is a critical deviation here (exit 1 outranks 2); the gap is reported all the same.
  t.is(left.code, 1, left.stdout + left.stderr);
  t.regex(left.stdout, /incomplete: \d+ events of the command's processes came from outside its cgroup \(a process left it\)/);
});

test('-- COMMAND as a user that is not root: exit 2 saying so, before anything runs', async (t) => {
  const user = spawnSync('getent', ['passwd', 'driftwatch-test'], { encoding: 'utf8' });
  const fields = user.status === 0 ? user.stdout.trim().split(':') : [];
  if (process.getuid?.() !== 0 || fields.length < 4) {
    t.log('SKIPPED: needs root and the unprivileged user driftwatch-test (scripts/test-prereqs.sh creates it) to run as someone else');
    t.pass();
    return;
  }
  const dir = workdir(t);
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'ok.yaml'), ALPINE, { mode: 0o644 });
  const marker = join(dir, 'ran');
  const as = { uid: Number(fields[2]), gid: Number(fields[3]) };
  const args = ['--baseline', 'ok.yaml', '--', '/usr/bin/touch', marker];
  // A checkout the unprivileged user cannot reach (`mktemp -d` makes 0700 folders) cannot run as it:
  // then the same CLI runs in a user namespace of its own, where it is uid 65534, not root, and still
  // reads the checkout as its owner.
  const reachable = spawnSync(process.execPath, ['-e', 'require("fs").accessSync(process.argv[1], require("fs").constants.R_OK)', CLI], as).status === 0;
  if (!reachable) t.log(`${CLI} is out of driftwatch-test's reach: run as uid 65534 in a user namespace instead`);
  const r = reachable ? await verify(dir, args, as) : await verify(dir, args, {}, {}, ['unshare', '--user']);
  t.is(r.code, 2, r.stdout + r.stderr);
  t.regex(r.stderr, /cannot trace the command: not root: tracing a command needs root/);
  t.false(existsSync(marker), 'the command was not run untraced');
});
