/**
 * Tetragon event → ActivityEvent. One function for the JSON export (one GetEventsResponse per line,
 * protojson with snake_case names) and for messages decoded from the gRPC stream (same keys; wrapped
 * integers arrive as `{value}` and times as `{seconds, nanos}` there, plain numbers and RFC 3339
 * strings in JSON).
 *
 * Read: `process_exec` (exec); `process_kprobe` for `tcp_connect` (connect), `inet_csk_accept`
 * (accept; the accepted socket is the function's return value), `inet_csk_listen_start` (listen),
 * and `udp_sendmsg` / `udpv6_sendmsg` (a UDP datagram sent: a connect over udp), as produced by
 * daemonset/tetragon/driftwatch-tracingpolicy.yaml; and the network events of the Isovalent
 * (enterprise) builds, `process_connect` ({source,destination}_{ip,port}, protocol `TCP`/`UDP`)
 * and `process_listen` ({ip, port, protocol}), as recorded in cilium/tetragon's
 * docs/security-observability-with-ebpf (fixtures/real/). `process_exit`, `process_close`,
 * `process_sock_stats` and `tcp_close` end something learned from its start: they are ignored and
 * counted by reason, as is every other event kind.
 *
 * Every field is hostile: types are checked, strings and lists are bounded, and a record that cannot
 * become an event is rejected with a reason instead of throwing.
 */
import { parseIp } from '../../core/ip.js';
import { UNKNOWN_IMAGE, parseImageReference, splitArguments, uidFromName, type EventKind, type ExecutableOrigin, type ImageRef, type NetworkInfo, type PodInfo } from '../../core/event.js';
import { processName } from '../../core/normalize.js';
import { FIELD_LIMITS, FieldError, ignored, parseTime, rejectionOf, type IgnoreReason, type ParseContext, type ParseResult } from './record.js';

/** Bounds on fields taken from a Tetragon record (the same as for Falco's). */
export const TETRAGON_LIMITS = FIELD_LIMITS;

/** Kernel functions read from process_kprobe events, and the kind each one means. */
export const TETRAGON_FUNCTIONS: Readonly<Record<string, EventKind | null>> = Object.freeze({
  tcp_connect: 'connect',
  inet_csk_accept: 'accept',
  inet_csk_listen_start: 'listen',
  // A UDP datagram sent (IPv4 and IPv6 sockets): the peer is the destination the caller named
  // (msg_name, a sockaddr argument) or, on a connected socket, the socket's remote end.
  udp_sendmsg: 'connect',
  udpv6_sendmsg: 'connect',
  // Closing a connection adds nothing a baseline learns; recognised so it is counted as unsupported.
  tcp_close: null,
});

/** Event kinds of a GetEventsResponse that this converter knows, in the order they are looked for. */
const EVENT_KEYS = ['process_exec', 'process_kprobe', 'process_connect', 'process_listen', 'process_exit', 'process_close', 'process_sock_stats', 'process_tracepoint', 'process_uprobe', 'process_lsm', 'process_loader', 'process_throttle', 'process_usdt'] as const;

/** Event kinds read, and why each of the others is ignored. */
const IGNORED_KEYS: Readonly<Record<string, IgnoreReason>> = Object.freeze({
  process_exit: 'process_exit',
  process_close: 'process_close',
  process_sock_stats: 'socket_stats',
});

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optObj(v: unknown, field: string): Obj | null {
  if (v === undefined || v === null) return null;
  if (!isObj(v)) throw new FieldError('wrong_type', `${field} must be an object`);
  return v;
}

function optString(v: unknown, field: string, max: number): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new FieldError('wrong_type', `${field} must be a string`);
  return v.length > max ? v.slice(0, max) : v;
}

/** A uint32: a number in JSON, `{value}` (google.protobuf.UInt32Value) from gRPC; -1 when absent. */
function optUint(v: unknown, field: string, max: number): number {
  if (v === undefined || v === null) return -1;
  const n = isObj(v) ? v.value : v;
  if (n === undefined) return 0; // a wrapper without value is proto3's zero
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > max) throw new FieldError('wrong_type', `${field} must be an unsigned integer up to ${max}`);
  return n;
}

