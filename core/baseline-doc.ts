/**
 * Policy as code: a baseline as a YAML document that lives in Git (`kind: Baseline`), read back
 * strictly; and two enforcement artefacts derived from it that work without Driftwatch, a
 * Kubernetes NetworkPolicy and a Falco rules file. Pure: text in, text out, no I/O.
 *
 * What goes into Git is the desired state only: key, state, the entries, and the entries security
 * removed. Counts, first/last seen, nodes and examples change with every event; in the document
 * they would turn every export into a diff and every pull request into a merge conflict, and hide
 * the one line that matters (a new entry). They go into an optional `status:` block (off by
 * default) that import ignores.
 */
import { createHash } from 'node:crypto';
import { isScalar, parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { DRIFT_ALLOW_LIMITS } from './baseline.js';
import { describeEntry, entryId, generalPeerOf, PUBLIC_PEER, type Entry, type NetworkEntry, type ProcessEntry } from './entry.js';
import { DEFAULT_CLUSTER_CIDRS, NON_GLOBAL_RANGES, parseCidr, parseIp, type Cidr } from './ip.js';
import { MAX_PATTERN_LENGTH } from './normalize.js';
import { quoted, yamlDocument, type YamlMap, type YamlValue } from './yaml-text.js';
import { firstIssue } from './zod-issue.js';

/** apiVersion of a Baseline document. */
export const BASELINE_API_VERSION = 'driftwatch.dev/v1alpha1';
/** Annotation that carries the exact baseline key (metadata.name is a lossy DNS-1123 form of it). */
export const KEY_ANNOTATION = 'driftwatch.dev/key';

/** Bounds of what a document may hold; an entry field's bound is what the agent can produce. */
export const DOC_LIMITS = Object.freeze({
  /** Entries per document, kept and removed together. */
  entries: 10_000,
  /** Documents in one stream or folder. */
  documents: 1_000,
  /** Characters of YAML text in one stream. */
  textChars: 16 * 1024 * 1024,
  key: 1024,
  /** PATH_MAX: an executable path as the kernel reports it. */
  exe: 4096,
  /** comm is 15 bytes; names from other sources are cut at 256 by the agent. */
  parent: 256,
  /** normalizeArgs cuts at MAX_PATTERN_LENGTH and then appends `…` or ` …(+N)`. */
  args: MAX_PATTERN_LENGTH + 32,
  /** A DNS name (253), an address or a range name. */
  peer: 256,
});

/** Review state of a baseline as the collector reports it. */
export type ViewState = 'learning' | 'enforcing' | 'locked' | 'relearn';
/** Review status of one entry. */
export type EntryStatus = 'learned' | 'flagged' | 'approved' | 'added' | 'removed';

/** One entry of a BaselineView: the entry's fields spread in, plus review status and statistics. */
export type BaselineViewEntry = (ProcessEntry | NetworkEntry) & {
  id: string;
  summary: string;
  status: EntryStatus;
  firstSeen: string | null;
  lastSeen: string | null;
  count: number;
  nodes: string[];
  examples: string[];
};

/** What `GET /api/v1/baselines/{key}` returns. */
export interface BaselineView {
  key: string;
  state: ViewState;
  version: number;
  windowStart: string | null;
  learnUntil: string | null;
  enforcingSince: string | null;
  images: { repository: string; tag: string; digest: string }[];
  nodes: string[];
  partial: boolean;
  entries: BaselineViewEntry[];
  /** The key's drift allow list (absent from collectors before it). */
  driftAllowed?: string[];
}

/** State a document can ask for (`relearn` is an action, not a state: it exports as `learning`). */
export type DocumentState = 'learning' | 'enforcing' | 'locked';

/** A parsed Baseline document: the desired state of one key. */
export interface BaselineDocument {
  key: string;
  state: DocumentState;
  /** Entries the baseline allows, sorted by entry id. */
  entries: Entry[];
  /** Entries security removed: never re-learned, they alert. Sorted by entry id. */
  removed: Entry[];
  /** Executable path globs whose drift (a binary not from the image) is allowed for the key; [] when none. */
  driftAllowed: string[];
}

/**
 * A drift allow pattern: a glob (core/severity globMatch) on the executable's path when it holds a
 * `/` (then absolute), else on its basename; printable, bounded, never "anything". The collector's
 * API takes the same.
 */
export const DriftPatternSchema = z
  .string()
  .min(1)
  .max(DRIFT_ALLOW_LIMITS.length)
  .regex(/^[^\0\n\r]+$/, 'must not contain NUL or line breaks')
  .refine((p) => !p.includes('/') || p.startsWith('/'), 'a pattern with a / must be an absolute path glob')
  .refine((p) => p.replace(/[*?/]/g, '') !== '', 'must name something more than "anything"');

/** Why a document or view was refused. */
export type BaselineDocErrorCode = 'not_yaml' | 'invalid_document' | 'too_large' | 'not_expressible';

/** A refused document: `path` names the field (`spec.processes.3.user`), `document` the 0-based index in a stream. */
export class BaselineDocError extends Error {
  constructor(
    readonly code: BaselineDocErrorCode,
    readonly path: string,
    message: string,
    readonly document?: number,
    options?: { cause?: unknown },
  ) {
    super(`${document === undefined ? '' : `document ${document + 1}: `}${path === '' ? '' : `${path}: `}${message}`, options);
    this.name = 'BaselineDocError';
  }
}

// ---------------------------------------------------------------------------------------------
// Schemas

const NO_NUL = (s: string) => !s.includes('\0');
const WELL_FORMED = (s: string) => !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
const text = (min: number, max: number) =>
  z.string().min(min).max(max).refine(NO_NUL, 'must not contain NUL').refine(WELL_FORMED, 'must be well-formed Unicode');
const NO_SPACE_OR_CONTROL = /^[^\s\u0000-\u001f\u007f-\u009f]+$/;

const ProcessSpec = z.strictObject({
  exe: text(1, DOC_LIMITS.exe),
  /** The applet of a multi-call binary (core/entry ProcessEntry.applet); absent for other executables. */
  applet: text(1, 64).optional(),
  parent: text(0, DOC_LIMITS.parent),
  user: z.enum(['root', 'system', 'user', 'unknown']),
  args: text(0, DOC_LIMITS.args),
});
const NetworkSpec = z.strictObject({
  direction: z.enum(['egress', 'ingress', 'listen']),
  protocol: z.enum(['tcp', 'udp']),
  peer: text(1, DOC_LIMITS.peer).regex(NO_SPACE_OR_CONTROL, 'must not contain spaces or control characters'),
  port: z.number().int().min(0).max(65535),
});
const EntryLists = z.strictObject({
  processes: z.array(ProcessSpec).max(DOC_LIMITS.entries).default([]),
  network: z.array(NetworkSpec).max(DOC_LIMITS.entries).default([]),
});
const KeySchema = text(1, DOC_LIMITS.key).regex(/^[^\s\u0000-\u001f\u007f-\u009f]+$/, 'must not contain spaces or control characters');
const DNS1123 = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const StringMap = z.record(z.string().max(317), z.string().max(64 * 1024)).refine((m) => Object.keys(m).length <= 64, 'at most 64 keys');

const BaselineDocumentSchema = z.strictObject({
  apiVersion: z.literal(BASELINE_API_VERSION),
  kind: z.literal('Baseline'),
  metadata: z.strictObject({
    name: z.string().max(253).regex(DNS1123, 'must be a DNS-1123 name (lower case letters, digits, - and .)'),
    labels: StringMap.optional(),
    annotations: StringMap.optional(),
  }),
  spec: z.strictObject({
    key: KeySchema,
    state: z.enum(['learning', 'enforcing', 'locked']),
    processes: EntryLists.shape.processes,
    network: EntryLists.shape.network,
    removed: EntryLists.default({ processes: [], network: [] }),
    driftAllowed: z.array(DriftPatternSchema).max(DRIFT_ALLOW_LIMITS.patterns).optional(),
  }),
  /** Informational (counts, times, version); ignored on import. */
  status: z.record(z.string(), z.unknown()).optional(),
});

/** Schemas of a view's entry fields, used to refuse a hostile view before it reaches a document. */
const ViewProcess = ProcessSpec.extend({ type: z.literal('process') });
const ViewNetwork = NetworkSpec.extend({ type: z.literal('network') });

function refuse(result: { error: z.ZodError }, prefix: string, document?: number): never {
  // zod's own words (`Unrecognized key: "color"`): a document names the field, not a setting.
  const { path, issue } = firstIssue(result.error);
  throw new BaselineDocError('invalid_document', [prefix, path].filter((p) => p !== '').join('.'), issue.message, document);
}

/** The entry a view entry stands for, validated; its id is recomputed from the fields. */
function viewEntry(e: unknown, index: number): Entry {
  const fields = pickEntryFields(e);
  const r = (fields as { type?: unknown } | null)?.type === 'process' ? ViewProcess.safeParse(fields) : ViewNetwork.safeParse(fields);
  if (!r.success) refuse(r, `entries.${index}`);
  const v = r.data;
  return v.type === 'process'
    ? { type: 'process', exe: v.exe, ...(v.applet !== undefined && { applet: v.applet }), parent: v.parent, user: v.user, args: v.args }
    : { type: 'network', direction: v.direction, protocol: v.protocol, peer: v.peer, port: v.port };
}

function pickEntryFields(e: unknown): unknown {
  if (e === null || typeof e !== 'object') return e;
  const o = e as Record<string, unknown>;
  return o.type === 'process'
    ? { type: o.type, exe: o.exe, applet: o.applet, parent: o.parent, user: o.user, args: o.args }
    : { type: o.type, direction: o.direction, protocol: o.protocol, peer: o.peer, port: o.port };
}

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

interface SplitView {
  kept: { id: string; entry: Entry; source: BaselineViewEntry }[];
  removed: { id: string; entry: Entry; source: BaselineViewEntry }[];
}

/** A view's entries validated, deduplicated by id (removed wins) and sorted by id. */
function splitView(view: BaselineView): SplitView {
  if (!Array.isArray(view.entries)) throw new BaselineDocError('invalid_document', 'entries', 'must be a list');
  if (view.entries.length > DOC_LIMITS.entries) throw new BaselineDocError('too_large', 'entries', `${view.entries.length} entries; at most ${DOC_LIMITS.entries}`);
  const kept = new Map<string, SplitView['kept'][number]>();
  const removed = new Map<string, SplitView['kept'][number]>();
  view.entries.forEach((e, i) => {
    const entry = viewEntry(e, i);
    const id = entryId(entry);
    if (e.status === 'removed') {
      removed.set(id, { id, entry, source: e });
      kept.delete(id);
    } else if (!removed.has(id)) kept.set(id, { id, entry, source: e });
  });
  return { kept: [...kept.values()].sort(byId), removed: [...removed.values()].sort(byId) };
}

function viewKey(view: BaselineView): string {
  const r = KeySchema.safeParse(view.key);
  if (!r.success) refuse(r, 'key');
  return r.data;
}

// ---------------------------------------------------------------------------------------------
// Baseline documents

/**
 * A stable DNS-1123 label for a key: a readable slug plus 8 hex digits of the key's SHA-256, so
 * that keys which slug alike (`a/b` and `a-b`) never share a name. At most 63 characters.
 */
export function baselineName(key: string): string {
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 8);
  const slug = key
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, 63 - 9)
    .replace(/^-+|-+$/g, '');
  return slug === '' ? `baseline-${hash}` : `${slug}-${hash}`;
}

