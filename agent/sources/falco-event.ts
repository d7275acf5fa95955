/**
 * Falco JSON output → ActivityEvent. One function for every Falco transport (file, http_output,
 * program_output), for events from Driftwatch's rules file and from Falco's stock rules.
 *
 * Every field is hostile: types are checked, strings are bounded, and a record that cannot become a
 * valid event is rejected with a reason (counted by the caller) instead of throwing.
 */
import { UNKNOWN_IMAGE, canonicalRepository, isRuntimeMemfd, parseImageReference, splitArguments, uidFromName, type EventKind, type ExecutableOrigin, type ImageRef, type NetworkInfo } from '../../core/event.js';
import { FIELD_LIMITS, FieldError, ignored, parseTime, rejectionOf, type ParseContext, type ParseResult } from './record.js';

/** Bounds on fields taken from a Falco record. */
export const FALCO_LIMITS = FIELD_LIMITS;

const EXEC_TYPES = new Set(['execve', 'execveat']);
const CONNECT_TYPES = new Set(['connect']);
const ACCEPT_TYPES = new Set(['accept', 'accept4']);
// UDP servers never call listen(): the Driftwatch rules report their bind() instead.
const LISTEN_TYPES = new Set(['listen', 'bind']);

/** Falco writes `<NA>` (and sometimes null) for values it could not resolve. */
function isNA(v: unknown): boolean {
  return v === null || v === undefined || v === '<NA>' || v === 'N/A';
}

// Validators take the value, not the record: every field is read at its own site with a literal
// key, which keeps V8's property-access caches monomorphic (a shared `of[field]` site is
// megamorphic and cost more than JSON.parse itself).
function optString(v: unknown, field: string, max: number): string {
  if (isNA(v)) return '';
  if (typeof v !== 'string') throw new FieldError('wrong_type', `${field} must be a string`);
  return v.length > max ? v.slice(0, max) : v;
}

function optInt(v: unknown, field: string, min: number, max: number): number {
  if (isNA(v)) return -1;
  let n: number;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && /^-?\d{1,12}$/.test(v)) n = Number(v);
  else throw new FieldError('wrong_type', `${field} must be an integer`);
  if (!Number.isInteger(n) || n < min || n > max) throw new FieldError('wrong_type', `${field} out of range`);
  return n;
}

function eventTime(record: Record<string, unknown>, of: Record<string, unknown>): number {
  const t = parseTime(record.time);
  if (Number.isFinite(t)) return t;
  // evt.time is nanoseconds; beyond 2^53 JSON.parse rounds it, which still leaves exact milliseconds.
  const ns = of['evt.time'];
  if (typeof ns === 'number' && Number.isFinite(ns) && ns > 0) return Math.floor(ns / 1e6);
  throw new FieldError('bad_time', record.time === undefined ? 'time is missing' : 'time is not RFC 3339');
}

function kindOf(of: Record<string, unknown>): EventKind {
  const t = of['evt.type'];
  if (typeof t === 'string') {
    if (EXEC_TYPES.has(t)) return 'exec';
    if (CONNECT_TYPES.has(t)) return 'connect';
    if (ACCEPT_TYPES.has(t)) return 'accept';
    if (LISTEN_TYPES.has(t)) return 'listen';
    throw ignored('event_type', `evt.type ${t.slice(0, 32)}`);
  }
  if (!isNA(t)) throw new FieldError('wrong_type', 'evt.type must be a string');
  // Stock rules without evt.type (outputs before rules 2.0 / Falco 0.36): a socket with both ends is
  // taken as an outbound connection; an fd that is a path is a file rule ("Write below binary
  // dir"), not a process start, even though it prints the command line; a command line with no fd
  // is a spawned process.
  const fd = of['fd.name'];
  if (typeof fd === 'string' && fd.includes('->')) return 'connect';
  if (typeof fd === 'string' && fd.startsWith('/')) throw ignored('file_event', 'fd.name is a file');
  if (of['proc.cmdline'] !== undefined || of['proc.exepath'] !== undefined) return 'exec';
  throw ignored('no_activity', 'neither a process nor a connection');
}

