/**
 * Normalization turns volatile values (numbers, hashes, UUIDs, addresses, temp names) into stable
 * placeholders, so that a baseline stays small and a replay of the same workload with fresh values
 * matches it. The placeholders are readable on purpose: reviewers see `--port <num>`, not a hash.
 *
 * | value                                     | becomes        |
 * | ----------------------------------------- | -------------- |
 * | a whole numeric argument (`30`, `-1.5`)   | `<num>`        |
 * | a UUID anywhere                           | `<uuid>`       |
 * | an IPv4 address anywhere                  | `<ip>`         |
 * | a hex run of 8+ with a digit (or 16+)     | `<hex>`        |
 * | a long random-looking token (20+ chars)   | `<rand>`       |
 * | a run of 4+ digits inside a token         | `<n>`          |
 * | a numeric path segment (3+ digits, any under /proc) | `<n>` |
 * | a random-looking name under /tmp, /var/tmp, /dev/shm | `<rand>` |
 * | `key=value`                               | `key=` + the value normalized |
 */

/** Most arguments a process pattern keeps; the rest are summarised as `…(+N)`. */
export const MAX_PATTERN_ARGS = 32;
/** Longest pattern kept, in characters. */
export const MAX_PATTERN_LENGTH = 512;
/** Longest single token kept before it is cut. */
const MAX_TOKEN_LENGTH = 128;

const UUID_RE = /[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/g;
const IPV4_RE = /(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])/g;
const HEX_RE = /(?<![0-9a-zA-Z])(?:0x)?[0-9a-fA-F]{8,}(?![0-9a-zA-Z])/g;
const DIGITS4_RE = /\d{4,}/g;
const NUMBER_RE = /^[-+]?\d+(?:\.\d+)?$/;
const RANDOM_RE = /^[A-Za-z0-9+/_=.-]{20,}$/;
const TEMP_DIRS = ['/tmp/', '/var/tmp/', '/dev/shm/', '/run/user/'];

function hasDigit(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) return true;
  }
  return false;
}

function looksRandom(s: string): boolean {
  if (!RANDOM_RE.test(s)) return false;
  let upper = false;
  let lower = false;
  let digit = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) upper = true;
    else if (c >= 97 && c <= 122) lower = true;
    else if (c >= 48 && c <= 57) digit = true;
  }
  return (upper && lower) || (digit && (upper || lower) && s.length >= 24);
}

function replaceHex(match: string): string {
  if (/^\d+$/.test(match)) return '<n>';
  return match.length >= 16 || hasDigit(match) ? '<hex>' : match;
}

/** Normalize free text inside one token (no path or key=value handling). */
function normalizeText(token: string): string {
  let t = token;
  if (t.length > MAX_TOKEN_LENGTH) t = `${t.slice(0, MAX_TOKEN_LENGTH)}…`;
  if (NUMBER_RE.test(t)) return '<num>';
  if (!hasDigit(t)) {
    if (t.length < 16) return t;
    const r = t.replace(HEX_RE, replaceHex);
    return r !== t ? r : looksRandom(t) ? '<rand>' : t;
  }
  // Structured values first (a UUID is also "random-looking"), then a random token as a whole.
  const r = t.replace(UUID_RE, '<uuid>').replace(IPV4_RE, '<ip>').replace(HEX_RE, replaceHex).replace(DIGITS4_RE, '<n>');
  return r !== t ? r : looksRandom(t) ? '<rand>' : t;
}

/** Whether a temp-dir path segment looks generated (mktemp, random suffixes). */
function randomSegment(segment: string): string {
  if (segment.startsWith('tmp.') && segment.length > 4) return 'tmp.<rand>';
  // Replace alphanumeric runs of 6+ that contain a digit or mix cases: `backup-3f9a2c.sql` → `backup-<rand>.sql`.
  return segment.replace(/[A-Za-z0-9]{6,}/g, (run) => {
    const mixedCase = /[a-z]/.test(run) && /[A-Z]/.test(run);
    return hasDigit(run) || mixedCase ? '<rand>' : run;
  });
}

/** Normalize a file path: volatile segments become placeholders, the rest stays readable. */
export function normalizePath(path: string): string {
  if (path.length === 0) return path;
  const inProc = path.startsWith('/proc/');
  const inTemp = TEMP_DIRS.some((dir) => path.startsWith(dir));
  if (!inProc && !inTemp && !hasDigit(path)) return path;
  const segments = path.split('/');
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i] as string;
    if (seg === '') continue;
    if (/^\d+$/.test(seg)) {
      if (inProc || seg.length >= 3) segments[i] = '<n>';
      continue;
    }
    let out = seg.replace(UUID_RE, '<uuid>').replace(HEX_RE, replaceHex);
    if (inTemp && i >= 2) out = randomSegment(out);
    out = out.replace(DIGITS4_RE, '<n>');
    segments[i] = out;
  }
  return segments.join('/');
}

