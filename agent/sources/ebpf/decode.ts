/**
 * bpftrace's JSON lines for the agent's program (program.ts) → events. An exec arrives as several
 * records (header, cgroup, file name, argv chunks) assembled within a short window; connect, accept,
 * listen and UDP sends are one record each (UDP deduplicated per container and peer); DNS answers
 * (dns.ts) name the addresses a container resolved, so its connects carry the name. Events the kernel
 * dropped (lost_events) are counted. Used by the live source (source.ts) and by recordings (file.ts);
 * where processes live and what they run comes from a ProcessResolver (/proc: proc.ts).
 *
 * Every field is hostile: numbers, hex strings and addresses are checked and bounded, and a record
 * that cannot become an event is rejected with a reason.
 */
import { endianness } from 'node:os';
import type { ActivityEvent, EventKind, ExecutableOrigin, NetworkProtocol } from '../../../core/event.js';
import { UNKNOWN_IMAGE, isRuntimeMemfd, splitArguments } from '../../../core/event.js';
import { processName } from '../../../core/normalize.js';
import type { CgroupOwner } from '../../attribution/cgroup.js';
import { isRejected, type Rejected } from '../record.js';
import { countersOf, type SourceContext } from '../source.js';
import { createDnsTracker } from './dns.js';

/** Bounds on what is taken from bpftrace's output. */
export const EBPF_LIMITS = Object.freeze({
  /** Longest line read from bpftrace (an argv chunk is ~1 KiB of JSON). */
  line: 16_384,
  /** Most arguments kept. */
  args: 256,
  /** Execs being assembled from their lines at once. */
  pending: 2_048,
  /** How long an exec waits for its remaining lines before it is emitted with what arrived. */
  assembleMs: 250,
  /** Peers remembered for UDP deduplication (per cgroup and peer), and for how long. */
  udpPeers: 16_384,
  udpPeerTtlMs: 60_000,
  /** Processes whose executable is remembered (parents of later execs, owners of sockets). */
  exes: 16_384,
  /** Cgroups whose owner was read from /proc and is remembered. */
  cgroups: 4_096,
});

/** Decode `\xNN\xNN…` into bytes; null when it is not exactly that. */
export function decodeHex(s: string, maxBytes: number): Buffer | null {
  if (s.length % 4 !== 0 || s.length / 4 > maxBytes) return null;
  const out = Buffer.allocUnsafe(s.length / 4);
  for (let i = 0, j = 0; i < s.length; i += 4, j++) {
    if (s.charCodeAt(i) !== 92 || s.charCodeAt(i + 1) !== 120) return null;
    const v = parseInt(s.slice(i + 2, i + 4), 16);
    if (Number.isNaN(v) || !/^[0-9a-f]{2}$/i.test(s.slice(i + 2, i + 4))) return null;
    out[j] = v;
  }
  return out;
}

/** A C string from a fixed buffer: up to the first NUL, decoded as UTF-8 (invalid bytes become U+FFFD). */
function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return (nul === -1 ? b : b.subarray(0, nul)).toString('utf8');
}

const LITTLE_ENDIAN = endianness() === 'LE';