function imageOf(of: Record<string, unknown>): ImageRef {
  const repo = optString(of['container.image.repository'], 'container.image.repository', FALCO_LIMITS.name);
  if (repo !== '') {
    return {
      repository: canonicalRepository(repo),
      tag: optString(of['container.image.tag'], 'container.image.tag', FALCO_LIMITS.name),
      digest: optString(of['container.image.digest'], 'container.image.digest', FALCO_LIMITS.name),
    };
  }
  const full = optString(of['container.image'], 'container.image', FALCO_LIMITS.name);
  if (full !== '') return parseImageReference(full);
  return UNKNOWN_IMAGE;
}

/** Falco renders k8s.pod.labels as `key:value, key:value` (sometimes bracketed); an object is accepted too. */
function labelsOf(of: Record<string, unknown>): Record<string, string> {
  const v = of['k8s.pod.labels'];
  const out: Record<string, string> = {};
  if (isNA(v)) return out;
  let pairs: [string, string][];
  if (typeof v === 'object' && !Array.isArray(v)) {
    pairs = Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, typeof x === 'string' ? x : String(x)]);
  } else if (typeof v === 'string') {
    const body = v.trim().replace(/^[[(]|[\])]$/g, '');
    pairs = body === '' ? [] : body.split(',').map((p) => {
      const s = p.trim();
      const i = s.search(/[:=]/);
      return i === -1 ? [s, ''] : [s.slice(0, i), s.slice(i + 1)];
    });
  } else {
    throw new FieldError('wrong_type', 'k8s.pod.labels must be a string or an object');
  }
  for (const [k, x] of pairs.slice(0, FALCO_LIMITS.labels)) {
    if (k !== '') out[k.slice(0, FALCO_LIMITS.name)] = x.slice(0, FALCO_LIMITS.name);
  }
  return out;
}

/** Split `addr:port` or `[v6]:port` (Falco also prints bare IPv6 with the port after the last colon). */
function splitEndpoint(s: string): { address: string; port: number } {
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close === -1 || s.charCodeAt(close + 1) !== 58) throw new FieldError('bad_address', 'fd.name endpoint');
    return { address: s.slice(1, close), port: portOf(s.slice(close + 2)) };
  }
  const colon = s.lastIndexOf(':');
  if (colon === -1) throw new FieldError('bad_address', 'fd.name endpoint has no port');
  return { address: s.slice(0, colon), port: portOf(s.slice(colon + 1)) };
}

function portOf(s: string): number {
  if (s.length === 0 || s.length > 5) throw new FieldError('bad_address', 'fd.name port');
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) throw new FieldError('bad_address', 'fd.name port');
    n = n * 10 + c;
  }
  if (n > 65535) throw new FieldError('bad_address', 'fd.name port');
  return n;
}

function protocolOf(of: Record<string, unknown>): 'tcp' | 'udp' {
  const p = optString(of['fd.l4proto'], 'fd.l4proto', 16).toLowerCase();
  if (p === '' || p === 'tcp') return 'tcp';
  if (p === 'udp') return 'udp';
  throw ignored('protocol', `fd.l4proto ${p}`);
}

interface Endpoint {
  address: string;
  port: number;
  /** A DNS name of this end, when the record gave one. */
  name?: string;
}

function endpoint(ip: unknown, port: unknown, ipField: string, portField: string): Endpoint {
  return { address: optString(ip, ipField, FALCO_LIMITS.name), port: optInt(port, portField, 0, 65535) };
}

function fill(into: Endpoint, from: Endpoint): void {
  if (into.address === '' && !into.name) into.address = from.address;
  if (into.port < 0) into.port = from.port;
}

/**
 * The socket's two ends. Role-based fields come first: fd.name is always `client->server`, and
 * fd.cip/fd.cport/fd.sip/fd.sport name the roles too. fd.lip/fd.lport/fd.rip/fd.rport are chosen
 * by address locality, which is ambiguous when both ends are local (loopback, same-node pods), so
 * they are only a fallback.
 */
