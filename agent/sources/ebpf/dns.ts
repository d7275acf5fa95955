/**
 * DNS answers seen by the ebpf source, so that a connect to an address a container just resolved
 * carries the name it asked for (`network.remoteName`). bpftrace prints the first bytes of every UDP
 * message a process receives that has a DNS response header (program.ts: `Q` then `R` lines);
 * this file assembles them, parses the response, and remembers address → name per container.
 *
 * Everything here is hostile: a container can receive any bytes it likes, so it can also name its own
 * peers (a name is only as good as the container's resolver; the address stays on the event). Bounds:
 *   - at most DNS_LIMITS.bytes of a message (what bpftrace prints), DNS_LIMITS.records answer records;
 *   - names: labels ≤ 63 bytes, ≤ 255 bytes on the wire, letters/digits/`-`/`_` only, compression
 *     pointers must point backwards (no loops) and at most DNS_LIMITS.pointers of them per name;
 *   - CNAME chains followed DNS_LIMITS.chain steps from the question; records of other owners ignored;
 *   - the cache: DNS_LIMITS.perContainer addresses per container, DNS_LIMITS.total in all, each kept for
 *     its TTL clamped to [minTtlS, maxTtlS]; a full cache evicts the oldest, counted by reason.
 * Every answer that is dropped or only partly read, and every eviction, is counted (`DnsOutcome`).
 */
import { formatIp } from '../../../core/ip.js';

/** Bounds of DNS tracing (documented in the README's ebpf section). */
export const DNS_LIMITS = Object.freeze({
  /** Bytes of one message bpftrace prints (3 chunks of bpftrace 0.17's 200-byte maximum). */
  bytes: 600,
  /** Bytes of one printed chunk. */
  chunk: 200,
  /** Answer records read from one message. */
  records: 64,
  /** Compression pointers followed in one name. */
  pointers: 16,
  /** CNAME steps followed from the question's name. */
  chain: 8,
  /** Addresses remembered per container (or for the host). */
  perContainer: 2_048,
  /** Addresses remembered in all. */
  total: 65_536,
  /** A remembered address lives for its TTL, at least this long (clients reuse addresses past a short TTL)… */
  minTtlS: 30,
  /** …and at most this long (a hostile TTL cannot pin a name for days). */
  maxTtlS: 3_600,
  /** Answers being assembled from their lines at once. */
  pending: 256,
  /** How long an answer waits for its remaining lines before it is dropped. */
  assembleMs: 250,
});

/** What happened to a DNS answer or a remembered name (the `outcome` label of driftwatch_agent_dns_total). */
export type DnsOutcome =
  /** An answer whose addresses were remembered. */
  | 'learned'
  /** Bytes with a DNS response header that are not a well-formed answer (or name no address). */
  | 'malformed'
  /** An answer whose lines did not all arrive (lost events, or the assembly bound). */
  | 'incomplete'
  /** An answer longer than the bytes read or the record bound: the records beyond were not read. */
  | 'truncated'
  /** A live name evicted because its container had DNS_LIMITS.perContainer addresses. */
  | 'evicted_container_full'
  /** A live name evicted because the cache held DNS_LIMITS.total addresses. */
  | 'evicted_cache_full';

/** One address of an answer and its TTL in seconds (as sent, unclamped). */
export interface DnsAddress {
  address: string;
  ttlS: number;
}

/** A parsed DNS answer: the question's name and the A/AAAA addresses its CNAME chain led to. */
export interface DnsAnswer {
  name: string;
  addresses: DnsAddress[];
  /** True when records were left unread (message cut at the bytes read, or beyond DNS_LIMITS.records). */
  truncated: boolean;
}

/** Why a message is not an answer, for the log. */
export interface DnsMalformed {
  malformed: string;
}

const TYPE_A = 1;
const TYPE_CNAME = 5;
const TYPE_AAAA = 28;
const CLASS_IN = 1;

/** Thrown inside the parser only, when a read runs past the bytes we have. */
class OutOfBytes extends Error {}

/**
 * Read a name at `offset`: lower-cased labels joined by dots, and the offset after it in the message.
 * Null when hostile or malformed (label > 63, name > 255, a forward or looping pointer, odd bytes).
 */