/** RFC 3339 (JSON) or {seconds, nanos} (gRPC Timestamp) → ms. */
function timeOf(v: unknown): number {
  if (typeof v === 'string') {
    const t = parseTime(v);
    if (Number.isFinite(t)) return t;
    throw new FieldError('bad_time', 'time is not RFC 3339');
  }
  if (isObj(v)) {
    const s = typeof v.seconds === 'string' && /^-?\d{1,12}$/.test(v.seconds) ? Number(v.seconds) : v.seconds ?? 0;
    const ns = v.nanos ?? 0;
    if (typeof s === 'number' && Number.isInteger(s) && s > 0 && s < 1e11 && typeof ns === 'number' && Number.isInteger(ns) && ns >= 0 && ns < 1e9) {
      return s * 1000 + Math.floor(ns / 1e6);
    }
    throw new FieldError('bad_time', 'time is not a valid Timestamp');
  }
  throw new FieldError('bad_time', v === undefined ? 'time is missing' : 'time must be a string or a Timestamp');
}

/**
 * Split Tetragon's `arguments`: arguments joined by spaces, one containing a space wrapped in double
 * quotes (Tetragon does not escape quotes inside, so an unbalanced quote runs to the end).
 */
export function splitTetragonArguments(s: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < s.length && out.length < TETRAGON_LIMITS.args) {
    if (s.charCodeAt(i) === 32) {
      i++;
      continue;
    }
    if (s.charCodeAt(i) === 34) {
      const close = s.indexOf('" ', i + 1);
      const end = close === -1 ? (s.endsWith('"') && s.length > i + 1 ? s.length - 1 : s.length) : close;
      out.push(s.slice(i + 1, end));
      i = end + 1;
      continue;
    }
    const sp = s.indexOf(' ', i);
    const end = sp === -1 ? s.length : sp;
    out.push(s.slice(i, end));
    i = end;
  }
  return out;
}

/** `containerd://<64 hex>` → the first 12 characters of the id, as Falco's container.id has it. */
function shortContainerId(id: string): string {
  const scheme = id.indexOf('://');
  const bare = scheme === -1 ? id : id.slice(scheme + 3);
  // Falco (the other source of the same events) and `docker ps` name containers by 12 characters;
  // one length keeps attribution and deviation ids the same whichever tool saw the container.
  return bare.slice(0, 12);
}

function imageOf(image: Obj | null): ImageRef {
  if (!image) return UNKNOWN_IMAGE;
  const name = optString(image.name, 'image.name', TETRAGON_LIMITS.name);
  const id = optString(image.id, 'image.id', TETRAGON_LIMITS.name);
  // name is `repo:tag` as the pod spec says it; id is `repo@sha256:…` (or a bare `sha256:…`).
  const ref = parseImageReference(name !== '' ? name : id);
  if (ref.digest === '') {
    const at = id.indexOf('@');
    const digest = at !== -1 ? id.slice(at + 1) : id.startsWith('sha256:') ? id : '';
    return { ...ref, digest };
  }
  return ref;
}

function labelsOf(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const labels = optObj(v, 'pod.pod_labels');
  if (!labels) return out;
  let n = 0;
  for (const k in labels) {
    if (n++ >= TETRAGON_LIMITS.labels) break;
    const x = labels[k];
    if (typeof x === 'string' && k !== '') out[k.slice(0, TETRAGON_LIMITS.name)] = x.slice(0, TETRAGON_LIMITS.name);
  }
  return out;
}

