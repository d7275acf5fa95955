/**
 * Severity: a small, ordered rule table that says how urgent a deviation is and why. The first rule
 * whose every condition holds wins. Pure: the caller supplies what the baseline knows (does it run
 * any shell? did anything run as root?) as plain facts, so this module never reaches into the engine.
 */
import { z } from 'zod';
import type { DeviationReason } from './baseline.js';
import type { Entry, NetworkDirection } from './entry.js';
import type { EventKind } from './event.js';
import { classifyAddress, parseIp } from './ip.js';
import type { UserClass } from './normalize.js';

/** How urgent an alert is, most urgent first. */
export type Severity = 'critical' | 'high' | 'medium' | 'low';

/** All severities, most urgent first (validation, sorting, metric labels). */
export const SEVERITIES: readonly Severity[] = ['critical', 'high', 'medium', 'low'];

/**
 * The class of a network entry's peer. Entries hold `cluster`, `loopback`, `any`, `link-local`, a
 * public address, or a DNS name; a DNS name is only kept for addresses outside the cluster ranges
 * (see core/entry peerOf), so it counts as `public`. `unknown` covers `unknown` and `invalid`.
 */
export type PeerClass = 'cluster' | 'loopback' | 'any' | 'link-local' | 'public' | 'unknown';

/** All peer classes, in a stable order. */
export const PEER_CLASSES: readonly PeerClass[] = ['cluster', 'loopback', 'any', 'link-local', 'public', 'unknown'];

/** What the baseline of the deviation's key knows, as facts computed by the caller. */
export interface BaselineFacts {
  /** The baseline has at least one shell or interpreter among its process entries. */
  hasShell: boolean;
  /** The baseline has at least one process entry that ran as root. */
  hasRoot: boolean;
}

/** What classify() looks at: the deviation's entry and reason, the raw executable, and baseline facts. */
export interface SeverityInput {
  kind: EventKind;
  reason: DeviationReason;
  entry: Entry;
  /**
   * The executable as the source reported it, before normalization (entry.exe is normalized); lets
   * rules see ` (deleted)` and `memfd:` names exactly. Defaults to entry.exe.
   */
  exe?: string | undefined;
  baseline: BaselineFacts;
}

/** Conditions of one rule. Every given condition must hold; a list holds when any of its items does. */
export interface SeverityMatch {
  kind?: readonly EventKind[] | undefined;
  /** The deviation reason (`new-executable`, `new-port`, ...). */
  reason?: readonly DeviationReason[] | undefined;
  /** Executable globs (`*`, `?`): with a `/` matched against the whole path, without one against the basename. */
  exe?: readonly string[] | undefined;
  /** Executable path prefixes, such as `/tmp/`. */
  pathPrefix?: readonly string[] | undefined;
  /** The executable was deleted after it started (` (deleted)` suffix) or lives in memory (`memfd:`). */
  deleted?: boolean | undefined;
  peer?: readonly PeerClass[] | undefined;
  direction?: readonly NetworkDirection[] | undefined;
  user?: readonly UserClass[] | undefined;
  /** Holds when BaselineFacts.hasShell equals this value. */
  baselineHasShell?: boolean | undefined;
  /** Holds when BaselineFacts.hasRoot equals this value. */
  baselineHasRoot?: boolean | undefined;
}

/** One row of the table: an id (stable, for routing and exceptions), a severity and the reason shown in the alert. */
export interface SeverityRule {
  id: string;
  severity: Severity;
  reason: string;
  match: SeverityMatch;
}

/** The verdict for one deviation. */
export interface Classification {
  severity: Severity;
  ruleId: string;
  reason: string;
}

/** What classify() returns when no rule matched (a user table without a catch-all). */
export const UNMATCHED: Classification = Object.freeze({ severity: 'medium', ruleId: 'unmatched', reason: 'no severity rule matched this deviation' });

/** Shells, and interpreters that give a shell's power (`python -c`, `perl -e`). Basename globs. */
export const SHELLS_AND_INTERPRETERS: readonly string[] = Object.freeze([
  'sh', 'bash', 'dash', 'ash', 'zsh', 'ksh', 'mksh', 'csh', 'tcsh', 'fish', 'busybox',
  'python', 'python2*', 'python3*', 'perl', 'perl5*', 'ruby', 'ruby[0-9]*', 'php', 'php[0-9]*', 'node', 'nodejs', 'lua', 'lua5*', 'tclsh', 'wish', 'pwsh', 'awk', 'gawk', 'mawk',
]);