/** An RFC 3339 time from the wire, or null: bounded so that a hostile value cannot bloat the status. */
function time(v: unknown): string | null {
  return typeof v === 'string' && v.length <= 40 ? v : null;
}

function processSpec(e: ProcessEntry): YamlMap {
  return { exe: e.exe, ...(e.applet && { applet: e.applet }), parent: e.parent, user: e.user, args: e.args };
}

function networkSpec(e: NetworkEntry): YamlMap {
  return { direction: e.direction, protocol: e.protocol, peer: e.peer, port: e.port };
}

function entryLists(entries: readonly { entry: Entry }[]): { processes: YamlMap[]; network: YamlMap[] } {
  return {
    processes: entries.flatMap(({ entry }) => (entry.type === 'process' ? [processSpec(entry)] : [])),
    network: entries.flatMap(({ entry }) => (entry.type === 'network' ? [networkSpec(entry)] : [])),
  };
}

/** Options of toBaselineDocument. */
export interface BaselineDocumentOptions {
  /** Add a `status:` block with the statistics (churns on every export; off by default). */
  status?: boolean;
}

/**
 * A baseline as a `kind: Baseline` YAML document. Entries are sorted by id within each list so
 * that the same desired state always gives the same bytes. Throws a BaselineDocError when the
 * view holds something a document cannot (a malformed entry from the wire).
 */