function podOf(pod: Obj): PodInfo | null {
  const namespace = optString(pod.namespace, 'pod.namespace', TETRAGON_LIMITS.name);
  const name = optString(pod.name, 'pod.name', TETRAGON_LIMITS.name);
  if (namespace === '' && name === '') return null;
  const workload = optString(pod.workload, 'pod.workload', TETRAGON_LIMITS.name);
  const kind = optString(pod.workload_kind, 'pod.workload_kind', TETRAGON_LIMITS.name);
  return { namespace, name, labels: labelsOf(pod.pod_labels), workload: workload === '' ? '' : kind === '' ? workload : `${kind}/${workload}` };
}

function protocolOf(sock: Obj): 'tcp' | 'udp' {
  const p = optString(sock.protocol, 'sock_arg.protocol', 32);
  if (p === 'IPPROTO_TCP' || p === '') return 'tcp';
  if (p === 'IPPROTO_UDP') return 'udp';
  throw ignored('protocol', `sock_arg.protocol ${p}`);
}

/** The kprobe's arguments (only the first few: a policy selects one or two). */
function argsOf(kprobe: Obj): Obj[] {
  const args = kprobe.args;
  if (args !== undefined && args !== null && !Array.isArray(args)) throw new FieldError('wrong_type', 'process_kprobe.args must be a list');
  const out: Obj[] = [];
  for (const a of (args ?? []).slice(0, 8)) {
    const arg = optObj(a, 'process_kprobe.args[]');
    if (arg) out.push(arg);
  }
  return out;
}

/** The socket of a kprobe: the return value for inet_csk_accept, else the first sock argument. */
function sockOf(kprobe: Obj, kind: EventKind): Obj {
  if (kind === 'accept') {
    const ret = optObj(kprobe.return, 'process_kprobe.return');
    const sock = ret ? optObj(ret.sock_arg, 'return.sock_arg') : null;
    if (sock) return sock;
  }
  for (const arg of argsOf(kprobe)) {
    const sock = optObj(arg.sock_arg, 'args[].sock_arg');
    if (sock) return sock;
  }
  throw new FieldError('missing_field', `${kind} needs a sock_arg`);
}

/** A struct sock's saddr/sport are the local end and daddr/dport the remote one, whatever the role. */
function networkOf(sock: Obj, kind: EventKind): NetworkInfo {
  const family = optString(sock.family, 'sock_arg.family', 32);
  if (family !== '' && family !== 'AF_INET' && family !== 'AF_INET6') throw ignored('family', `sock_arg.family ${family}`);
  const protocol = protocolOf(sock);
  const localAddress = optString(sock.saddr, 'sock_arg.saddr', TETRAGON_LIMITS.name);
  const remoteAddress = optString(sock.daddr, 'sock_arg.daddr', TETRAGON_LIMITS.name);
  // proto3 JSON omits a zero port; absent means 0 there, never "unknown".
  const localPort = Math.max(0, optUint(sock.sport, 'sock_arg.sport', 65535));
  const remotePort = Math.max(0, optUint(sock.dport, 'sock_arg.dport', 65535));
  if (kind === 'connect' && (remoteAddress === '' || remotePort === 0)) throw new FieldError('missing_field', 'connect needs sock_arg.daddr and sock_arg.dport');
  if (kind !== 'connect' && localPort === 0) throw new FieldError('missing_field', `${kind} needs sock_arg.sport`);
  if (kind === 'listen') return { protocol, localAddress, localPort, remoteAddress: '', remotePort: -1, remoteName: '' };
  return { protocol, localAddress, localPort, remoteAddress, remotePort, remoteName: '' };
}

/**
 * The destination named by a `sockaddr_arg` ({family, addr, port}), or null when it names none:
 * a send on a connected socket has no msg_name, which Tetragon reports as family AF_UNSPEC and addr
 * "invalid IP" (or leaves out). An address that is not an IP literal is refused, not guessed.
 */