/** Package managers of distributions and language ecosystems. Basename globs. */
export const PACKAGE_MANAGERS: readonly string[] = Object.freeze([
  'apt', 'apt-get', 'aptitude', 'dpkg', 'yum', 'dnf', 'microdnf', 'rpm', 'apk', 'zypper', 'pacman',
  'pip', 'pip2', 'pip3', 'pip3.*', 'pipx', 'easy_install', 'npm', 'pnpm', 'yarn', 'gem', 'composer', 'conda', 'mamba',
]);

/** Tools for moving data over the network or probing it. Basename globs. */
export const NETWORK_TOOLS: readonly string[] = Object.freeze([
  'curl', 'wget', 'nc', 'nc.*', 'ncat', 'netcat', 'nmap', 'masscan', 'zmap', 'ssh', 'scp', 'sftp', 'sshpass',
  'socat', 'telnet', 'ftp', 'tftp', 'rsync', 'nslookup', 'dig',
]);

/** Directories anyone can write to; a binary run from there was most likely dropped at runtime. */
export const WRITABLE_DIRS: readonly string[] = Object.freeze(['/tmp/', '/dev/shm/', '/var/tmp/']);

/** The default table, from issue 6. Order matters: the first match wins. */
export const DEFAULT_SEVERITY_RULES: readonly SeverityRule[] = deepFreeze([
  {
    id: 'shell-where-none',
    severity: 'critical',
    reason: 'a shell or interpreter ran in an image whose baseline never runs one',
    match: { kind: ['exec'], exe: SHELLS_AND_INTERPRETERS, baselineHasShell: false },
  },
  {
    id: 'shell-new-parent',
    severity: 'high',
    reason: 'a shell or interpreter ran under a parent that never started one (how remote code execution looks)',
    match: { kind: ['exec'], exe: SHELLS_AND_INTERPRETERS, reason: ['new-parent'] },
  },
  { id: 'package-manager', severity: 'high', reason: 'a package manager ran: software is being installed into a running container', match: { kind: ['exec'], exe: PACKAGE_MANAGERS } },
  { id: 'network-tool', severity: 'high', reason: 'a network tool ran (download, remote shell or scan)', match: { kind: ['exec'], exe: NETWORK_TOOLS } },
  { id: 'writable-dir-binary', severity: 'high', reason: 'a binary ran from a world-writable directory', match: { kind: ['exec'], pathPrefix: WRITABLE_DIRS } },
  { id: 'deleted-binary', severity: 'high', reason: 'a binary ran from a deleted or in-memory file', match: { kind: ['exec'], deleted: true } },
  { id: 'new-listen-port', severity: 'high', reason: 'the container listens on a port its baseline never opened', match: { direction: ['listen'] } },
  { id: 'public-egress', severity: 'high', reason: 'the container connected to a public address its baseline never reached', match: { direction: ['egress'], peer: ['public'] } },
  { id: 'unknown-port-egress', severity: 'high', reason: 'the container connected to a known peer on a port its baseline never used', match: { direction: ['egress'], reason: ['new-port'] } },
  { id: 'root-where-none', severity: 'high', reason: 'a process ran as root in an image whose baseline never runs as root', match: { kind: ['exec'], user: ['root'], baselineHasRoot: false } },
  { id: 'new-process', severity: 'medium', reason: 'a process ran that the baseline does not know', match: { kind: ['exec'] } },
  { id: 'new-cluster-peer', severity: 'low', reason: 'the container talked to an in-cluster peer it never talked to', match: { peer: ['cluster'] } },
  { id: 'other-network', severity: 'medium', reason: 'network behaviour the baseline does not know', match: {} },
]);

/** Classify a deviation: the first rule of `rules` whose conditions all hold, or UNMATCHED. */
export function classify(input: SeverityInput, rules: readonly SeverityRule[] = DEFAULT_SEVERITY_RULES): Classification {
  for (const rule of rules) {
    if (matches(rule.match, input)) return { severity: rule.severity, ruleId: rule.id, reason: rule.reason };
  }
  return UNMATCHED;
}

/** The baseline facts of a list of entries (e.g. a merged baseline's), for callers that hold entries. */
export function baselineFactsOf(entries: Iterable<Entry>): BaselineFacts {
  let hasShell = false;
  let hasRoot = false;
  for (const e of entries) {
    if (e.type !== 'process') continue;
    if (!hasShell && matchesAnyExe(e.exe, SHELLS_AND_INTERPRETERS)) hasShell = true;
    if (e.user === 'root') hasRoot = true;
    if (hasShell && hasRoot) break;
  }
  return { hasShell, hasRoot };
}