export function toBaselineDocument(view: BaselineView, options: BaselineDocumentOptions = {}): string {
  const key = viewKey(view);
  const { kept, removed } = splitView(view);
  const state: DocumentState = view.state === 'locked' || view.state === 'enforcing' ? view.state : 'learning';
  const doc: YamlMap = {
    apiVersion: BASELINE_API_VERSION,
    kind: 'Baseline',
    metadata: { name: baselineName(key), annotations: { [KEY_ANNOTATION]: key } },
    spec: { key, state, ...entryLists(kept), removed: entryLists(removed), ...driftAllowedOf(view) },
    status: options.status
      ? {
          version: Number.isSafeInteger(view.version) ? view.version : null,
          partial: view.partial === true,
          windowStart: time(view.windowStart),
          learnUntil: time(view.learnUntil),
          enforcingSince: time(view.enforcingSince),
          images: (Array.isArray(view.images) ? view.images : []).slice(0, 32).map((i) => `${i.repository}${i.tag ? `:${i.tag}` : ''}${i.digest ? `@${i.digest}` : ''}`),
          entries: [...kept, ...removed].map(({ id, source }) => ({
            id,
            status: source.status,
            count: Number.isSafeInteger(source.count) ? source.count : 0,
            firstSeen: time(source.firstSeen),
            lastSeen: time(source.lastSeen),
            nodes: (Array.isArray(source.nodes) ? source.nodes : []).slice(0, 32).map((n) => String(n).slice(0, 253)),
          })),
        }
      : undefined,
  };
  const head = [`Driftwatch baseline of ${quoted(key)}: the desired state, for Git.`, 'Apply with `driftwatch baselines import FILE_OR_DIR`; entries under `removed` stay removed (they alert).'];
  if (view.partial) head.push('partial: containers were already running when learning began; start-up behaviour may be missing.');
  return yamlDocument(doc, head);
}

function specEntries(lists: z.infer<typeof EntryLists>): Entry[] {
  return [
    ...lists.processes.map((p): Entry => ({ type: 'process', exe: p.exe, ...(p.applet !== undefined && { applet: p.applet }), parent: p.parent, user: p.user, args: p.args })),
    ...lists.network.map((n): Entry => ({ type: 'network', direction: n.direction, protocol: n.protocol, peer: n.peer, port: n.port })),
  ];
}