function readName(msg: Uint8Array, offset: number): { name: string; next: number } | null {
  const labels: string[] = [];
  let wire = 1;
  let pos = offset;
  let next = -1;
  let jumps = 0;
  for (;;) {
    if (pos >= msg.length) throw new OutOfBytes();
    const len = msg[pos] as number;
    if (len === 0) {
      if (next === -1) next = pos + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= msg.length) throw new OutOfBytes();
      const target = ((len & 0x3f) << 8) | (msg[pos + 1] as number);
      // Only backwards, to a place before this pointer: every jump strictly decreases pos, so no loop.
      if (target >= pos || ++jumps > DNS_LIMITS.pointers) return null;
      if (next === -1) next = pos + 2;
      pos = target;
      continue;
    }
    if ((len & 0xc0) !== 0) return null;
    wire += len + 1;
    if (wire > 255) return null;
    if (pos + 1 + len > msg.length) throw new OutOfBytes();
    let label = '';
    for (let i = pos + 1; i <= pos + len; i++) {
      let c = msg[i] as number;
      if (c >= 0x41 && c <= 0x5a) c += 0x20;
      const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f;
      if (!ok) return null;
      label += String.fromCharCode(c);
    }
    labels.push(label);
    pos += 1 + len;
  }
  return { name: labels.join('.'), next };
}

function u16(msg: Uint8Array, at: number): number {
  if (at + 2 > msg.length) throw new OutOfBytes();
  return ((msg[at] as number) << 8) | (msg[at + 1] as number);
}

function u32(msg: Uint8Array, at: number): number {
  if (at + 4 > msg.length) throw new OutOfBytes();
  return (u16(msg, at) * 65536 + u16(msg, at + 2)) >>> 0;
}

/**
 * Parse a DNS response (the first bytes of one, possibly cut): header, the one question, then the
 * answer section's A, AAAA and CNAME records. Addresses count only when their owner is the question's
 * name or on its CNAME chain; they are named by the question (what the client asked for).
 */
export function parseDnsResponse(msg: Uint8Array): DnsAnswer | DnsMalformed {
  if (msg.length < 12) return { malformed: 'shorter than a DNS header' };
  const flags = u16(msg, 2);
  if ((flags & 0x8000) === 0) return { malformed: 'not a response' };
  if ((flags & 0x7800) !== 0) return { malformed: 'opcode is not QUERY' };
  if ((flags & 0x000f) !== 0) return { malformed: 'rcode is not NOERROR' };
  if (u16(msg, 4) !== 1) return { malformed: 'not one question' };
  const ancount = u16(msg, 6);
  if (ancount === 0) return { malformed: 'no answer records' };
  let truncated = ancount > DNS_LIMITS.records;
  const cnames = new Map<string, string>();
  const found: { owner: string; address: DnsAddress }[] = [];
  let qname = '';
  try {
    const q = readName(msg, 12);
    if (!q) return { malformed: 'bad question name' };
    if (q.name === '') return { malformed: 'question for the root' };
    qname = q.name;
    if (u16(msg, q.next + 2) !== CLASS_IN) return { malformed: 'question class is not IN' };
    let pos = q.next + 4;
    for (let i = 0; i < Math.min(ancount, DNS_LIMITS.records); i++) {
      const owner = readName(msg, pos);
      if (!owner) return { malformed: 'bad record name' };
      const type = u16(msg, owner.next);
      const cls = u16(msg, owner.next + 2);
      const ttl = u32(msg, owner.next + 4);
      const rdlength = u16(msg, owner.next + 8);
      const rdata = owner.next + 10;
      if (rdata + rdlength > msg.length) throw new OutOfBytes();
      pos = rdata + rdlength;
      if (cls !== CLASS_IN) continue;
      if (type === TYPE_A || type === TYPE_AAAA) {
        const size = type === TYPE_A ? 4 : 16;
        if (rdlength !== size) return { malformed: 'address record of the wrong length' };
        const bytes = msg.slice(rdata, rdata + size);
        const mapped = size === 16 && bytes[10] === 0xff && bytes[11] === 0xff && bytes.subarray(0, 10).every((b) => b === 0);
        const address = mapped ? formatIp({ version: 4, bytes: bytes.slice(12) }) : formatIp({ version: size === 4 ? 4 : 6, bytes });
        found.push({ owner: owner.name, address: { address, ttlS: ttl > 0x7fffffff ? 0 : ttl } });
      } else if (type === TYPE_CNAME) {
        const target = readName(msg, rdata);
        if (!target || target.next > pos) return { malformed: 'bad CNAME target' };
        // The first CNAME of an owner wins: a second one for the same owner is not valid DNS.
        if (!cnames.has(owner.name)) cnames.set(owner.name, target.name);
      }
    }
  } catch (err) {
    if (!(err instanceof OutOfBytes)) throw err;
    truncated = true;
  }
  const chain = new Set([qname]);
  for (let at = qname, i = 0; i < DNS_LIMITS.chain; i++) {
    const to = cnames.get(at);
    if (to === undefined || chain.has(to)) break;
    chain.add(to);
    at = to;
  }
  const addresses = found.filter((f) => chain.has(f.owner)).map((f) => f.address);
  if (addresses.length === 0) return { malformed: truncated ? 'no complete address record in the bytes read' : 'no address for the question' };
  return { name: qname, addresses, truncated };
}