function destinationOf(sockaddr: Obj | null): { address: string; port: number } | null {
  if (!sockaddr) return null;
  const family = optString(sockaddr.family, 'sockaddr_arg.family', 32);
  if (family !== 'AF_INET' && family !== 'AF_INET6') return null;
  const addr = optString(sockaddr.addr, 'sockaddr_arg.addr', TETRAGON_LIMITS.name);
  const port = Math.max(0, optUint(sockaddr.port, 'sockaddr_arg.port', 65535));
  if (addr === '' && port === 0) return null;
  if (parseIp(addr) === null) throw new FieldError('bad_address', 'sockaddr_arg.addr is not an IP address');
  if (port === 0) throw new FieldError('missing_field', 'sockaddr_arg.port');
  return { address: addr, port };
}

/** A UDP send: the local end from the socket, the peer from msg_name, else from the (connected) socket. */
function udpSendOf(kprobe: Obj): NetworkInfo {
  let sock: Obj | null = null;
  let sockaddr: Obj | null = null;
  for (const arg of argsOf(kprobe)) {
    sock ??= optObj(arg.sock_arg, 'args[].sock_arg');
    sockaddr ??= optObj(arg.sockaddr_arg, 'args[].sockaddr_arg');
  }
  if (!sock) throw new FieldError('missing_field', 'a UDP send needs a sock_arg');
  const family = optString(sock.family, 'sock_arg.family', 32);
  if (family !== '' && family !== 'AF_INET' && family !== 'AF_INET6') throw ignored('family', `sock_arg.family ${family}`);
  const protocol = optString(sock.protocol, 'sock_arg.protocol', 32);
  // udp_sendmsg also serves UDP-Lite sockets; those are not UDP peers Driftwatch learns.
  if (protocol !== 'IPPROTO_UDP' && protocol !== '') throw ignored('protocol', `sock_arg.protocol ${protocol}`);
  const localAddress = optString(sock.saddr, 'sock_arg.saddr', TETRAGON_LIMITS.name);
  const localPort = Math.max(0, optUint(sock.sport, 'sock_arg.sport', 65535));
  let peer = destinationOf(sockaddr);
  if (!peer) {
    const daddr = optString(sock.daddr, 'sock_arg.daddr', TETRAGON_LIMITS.name);
    const dport = Math.max(0, optUint(sock.dport, 'sock_arg.dport', 65535));
    // An unconnected socket's remote end is the unspecified address and port 0: no peer at all.
    const ip = parseIp(daddr);
    if (daddr !== '' && ip === null) throw new FieldError('bad_address', 'sock_arg.daddr is not an IP address');
    if (dport === 0 || ip === null || ip.bytes.every((b) => b === 0)) throw new FieldError('missing_field', 'a UDP send needs sockaddr_arg or a connected sock_arg (daddr and dport)');
    peer = { address: daddr, port: dport };
  }
  return { protocol: 'udp', localAddress, localPort: localPort === 0 ? -1 : localPort, remoteAddress: peer.address, remotePort: peer.port, remoteName: '' };
}

/** `TCP` / `UDP` of the enterprise network events (the kprobe sockets say `IPPROTO_TCP`). */
function flatProtocolOf(v: unknown): 'tcp' | 'udp' {
  const p = optString(v, 'protocol', 32);
  if (p === 'TCP' || p === 'IPPROTO_TCP') return 'tcp';
  if (p === 'UDP' || p === 'IPPROTO_UDP') return 'udp';
  throw ignored('protocol', `protocol ${p.slice(0, 16)}`);
}

/** An address that must be an IP literal, or ''. */
function ipField(v: unknown, field: string): string {
  const a = optString(v, field, TETRAGON_LIMITS.name);
  if (a !== '' && parseIp(a) === null) throw new FieldError('bad_address', `${field} is not an IP address`);
  return a;
}

/** process_connect: the socket's two ends at the top level of the event. */
function connectOf(body: Obj): NetworkInfo {
  const protocol = flatProtocolOf(body.protocol);
  const remoteAddress = ipField(body.destination_ip, 'destination_ip');
  const remotePort = Math.max(0, optUint(body.destination_port, 'destination_port', 65535));
  if (remoteAddress === '' || remotePort === 0) throw new FieldError('missing_field', 'process_connect needs destination_ip and destination_port');
  const localPort = optUint(body.source_port, 'source_port', 65535);
  return { protocol, localAddress: ipField(body.source_ip, 'source_ip'), localPort: localPort <= 0 ? -1 : localPort, remoteAddress, remotePort, remoteName: '' };
}