function networkOf(of: Record<string, unknown>, kind: EventKind): NetworkInfo {
  const protocol = protocolOf(of);
  const fdName = optString(of['fd.name'], 'fd.name', FALCO_LIMITS.name);
  const byLocality = {
    local: endpoint(of['fd.lip'], of['fd.lport'], 'fd.lip', 'fd.lport'),
    remote: endpoint(of['fd.rip'], of['fd.rport'], 'fd.rip', 'fd.rport'),
  };
  let local: Endpoint;
  let remote: Endpoint;
  if (kind === 'listen') {
    // A listening socket has one end, its own.
    local = fdName !== '' && !fdName.includes('->') ? splitEndpoint(fdName) : { address: '', port: -1 };
    fill(local, endpoint(of['fd.sip'], of['fd.sport'], 'fd.sip', 'fd.sport'));
    fill(local, byLocality.local);
    remote = { address: '', port: -1 };
  } else {
    const client = endpoint(of['fd.cip'], of['fd.cport'], 'fd.cip', 'fd.cport');
    const server = endpoint(of['fd.sip'], of['fd.sport'], 'fd.sip', 'fd.sport');
    const arrow = client.address !== '' && client.port >= 0 && server.address !== '' && server.port >= 0 ? -1 : fdName.indexOf('->');
    if (arrow !== -1) {
      fill(client, splitEndpoint(fdName.slice(0, arrow)));
      fill(server, splitEndpoint(fdName.slice(arrow + 2)));
    }
    // With hostname resolution on, fd.name can hold a name where the address was: keep it as the
    // peer's name, never as an address.
    if (isHostName(client.address)) [client.name, client.address] = [client.address, ''];
    if (isHostName(server.address)) [server.name, server.address] = [server.address, ''];
    // The local end of a connect is the client; of an accept, the server.
    [local, remote] = kind === 'accept' ? [server, client] : [client, server];
    fill(local, byLocality.local);
    fill(remote, byLocality.remote);
  }
  // The peer's name: the role field (the server of a connect, the client of an accept), then the
  // locality one, then a name fd.name held in place of the address.
  let remoteName = '';
  if (kind !== 'listen') {
    remoteName = optString(kind === 'connect' ? of['fd.sip.name'] : of['fd.cip.name'], kind === 'connect' ? 'fd.sip.name' : 'fd.cip.name', FALCO_LIMITS.name);
    if (remoteName === '') remoteName = optString(of['fd.rip.name'], 'fd.rip.name', FALCO_LIMITS.name);
    if (remoteName === '') remoteName = remote.name ?? '';
  }
  if (kind === 'connect' && ((remote.address === '' && remoteName === '') || remote.port < 0)) throw new FieldError('missing_field', 'connect needs the server address (or name) and port (fd.name, fd.sip/fd.sport or fd.rip/fd.rport)');
  if (kind !== 'connect' && local.port < 0) throw new FieldError('missing_field', `${kind} needs the local port (fd.name, fd.sport or fd.lport)`);
  return { protocol, localAddress: local.address, localPort: local.port, remoteAddress: remote.address, remotePort: remote.port, remoteName };
}

/**
 * True for a DNS name in an address's place. Cheaper than parsing every address on the hot path: an
 * IPv6 address has a colon and a name never does; an IPv4 address is digits and dots only.
 */
function isHostName(address: string): boolean {
  if (address === '' || address.includes(':')) return false;
  for (let i = 0; i < address.length; i++) {
    const c = address.charCodeAt(i);
    if (c !== 46 && (c < 48 || c > 57)) return true;
  }
  return false;
}

/** An absolute path, or '' (argv[0] may be any text the process chose). */
function pathOnly(s: string): string {
  return s.charCodeAt(0) === 47 ? s : '';
}

/** Falco prints an unknown uid as (uint32)-1. */
function uidOf(uid: number): number {
  return uid === 4294967295 ? -1 : uid;
}

/** Split command lines, cached: a long-running process repeats its command line on every event. */
const argsCache = new Map<string, readonly string[]>();
const MAX_ARGS_CACHE = 4_096;

/** Split Falco's proc.cmdline (`name arg1 arg2`) into arguments without the name, bounded (core/event's splitArguments rule). */
function argsOf(cmdline: string, of: Record<string, unknown>): readonly string[] {
  if (cmdline !== '') {
    const cached = argsCache.get(cmdline);
    if (cached) return cached;
    const words = splitArguments([cmdline], FALCO_LIMITS.args + 1);
    const out = words.slice(1);
    // Shared between events, so frozen; the cache is emptied when full (cheaper than LRU here).
    Object.freeze(out);
    if (argsCache.size >= MAX_ARGS_CACHE) argsCache.clear();
    argsCache.set(cmdline, out);
    return out;
  }
  const args = optString(of['proc.args'], 'proc.args', FALCO_LIMITS.cmdline);
  return args === '' ? [] : splitArguments([args], FALCO_LIMITS.args);
}