/** Refuse a duplicate entry, naming where it repeats. */
function checkUnique(doc: z.infer<typeof BaselineDocumentSchema>, index: number | undefined): void {
  const seen = new Map<string, string>();
  const walk = (lists: z.infer<typeof EntryLists>, at: string) => {
    lists.processes.forEach((p, i) => add(entryId({ type: 'process', ...p }), `${at}.processes.${i}`));
    lists.network.forEach((n, i) => add(entryId({ type: 'network', ...n }), `${at}.network.${i}`));
  };
  const add = (id: string, path: string) => {
    const first = seen.get(id);
    if (first !== undefined) throw new BaselineDocError('invalid_document', path, `the same entry as ${first}`, index);
    seen.set(id, path);
  };
  walk({ processes: doc.spec.processes, network: doc.spec.network }, 'spec');
  walk(doc.spec.removed, 'spec.removed');
}

/** Count the entries before validating them: validating 10 million is the cost the bound avoids. */
function countEntries(js: unknown): number {
  const spec = (js as { spec?: { processes?: unknown; network?: unknown; removed?: { processes?: unknown; network?: unknown } } } | null)?.spec;
  const len = (v: unknown) => (Array.isArray(v) ? v.length : 0);
  return len(spec?.processes) + len(spec?.network) + len(spec?.removed?.processes) + len(spec?.removed?.network);
}

function toDocument(js: unknown, index: number | undefined): BaselineDocument {
  const total = countEntries(js);
  if (total > DOC_LIMITS.entries) throw new BaselineDocError('too_large', 'spec', `${total} entries; at most ${DOC_LIMITS.entries}`, index);
  const r = BaselineDocumentSchema.safeParse(js);
  if (!r.success) refuse(r, '', index);
  const d = r.data;
  const annotated = d.metadata.annotations?.[KEY_ANNOTATION];
  if (annotated !== undefined && annotated !== d.spec.key) {
    throw new BaselineDocError('invalid_document', `metadata.annotations.${KEY_ANNOTATION}`, `is ${JSON.stringify(annotated.slice(0, 200))} but spec.key is ${JSON.stringify(d.spec.key.slice(0, 200))}`, index);
  }
  checkUnique(d, index);
  const sort = (list: Entry[]) => list.map((e) => ({ id: entryId(e), e })).sort(byId).map(({ e }) => e);
  return {
    key: d.spec.key,
    state: d.spec.state,
    entries: sort(specEntries({ processes: d.spec.processes, network: d.spec.network })),
    removed: sort(specEntries(d.spec.removed)),
    driftAllowed: [...new Set(d.spec.driftAllowed ?? [])].sort(),
  };
}

/** A view's drift allow list as the document's `spec.driftAllowed` (validated, sorted), or nothing when empty. */
function driftAllowedOf(view: BaselineView): { driftAllowed?: string[] } {
  const list = Array.isArray(view.driftAllowed) ? view.driftAllowed : [];
  if (list.length === 0) return {};
  const r = z.array(DriftPatternSchema).max(DRIFT_ALLOW_LIMITS.patterns).safeParse(list);
  if (!r.success) refuse(r, 'driftAllowed');
  return { driftAllowed: [...new Set(r.data)].sort() };
}

/**
 * Every Baseline document in a YAML stream (documents separated by `---`; empty documents are
 * skipped). Strict: unknown fields, wrong types, duplicate entries, YAML aliases and more than
 * DOC_LIMITS are refused with a BaselineDocError naming the document and the field.
 */