/** process_listen: `{ip, port, protocol}` of the listening socket. */
function listenOf(body: Obj): NetworkInfo {
  const protocol = flatProtocolOf(body.protocol);
  const localPort = Math.max(0, optUint(body.port, 'port', 65535));
  if (localPort === 0) throw new FieldError('missing_field', 'process_listen needs port');
  return { protocol, localAddress: ipField(body.ip, 'ip'), localPort, remoteAddress: '', remotePort: -1, remoteName: '' };
}

/**
 * Where an exec's binary came from, from `process.binary_properties` (cilium/tetragon @ 4fbfe2d7:
 * api/v1/tetragon/tetragon.proto:166-180; "only available on ProcessExec events", :291). Its `file`
 * is set only for a binary with no link left on disk (pkg/process/process.go:385-392: `Ino != 0 &&
 * Nlink == 0`; tetragon.proto:155, "If zero means the file is only in memory"): a memfd, shared
 * memory, or a deleted file. Tetragon does not tell these apart (its docs show a memfd exec and a
 * deleted binary alike, `/proc/self/fd/N` with `links: 0`: docs/content/en/docs/policy-library/
 * observability/_index.md:330 and :370), so it is `deleted` unless the binary's own name says memfd.
 * A linked binary is `unknown`: Tetragon does not say which overlay layer holds it. `setuid`, `setgid`
 * and `privileges_changed` are privilege facts, not origin: type-checked, not used here.
 */
function originOf(proc: Obj): ExecutableOrigin | undefined {
  const props = optObj(proc.binary_properties, 'process.binary_properties');
  if (!props) return undefined;
  optUint(props.setuid, 'binary_properties.setuid', 2 ** 32 - 1);
  optUint(props.setgid, 'binary_properties.setgid', 2 ** 32 - 1);
  if (props.privileges_changed !== undefined && props.privileges_changed !== null && !Array.isArray(props.privileges_changed)) throw new FieldError('wrong_type', 'binary_properties.privileges_changed must be a list');
  const file = optObj(props.file, 'binary_properties.file');
  const inode = file ? optObj(file.inode, 'binary_properties.file.inode') : null;
  if (!inode) return 'unknown';
  const links = optUint(inode.links, 'binary_properties.file.inode.links', 2 ** 32 - 1);
  if (links !== 0) return 'unknown';
  const binary = typeof proc.binary === 'string' ? proc.binary : '';
  return binary.startsWith('memfd:') || binary.startsWith('/memfd:') ? 'memfd' : 'deleted';
}