/** An address field: 4 or 16 bytes in hex, or a u32 as the kernel stores it (network order bytes) in decimal. */
export function decodeAddress(s: string): string | null {
  if (s.startsWith('\\x')) {
    const b = decodeHex(s, 16);
    if (!b) return null;
    if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
    if (b.length !== 16) return null;
    if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((b[i] as number) * 256 + (b[i + 1] as number)).toString(16));
    return compressV6(groups);
  }
  if (!/^\d{1,10}$/.test(s)) return null;
  const n = Number(s);
  if (n > 0xffffffff) return null;
  const b = Buffer.alloc(4);
  if (LITTLE_ENDIAN) b.writeUInt32LE(n);
  else b.writeUInt32BE(n);
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/** RFC 5952 text of eight hex groups: the longest run of 2+ zero groups becomes `::`. */
function compressV6(groups: string[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best === -1) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

function int(s: string | undefined, max: number): number {
  if (s === undefined || !/^\d{1,20}$/.test(s)) return NaN;
  const n = Number(s);
  return n <= max ? n : NaN;
}

/** What the decoder needs from the host: where processes live and what they run. */
export interface ProcessResolver {
  /** The owner of a process, from the cgroup leaf names bpftrace printed (and /proc when those do not tell). */
  owner(pid: number, cgroupId: string, leaves: readonly string[]): CgroupOwner;
  /** The executable of a live process ('' when gone). */
  exe(pid: number): string;
}

/** Monotonic ns → ms since the epoch. */
export type MonotonicClock = (ns: number) => number;

/** The wall-clock offset of CLOCK_MONOTONIC (the clock of bpf_ktime_get_ns and process.hrtime), taken once. */
export function monotonicToEpoch(): MonotonicClock {
  const offsetMs = Date.now() - Number(process.hrtime.bigint() / 1_000_000n);
  return (ns) => Math.floor(ns / 1e6) + offsetMs;
}

interface PendingExec {
  ns: string;
  pid: number;
  firstSeen: number;
  x: { ppid: number; uid: number; cgroupId: string; argLen: number; parentComm: string } | null;
  leaves: string[] | null;
  filename: string | null;
  argv: Buffer | null;
  received: number;
  o: OriginRecord | null;
}

/** What the program's O record says about an exec's executable (program.ts). */
export interface OriginRecord {
  magic: number;
  links: number;
  upper: number;
  /** The first 16 bytes of the executable's dentry name. */
  name: string;
  /** Whether the parent runs on the host side (another cgroup, the same mount namespace: program.ts); null when not printed (older recordings). */
  parentOutside: boolean | null;
}

/** The superblock magic of overlayfs (include/uapi/linux/magic.h OVERLAYFS_SUPER_MAGIC). */
const OVERLAYFS_MAGIC = 0x794c7630;

/**
 * The origin of an exec's executable (`exe`, the exec'd path) from the program's O record (program.ts):
 * no link left is a memfd (its dentry is named `memfd:…`) or a deleted file; on overlayfs, an upper
 * dentry means it was written after the container started, none means a lower layer (the image);
 * anything else (not overlayfs, the layout check failed) is unknown.
 *
 * - runc's cloned self (isRuntimeMemfd) is plumbing only when its parent runs on the host side (runc
 *   or the shim: another cgroup, the same mount namespace): the memfd's name is whatever the caller of
 *   memfd_create chose, so a process of a container naming its memfd `runc_cloned` is drift like any other.
 * - The O record reads the file the new program runs (`mm->exe_file`): for a `#!` script, `ld.so
 *   FILE` or a binfmt_misc handler that is the interpreter, not the exec'd file. When the record's name
 *   is not the exec'd path's basename, the image's interpreter says nothing about the exec'd file (a
 *   script dropped into the container): `unknown`, never `image`. Drift of the interpreter itself
 *   (upper layer, memfd, deleted) stays drift. An exec through a symbolic link whose target has another
 *   name (python3 → python3.11) is `unknown` too: the path does not name the file that ran.
 */
export function originOf(o: OriginRecord, exe: string): ExecutableOrigin {
  if (o.links === 0) {
    if (!o.name.startsWith('memfd:')) return 'deleted';
    return isRuntimeMemfd(o.name) && o.parentOutside === true ? 'unknown' : 'memfd';
  }
  if (o.magic !== OVERLAYFS_MAGIC) return 'unknown';
  if (o.upper === 1) return 'upper-layer';
  return o.upper === 0 && namesTheFile(exe, o.name) ? 'image' : 'unknown';
}

/** Whether a dentry name (its first 16 bytes, as the O record prints it) is the basename of `exe`. */
function namesTheFile(exe: string, dentry16: string): boolean {
  const base = Buffer.from(exe.slice(exe.lastIndexOf('/') + 1));
  const name = Buffer.from(dentry16);
  return name.length > 0 && base.subarray(0, 16).equals(name);
}

/** Turns bpftrace's JSON records into events. */
export interface EbpfDecoder {
  /** One line of bpftrace's stdout. */
  line(text: string): void;
  /** Emit execs waiting longer than the assembly window (all of them when `all`). */
  expire(now: number, all: boolean): void;
  /** Events ready, taken. */
  take(): ActivityEvent[];
  /** Execs being assembled. */
  readonly pending: number;
  /** Events ready and not yet taken. */
  readonly ready: number;
  /** The newest bpftrace time (`ns`) of a record read so far, 0 before the first. */
  readonly newestNs: number;
}

/** Decoder options. */
export interface EbpfDecoderDeps {
  ctx: SourceContext;
  source: string;
  clock: MonotonicClock;
  resolver: ProcessResolver;
  now: () => number;
}

/** Create a decoder. */
export function createEbpfDecoder(deps: EbpfDecoderDeps): EbpfDecoder {
  const { ctx, source, clock, resolver } = deps;
  const counters = countersOf(ctx);
  const pending = new Map<string, PendingExec>();
  const exes = new Map<number, string>();
  const udpSeen = new Map<string, number>();
  let ready: ActivityEvent[] = [];
  let newestNs = 0;
  // DNS answers (Q/R records) name the addresses a container resolved; its connects then carry the name.
  const dns = createDnsTracker({
    containerOf(pid, cgroupId, leafHex) {
      const leaves = leavesOf([leafHex]);
      const container = leaves ? containerOf(resolver.owner(pid, cgroupId, leaves)) : undefined;
      return container === undefined ? null : container?.id ?? 'host';
    },
    decodeHex,
    count: (outcome) => counters.dns?.(outcome),
    now: deps.now,
    learned(container, answer, ns) {
      // bpftrace reads its per-CPU buffers in turn, so a connect on another CPU can be read before the
      // answer that named it: name the connects after it that are still waiting to be taken.
      const at = clock(ns);
      for (let i = Math.max(0, ready.length - 256); i < ready.length; i++) {
        const e = ready[i] as ActivityEvent;
        const n = e.network;
        if (e.kind !== 'connect' || !n || n.remoteName !== '' || e.time < at || (e.container?.id ?? 'host') !== container) continue;
        if (answer.addresses.some((a) => a.address === n.remoteAddress)) n.remoteName = answer.name;
      }
    },
  });

  const reject = (r: Rejected) => ctx.rejected(r.reject, r.detail, r.ignore);
  const bad = (detail: string): Rejected => ({ reject: 'wrong_type', detail });

  function rememberExe(pid: number, exe: string): void {
    exes.delete(pid);
    if (exes.size >= EBPF_LIMITS.exes) exes.delete(exes.keys().next().value as number);
    exes.set(pid, exe);
  }

  function exeOf(pid: number): string {
    return exes.get(pid) ?? resolver.exe(pid);
  }

  function leavesOf(hex: readonly (string | undefined)[]): string[] | null {
    const out: string[] = [];
    for (const h of hex) {
      const b = h === undefined ? null : decodeHex(h, 128);
      if (!b) return null;
      out.push(cString(b));
    }
    return out;
  }

  function containerOf(owner: CgroupOwner): ActivityEvent['container'] | undefined {
    if (owner.kind === 'host') return null;
    if (owner.kind === 'container') return { id: owner.id, name: '', image: UNKNOWN_IMAGE };
    return undefined;
  }

  function emitExec(p: PendingExec): void {
    pending.delete(`${p.ns} ${p.pid}`);
    if (!p.x || !p.leaves) return reject({ reject: 'missing_field', detail: 'exec lines without their header or cgroup (lost events)' });
    const argv: string[] = [];
    if (p.argv) {
      const bytes = p.argv.subarray(0, Math.min(p.received, p.x.argLen));
      let from = 0;
      while (from < bytes.length && argv.length <= EBPF_LIMITS.args) {
        let nul = bytes.indexOf(0, from);
        if (nul === -1) nul = bytes.length;
        argv.push(bytes.subarray(from, nul).toString('utf8'));
        from = nul + 1;
      }
    }
    const exe = p.filename !== null && p.filename !== '' ? p.filename : argv[0] ?? '';
    if (exe === '') return reject({ reject: 'missing_field', detail: 'exec without a file name or argv' });
    const owner = resolver.owner(p.pid, p.x.cgroupId, p.leaves);
    const container = containerOf(owner);
    if (container === undefined) return reject({ reject: 'missing_field', detail: `no container id in the pod's cgroup (${owner.kind === 'unknown' ? owner.reason : ''})` });
    rememberExe(p.pid, exe);
    ready.push({
      time: clock(Number(p.ns)),
      node: ctx.node,
      source,
      container,
      pod: null,
      kind: 'exec',
      process: {
        pid: p.pid,
        exe,
        // The kernel's comm for it (basename, 15 characters), as Falco's proc.name and Tetragon's.
        name: processName(exe),
        // Split at whitespace like every source's arguments (core/event.ts), so one exec is one entry.
        args: splitArguments(argv.slice(1, EBPF_LIMITS.args + 1), EBPF_LIMITS.args),
        parentExe: exeOf(p.x.ppid),
        parentName: p.x.parentComm,
        uid: p.x.uid,
        user: '',
        // Absent when the O record did not arrive (lost, or a recording from before it existed): no drift then.
        ...(p.o === null ? {} : { origin: originOf(p.o, exe) }),
      },
      network: null,
    });
  }

  function pendingFor(ns: string, pid: number): PendingExec {
    const key = `${ns} ${pid}`;
    let p = pending.get(key);
    if (!p) {
      if (pending.size >= EBPF_LIMITS.pending) emitExec(pending.values().next().value as PendingExec);
      p = { ns, pid, firstSeen: deps.now(), x: null, leaves: null, filename: null, argv: null, received: 0, o: null };
      pending.set(key, p);
    }
    return p;
  }

  // Whether the program prints O records: once one was read, an exec waits for its own (it comes from
  // a second probe, after the argv). Recordings of a program from before them complete without.
  let origins = false;

  function complete(p: PendingExec): void {
    if (p.x && p.leaves && p.filename !== null && p.received >= p.x.argLen && (p.o !== null || !origins)) emitExec(p);
  }

  /** Parse one printf record; returns a rejection or null. */
  function record(data: string): Rejected | null {
    const f = data.endsWith('\n') ? data.slice(0, -1).split(' ') : data.split(' ');
    const tag = f[0];
    const ns = f[1] as string;
    if (!/^\d{1,20}$/.test(ns ?? '')) return bad('bad timestamp');
    const pid = int(f[2], 2 ** 32);
    if (Number.isNaN(pid)) return bad('bad pid');
    const at = Number(ns);
    if (at > newestNs) newestNs = at;
    if (tag === 'X') {
      if (f.length !== 8) return bad('exec header has the wrong number of fields');
      const ppid = int(f[3], 2 ** 32);
      const uid = int(f[4], 2 ** 32);
      const argLen = int(f[6], 4000);
      const comm = decodeHex(f[7] as string, 16);
      if (Number.isNaN(ppid) || Number.isNaN(uid) || Number.isNaN(argLen) || !/^\d{1,20}$/.test(f[5] as string) || !comm) return bad('exec header field');
      const p = pendingFor(ns, pid);
      p.x = { ppid, uid: uid === 4294967295 ? -1 : uid, cgroupId: f[5] as string, argLen, parentComm: cString(comm) };
      complete(p);
      return null;
    }
    if (tag === 'O') {
      // 7 fields: a recording from before the parent's cgroup was printed (then no runc exemption).
      const fields = f.length === 7 || f.length === 8;
      const magic = fields && /^[0-9a-f]{1,16}$/.test(f[3] as string) ? parseInt(f[3] as string, 16) : NaN;
      const links = int(f[4], 2 ** 32);
      const upper = int(f[5], 2);
      const name = fields ? decodeHex(f[6] as string, 16) : null;
      const outside = f.length === 8 ? int(f[7], 1) : -1;
      if (Number.isNaN(magic) || Number.isNaN(links) || Number.isNaN(upper) || !name || Number.isNaN(outside)) return bad('exec origin');
      // 0: the first probe's time was not in @xns (its map full): this origin belongs to no exec.
      if (ns === '0') return { reject: 'missing_field', detail: 'exec origin without its exec time' };
      origins = true;
      const p = pendingFor(ns, pid);
      p.o = { magic, links, upper, name: cString(name), parentOutside: outside === -1 ? null : outside === 1 };
      complete(p);
      return null;
    }
    if (tag === 'C') {
      const leaves = f.length === 4 ? leavesOf([f[3]]) : null;
      if (!leaves) return bad('exec cgroup');
      const p = pendingFor(ns, pid);
      p.leaves = leaves;
      complete(p);
      return null;
    }
    if (tag === 'F') {
      const b = f.length === 4 ? decodeHex(f[3] as string, 200) : null;
      if (!b) return bad('exec file name');
      const p = pendingFor(ns, pid);
      p.filename = cString(b);
      complete(p);
      return null;
    }
    if (tag === 'A') {
      const offset = int(f[3], 4000);
      const b = f.length === 5 ? decodeHex(f[4] as string, 200) : null;
      if (!b || Number.isNaN(offset) || offset + b.length > 4000) return bad('argv chunk');
      const p = pendingFor(ns, pid);
      p.argv ??= Buffer.alloc(4000);
      b.copy(p.argv, offset);
      p.received += b.length;
      complete(p);
      return null;
    }
    if (tag === 'N') return network(f, ns, pid);
    if (tag === 'Q' || tag === 'R') {
      const r = tag === 'Q' ? dns.header(f) : dns.chunk(f);
      return r && bad(r.detail);
    }
    return { reject: 'unsupported', detail: `record ${String(tag).slice(0, 8)}` };
  }

  function network(f: string[], ns: string, pid: number): Rejected | null {
    if (f.length !== 13) return bad('network record has the wrong number of fields');
    const uid = int(f[3], 2 ** 32);
    const cgroupId = f[4] as string;
    const kind = f[5] as EventKind;
    const protocol = f[6] as NetworkProtocol;
    if (kind !== 'connect' && kind !== 'accept' && kind !== 'listen') return bad('network kind');
    if (protocol !== 'tcp' && protocol !== 'udp') return bad('protocol');
    const local = f[7] === '0' ? '' : decodeAddress(f[7] as string);
    const remote = kind === 'listen' ? '' : decodeAddress(f[9] as string);
    const lport = int(f[8], 65535);
    const rport = int(f[10], 65535);
    const comm = decodeHex(f[11] as string, 16);
    const leaves = leavesOf([f[12]]);
    if (local === null || remote === null) return { reject: 'bad_address', detail: 'address' };
    if (Number.isNaN(uid) || Number.isNaN(lport) || Number.isNaN(rport) || !/^\d{1,20}$/.test(cgroupId) || !comm || !leaves) return bad('network field');
    const owner = resolver.owner(pid, cgroupId, leaves);
    const container = containerOf(owner);
    if (container === undefined) return { reject: 'missing_field', detail: `no container id in the pod's cgroup (${owner.kind === 'unknown' ? owner.reason : ''})` };
    if (protocol === 'udp') {
      // The kernel side deduplicates in maps it clears every minute and cannot grow; this is the second tier.
      const key = `${container?.id ?? 'host'} ${remote} ${rport}`;
      const now = deps.now();
      const seen = udpSeen.get(key);
      if (seen !== undefined && now - seen < EBPF_LIMITS.udpPeerTtlMs) return null;
      udpSeen.delete(key);
      if (udpSeen.size >= EBPF_LIMITS.udpPeers) udpSeen.delete(udpSeen.keys().next().value as string);
      udpSeen.set(key, now);
    }
    const exe = exeOf(pid);
    const name = cString(comm);
    ready.push({
      time: clock(Number(ns)),
      node: ctx.node,
      source,
      container,
      pod: null,
      kind,
      process: { pid, exe, name, args: [], parentExe: '', parentName: '', uid: uid === 4294967295 ? -1 : uid, user: '' },
      network: {
        protocol,
        localAddress: local,
        localPort: kind === 'connect' && lport === 0 ? -1 : lport,
        remoteAddress: remote,
        remotePort: kind === 'listen' ? -1 : rport,
        remoteName: kind === 'connect' ? dns.nameOf(container?.id ?? 'host', remote) : '',
      },
    });
    return null;
  }

  return {
    get pending() {
      return pending.size;
    },
    get ready() {
      return ready.length;
    },
    get newestNs() {
      return newestNs;
    },
    line(text) {
      let rec: unknown;
      try {
        rec = JSON.parse(text);
      } catch {
        return reject({ reject: 'not_json', detail: 'bpftrace line is not JSON' });
      }
      if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) return reject({ reject: 'not_object', detail: 'bpftrace record' });
      const r = rec as { type?: unknown; data?: unknown };
      if (r.type === 'printf') {
        if (typeof r.data !== 'string') return reject(bad('printf data'));
        const result = record(r.data);
        if (result && isRejected(result)) reject(result);
        return;
      }
      if (r.type === 'lost_events') {
        const n = (r.data as { events?: unknown } | null)?.events;
        if (typeof n === 'number' && Number.isInteger(n) && n > 0) {
          counters.lost(n);
          ctx.logger.warn({ lost: n }, 'the kernel dropped events (perf buffer full)');
        }
        return;
      }
      if (r.type === 'attached_probes') {
        ctx.logger.info({ probes: (r.data as { probes?: unknown } | null)?.probes }, 'bpftrace attached');
        return;
      }
      reject({ reject: 'unsupported', detail: `bpftrace ${String(r.type).slice(0, 32)}` });
    },
    expire(now, all) {
      for (const p of [...pending.values()]) if (all || now - p.firstSeen >= EBPF_LIMITS.assembleMs) emitExec(p);
      dns.expire(now, all);
    },
    take() {
      const out = ready;
      ready = [];
      return out;
    },
  };
}
