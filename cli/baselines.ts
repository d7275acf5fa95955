/**
 * `driftwatch baselines ...`: review, lock and export baselines on a collector, and apply a
 * folder of Baseline documents as the desired state (GitOps). A thin client of the collector's
 * HTTP API, like `alerts`; documents are checked here before anything is sent, so a typo in one
 * file changes nothing. Exit codes: 0 done, 1 the collector refused (a 409 conflict included) or a
 * document is invalid, 2 bad usage (a drift pattern the collector's check refuses included).
 */
import { readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { BaselineDocError, DOC_LIMITS, parseBaselineDocuments, parseSelector, type BaselineDocument, type BaselineView } from '../core/baseline-doc.js';
import { entryFromId, entryId, describeEntry, type Entry } from '../core/entry.js';
import { CLIENT_OPTIONS, CollectorError, UsageError, clip, createApiClient, printable, table, type ApiClient } from './api-client.js';
import { sbomLines } from './sbom.js';

export const BASELINES_HELP = `driftwatch baselines — review, lock and export what Driftwatch learned
  driftwatch baselines list [--state learning|enforcing|locked|relearn]
  driftwatch baselines show KEY
  driftwatch baselines diff KEY [--from N] [--to M]      entries added and removed between two versions
  driftwatch baselines lock KEY [--reason TEXT]          pin it: no automatic change
  driftwatch baselines unlock KEY [--reason TEXT]
  driftwatch baselines relearn KEY [--reason TEXT]       back to learning
  driftwatch baselines approve KEY ENTRY_ID [--reason TEXT]
  driftwatch baselines remove KEY ENTRY_ID [--reason TEXT]   removed stays removed: it alerts
  driftwatch baselines add KEY ENTRY_ID [--reason TEXT]  add an entry by hand (its full id)
  driftwatch baselines export KEY [--format yaml|networkpolicy|falco] [--selector app=web] [--out FILE]
  driftwatch baselines bulk lock|unlock|relearn [--namespace NS] [--prefix KEY_PREFIX] [--state STATE]
                                                         e.g. lock every enforcing baseline in shop
  driftwatch baselines import FILE_OR_DIR [--dry-run]    apply Baseline documents (every *.yaml in DIR)
  driftwatch baselines drift allow KEY PATTERN [--reason TEXT]
                                                         let binaries not from the image run from PATTERN
                                                         (/var/cache/jit/*; without a /, a basename glob)
  driftwatch baselines drift disallow KEY PATTERN [--reason TEXT]   take PATTERN off the allow list
KEY is the image repository (docker.io/library/nginx) or @host. ENTRY_ID is an entry's id as
\`show\` prints it, or the start of one that no other entry shares.
Common flags:
  --url URL, --server URL  the collector's API; default $DRIFTWATCH_URL or http://127.0.0.1:8080
  --token-file FILE        bearer token; default $DRIFTWATCH_TOKEN_FILE, or $DRIFTWATCH_TOKEN itself
  --reason TEXT            why (also --comment); kept with the new version
  --json                   print the API's JSON instead of a table`;

const STATE_VERBS = new Set(['lock', 'unlock', 'relearn']);
const ENTRY_VERBS = new Set(['approve', 'remove']);
const FORMATS = new Set(['yaml', 'networkpolicy', 'falco']);
const DRIFT_VERBS = new Set(['allow', 'disallow']);
/** Files one import reads from a folder. */
const MAX_FILES = 1_000;

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const baseUrl = '/api/v1/baselines';
const keyPath = (key: string) => `${baseUrl}/${encodeURIComponent(key)}`;

function checkKey(key: string | undefined, verb: string): string {
  if (key === undefined || key === '') throw new UsageError(`${verb} needs a baseline KEY`);
  if (key.length > DOC_LIMITS.key || /[\u0000-\u001f\u007f-\u009f]/.test(key)) throw new UsageError(`${JSON.stringify(key.slice(0, 80))} is not a baseline key`);
  return key;
}

function version(v: unknown): string {
  return typeof v === 'number' && Number.isSafeInteger(v) ? String(v) : '?';
}

const s = (v: unknown) => printable(String(v ?? ''));

/** The exact id of ENTRY_ID: a full id as is, else the one entry of the baseline whose id starts with it. */
async function resolveEntry(api: ApiClient, key: string, given: string): Promise<string> {
  if (given === '' || given.length > 8192) throw new UsageError('give an entry id (driftwatch baselines show KEY lists them)');
  try {
    entryFromId(given);
    return given;
  } catch {
    // a prefix: look it up
  }
  const view = (await api.call('GET', keyPath(key))) as BaselineView;
  const matches = (Array.isArray(view?.entries) ? view.entries : []).map((e) => String(e.id)).filter((id) => id.startsWith(given));
  if (matches.length === 1) return matches[0] as string;
  throw new Error(matches.length === 0 ? `no entry of ${printable(key)} has an id that starts with ${printable(given)}` : `${printable(given)} is the start of ${matches.length} entries; give more of the id`);
}

function showView(v: BaselineView, io: Io): void {
  io.out(`${s(v.key)}  ${s(v.state)}  version ${version(v.version)}${v.partial ? '  (partial: containers were running before learning began)' : ''}`);
  io.out(`  learning   from ${s(v.windowStart ?? '-')} until ${s(v.learnUntil ?? '-')}${v.enforcingSince ? `; enforcing since ${s(v.enforcingSince)}` : ''}`);
  const images = (Array.isArray(v.images) ? v.images : []).map((i) => `${s(i.repository)}${i.tag ? `:${s(i.tag)}` : ''}${i.digest ? `@${s(i.digest)}` : ''}`);
  io.out(`  images     ${images.join(', ') || '-'}`);
  io.out(`  nodes      ${(Array.isArray(v.nodes) ? v.nodes : []).map(s).join(', ') || '-'}`);
  io.out(`  drift      ${driftAllowedText(v.driftAllowed)}`);
  const entries = Array.isArray(v.entries) ? v.entries : [];
  if (entries.length === 0) return void io.out('no entries');
  const rows = [['STATUS', 'COUNT', 'NODES', 'LAST SEEN', 'ENTRY ID']];
  for (const e of entries) rows.push([s(e.status), s(e.count), String(Array.isArray(e.nodes) ? e.nodes.length : 0), s(e.lastSeen ?? '-'), s(e.id)]);
  io.out(table(rows));
  // Blocks and classes learned from many addresses: say so, with their evidence (narrow with `baselines remove`).
  for (const e of entries) {
    const g = (e as { generalization?: { kind?: unknown; prefixLength?: unknown; addresses?: unknown; prefixes?: { length?: unknown; count?: unknown }[] } | null }).generalization;
    if (!g || typeof g !== 'object') continue;
    const nets = (Array.isArray(g.prefixes) ? g.prefixes : []).map((p) => `${s(p.count)} /${s(p.length)}s`).join(', ');
    const what = g.kind === 'class' ? 'any public address' : `a /${s(g.prefixLength)} block`;
    io.out(`generalized  ${s(e.id)}: ${what}, from ${s(g.addresses)} addresses (${nets || 'none left'})`);
  }
}

/** The drift allow list as one line: what may run although it did not come with the image. */
function driftAllowedText(list: unknown): string {
  const patterns = Array.isArray(list) ? list.map(s) : [];
  return patterns.length === 0 ? 'none allowed: every binary not from the image alerts' : `allowed from ${patterns.join(', ')}`;
}

/** `drift allow|disallow KEY PATTERN`: a reviewed change of the key's drift allow list, a new version like an entry's. */
async function changeDriftAllowed(api: ApiClient, operands: string[], reason: string, json: boolean, io: Io): Promise<number> {
  const [action, given, pattern, ...extra] = operands;
  if (action === undefined || !DRIFT_VERBS.has(action)) throw new UsageError('drift takes allow or disallow, then KEY and PATTERN');
  const key = checkKey(given, `drift ${action}`);
  if (pattern === undefined || pattern === '') throw new UsageError(`drift ${action} needs KEY and PATTERN, e.g. '/var/cache/jit/*'`);
  if (extra.length > 0) throw new UsageError(`unexpected ${extra.join(' ')} (quote a PATTERN with spaces or globs)`);
  let r: any;
  try {
    r = await api.call('POST', `${keyPath(key)}/drift/${action}`, { pattern, reason });
  } catch (err) {
    // The collector checks the pattern (core/baseline-doc DriftPatternSchema): a refused one is the caller's mistake, so usage.
    if (err instanceof CollectorError && err.status === 400) throw new UsageError(`${JSON.stringify(printable(pattern.slice(0, 200)))} is not a drift pattern: ${err.message}`);
    throw err;
  }
  if (json) return io.out(JSON.stringify(r, null, 2)), 0;
  io.out(`${action === 'allow' ? 'allowed' : 'disallowed'} drift from ${printable(pattern)} in ${printable(key)} (version ${version(r?.version)})`);
  io.out(`drift  ${driftAllowedText(r?.driftAllowed)}`);
  return 0;
}

function readDocuments(path: string): { file: string; text: string; docs: BaselineDocument[] }[] {
  let files: string[];
  const st = statSync(path);
  if (st.isDirectory()) {
    files = readdirSync(path, { withFileTypes: true })
      .filter((d) => d.isFile() && /\.ya?ml$/.test(d.name))
      .map((d) => join(path, d.name))
      .sort();
    if (files.length === 0) throw new Error(`no *.yaml files in ${printable(path)}`);
    if (files.length > MAX_FILES) throw new Error(`${files.length} files in ${printable(path)}; at most ${MAX_FILES}`);
  } else files = [path];
  const seen = new Map<string, string>();
  return files.map((file) => {
    const size = statSync(file).size;
    if (size > DOC_LIMITS.textChars) throw new Error(`${printable(file)}: ${size} bytes; at most ${DOC_LIMITS.textChars}`);
    const text = readFileSync(file, 'utf8');
    let docs: BaselineDocument[];
    try {
      docs = parseBaselineDocuments(text);
    } catch (err) {
      if (err instanceof BaselineDocError) throw new Error(`${printable(file)}: ${printable(err.message)}`);
      throw err;
    }
    for (const d of docs) {
      const other = seen.get(d.key);
      if (other !== undefined) throw new Error(`${printable(file)}: ${printable(d.key)} is also in ${printable(other)}`);
      seen.set(d.key, file);
    }
    return { file, text, docs };
  });
}

/** What applying a document would change, against the collector's current view (null: a new key). */
function plan(doc: BaselineDocument, view: BaselineView | null): { add: Entry[]; remove: Entry[]; extra: number; state: string } {
  const current = new Map<string, string>();
  for (const e of view?.entries ?? []) current.set(String(e.id), String(e.status));
  const wanted = new Set(doc.entries.map(entryId));
  const add = doc.entries.filter((e) => {
    const st = current.get(entryId(e));
    return st === undefined || st === 'removed';
  });
  const remove = doc.removed.filter((e) => {
    const st = current.get(entryId(e));
    return st !== 'removed';
  });
  let extra = 0;
  for (const [id, st] of current) if (st !== 'removed' && !wanted.has(id) && !doc.removed.some((e) => entryId(e) === id)) extra++;
  return { add, remove, extra, state: view === null ? `new, ${doc.state}` : view.state === doc.state ? doc.state : `${view.state} → ${doc.state}` };
}

async function importDocuments(api: ApiClient, path: string, dryRun: boolean, json: boolean, io: Io): Promise<number> {
  const files = readDocuments(path);
  if (dryRun) {
    const report: unknown[] = [];
    for (const { file, docs } of files) {
      for (const doc of docs) {
        let view: BaselineView | null = null;
        try {
          view = (await api.call('GET', keyPath(doc.key))) as BaselineView;
        } catch (err) {
          if (!/ answered 404:/.test((err as Error).message)) throw err;
        }
        const p = plan(doc, view);
        report.push({ file, key: doc.key, state: p.state, add: p.add.map(entryId), remove: p.remove.map(entryId), notInDocument: p.extra });
        if (json) continue;
        io.out(`${printable(doc.key)}  (${printable(basename(file))})  ${p.state}: +${p.add.length} -${p.remove.length}${p.extra > 0 ? `, ${p.extra} on the collector not in the document` : ''}`);
        for (const e of p.add) io.out(`  + ${printable(describeEntry(e))}`);
        for (const e of p.remove) io.out(`  - ${printable(describeEntry(e))}`);
      }
    }
    if (json) io.out(JSON.stringify({ dryRun: true, items: report }, null, 2));
    else io.out(`dry run: nothing was changed`);
    return 0;
  }
  const applied: any[] = [];
  for (const { file, text } of files) {
    const r = await api.raw('POST', `${baseUrl}/import`, { text, contentType: 'application/yaml' }).catch((err: Error) => {
      throw new Error(`${printable(file)}: ${err.message}${applied.length > 0 ? ` (the files before it were applied)` : ''}`);
    });
    let body: any = null;
    try {
      body = JSON.parse(r.text);
    } catch {
      // reported below
    }
    if (!Array.isArray(body?.applied)) throw new Error(`${printable(file)}: the collector's answer has no "applied" list`);
    applied.push(...body.applied);
  }
  if (json) return io.out(JSON.stringify({ applied }, null, 2)), 0;
  const rows = [['KEY', 'STATE', 'VERSION', 'ADDED', 'REMOVED']];
  for (const a of applied) rows.push([s(a?.key), s(a?.state), version(a?.version), s(a?.added ?? 0), s(a?.removed ?? 0)]);
  io.out(table(rows));
  return 0;
}

function writeOut(file: string, text: string): void {
  // Written beside the target and renamed: a reader (or git) never sees half a file.
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, file);
}