/** The first word of a command line (proc.cmdline starts with proc.name), as a name: its basename. */
function nameFromCmdline(cmdline: string): string {
  const m = /^\s*(\S+)/.exec(cmdline);
  if (!m) return '';
  const word = m[1] as string;
  const slash = word.lastIndexOf('/');
  return (slash === -1 ? word : word.slice(slash + 1)).slice(0, FALCO_LIMITS.name);
}

/**
 * A boolean field. Falco's JSON output (`json_output`, output_fields) renders a BOOL field as a JSON
 * boolean (falcosecurity/libs @ 48dfd53c: userspace/libsinsp/sinsp_filtercheck.cpp:193-194,
 * rawval_to_json), its gRPC outputs API and text as the strings `true`/`false` (same file:422-427,
 * rawval_to_string). Either is taken; anything else is a wrong type. Absent or `<NA>`: null.
 */
function optBool(v: unknown, field: string): boolean | null {
  if (isNA(v)) return null;
  if (v === true || v === 'true') return true;
  if (v === false || v === 'false') return false;
  throw new FieldError('wrong_type', `${field} must be a boolean`);
}

/**
 * The execve exit event's `flags` argument names the executable's properties, `|`-separated
 * (falcosecurity/libs @ 48dfd53c: driver/flags_table.c:567-570, `EXE_WRITABLE`, `EXE_UPPER_LAYER`,
 * `EXE_FROM_MEMFD`, `EXE_LOWER_LAYER`); every stock process rule prints it as `exe_flags=%evt.arg.flags`
 * (falcosecurity/rules @ c72713ee: rules/falco_rules.yaml:1201 and :1263). Only an exec's flags mean this.
 */
function exeFlagsOf(v: unknown): Set<string> | null {
  if (isNA(v)) return null;
  if (typeof v !== 'string') throw new FieldError('wrong_type', 'evt.arg.flags must be a string');
  return new Set(v.slice(0, 256).split('|'));
}

/** Stock rules whose condition is the origin itself, for records that print neither field nor flags. */
const ORIGIN_RULES: ReadonlyMap<string, ExecutableOrigin> = new Map([
  // falcosecurity/rules @ c72713ee: rules/falco_rules.yaml:1185-1198, `proc.is_exe_upper_layer=true`.
  ['Drop and execute new binary in container', 'upper-layer'],
  // falcosecurity/rules @ c72713ee: rules/falco_rules.yaml:1253-1261, `proc.is_exe_from_memfd=true`.
  ['Fileless execution via memfd_create', 'memfd'],
]);

/**
 * Where an exec's executable came from (core/event ExecutableOrigin), from what the record carries,
 * most specific first: memfd, then the upper layer, then the lower layer (the image). The fields
 * (`proc.is_exe_*`, printed by Driftwatch's rules file) and the execve flags say the same thing; the
 * name of a stock rule whose condition is the origin is the fallback. `proc.is_exe_writable` is read
 * (and type-checked) but is no drift: root may write every file of the image, and Falco's own real
 * output shows `EXE_WRITABLE|EXE_LOWER_LAYER` for an image's /bin/busybox. A record that says
 * nothing has no origin; one whose fields are all false is not on overlayfs (a volume, the host): unknown.
 */
function originOf(f: Record<string, unknown>, rule: unknown): ExecutableOrigin | undefined {
  const upper = optBool(f['proc.is_exe_upper_layer'], 'proc.is_exe_upper_layer');
  const lower = optBool(f['proc.is_exe_lower_layer'], 'proc.is_exe_lower_layer');
  const memfd = optBool(f['proc.is_exe_from_memfd'], 'proc.is_exe_from_memfd');
  const writable = optBool(f['proc.is_exe_writable'], 'proc.is_exe_writable');
  const t = f['evt.type'];
  const flags = t === 'execve' || t === 'execveat' ? exeFlagsOf(f['evt.arg.flags']) : null;
  if (memfd === true || flags?.has('EXE_FROM_MEMFD')) {
    // runc's cloned self runs on the host side; its name alone proves nothing (the caller of
    // memfd_create chose it), and proc.pname/proc.aname are comm, which a process sets. Only Falco's
    // cgroup-derived container.id saying `host` does: in a container, a memfd exec is always drift.
    const exepath = f['proc.exepath'];
    return typeof exepath === 'string' && isRuntimeMemfd(exepath) && f['container.id'] === 'host' ? 'unknown' : 'memfd';
  }
  if (upper === true || flags?.has('EXE_UPPER_LAYER')) return 'upper-layer';
  if (lower === true || flags?.has('EXE_LOWER_LAYER')) return 'image';
  const byRule = typeof rule === 'string' ? ORIGIN_RULES.get(rule) : undefined;
  if (byRule !== undefined) return byRule;
  if (upper !== null || lower !== null || memfd !== null || writable !== null || flags !== null) return 'unknown';
  return undefined;
}