export function parseBaselineDocuments(text: string): BaselineDocument[] {
  if (typeof text !== 'string') throw new BaselineDocError('not_yaml', '', 'not text');
  if (text.length > DOC_LIMITS.textChars) throw new BaselineDocError('too_large', '', `${text.length} characters; at most ${DOC_LIMITS.textChars}`);
  // No aliases at all (maxAliasCount 0): a hand-written baseline never needs one and they are the
  // classic expansion bomb. Unique keys are the default; a repeated key is an error.
  const docs = parseAllDocuments(text, { prettyErrors: true, strict: true, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [];
  if (list.length > DOC_LIMITS.documents) throw new BaselineDocError('too_large', '', `${list.length} documents; at most ${DOC_LIMITS.documents}`);
  const out: BaselineDocument[] = [];
  list.forEach((doc, i) => {
    const error = doc.errors[0] ?? doc.warnings[0];
    if (error) throw new BaselineDocError('not_yaml', '', `line ${(error.linePos?.[0].line ?? 0) || '?'}: ${error.message.split('\n')[0]}`, i, { cause: error });
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) return;
    let js: unknown;
    try {
      js = doc.toJS({ maxAliasCount: 0 });
    } catch (err) {
      throw new BaselineDocError('not_yaml', '', (err as Error).message, i, { cause: err });
    }
    out.push(toDocument(js, list.length > 1 ? i : undefined));
  });
  return out;
}

/** Exactly one Baseline document. */
export function parseBaselineDocument(text: string): BaselineDocument {
  const docs = parseBaselineDocuments(text);
  if (docs.length !== 1) throw new BaselineDocError('invalid_document', '', `expected one Baseline document, found ${docs.length}`);
  return docs[0] as BaselineDocument;
}

// ---------------------------------------------------------------------------------------------
// NetworkPolicy

/** Options of toNetworkPolicy. */
export interface NetworkPolicyOptions {
  /** Labels that select the image's pods (`{ app: 'web' }`); required, a policy for every pod is never meant. */
  podSelector: Readonly<Record<string, string>>;
  /** Namespace of the policy; omitted when not given (kubectl apply -n). */
  namespace?: string;
  /** metadata.name; default `driftwatch-` + baselineName(key). */
  name?: string;
}

const LABEL_KEY = /^(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(?:[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Parse `app=web,tier=front` into labels, refusing what Kubernetes would. */
export function parseSelector(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  if (text.length > 4096) throw new BaselineDocError('invalid_document', 'selector', 'too long');
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const k = (eq === -1 ? part : part.slice(0, eq)).trim();
    const v = eq === -1 ? null : part.slice(eq + 1).trim();
    if (v === null || !LABEL_KEY.test(k) || k.length > 317 || !LABEL_VALUE.test(v)) {
      throw new BaselineDocError('invalid_document', 'selector', `${JSON.stringify(part.slice(0, 100))} is not label=value`);
    }
    if (Object.hasOwn(labels, k)) throw new BaselineDocError('invalid_document', 'selector', `${k} given twice`);
    labels[k] = v;
  }
  return labels;
}

/** How a peer can be written in a NetworkPolicy. */
type PolicyPeer = { kind: 'cidrs'; cidrs: string[] } | { kind: 'public' } | { kind: 'cluster' } | { kind: 'skip' } | { kind: 'unexpressed'; why: string };

function policyPeer(peer: string): PolicyPeer {
  if (peer === 'cluster') return { kind: 'cluster' };
  if (peer === PUBLIC_PEER) return { kind: 'public' };
  if (peer === 'loopback' || peer === 'any') return { kind: 'skip' };
  if (peer === 'link-local') return { kind: 'cidrs', cidrs: ['169.254.0.0/16', 'fe80::/10'] };
  const ip = parseIp(peer);
  if (ip) return { kind: 'cidrs', cidrs: [`${peer}/${ip.version === 4 ? 32 : 128}`].map((c) => parseCidr(c).text) };
  if (peer.includes('/')) {
    try {
      return { kind: 'cidrs', cidrs: [parseCidr(peer).text] };
    } catch {
      return { kind: 'unexpressed', why: 'not an address range' };
    }
  }
  if (peer === 'unknown' || peer === 'invalid') return { kind: 'unexpressed', why: 'the source did not report the address' };
  return { kind: 'unexpressed', why: 'a DNS name: NetworkPolicy selects by address and labels only' };
}

function peerObjects(p: PolicyPeer): YamlMap[] {
  if (p.kind === 'cluster') return [{ namespaceSelector: {} }];
  if (p.kind === 'cidrs') return p.cidrs.map((cidr) => ({ ipBlock: { cidr } }));
  // The class: every address but those that are not globally routable (private, CGNAT, ULA...).
  if (p.kind === 'public') return ([4, 6] as const).map((v) => ({ ipBlock: { cidr: v === 4 ? '0.0.0.0/0' : '::/0', except: [...NON_GLOBAL_RANGES[v]] } }));
  return [];
}

/** Rules for one direction: one rule per peer, ports sorted; `null` peer means any source. */
function policyRules(entries: readonly NetworkEntry[], side: 'to' | 'from', unexpressed: string[]): YamlMap[] {
  const byPeer = new Map<string, { peer: PolicyPeer | null; ports: Map<string, YamlMap> }>();
  for (const e of entries) {
    const peer = e.direction === 'listen' ? null : policyPeer(e.peer);
    if (peer && (peer.kind === 'skip' || peer.kind === 'unexpressed')) {
      if (peer.kind === 'unexpressed') unexpressed.push(`${e.direction} ${e.protocol} ${e.peer}:${e.port} (${peer.why})`);
      continue;
    }
    if (e.port < 1) {
      unexpressed.push(`${e.direction} ${e.protocol} ${e.peer}:${e.port} (no service port)`);
      continue;
    }
    const k = peer === null ? '' : peer.kind === 'cluster' || peer.kind === 'public' ? peer.kind : peer.cidrs.join(',');
    let rule = byPeer.get(k);
    if (!rule) byPeer.set(k, (rule = { peer, ports: new Map() }));
    rule.ports.set(`${e.protocol}/${String(e.port).padStart(5, '0')}`, { protocol: e.protocol.toUpperCase(), port: e.port });
  }
  return [...byPeer.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, r]) => {
      const ports = [...r.ports.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, p]) => p);
      return r.peer === null ? { ports } : { [side]: peerObjects(r.peer), ports };
    });
}

/**
 * A `networking.k8s.io/v1` NetworkPolicy (YAML) that allows what the baseline's network entries
 * allow, for the pods the caller's labels select. Egress: public addresses as /32 or /128
 * ipBlocks, `cluster` as every namespace, DNS to kube-dns always when anything egresses; DNS
 * names cannot be expressed and are listed in an annotation. Ingress: from the peers of
 * `ingress` entries on their ports; a listening port nobody was seen connecting to is open to
 * any source. Loopback and unspecified peers need no rule.
 */