/** The class of an entry's peer (see PeerClass). */
export function peerClass(peer: string): PeerClass {
  switch (peer) {
    case 'cluster':
    case 'loopback':
    case 'any':
    case 'link-local':
      return peer;
    case '':
    case 'unknown':
    case 'invalid':
      return 'unknown';
  }
  const ip = parseIp(peer);
  // Entries keep only public addresses literally; classify anyway in case a caller passes a raw one.
  if (ip) return classifyAddress(ip);
  return 'public';
}

function matches(m: SeverityMatch, input: SeverityInput): boolean {
  const entry = input.entry;
  if (m.kind && !m.kind.includes(input.kind)) return false;
  if (m.reason && !m.reason.includes(input.reason)) return false;
  if (m.baselineHasShell !== undefined && m.baselineHasShell !== input.baseline.hasShell) return false;
  if (m.baselineHasRoot !== undefined && m.baselineHasRoot !== input.baseline.hasRoot) return false;
  if (m.exe || m.pathPrefix || m.deleted !== undefined || m.user) {
    if (entry.type !== 'process') return false;
    const raw = input.exe !== undefined && input.exe !== '' ? input.exe : entry.exe;
    const exe = stripDeleted(raw);
    if (m.exe && !matchesAnyExe(exe, m.exe)) return false;
    if (m.pathPrefix && !m.pathPrefix.some((p) => exe.startsWith(p) || raw.startsWith(p))) return false;
    if (m.deleted !== undefined && m.deleted !== isDeleted(raw)) return false;
    if (m.user && !m.user.includes(entry.user)) return false;
  }
  if (m.peer || m.direction) {
    if (entry.type !== 'network') return false;
    if (m.direction && !m.direction.includes(entry.direction)) return false;
    if (m.peer && !m.peer.includes(peerClass(entry.peer))) return false;
  }
  return true;
}

const DELETED_SUFFIX = ' (deleted)';

/** The kernel shows a running binary whose file was unlinked as `/path (deleted)`; fileless ones as `memfd:name`. */
function isDeleted(exe: string): boolean {
  return exe.endsWith(DELETED_SUFFIX) || exe.startsWith('memfd:') || exe.startsWith('/memfd:');
}

function stripDeleted(exe: string): string {
  return exe.endsWith(DELETED_SUFFIX) ? exe.slice(0, -DELETED_SUFFIX.length) : exe;
}

function matchesAnyExe(exe: string, globs: readonly string[]): boolean {
  const slash = exe.lastIndexOf('/');
  const base = slash === -1 ? exe : exe.slice(slash + 1);
  for (const g of globs) if (globMatch(g, g.includes('/') ? exe : base)) return true;
  return false;
}

/**
 * Match `*` (any run), `?` (one character) and `[...]` classes (`[0-9]`, `[!a]`). Iterative with one
 * backtrack point, so it runs in O(pattern × text) at worst on hostile text (no regex is built).
 */