async function run(args: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      ...CLIENT_OPTIONS,
      state: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      reason: { type: 'string' },
      comment: { type: 'string' },
      format: { type: 'string' },
      selector: { type: 'string' },
      out: { type: 'string' },
      'dry-run': { type: 'boolean' },
      namespace: { type: 'string' },
      prefix: { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return io.out(BASELINES_HELP), 0;
  const [verb, ...operands] = positionals;
  const takes = (n: number) => {
    if ((n < 2 && second !== undefined) || (n < 1 && first !== undefined)) throw new UsageError(`unexpected ${[first, second].slice(n).filter(Boolean).join(' ')}`);
  };
  const reason = values.reason ?? values.comment ?? '';
  if (reason.length > 1000) throw new UsageError('--reason is at most 1000 characters');
  const json = values.json === true;

  if (verb === 'drift') return changeDriftAllowed(createApiClient(values, env), operands, reason, json, io);
  const [first, second, ...extra] = operands;
  if (extra.length > 0) throw new UsageError(`unexpected ${extra.join(' ')}`);

  if (verb === 'list' || verb === undefined) {
    takes(0);
    const api = createApiClient(values, env);
    const page = await api.call('GET', baseUrl);
    const items = (Array.isArray(page?.items) ? page.items : []).filter((b: any) => values.state === undefined || b?.state === values.state);
    if (json) return io.out(JSON.stringify({ ...page, items }, null, 2)), 0;
    if (items.length === 0) return io.out('no baselines'), 0;
    const rows = [['KEY', 'STATE', 'VERSION', 'PROCESSES', 'NETWORK', 'OPEN ALERTS', 'LEARN UNTIL']];
    for (const b of items) rows.push([clip(s(b.key), 60) + (b.partial ? ' (partial)' : ''), s(b.state), version(b.version), s(b.processEntries), s(b.networkEntries), s(b.openAlerts ?? 0), s(b.learnUntil ?? '-')]);
    io.out(table(rows));
    return 0;
  }

  if (verb === 'bulk') {
    // driftwatch baselines bulk lock --namespace shop --state enforcing
    takes(1);
    if (first !== 'lock' && first !== 'unlock' && first !== 'relearn') throw new UsageError('bulk takes lock, unlock or relearn');
    const filter: Record<string, string> = {};
    for (const k of ['namespace', 'prefix', 'state'] as const) if (values[k] !== undefined) filter[k] = values[k] as string;
    if (Object.keys(filter).length === 0) throw new UsageError('bulk needs --namespace, --prefix or --state (all baselines at once is refused)');
    const r = await createApiClient(values, env).call('POST', `${baseUrl}/bulk`, { action: first, filter, reason });
    if (json) return io.out(JSON.stringify(r, null, 2)), 0;
    for (const a of r.applied ?? []) io.out(`${printable(s(a.key))}: ${s(a.state)} (version ${s(a.version)})`);
    for (const k of r.skipped ?? []) io.out(`${printable(s(k.key))}: skipped, ${printable(s(k.reason))}`);
    if ((r.applied ?? []).length === 0 && (r.skipped ?? []).length === 0) io.out('no baseline matched');
    return 0;
  }

  if (verb === 'import') {
    takes(1);
    if (first === undefined) throw new UsageError('import needs a FILE or a DIR of Baseline documents');
    return importDocuments(createApiClient(values, env), first, values['dry-run'] === true, json, io);
  }

  const key = checkKey(first, verb);
  const api = () => createApiClient(values, env);

  if (verb === 'show') {
    takes(1);
    const v = (await api().call('GET', keyPath(key))) as BaselineView;
    if (json) return io.out(JSON.stringify(v, null, 2)), 0;
    showView(v, io);
    // The packages behind its executables and a new image version's changes (issue 22); a collector without SBOM routes says nothing.
    const joined = key === '@host' ? null : await api().call('GET', `${keyPath(key)}/sbom`).catch(() => null);
    if (joined) for (const line of sbomLines(joined)) io.out(line);
    return 0;
  }

  if (verb === 'diff') {
    takes(1);
    const q = new URLSearchParams();
    for (const flag of ['from', 'to'] as const) {
      const v = values[flag];
      if (v === undefined) continue;
      if (!/^\d{1,9}$/.test(v)) throw new UsageError(`--${flag} must be a version number, not ${JSON.stringify(v.slice(0, 40))}`);
      q.set(flag, v);
    }
    const d = await api().call('GET', `${keyPath(key)}/diff${q.size > 0 ? `?${q}` : ''}`);
    if (json) return io.out(JSON.stringify(d, null, 2)), 0;
    io.out(`${printable(key)}: version ${version(d?.from)} → ${version(d?.to)}`);
    const added = Array.isArray(d?.added) ? d.added : [];
    const removed = Array.isArray(d?.removed) ? d.removed : [];
    if (added.length + removed.length === 0) return io.out('no change in entries'), 0;
    for (const e of added) io.out(`+ ${s(e?.summary)}    ${s(e?.id)}`);
    for (const e of removed) io.out(`- ${s(e?.summary)}    ${s(e?.id)}`);
    return 0;
  }

  if (STATE_VERBS.has(verb)) {
    takes(1);
    const r = await api().call('POST', `${keyPath(key)}/${verb}`, { reason });
    if (json) return io.out(JSON.stringify(r, null, 2)), 0;
    io.out(`${printable(key)} is now ${s(r?.state ?? '?')} (version ${version(r?.version)})`);
    return 0;
  }

  if (ENTRY_VERBS.has(verb) || verb === 'add') {
    takes(2);
    if (second === undefined) throw new UsageError(`${verb} needs KEY and ENTRY_ID`);
    const client = api();
    let r: any;
    let id: string;
    if (verb === 'add') {
      let entry: Entry;
      try {
        entry = entryFromId(second);
      } catch {
        throw new UsageError(`${JSON.stringify(second.slice(0, 80))} is not an entry id, e.g. 'exec|/usr/bin/curl|sh|root|-s <...>' or 'egress|tcp|203.0.113.5|443'`);
      }
      id = entryId(entry);
      r = await client.call('POST', `${keyPath(key)}/entries`, { entry, reason });
    } else {
      id = await resolveEntry(client, key, second);
      r = await client.call('POST', `${keyPath(key)}/entries/${encodeURIComponent(id)}/${verb}`, { reason });
    }
    if (json) return io.out(JSON.stringify(r, null, 2)), 0;
    const done = verb === 'approve' ? 'approved' : verb === 'remove' ? 'removed' : 'added';
    io.out(`${done} ${printable(id)} in ${printable(key)} (version ${version(r?.version)})`);
    return 0;
  }

  if (verb === 'export') {
    takes(1);
    const format = values.format ?? 'yaml';
    if (!FORMATS.has(format)) throw new UsageError(`--format is one of yaml, networkpolicy, falco; not ${JSON.stringify(format.slice(0, 40))}`);
    const q = new URLSearchParams({ format });
    if (values.selector !== undefined) {
      try {
        parseSelector(values.selector);
      } catch (err) {
        throw new UsageError(`--selector: ${(err as Error).message.replace(/^selector: /, '')}`);
      }
      q.set('selector', values.selector);
    } else if (format === 'networkpolicy') throw new UsageError('--format networkpolicy needs --selector with the labels of the pods, e.g. --selector app=web');
    const r = await api().raw('GET', `${keyPath(key)}/export?${q}`);
    // Our generators escape every control character; an export that holds one did not come from them.
    if (/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(r.text)) throw new Error("the collector's export holds control characters; not written");
    if (format === 'yaml') {
      // What goes to Git must be importable: check it the way import will.
      try {
        parseBaselineDocuments(r.text);
      } catch (err) {
        throw new Error(`the collector's export is not a valid Baseline document: ${printable((err as Error).message)}`);
      }
    }
    if (values.out === undefined) io.out(r.text.replace(/\n$/, ''));
    else {
      writeOut(values.out, r.text);
      io.err(`wrote ${printable(values.out)}`);
    }
    return 0;
  }

  throw new UsageError(`unknown baselines command ${JSON.stringify(verb.slice(0, 40))}; one of: list, show, diff, lock, unlock, relearn, approve, remove, add, export, import, bulk, drift`);
}

/** Run `driftwatch baselines ARGS`; output through `io` (the console by default). */
export async function runBaselines(args: string[], env: NodeJS.ProcessEnv = process.env, io: Io = { out: (t) => console.log(t), err: (t) => console.error(t) }): Promise<number> {
  try {
    return await run(args, env, io);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`driftwatch baselines: ${(err as Error).message}\n\n${BASELINES_HELP}`);
      return 2;
    }
    io.err(`driftwatch baselines: ${(err as Error).message}`);
    return 1;
  }
}