export function toNetworkPolicy(view: BaselineView, options: NetworkPolicyOptions): string {
  const key = viewKey(view);
  const selector = options.podSelector;
  const labels = Object.entries(selector ?? {});
  if (labels.length === 0) throw new BaselineDocError('invalid_document', 'podSelector', 'give the labels of the pods (e.g. app=web)');
  for (const [k, v] of labels) {
    if (!LABEL_KEY.test(k) || !LABEL_VALUE.test(v)) throw new BaselineDocError('invalid_document', `podSelector.${k.slice(0, 100)}`, 'is not a valid label');
  }
  if (options.namespace !== undefined && !DNS_LABEL.test(options.namespace)) throw new BaselineDocError('invalid_document', 'namespace', 'must be a DNS-1123 label');
  const name = options.name ?? `driftwatch-${baselineName(key)}`;
  if (name.length > 253 || !DNS1123.test(name)) throw new BaselineDocError('invalid_document', 'name', 'must be a DNS-1123 name');
  const network = splitView(view).kept.flatMap(({ entry }) => (entry.type === 'network' ? [entry] : []));
  const unexpressed: string[] = [];
  const egressEntries = network.filter((e) => e.direction === 'egress');
  const egress = policyRules(egressEntries, 'to', unexpressed);
  if (egressEntries.length > 0) {
    // Resolvers are reached by UDP datagrams the agent may never see as a connect.
    egress.push({
      to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
      ports: [
        { protocol: 'UDP', port: 53 },
        { protocol: 'TCP', port: 53 },
      ],
    });
  }
  const inbound = network.filter((e) => e.direction === 'ingress');
  const served = new Set(inbound.map((e) => `${e.protocol}/${e.port}`));
  // A listening socket bound to loopback serves only the pod itself; one whose clients were seen
  // is covered by their ingress rules.
  const listens = network.filter((e) => e.direction === 'listen' && e.peer !== 'loopback' && !served.has(`${e.protocol}/${e.port}`));
  const ingress = [...policyRules(inbound, 'from', unexpressed), ...policyRules(listens, 'from', unexpressed)];
  const annotations: Record<string, string> = { [KEY_ANNOTATION]: key };
  if (unexpressed.length > 0) annotations['driftwatch.dev/not-expressed'] = unexpressed.sort().join('; ');
  // Blocks and classes stand for many addresses: name them, so a reviewer of the policy sees what is broad.
  const generalized = network.filter((e) => e.direction !== 'listen' && generalPeerOf(e.peer) !== null).map((e) => describeEntry(e)).sort();
  if (generalized.length > 0) annotations['driftwatch.dev/generalized'] = generalized.join('; ');
  const policy: YamlMap = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: options.namespace, labels: { 'app.kubernetes.io/managed-by': 'driftwatch' }, annotations },
    spec: { podSelector: { matchLabels: { ...selector } }, policyTypes: ['Ingress', 'Egress'], ingress, egress },
  };
  const head = [
    `NetworkPolicy derived by Driftwatch from the network baseline of ${quoted(key)}.`,
    '`cluster` peers are allowed to every pod in every namespace (the baseline does not say which); host-network peers need ipBlocks.',
  ];
  if (unexpressed.length > 0) head.push(`Not expressible (see the annotation driftwatch.dev/not-expressed): ${unexpressed.length} entries; DNS names need ipBlocks or a CNI FQDN policy.`);
  if (generalized.length > 0) {
    head.push(`Generalized from many addresses (see the annotation driftwatch.dev/generalized): ${generalized.length} entries; ${PUBLIC_PEER} is every globally routable address, as ipBlocks 0.0.0.0/0 and ::/0 except the non-global ranges.`);
  }
  return yamlDocument(policy, head);
}

// ---------------------------------------------------------------------------------------------
// Falco rules

/** Options of toFalcoRules. */
export interface FalcoRulesOptions {
  /** The in-cluster ranges that `cluster` peers stand for; default the agent's default. */
  clusterCidrs?: readonly string[];
}