/** Convert one parsed Falco JSON record into an event, or say why not. */
export function falcoRecordToEvent(record: unknown, ctx: ParseContext): ParseResult {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return { reject: 'not_object', detail: 'record is not a JSON object' };
  const r = record as Record<string, unknown>;
  const of = r.output_fields;
  if (typeof of !== 'object' || of === null || Array.isArray(of)) {
    return { reject: of === undefined ? 'missing_field' : 'wrong_type', detail: 'output_fields must be an object' };
  }
  const f = of as Record<string, unknown>;
  try {
    if (r.source !== undefined && r.source !== 'syscall') throw ignored('other_source', 'not a syscall event');
    // Falco's own events (drops, metrics snapshots) carry no source in older versions.
    if (typeof r.rule === 'string' && r.rule.startsWith('Falco internal')) throw ignored('other_source', 'a Falco internal event');
    const time = eventTime(r, f);
    const kind = kindOf(f);
    const containerId = optString(f['container.id'], 'container.id', FALCO_LIMITS.name);
    if (containerId === '') throw new FieldError('missing_field', 'container.id');
    const isHost = containerId === 'host';
    const exepath = optString(f['proc.exepath'], 'proc.exepath', FALCO_LIMITS.path);
    // proc.exe is argv[0] ("sh", "nginx: worker process"): an executable only when it is a path.
    const exe = exepath !== '' ? exepath : pathOnly(optString(f['proc.exe'], 'proc.exe', FALCO_LIMITS.path));
    const cmdline = optString(f['proc.cmdline'], 'proc.cmdline', FALCO_LIMITS.cmdline);
    // Stock network rules print the command line and not proc.name ("Contact K8S API Server From
    // Container"): its first word is the name. A connection needs no process name at all.
    const name = optString(f['proc.name'], 'proc.name', FALCO_LIMITS.name) || nameFromCmdline(cmdline);
    if (kind === 'exec' && exe === '' && name === '') throw new FieldError('missing_field', 'proc.exepath, proc.exe, proc.name or proc.cmdline');
    const user = optString(f['user.name'], 'user.name', FALCO_LIMITS.name);
    const parentExe = optString(f['proc.pexepath'], 'proc.pexepath', FALCO_LIMITS.path) || pathOnly(optString(f['proc.pexe'], 'proc.pexe', FALCO_LIMITS.path));
    const namespace = optString(f['k8s.ns.name'], 'k8s.ns.name', FALCO_LIMITS.name);
    const podName = optString(f['k8s.pod.name'], 'k8s.pod.name', FALCO_LIMITS.name);
    const origin = kind === 'exec' ? originOf(f, r.rule) : undefined;
    return {
      time,
      node: ctx.node,
      source: ctx.source,
      container: isHost
        ? null
        : { id: containerId, name: optString(f['container.name'], 'container.name', FALCO_LIMITS.name), image: imageOf(f) },
      pod: isHost || (namespace === '' && podName === '') ? null : { namespace, name: podName, labels: labelsOf(f), workload: '' },
      kind,
      process: {
        pid: optInt(f['proc.pid'], 'proc.pid', 0, 2 ** 32),
        exe,
        name,
        args: argsOf(cmdline, f),
        parentExe,
        parentName: optString(f['proc.pname'], 'proc.pname', FALCO_LIMITS.name),
        // Outputs before user.uid was printed (stock rules print user.name only) still name root.
        uid: uidFromName(uidOf(optInt(f['user.uid'], 'user.uid', 0, 2 ** 32)), user),
        user,
        ...(origin === undefined ? {} : { origin }),
      },
      network: kind === 'exec' ? null : networkOf(f, kind),
    };
  } catch (err) {
    if (err instanceof FieldError) return rejectionOf(err);
    throw err;
  }
}

/** Parse one line of Falco JSON output. */
export function parseFalcoLine(line: string, ctx: ParseContext): ParseResult {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return { reject: 'not_json', detail: 'line is not JSON' };
  }
  return falcoRecordToEvent(record, ctx);
}