/** Normalize one argument. */
export function normalizeArg(arg: string): string {
  if (arg.length === 0) return arg;
  const c0 = arg.charCodeAt(0);
  if (c0 === 47 /* / */) return normalizePath(arg.length > 4096 ? arg.slice(0, 4096) : arg);
  const eq = arg.indexOf('=');
  // `--flag=value` and `KEY=value`: keep the key, normalize the value.
  if (eq > 0 && eq < 64) {
    const value = arg.slice(eq + 1);
    return `${arg.slice(0, eq)}=${value.charCodeAt(0) === 47 ? normalizePath(value) : normalizeText(value)}`;
  }
  return normalizeText(arg);
}

/** Normalize an argument vector (without argv[0]) into one bounded, space-joined pattern. */
export function normalizeArgs(args: readonly string[]): string {
  const n = Math.min(args.length, MAX_PATTERN_ARGS);
  let out = '';
  for (let i = 0; i < n; i++) {
    const a = normalizeArg(args[i] as string);
    out = i === 0 ? a : `${out} ${a}`;
    if (out.length > MAX_PATTERN_LENGTH) return `${out.slice(0, MAX_PATTERN_LENGTH)}…`;
  }
  if (args.length > n) out += ` …(+${args.length - n})`;
  return out;
}

/** The coarse classes of user a process runs as; a change of class is a change of behaviour. */
export type UserClass = 'root' | 'system' | 'user' | 'unknown';

/** Classify a uid: 0 is root, below 1000 a system account, above that a regular user. */
export function userClass(uid: number): UserClass {
  if (!Number.isInteger(uid) || uid < 0) return 'unknown';
  if (uid === 0) return 'root';
  return uid < 1000 ? 'system' : 'user';
}

/** The last path segment, the way the kernel's comm would name it (at most 15 characters). */
export function processName(exeOrName: string): string {
  const slash = exeOrName.lastIndexOf('/');
  const base = slash === -1 ? exeOrName : exeOrName.slice(slash + 1);
  return base.length > 15 ? base.slice(0, 15) : base;
}

/**
 * Multi-call binaries: one executable that acts as many programs (busybox and toybox in alpine and
 * distroless-debug images, uutils/coreutils-single), choosing the program from the name it was
 * invoked as or, run under its own name, from its first argument. Basename globs.
 */
export const MULTI_CALL_BINARIES: readonly string[] = Object.freeze(['busybox', 'busybox.*', 'busybox-*', 'toybox', 'coreutils']);

/** Whether a basename is one of MULTI_CALL_BINARIES (a literal check: the list holds simple suffix globs only). */
export function isMultiCall(base: string): boolean {
  return base === 'busybox' || base === 'toybox' || base === 'coreutils' || base.startsWith('busybox.') || base.startsWith('busybox-');
}

/** The program a multi-call binary ran as, and the arguments that are the program's own. */
export interface AppletCall {
  applet: string;
  args: readonly string[];
}

/**
 * The applet an exec of a multi-call binary ran: the invoked name when it differs from the binary's
 * (`/bin/busybox` run through the symlink `/usr/bin/wget`: name `wget`), else the first argument when
 * the binary ran under its own name (`busybox wget URL`: applet `wget`, args `[URL]`), as busybox
 * itself reads it (the basename of that argument). Null when `exe` is not a multi-call binary or no
 * applet is named (`busybox --list`). Applets are cut at 15 characters, as the kernel's comm is, so
 * that both ways of invoking one applet give the same name.
 */
export function appletOf(exe: string, name: string, args: readonly string[]): AppletCall | null {
  const base = processName(stripDeleted(exe));
  if (!isMultiCall(base)) return null;
  const invoked = processName(name);
  if (invoked !== '' && !isMultiCall(invoked) && invoked !== base) return { applet: invoked, args };
  const first = args[0];
  if (first === undefined || first === '' || first.startsWith('-')) return null;
  const applet = processName(first);
  return applet === '' || isMultiCall(applet) ? null : { applet, args: args.slice(1) };
}

const DELETED = ' (deleted)';

/** A path without the kernel's ` (deleted)` suffix for unlinked executables. */
export function stripDeleted(path: string): string {
  return path.endsWith(DELETED) ? path.slice(0, -DELETED.length) : path;
}