// Falco's condition lexer ends a quoted string at the first quote not preceded by a backslash,
// even an escaped one (`"a\\"` does not end), and pastes list items into conditions as text,
// substituting any list name found between blanks, parentheses, commas or `=` — inside quoted
// strings too. So a value is written only when it needs no escape and holds none of those
// delimiters; anything else is skipped with a comment rather than escaped.
const FALCO_SAFE = /^[!#-&*-+\-./0-9:;<>?@A-Z[\]^_`a-z{|}~]+$/;
const GLOB_META = /[*?[\]]/;
const PLACEHOLDER = /<(?:n|num|hex|uuid|rand|ip)>/g;

/** A value as a Falco quoted string, or null when it cannot be written safely. */
export function falcoString(value: string): string | null {
  return value.length > 0 && value.length <= 4096 && FALCO_SAFE.test(value) ? `"${value}"` : null;
}

/** A normalized path with placeholders (`/tmp/tmp.<rand>`) as a Falco glob, or null. */
function falcoGlob(value: string): string | null {
  const literal = value.split(PLACEHOLDER);
  if (literal.some((part) => GLOB_META.test(part) || part.includes('<') || part.includes('>'))) return null;
  return falcoString(literal.join('*'));
}

/** Repository names under which runtimes report an image Driftwatch keys as `docker.io/library/x`. */
function repositoryAliases(repository: string): string[] {
  const out = new Set([repository]);
  const hub = /^docker\.io\/(.+)$/.exec(repository);
  if (hub) {
    const rest = hub[1] as string;
    out.add(rest);
    out.add(`index.docker.io/${rest}`);
    if (rest.startsWith('library/')) out.add(rest.slice('library/'.length));
  }
  return [...out].sort();
}

/** The image condition of a key: repository (with aliases), plus tag or digest in those key modes. */
function imageCondition(key: string, id: string): { lists: YamlMap[]; condition: string } {
  if (key === '@host') return { lists: [], condition: '(container.id = host)' };
  let repository = key;
  let extra = '';
  const at = key.indexOf('@');
  const colon = key.lastIndexOf(':');
  if (at !== -1) {
    const digest = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,256}$/.test(key.slice(at + 1)) ? falcoString(key.slice(at + 1)) : null;
    repository = key.slice(0, at);
    if (digest === null) throw new BaselineDocError('not_expressible', 'key', 'the digest cannot be written in a Falco condition');
    extra = ` and container.image.digest = ${digest}`;
  } else if (colon > key.lastIndexOf('/')) {
    const tag = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(key.slice(colon + 1)) ? falcoString(key.slice(colon + 1)) : null;
    repository = key.slice(0, colon);
    if (tag === null) throw new BaselineDocError('not_expressible', 'key', 'the tag cannot be written in a Falco condition');
    extra = ` and container.image.tag = ${tag}`;
  }
  if (!/^[a-z0-9][a-z0-9._\-/:]*$/.test(repository)) throw new BaselineDocError('not_expressible', 'key', `${quoted(repository.slice(0, 200))} is not an image repository Falco can match`);
  const items = repositoryAliases(repository).map((r) => falcoString(r) as string);
  return {
    lists: [{ list: `${id}_repositories`, items }],
    condition: `(container.id != host and container.image.repository in (${id}_repositories)${extra})`,
  };
}

/**
 * A Falco rules file that enforces a baseline without Driftwatch: an alert for every program in
 * the image's containers that is not one of the baseline's executables (matched by path, the
 * parent, user and arguments are not checked), and for every outbound connection to a peer and
 * port the baseline does not hold. Priority CRITICAL for a locked baseline, WARNING otherwise.
 * Values that cannot be written safely in Falco's condition language are skipped and listed in
 * comments; a skipped executable or peer then alerts, which errs on the safe side.
 */
