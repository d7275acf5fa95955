/**
 * `driftwatch verify`: a new build checked against the baseline security approved, in CI, without a
 * collector. Events recorded while the image ran its tests (`--events FILE`), or a command run here
 * under the agent's eBPF program (`-- COMMAND…`), are checked against one `Baseline` document
 * (core/verify.ts: the agent's matching, the collector's severity); the result is a text report, and
 * on request JUnit XML, SARIF and a proposed baseline for a merge request.
 *
 * Exit codes: 0 everything matched (or only deviations below --fail-on), 1 a deviation at or above
 * --fail-on, 2 a usage or environment error (bad flags, an unreadable or invalid baseline or events
 * file, no bpftrace, not root) or a check that could not see everything (the kernel dropped events).
 */
import { randomBytes } from 'node:crypto';
import { access, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { BaselineDocError, DOC_LIMITS, parseBaselineDocuments, type BaselineDocument } from '../core/baseline-doc.js';
import { parseImageReference, type ActivityEvent } from '../core/event.js';
import { DEFAULT_CLUSTER_CIDRS, parseCidr } from '../core/ip.js';
import { parseSeverityRules, SEVERITIES, SeverityConfigError, type Severity, type SeverityRule } from '../core/severity.js';
import { createVerifier, type Verifier } from '../core/verify.js';
import { detectFormat, emptyCounts, EVENT_FORMATS, EventsFileError, readEventsFile, type EventFormat, type ReadCounts } from './verify/events-file.js';
import { junitReport } from './verify/junit.js';
import { proposalDocument } from './verify/proposal.js';
import { EXIT, exitCodeOf, textReport, type VerifyInput, type VerifyRun } from './verify/report.js';
import { CommandModeError, traceCommand } from './verify/run-command.js';
import { sarifLog } from './verify/sarif.js';

export const VERIFY_HELP = `driftwatch verify — check a build against its baseline (no collector needed)
  driftwatch verify --baseline FILE --events FILE [--events FILE ...] [options]
      events recorded while the image ran its tests: Falco JSON, Tetragon JSON export, or a
      recording of the ebpf source (bpftrace -f json of the agent's program)
  driftwatch verify --baseline FILE [options] -- COMMAND [ARG ...]
      run COMMAND here under the built-in eBPF source (root and bpftrace) and check every process
      and connection of its tree (scoped by a cgroup of its own)
Options:
  --baseline FILE        a Baseline document (driftwatch baselines export); required
  --key KEY              which document, when FILE holds several
  --format F             falco, tetragon or ebpf; default: told from each file's first records
  --all-events           check every event as the baseline's image (a recording without container metadata)
  --container ID         check the events of this container id (or its start) as the baseline's image
                         (default: the events whose image is the baseline's key; the rest are counted)
  --fail-on SEVERITY     critical, high, medium or low; default low: any deviation fails, since the
                         same event under this baseline in the cluster is an alert someone must handle
  --severity-rules FILE  a site's severity table (YAML: rules, defaults), as the collector's alerting.severity
  --cluster-cidr CIDR    in-cluster address range (repeatable); default RFC 1918 + CGNAT + ULA, as the agent
  --junit FILE           write JUnit XML (GitLab artifacts:reports:junit, Jenkins junit, GitHub test reporters)
  --sarif FILE           write SARIF 2.1.0 (github/codeql-action/upload-sarif)
  --write-proposal FILE  write the baseline plus the deviations as a Baseline document for a merge request
  --root-parent NAME     the parent the command's own process is reported with; default '' (none, as a
                         container's entrypoint under its runtime)
  --bpftrace PATH        bpftrace to run; default the one on PATH
  --no-dns               do not trace DNS answers (connects then carry addresses, not names)
  --user UID[:GID]       who COMMAND runs as; default SUDO_UID:SUDO_GID when verify runs under sudo,
                         else root. A root command can leave its cgroup (then the run is incomplete)
  --ignore-command-status  judge the trace alone: a COMMAND that fails (non-zero exit, a signal) is
                         otherwise exit 2, since a build whose tests fail at once ran almost nothing
  --quiet                print only the result line
Exit codes: 0 everything matched (or only deviations below --fail-on), 1 deviations at or above
--fail-on, 2 a usage or environment error, events the kernel dropped (the check is incomplete), nothing
checked, or a COMMAND that exited non-zero or by a signal (unless --ignore-command-status).`;

/** A bad flag or file: exit 2 with the help. */
class UsageError extends Error {
  readonly code = 'usage' as const;
}

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const OPTIONS = {
  baseline: { type: 'string' },
  key: { type: 'string' },
  events: { type: 'string', multiple: true },
  format: { type: 'string' },
  'all-events': { type: 'boolean' },
  container: { type: 'string' },
  'fail-on': { type: 'string' },
  'severity-rules': { type: 'string' },
  'cluster-cidr': { type: 'string', multiple: true },
  junit: { type: 'string' },
  sarif: { type: 'string' },
  'write-proposal': { type: 'string' },
  'root-parent': { type: 'string' },
  bpftrace: { type: 'string' },
  'no-dns': { type: 'boolean' },
  'ignore-command-status': { type: 'boolean' },
  user: { type: 'string' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Most events files in one run. */
const MAX_EVENT_FILES = 64;

/** Read and pick the one document to check. */
async function loadBaseline(path: string, key: string | undefined): Promise<{ doc: BaselineDocument; text: string }> {
  let text: string;
  try {
    const size = (await stat(path)).size;
    if (size > DOC_LIMITS.textChars) throw new UsageError(`--baseline ${path}: ${size} bytes; at most ${DOC_LIMITS.textChars}`);
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot read --baseline ${path}: ${(err as Error).message}`);
  }
  let docs: BaselineDocument[];
  try {
    docs = parseBaselineDocuments(text);
  } catch (err) {
    if (err instanceof BaselineDocError) throw new UsageError(`--baseline ${path} is not a valid Baseline document: ${err.message}`);
    throw err;
  }
  if (docs.length === 0) throw new UsageError(`--baseline ${path} holds no Baseline document`);
  if (key !== undefined) {
    const doc = docs.find((d) => d.key === key);
    if (!doc) throw new UsageError(`--baseline ${path} has no document for --key ${JSON.stringify(key.slice(0, 200))}; it holds ${docs.map((d) => d.key).join(', ')}`);
    return { doc, text };
  }
  if (docs.length > 1) throw new UsageError(`--baseline ${path} holds ${docs.length} baselines (${docs.map((d) => d.key).join(', ')}); choose one with --key`);
  return { doc: docs[0] as BaselineDocument, text };
}

async function loadRules(path: string | undefined): Promise<readonly SeverityRule[] | undefined> {
  if (path === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = parseYaml(await readFile(path, 'utf8'), { maxAliasCount: 0 });
  } catch (err) {
    throw new UsageError(`cannot read --severity-rules ${path}: ${(err as Error).message.split('\n')[0]}`);
  }
  try {
    return parseSeverityRules(parsed);
  } catch (err) {
    if (err instanceof SeverityConfigError) throw new UsageError(`--severity-rules ${path}: ${err.message}`);
    throw err;
  }
}

/** Who the command runs as: `--user UID[:GID]`, else sudo's caller (SUDO_UID, SUDO_GID), else root (null). */
export function commandUser(flag: string | undefined, env: NodeJS.ProcessEnv): { uid: number; gid: number } | null {
  const id = (s: string, what: string) => {
    if (!/^\d{1,10}$/.test(s) || Number(s) > 4294967294) throw new UsageError(`${what} is a numeric id; not ${JSON.stringify(s.slice(0, 40))}`);
    return Number(s);
  };
  if (flag !== undefined) {
    const [u, g, more] = flag.split(':');
    if (more !== undefined) throw new UsageError('--user is UID or UID:GID');
    const uid = id(u ?? '', '--user');
    return uid === 0 && g === undefined ? null : { uid, gid: g === undefined ? uid : id(g, '--user GID') };
  }
  const sudoUid = env.SUDO_UID;
  if (sudoUid === undefined || sudoUid === '') return null;
  return { uid: id(sudoUid, 'SUDO_UID'), gid: id(env.SUDO_GID ?? sudoUid, 'SUDO_GID') };
}

function severityOf(v: string | undefined): Severity {
  if (v === undefined) return 'low';
  if (!(SEVERITIES as readonly string[]).includes(v)) throw new UsageError(`--fail-on is one of ${SEVERITIES.join(', ')}; not ${JSON.stringify(v.slice(0, 40))}`);
  return v as Severity;
}

/**
 * Write beside the target and rename: CI never uploads half a report. verify runs as root (command
 * mode) in directories others may write, so the temporary name is unguessable and created exclusively
 * ('wx': an existing file or a planted symbolic link there fails instead of being followed), and it
 * is removed when anything fails.
 */
export async function writeReport(file: string, text: string): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${randomBytes(12).toString('hex')}.tmp`);
  let created = false;
  try {
    await writeFile(tmp, text, { mode: 0o644, flag: 'wx' });
    created = true;
    await rename(tmp, file);
  } catch (err) {
    if (created) await unlink(tmp).catch(() => undefined);
    throw new UsageError(`cannot write ${file}: ${(err as Error).message}`);
  }
}

/** Hand events of `files` to the verifier; `--container` makes that container's events the baseline's image. */
async function checkFiles(files: readonly string[], format: EventFormat | undefined, container: string | undefined, verifier: Verifier, key: string, counts: ReadCounts): Promise<{ path: string; format: EventFormat }[]> {
  const image = parseImageReference(key);
  const onEvent = (ev: ActivityEvent) => {
    if (container !== undefined && ev.container && ev.container.id.startsWith(container)) ev.container = { ...ev.container, image };
    verifier.check(ev);
  };
  const read: { path: string; format: EventFormat }[] = [];
  for (const path of files) {
    try {
      await access(path);
    } catch (err) {
      throw new EventsFileError(`cannot read --events ${path}: ${(err as Error).message}`);
    }
    const f = format ?? (await detectFormat(path));
    await readEventsFile(path, f, counts, onEvent);
    read.push({ path, format: f });
  }
  return read;
}

async function run(args: string[], io: Io): Promise<number> {
  const dash = args.indexOf('--');
  const command = dash === -1 ? [] : args.slice(dash + 1);
  const { values, positionals } = parseArgs({ args: dash === -1 ? args : args.slice(0, dash), options: OPTIONS, strict: true, allowPositionals: true });
  if (values.help) return io.out(VERIFY_HELP), EXIT.ok;
  if (positionals.length > 0) throw new UsageError(`unexpected ${positionals.join(' ').slice(0, 200)}; a command to run goes after --`);
  if (values.baseline === undefined) throw new UsageError('--baseline FILE is required');
  const files = values.events ?? [];
  if ((files.length > 0) === (dash !== -1)) throw new UsageError('give either --events FILE or -- COMMAND, not both and not neither');
  if (dash !== -1 && command.length === 0) throw new UsageError('nothing to run after --');
  if (files.length > MAX_EVENT_FILES) throw new UsageError(`at most ${MAX_EVENT_FILES} --events files`);
  if (values.format !== undefined && !(EVENT_FORMATS as readonly string[]).includes(values.format)) throw new UsageError(`--format is one of ${EVENT_FORMATS.join(', ')}; not ${JSON.stringify(values.format.slice(0, 40))}`);
  if (values['all-events'] && values.container !== undefined) throw new UsageError('--all-events and --container exclude each other');
  if (values.container !== undefined && !/^[0-9a-f]{1,64}$/.test(values.container)) throw new UsageError('--container takes a container id (hex) or its start');
  if (dash === -1 && values['ignore-command-status']) throw new UsageError('--ignore-command-status applies to -- COMMAND only');
  if (dash !== -1 && (values.format !== undefined || values['all-events'] || values.container !== undefined)) throw new UsageError('--format, --all-events and --container apply to --events only');
  const rootParent = values['root-parent'] ?? '';
  if (rootParent.length > 256 || /[\u0000-\u001f/]/.test(rootParent)) throw new UsageError('--root-parent is a process name (no /, at most 256 characters)');
  if (values.bpftrace !== undefined && !values.bpftrace.startsWith('/')) throw new UsageError('--bpftrace takes an absolute path');
  if (dash === -1 && values.user !== undefined) throw new UsageError('--user applies to -- COMMAND only');
  const user = dash === -1 ? null : commandUser(values.user, process.env);
  const failOn = severityOf(values['fail-on']);
  let clusterRanges;
  try {
    clusterRanges = (values['cluster-cidr'] ?? DEFAULT_CLUSTER_CIDRS).map((c) => parseCidr(c));
  } catch (err) {
    throw new UsageError(`--cluster-cidr: ${(err as Error).message}`);
  }
  const { doc, text } = await loadBaseline(values.baseline, values.key);
  const rules = await loadRules(values['severity-rules']);

  const startedAt = Date.now();
  const counts = emptyCounts();
  const verifier = createVerifier(doc, { entryOptions: { clusterRanges }, rules, allEvents: dash !== -1 || values['all-events'] === true });
  let input: VerifyInput;
  if (dash === -1) {
    const read = await checkFiles(files, values.format as EventFormat | undefined, values.container, verifier, doc.key, counts);
    input = { mode: 'events', files: read, scope: values['all-events'] ? 'all-events' : values.container !== undefined ? 'container' : 'image', ...(values.container !== undefined && { container: values.container }) };
  } else {
    const outcome = await traceCommand(command, { bpftrace: values.bpftrace ?? '', dns: values['no-dns'] !== true, rootParent, user }, counts, (ev) => verifier.check(ev));
    input = { mode: 'command', argv: command, outcome, ignoreStatus: values['ignore-command-status'] === true };
  }
  const report: VerifyRun = { baselinePath: values.baseline, doc, docText: text, result: verifier.result(), failOn, input, counts, startedAt, durationMs: Date.now() - startedAt };

  if (values.junit !== undefined) await writeReport(values.junit, junitReport(report));
  if (values.sarif !== undefined) await writeReport(values.sarif, `${JSON.stringify(sarifLog(report), null, 2)}\n`);
  if (values['write-proposal'] !== undefined) {
    const source = input.mode === 'events' ? input.files.map((f) => f.path).join(', ') : command.join(' ');
    await writeReport(values['write-proposal'], proposalDocument(doc, report.result.findings, source, new Date(startedAt)));
  }
  const textOut = textReport(report);
  io.out(values.quiet ? (textOut.split('\n').pop() as string) : textOut);
  return exitCodeOf(report);
}

/** Run `driftwatch verify ARGS`. */
export async function runVerify(args: string[], io: Io = { out: (t) => console.log(t), err: (t) => console.error(t) }): Promise<number> {
  try {
    return await run(args, io);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`driftwatch verify: ${(err as Error).message}\n\n${VERIFY_HELP}`);
      return EXIT.usage;
    }
    if (err instanceof EventsFileError || err instanceof CommandModeError) {
      io.err(`driftwatch verify: ${err.message}`);
      return EXIT.usage;
    }
    // Exit 1 means "deviations" to a CI job: a failure of the check itself must not read as one.
    io.err(`driftwatch verify: the check failed: ${(err as Error).stack ?? String(err)}`);
    return EXIT.usage;
  }
}