/** Type guard for the parser's result. */
export function isDnsMalformed(r: DnsAnswer | DnsMalformed): r is DnsMalformed {
  return 'malformed' in r;
}

// ---------------------------------------------------------------------------------------------------
// The per-container cache

interface Remembered {
  name: string;
  expiresAt: number;
}

/** Address → name per container, bounded and expiring. */
export interface DnsNames {
  /** Remember an answer's addresses for `container` (a container id, or 'host'). */
  learn(container: string, answer: DnsAnswer, now: number): void;
  /** The name `container` last resolved to `address`, or '' (unknown or expired). */
  nameOf(container: string, address: string, now: number): string;
  /** Addresses remembered. */
  readonly size: number;
}

/** Create the cache; `count` receives evictions of live names. */
export function createDnsNames(count: (outcome: DnsOutcome) => void, limits: { perContainer: number; total: number; minTtlS: number; maxTtlS: number } = DNS_LIMITS): DnsNames {
  // Containers in order of their last answer: when the cache is full, the one that resolved least
  // recently gives up its oldest address. Each container's Map is in order of learning (refresh = re-insert).
  const byContainer = new Map<string, Map<string, Remembered>>();
  let size = 0;

  function evictOldest(of: Map<string, Remembered>, container: string, now: number, reason: DnsOutcome): void {
    const [address, r] = of.entries().next().value as [string, Remembered];
    of.delete(address);
    size--;
    if (of.size === 0) byContainer.delete(container);
    if (r.expiresAt > now) count(reason);
  }

  return {
    get size() {
      return size;
    },
    learn(container, answer, now) {
      let of = byContainer.get(container);
      if (of) byContainer.delete(container);
      else of = new Map();
      byContainer.set(container, of);
      for (const { address, ttlS } of answer.addresses) {
        const ttl = Math.min(limits.maxTtlS, Math.max(limits.minTtlS, ttlS));
        if (of.delete(address)) size--;
        if (of.size >= limits.perContainer) evictOldest(of, container, now, 'evicted_container_full');
        while (size >= limits.total) {
          const [oldest, its] = byContainer.entries().next().value as [string, Map<string, Remembered>];
          evictOldest(its, oldest, now, 'evicted_cache_full');
        }
        if (!byContainer.has(container)) byContainer.set(container, of);
        of.set(address, { name: answer.name, expiresAt: now + ttl * 1000 });
        size++;
      }
    },
    nameOf(container, address, now) {
      const of = byContainer.get(container);
      const r = of?.get(address);
      if (!of || !r) return '';
      if (r.expiresAt > now) return r.name;
      of.delete(address);
      size--;
      if (of.size === 0) byContainer.delete(container);
      return '';
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Assembly of bpftrace's Q/R lines

/** A rejected line (the decoder counts it like its other records). */
export interface DnsLineRejected {
  detail: string;
}

/** Assembles answers from bpftrace's lines and keeps the names. */
export interface DnsTracker {
  /** A `Q <ns> <pid> <uid> <cgid> <length> <leaf>` line's fields, split on spaces. */
  header(f: readonly string[]): DnsLineRejected | null;
  /** An `R <ns> <pid> <offset> <bytes>` line's fields. */
  chunk(f: readonly string[]): DnsLineRejected | null;
  /** Drop answers waiting longer than the assembly window (all of them when `all`), counted incomplete. */
  expire(now: number, all: boolean): void;
  /** The name `container` resolved `address` from, or ''. */
  nameOf(container: string, address: string): string;
  /** Answers being assembled. */
  readonly pending: number;
}

/** What the tracker needs from the decoder. */
export interface DnsTrackerDeps {
  /** The container key ('host' for host processes) of a process, or null when it cannot be told. */
  containerOf(pid: number, cgroupId: string, leafHex: string): string | null;
  /** Decode `\xNN…` (the decoder's decodeHex). */
  decodeHex(s: string, maxBytes: number): Buffer | null;
  count(outcome: DnsOutcome): void;
  /** An answer was learned (`ns`: when it was received, bpftrace's clock): names connects decoded before it. */
  learned(container: string, answer: DnsAnswer, ns: number): void;
  /** Wall clock, ms. */
  now(): number;
}

interface PendingAnswer {
  firstSeen: number;
  container: string | null;
  length: number;
  bytes: Buffer;
  received: number;
}

/** Create the tracker. */
export function createDnsTracker(deps: DnsTrackerDeps): DnsTracker {
  const names = createDnsNames(deps.count);
  const pending = new Map<string, PendingAnswer>();

  function pendingFor(ns: string, pid: string): PendingAnswer {
    const key = `${ns} ${pid}`;
    let p = pending.get(key);
    if (!p) {
      if (pending.size >= DNS_LIMITS.pending) {
        pending.delete(pending.keys().next().value as string);
        deps.count('incomplete');
      }
      p = { firstSeen: deps.now(), container: null, length: -1, bytes: Buffer.alloc(DNS_LIMITS.bytes), received: 0 };
      pending.set(key, p);
    }
    return p;
  }

  function complete(key: string, p: PendingAnswer, ns: string): void {
    if (p.length < 0 || p.received < p.length) return;
    pending.delete(key);
    if (p.container === null) return;
    const answer = parseDnsResponse(p.bytes.subarray(0, p.length));
    if (isDnsMalformed(answer)) return deps.count('malformed');
    if (answer.truncated) deps.count('truncated');
    names.learn(p.container, answer, deps.now());
    deps.count('learned');
    deps.learned(p.container, answer, Number(ns));
  }

  const digits = (s: string | undefined) => s !== undefined && /^\d{1,20}$/.test(s);

  return {
    get pending() {
      return pending.size;
    },
    header(f) {
      if (f.length !== 7 || !digits(f[1]) || !digits(f[2]) || !digits(f[3]) || !digits(f[4]) || !digits(f[5])) return { detail: 'dns answer header' };
      const length = Number(f[5]);
      if (length < 12 || length > DNS_LIMITS.bytes) return { detail: 'dns answer length' };
      const pid = Number(f[2]);
      const key = `${f[1]} ${f[2]}`;
      const p = pendingFor(f[1] as string, f[2] as string);
      // Kept even when the container cannot be told, so that its chunks complete it instead of expiring.
      p.container = deps.containerOf(pid, f[4] as string, f[6] as string);
      p.length = length;
      complete(key, p, f[1] as string);
      return p.container === null ? { detail: 'dns answer of a process whose container cannot be told' } : null;
    },
    chunk(f) {
      if (f.length !== 5 || !digits(f[1]) || !digits(f[2]) || !digits(f[3])) return { detail: 'dns answer chunk' };
      const offset = Number(f[3]);
      const b = deps.decodeHex(f[4] as string, DNS_LIMITS.chunk);
      if (!b || offset % DNS_LIMITS.chunk !== 0 || offset + b.length > DNS_LIMITS.bytes) return { detail: 'dns answer chunk' };
      const key = `${f[1]} ${f[2]}`;
      const p = pendingFor(f[1] as string, f[2] as string);
      b.copy(p.bytes, offset);
      p.received += b.length;
      complete(key, p, f[1] as string);
      return null;
    },
    expire(now, all) {
      for (const [key, p] of [...pending]) {
        if (all || now - p.firstSeen >= DNS_LIMITS.assembleMs) {
          pending.delete(key);
          deps.count('incomplete');
        }
      }
    },
    nameOf(container, address) {
      return names.nameOf(container, address, deps.now());
    },
  };
}