export function toFalcoRules(view: BaselineView, options: FalcoRulesOptions = {}): string {
  const key = viewKey(view);
  const id = `dwb_${baselineName(key).replace(/-/g, '_')}`;
  const image = imageCondition(key, id);
  const kept = splitView(view).kept.map(({ entry }) => entry);
  const skipped: string[] = [];

  const exes = new Set<string>();
  const globs = new Set<string>();
  const applets = new Set<string>();
  for (const e of kept) {
    if (e.type !== 'process') continue;
    const hasPlaceholder = PLACEHOLDER.test(e.exe);
    PLACEHOLDER.lastIndex = 0;
    const written = hasPlaceholder ? falcoGlob(e.exe) : falcoString(e.exe);
    // An applet of busybox is its own program: allowing `/bin/busybox` would allow every applet.
    // Falco's proc.name is the comm, the applet when run through its symlink; `busybox wget` alerts.
    const applet = e.applet ? falcoString(e.applet) : null;
    if (written === null || (e.applet && applet === null)) skipped.push(`executable ${quoted(e.exe.slice(0, 300))}${e.applet ? ` (${quoted(e.applet.slice(0, 64))})` : ''}: cannot be written safely in a Falco condition`);
    else if (applet !== null) applets.add(`(proc.exepath ${hasPlaceholder ? 'glob' : '='} ${written} and proc.name = ${applet})`);
    else (hasPlaceholder ? globs : exes).add(written);
  }
  const allowedProcess = [`proc.exepath in (${id}_allowed_exes)`, ...[...globs].sort().map((g) => `proc.exepath glob ${g}`), ...[...applets].sort()].join(' or ');

  const clusterCidrs = (options.clusterCidrs ?? DEFAULT_CLUSTER_CIDRS).map((c) => parseCidr(c).text);
  const clauses = new Set<string>();
  let cluster = false;
  for (const e of kept) {
    if (e.type !== 'network' || e.direction !== 'egress') continue;
    const where = `egress ${e.protocol} ${quoted(e.peer.slice(0, 300))}:${e.port}`;
    const port = `fd.l4proto = ${e.protocol} and fd.sport = ${e.port}`;
    if (e.peer === 'loopback' || e.peer === 'any') continue;
    if (e.peer === 'cluster') {
      cluster = true;
      clauses.add(`(${port} and fd.snet in (${id}_cluster_ranges))`);
    } else if (e.peer === 'link-local') clauses.add(`(${port} and (fd.snet = "169.254.0.0/16" or fd.snet = "fe80::/10"))`);
    else if (parseIp(e.peer)) clauses.add(`(${port} and fd.sip = ${falcoString(e.peer) ?? '"?"'})`);
    else if (e.peer === PUBLIC_PEER) {
      // Any globally routable address: not a non-global range and not the cluster's.
      const ranges = [...new Set([...NON_GLOBAL_RANGES[4], ...NON_GLOBAL_RANGES[6], ...clusterCidrs].map((c) => parseCidr(c).text))].map((c) => `fd.snet = "${c}"`);
      clauses.add(`(${port} and not (${ranges.join(' or ')}))`);
    }
    else if (e.peer.includes('/')) {
      let cidr: Cidr | null = null;
      try {
        cidr = parseCidr(e.peer);
      } catch {
        // reported below
      }
      if (cidr) clauses.add(`(${port} and fd.snet = "${cidr.text}")`);
      else skipped.push(`${where}: not an address range`);
    } else if (e.peer === 'unknown' || e.peer === 'invalid') skipped.push(`${where}: the source did not report the address`);
    else {
      const name = falcoString(e.peer);
      // Falco resolves the names of fd.sip.name comparisons itself; an answer that differs from
      // the pod's (CDNs, split horizon) alerts, which errs on the safe side.
      if (name !== null && /^[a-z0-9.-]+$/.test(e.peer)) clauses.add(`(${port} and fd.sip.name = ${name})`);
      else skipped.push(`${where}: cannot be written safely in a Falco condition`);
    }
  }
  const allowedEgress = ['fd.snet = "127.0.0.0/8"', 'fd.sip = "::1"', ...[...clauses].sort()].join(' or ');

  const priority = view.state === 'locked' ? 'CRITICAL' : 'WARNING';
  const who = 'container_id=%container.id container_name=%container.name image=%container.image.repository tag=%container.image.tag digest=%container.image.digest k8s_ns_name=%k8s.ns.name k8s_pod_name=%k8s.pod.name node=%evt.hostname';
  const rules: YamlValue[] = [
    { 'required_engine_version': '0.40.0' },
    ...image.lists,
    { list: `${id}_allowed_exes`, items: [...exes].sort() },
    { list: `${id}_cluster_ranges`, items: cluster ? clusterCidrs.map((c) => `"${c}"`) : [] },
    { macro: `${id}_container`, condition: image.condition },
    { macro: `${id}_spawned_process`, condition: '(evt.type in (execve, execveat) and evt.rawres = 0)' },
    { macro: `${id}_outbound`, condition: '(evt.type = connect and (fd.typechar = 4 or fd.typechar = 6) and (evt.rawres >= 0 or evt.res = EINPROGRESS))' },
    { macro: `${id}_allowed_process`, condition: `(${allowedProcess})` },
    { macro: `${id}_allowed_egress`, condition: `(${allowedEgress})` },
    {
      rule: `Driftwatch: unexpected process in ${key}`,
      desc: `A program ran in a container of ${key} whose executable is not in its Driftwatch baseline (version ${Number.isSafeInteger(view.version) ? view.version : '?'}).`,
      condition: `${id}_spawned_process and ${id}_container and not ${id}_allowed_process`,
      output: `Driftwatch: unexpected process in ${key} | proc_exepath=%proc.exepath proc_cmdline=%proc.cmdline proc_pid=%proc.pid proc_pexepath=%proc.pexepath proc_pname=%proc.pname user_name=%user.name user_uid=%user.uid ${who}`,
      priority,
      source: 'syscall',
      tags: ['driftwatch', 'baseline', 'process', 'mitre_execution'],
    },
    {
      rule: `Driftwatch: unexpected outbound connection from ${key}`,
      desc: `A container of ${key} connected to a peer and port that are not in its Driftwatch baseline.`,
      condition: `${id}_outbound and ${id}_container and not ${id}_allowed_egress`,
      output: `Driftwatch: unexpected outbound connection from ${key} | connection=%fd.name fd_l4proto=%fd.l4proto fd_sip=%fd.sip fd_sport=%fd.sport fd_sip_name=%fd.sip.name proc_exepath=%proc.exepath proc_cmdline=%proc.cmdline proc_pid=%proc.pid user_name=%user.name ${who}`,
      priority,
      source: 'syscall',
      tags: ['driftwatch', 'baseline', 'network', 'mitre_command_and_control'],
    },
  ];
  const head = [
    `Falco rules generated by Driftwatch from the baseline of ${quoted(key)} (state ${view.state}).`,
    'Self-contained (its lists and macros are prefixed with the baseline name); load it with -r or rules_files.',
    'Processes are matched by executable path only; normalized paths (<n>, <rand>, ...) become globs.',
  ];
  if (view.state !== 'locked') head.push('The baseline is not locked: it may still change; export again after locking it.');
  if (skipped.length > 0) head.push('Not expressed (these alert when they happen):', ...skipped.sort().map((s) => `  ${s}`));
  return yamlDocument(rules, head);
}