/** Convert one Tetragon event (parsed JSON or a decoded gRPC message) into an event, or say why not. */
export function tetragonRecordToEvent(record: unknown, ctx: ParseContext): ParseResult {
  if (!isObj(record)) return { reject: 'not_object', detail: 'record is not a JSON object' };
  try {
    let key: (typeof EVENT_KEYS)[number] | undefined;
    for (const k of EVENT_KEYS) {
      if (record[k] !== undefined && record[k] !== null) {
        key = k;
        break;
      }
    }
    if (key === undefined) {
      for (const k in record) if (k.startsWith('process_')) throw ignored('event_type', k.slice(0, 64));
      throw new FieldError('unsupported', 'no known event in the record', 'event_type');
    }
    if (Object.hasOwn(IGNORED_KEYS, key)) throw ignored(IGNORED_KEYS[key] as IgnoreReason, key);
    if (key !== 'process_exec' && key !== 'process_kprobe' && key !== 'process_connect' && key !== 'process_listen') throw ignored('event_type', key);
    const body = optObj(record[key], key) as Obj;
    let kind: EventKind = key === 'process_connect' ? 'connect' : key === 'process_listen' ? 'listen' : 'exec';
    let udpSend = false;
    if (key === 'process_kprobe') {
      const fn = optString(body.function_name, 'process_kprobe.function_name', 128);
      const k = Object.hasOwn(TETRAGON_FUNCTIONS, fn) ? TETRAGON_FUNCTIONS[fn] : undefined;
      if (!k) throw ignored('kprobe_function', `function ${fn.slice(0, 64)}`);
      kind = k;
      udpSend = fn === 'udp_sendmsg' || fn === 'udpv6_sendmsg';
    }
    const time = timeOf(record.time);
    const proc = optObj(body.process, `${key}.process`);
    if (!proc) throw new FieldError('missing_field', `${key}.process`);
    const exe = optString(proc.binary, 'process.binary', TETRAGON_LIMITS.path);
    if (exe === '') throw new FieldError('missing_field', 'process.binary');
    const parent = optObj(body.parent, `${key}.parent`);
    const parentExe = parent ? optString(parent.binary, 'parent.binary', TETRAGON_LIMITS.path) : '';
    const pod = optObj(proc.pod, 'process.pod');
    const container = pod ? optObj(pod.container, 'pod.container') : null;
    const fullId = container ? optString(container.id, 'pod.container.id', TETRAGON_LIMITS.name) : '';
    // Without a pod, `docker` still names the container (plain containerd/Docker, or a pod Tetragon
    // has not resolved yet): attribution completes the image from a later event or the runtime.
    const containerId = shortContainerId(fullId !== '' ? fullId : optString(proc.docker, 'process.docker', TETRAGON_LIMITS.name));
    const userObj = optObj(proc.user, 'process.user');
    const user = userObj ? optString(userObj.name, 'process.user.name', TETRAGON_LIMITS.name) : '';
    const uid = optUint(proc.uid, 'process.uid', 2 ** 32 - 1);
    const origin = key === 'process_exec' ? originOf(proc) : undefined;
    return {
      time,
      node: ctx.node,
      source: ctx.source,
      container:
        containerId === ''
          ? null
          : { id: containerId, name: container ? optString(container.name, 'pod.container.name', TETRAGON_LIMITS.name) : '', image: imageOf(container ? optObj(container.image, 'pod.container.image') : null) },
      pod: containerId !== '' && pod ? podOf(pod) : null,
      kind,
      process: {
        pid: optUint(proc.pid, 'process.pid', 2 ** 32 - 1),
        exe,
        // The name as the kernel's comm has it (basename, 15 characters), as Falco's proc.name.
        name: processName(exe),
        // Quoted arguments are unquoted, then split at whitespace like every source's (core/event.ts).
        args: splitArguments(splitTetragonArguments(optString(proc.arguments, 'process.arguments', TETRAGON_LIMITS.cmdline)), TETRAGON_LIMITS.args),
        parentExe,
        parentName: processName(parentExe),
        // Tetragon, like Falco, reports an unknown id as (uint32)-1.
        uid: uidFromName(uid === 4294967295 ? -1 : uid, user),
        user,
        ...(origin === undefined ? {} : { origin }),
      },
      network: kind === 'exec' ? null : key === 'process_connect' ? connectOf(body) : key === 'process_listen' ? listenOf(body) : udpSend ? udpSendOf(body) : networkOf(sockOf(body, kind), kind),
    };
  } catch (err) {
    if (err instanceof FieldError) return rejectionOf(err);
    throw err;
  }
}

/** Parse one line of Tetragon's JSON export. */
export function parseTetragonLine(line: string, ctx: ParseContext): ParseResult {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return { reject: 'not_json', detail: 'line is not JSON' };
  }
  return tetragonRecordToEvent(record, ctx);
}

/** True when a parsed JSON object looks like a Tetragon event rather than a Falco one. */
export function isTetragonRecord(record: Obj): boolean {
  for (const k of EVENT_KEYS) if (record[k] !== undefined) return true;
  return false;
}