export function globMatch(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    if (p < pattern.length) {
      const c = pattern[p] as string;
      if (c === '*') {
        starP = p++;
        starT = t;
        continue;
      }
      if (c === '?') {
        p++;
        t++;
        continue;
      }
      if (c === '[') {
        const cls = matchClass(pattern, p, text[t] as string);
        if (cls !== null) {
          if (cls.matched) {
            p = cls.end;
            t++;
            continue;
          }
        } else if (c === text[t]) {
          p++;
          t++;
          continue;
        }
      } else if (c === text[t]) {
        p++;
        t++;
        continue;
      }
    }
    if (starP === -1) return false;
    p = starP + 1;
    t = ++starT;
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

/** A glob that matches exactly `text`: each of `*`, `?` and `[` becomes a one-character class. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[]/g, (c) => `[${c}]`);
}

/** Match one character against the class starting at pattern[at] === '['; null when the class is unterminated (then `[` is literal). */
function matchClass(pattern: string, at: number, ch: string): { matched: boolean; end: number } | null {
  let i = at + 1;
  const negate = pattern[i] === '!' || pattern[i] === '^';
  if (negate) i++;
  let matched = false;
  let first = true;
  while (i < pattern.length && (first || pattern[i] !== ']')) {
    first = false;
    const lo = pattern[i] as string;
    if (pattern[i + 1] === '-' && i + 2 < pattern.length && pattern[i + 2] !== ']') {
      const hi = pattern[i + 2] as string;
      if (ch >= lo && ch <= hi) matched = true;
      i += 3;
    } else {
      if (ch === lo) matched = true;
      i++;
    }
  }
  if (i >= pattern.length) return null;
  return { matched: matched !== negate, end: i + 1 };
}

// ---------------------------------------------------------------------------------------------
// User-supplied tables

/** A severity table that cannot be used; `field` names the offending setting (`rules.2.match.exe.0`). */
export class SeverityConfigError extends Error {
  readonly code = 'invalid_severity_rules' as const;
  constructor(readonly field: string, message: string, options?: { cause?: unknown }) {
    super(field === '' ? message : `${field}: ${message}`, options);
    this.name = 'SeverityConfigError';
  }
}

const DEVIATION_REASONS = ['new-executable', 'new-parent', 'new-user', 'new-arguments', 'new-peer', 'new-port', 'new-listen-port', 'new-protocol'] as const satisfies readonly DeviationReason[];
const KINDS = ['exec', 'connect', 'accept', 'listen'] as const satisfies readonly EventKind[];
const DIRECTIONS = ['egress', 'ingress', 'listen'] as const satisfies readonly NetworkDirection[];
const USER_CLASSES = ['root', 'system', 'user', 'unknown'] as const satisfies readonly UserClass[];

/** Lists in a rule are short by nature; the bounds stop a hostile or broken file from growing the table. */
const list = <T extends z.ZodType>(item: T) => z.array(item).min(1).max(256);

/** Schema of one rule's match block; unknown keys are refused. */
export const SeverityMatchSchema = z.strictObject({
  kind: list(z.enum(KINDS)).optional(),
  reason: list(z.enum(DEVIATION_REASONS)).optional(),
  exe: list(z.string().min(1).max(256).regex(/^[^\0\n]+$/, 'must not contain NUL or newlines')).optional(),
  pathPrefix: list(z.string().min(2).max(256).startsWith('/', 'must be an absolute path prefix')).optional(),
  deleted: z.boolean().optional(),
  peer: list(z.enum(PEER_CLASSES as [PeerClass, ...PeerClass[]])).optional(),
  direction: list(z.enum(DIRECTIONS)).optional(),
  user: list(z.enum(USER_CLASSES)).optional(),
  baselineHasShell: z.boolean().optional(),
  baselineHasRoot: z.boolean().optional(),
});

/** Schema of one rule. */
export const SeverityRuleSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be 1-63 lowercase letters, digits or dashes'),
  severity: z.enum(SEVERITIES as [Severity, ...Severity[]]),
  reason: z.string().trim().min(1).max(200),
  match: SeverityMatchSchema.default({}),
});

/**
 * Schema of a user table: `rules` first, then (unless `defaults: false`) the default table after
 * them, so a site adds its own cases without restating ours.
 */
export const SeverityConfigSchema = z.strictObject({
  rules: z.array(SeverityRuleSchema).max(200).default([]),
  defaults: z.boolean().default(true),
});

/** Validate a user-supplied table (parsed YAML/JSON) and return the rules to classify with, frozen. */
export function parseSeverityRules(input: unknown): readonly SeverityRule[] {
  const result = SeverityConfigSchema.safeParse(input ?? {});
  if (!result.success) {
    const issue = result.error.issues[0] as z.core.$ZodIssue;
    const path = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') throw new SeverityConfigError(path === '' ? issue.keys.join(', ') : `${path}.${issue.keys.join(', ')}`, 'unknown setting', { cause: result.error });
    let message = issue.message;
    if (issue.code === 'invalid_value' && 'values' in issue) message = `must be one of: ${(issue.values as unknown[]).join(', ')}`;
    throw new SeverityConfigError(path, message, { cause: result.error });
  }
  const rules: SeverityRule[] = result.data.rules.map((r) => ({ id: r.id, severity: r.severity, reason: r.reason, match: stripUndefined(r.match) }));
  const all = result.data.defaults ? [...rules, ...DEFAULT_SEVERITY_RULES.filter((d) => !rules.some((r) => r.id === d.id))] : rules;
  const seen = new Set<string>();
  for (let i = 0; i < rules.length; i++) {
    const id = (rules[i] as SeverityRule).id;
    if (seen.has(id)) throw new SeverityConfigError(`rules.${i}.id`, `duplicate rule id ${id}`);
    seen.add(id);
  }
  return deepFreeze(all);
}

function stripUndefined(m: z.output<typeof SeverityMatchSchema>): SeverityMatch {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m)) if (v !== undefined) out[k] = v;
  return out as SeverityMatch;
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}
