/**
 * Baseline entries: what a baseline remembers about one kind of behaviour, after normalization.
 * An entry's id is its canonical text, so that a Map lookup is the whole match on the hot path.
 */
import { createHash } from 'node:crypto';
import type { ActivityEvent, NetworkProtocol } from './event.js';
import { classifyAddress, cidrContains, formatIp, isGlobalAddress, parseCidr, parseIp, type Cidr, type ParsedIp } from './ip.js';
import { appletOf, normalizeArgs, normalizePath, processName, stripDeleted, userClass, type UserClass } from './normalize.js';

/** A process that ran: its executable (and applet), its parent's name, the class of user, and its argument pattern. */
export interface ProcessEntry {
  type: 'process';
  exe: string;
  /**
   * The program a multi-call binary (busybox, toybox) ran as: `wget` for `/bin/busybox` run as wget.
   * Absent for every other executable, and absent (never '') when no applet is known; only then is
   * it left out of the id, so ids made before applets existed stay valid.
   */
  applet?: string;
  /** The parent's process name (basename, as comm shows it), stable across sources. */
  parent: string;
  user: UserClass;
  args: string;
}

/** Direction of a network entry: connect is egress, accept ingress, listen a listening socket. */
export type NetworkDirection = 'egress' | 'ingress' | 'listen';

/** A network behaviour: direction, protocol, peer (a class, a range name or an address) and service port. */
export interface NetworkEntry {
  type: 'network';
  direction: NetworkDirection;
  protocol: NetworkProtocol;
  /**
   * `cluster` (any address in the configured cluster ranges), `loopback`, `any`, `link-local`,
   * a DNS name when the source resolved one, or the public address itself. Generalized peers
   * (learned from many addresses, or added by security): a CIDR block (`52.216.0.0/16`), or
   * `@public` (PUBLIC_PEER), any globally routable address outside the cluster ranges.
   */
  peer: string;
  /** The service port: the remote port of a connect, the local port of an accept or listen. */
  port: number;
}

/** Either kind of entry. */
export type Entry = ProcessEntry | NetworkEntry;

/** Options for turning events into entries. */
export interface EntryOptions {
  /** Address ranges that are "inside the cluster" (pod and service CIDRs, node networks). */
  clusterRanges: readonly Cidr[];
}

function esc(s: string): string {
  return s.includes('|') || s.includes('\\') ? s.replace(/[\\|]/g, '\\$&') : s;
}

/**
 * The canonical id of an entry: unambiguous text, equal for equal entries. A process id is
 * `exec|exe|parent|user|args`, or `exec|exe|applet|parent|user|args` for an applet of a multi-call
 * binary (six fields instead of five; `|` inside a field is escaped, so the count is exact).
 */
export function entryId(entry: Entry): string {
  if (entry.type === 'process') {
    const applet = entry.applet ? `${esc(entry.applet)}|` : '';
    return `exec|${esc(entry.exe)}|${applet}${esc(entry.parent)}|${entry.user}|${esc(entry.args)}`;
  }
  return `${entry.direction}|${entry.protocol}|${esc(entry.peer)}|${entry.port}`;
}

/** Split an id at its unescaped `|` separators, unescaping the parts. */
function splitId(id: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < id.length; i++) {
    const c = id[i] as string;
    if (c === '\\' && i + 1 < id.length) cur += id[++i];
    else if (c === '|') {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  return parts;
}

const USER_CLASSES = new Set(['root', 'system', 'user', 'unknown']);

/** The entry an id stands for (the inverse of entryId). Throws a RangeError for text that is not an entry id. */
export function entryFromId(id: string): Entry {
  const p = splitId(id);
  if (p[0] === 'exec' && p.length === 5 && USER_CLASSES.has(p[3] as string)) {
    return { type: 'process', exe: p[1] as string, parent: p[2] as string, user: p[3] as UserClass, args: p[4] as string };
  }
  // An empty applet is refused: entryId leaves it out, so the id would not survive a round trip.
  if (p[0] === 'exec' && p.length === 6 && p[2] !== '' && USER_CLASSES.has(p[4] as string)) {
    return { type: 'process', exe: p[1] as string, applet: p[2] as string, parent: p[3] as string, user: p[4] as UserClass, args: p[5] as string };
  }
  if ((p[0] === 'egress' || p[0] === 'ingress' || p[0] === 'listen') && p.length === 4 && (p[1] === 'tcp' || p[1] === 'udp') && /^\d{1,5}$/.test(p[3] as string)) {
    return { type: 'network', direction: p[0], protocol: p[1], peer: p[2] as string, port: Number(p[3]) };
  }
  throw new RangeError(`not an entry id: ${JSON.stringify(id.slice(0, 80))}`);
}

/** A short, stable fingerprint of (baseline key, entry): the identity of an alert. */
export function fingerprint(key: string, id: string): string {
  return createHash('sha256').update(key).update('\n').update(id).digest('hex').slice(0, 32);
}

/**
 * Peer names by address, per options object: pod and service addresses repeat across events, and
 * classification parses the address. Bounded; emptied when full.
 */
const peerCaches = new WeakMap<EntryOptions, Map<string, string>>();
const MAX_PEER_CACHE = 16_384;

/** Classify a peer address into the peer names an entry uses. */
export function peerOf(address: string, name: string, options: EntryOptions): string {
  if (name !== '') return classifyPeer(address, name, options);
  let cache = peerCaches.get(options);
  if (!cache) peerCaches.set(options, (cache = new Map()));
  const known = cache.get(address);
  if (known !== undefined) return known;
  const peer = classifyPeer(address, name, options);
  if (cache.size >= MAX_PEER_CACHE) cache.clear();
  cache.set(address, peer);
  return peer;
}

/**
 * A DNS name a peer may be learned as: dot-separated labels of letters, digits, `-` and `_`, at
 * least two labels, at most 253 characters. Anything else (a single word, text with `/`, `@` or
 * `|`) could read as a class (`cluster`), a block or another entry and widen what matches, so such
 * a name is ignored and the address is kept instead.
 */
const PEER_NAME = /^(?=.{3,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)+$/;

/** The peer name a source's resolved name becomes (lower case, no trailing dot), or '' when it is not a DNS name. */
export function peerName(name: string): string {
  if (name === '') return '';
  let n = name.toLowerCase();
  if (n.endsWith('.')) n = n.slice(0, -1);
  return PEER_NAME.test(n) && parseIp(n) === null ? n : '';
}

function classifyPeer(address: string, rawName: string, options: EntryOptions): string {
  const name = peerName(rawName);
  const ip = parseIp(address);
  if (!ip) return name !== '' ? name : address === '' ? 'unknown' : 'invalid';
  const cls = classifyAddress(ip);
  if (cls !== 'public') return cls;
  for (const range of options.clusterRanges) if (cidrContains(range, ip)) return 'cluster';
  if (name !== '') return name;
  return formatIp(ip);
}

/** The class peer "any globally routable address outside the cluster ranges" (never a DNS name: see peerName). */
export const PUBLIC_PEER = '@public';

/** A generalized peer: a CIDR block, or the public class. */
export type GeneralPeer = { kind: 'block'; cidr: Cidr } | { kind: 'class' };

/** The generalized peer a network entry's peer names, or null for a single address, a name or another class. */
export function generalPeerOf(peer: string): GeneralPeer | null {
  if (peer === PUBLIC_PEER) return { kind: 'class' };
  if (!peer.includes('/')) return null;
  try {
    return { kind: 'block', cidr: parseCidr(peer) };
  } catch {
    return null;
  }
}

/**
 * Whether a generalized peer covers an address. The class covers only globally routable
 * addresses (isGlobalAddress), so a private address outside the cluster ranges (a VPC database)
 * still alerts; names are never covered (a name is the more specific evidence).
 */
export function generalPeerCovers(g: GeneralPeer, ip: ParsedIp): boolean {
  return g.kind === 'class' ? isGlobalAddress(ip) : cidrContains(g.cidr, ip);
}

/**
 * Among entry ids, one whose generalized peer (a block, the class) covers `entry`'s address on the
 * same direction, protocol and port; null when none does or when `entry`'s peer is not an address.
 * The collector asks this when a deviation's exact entry is not in the cluster's baseline.
 */
export function coveringEntryId(entry: Entry, ids: Iterable<string>): string | null {
  if (entry.type !== 'network') return null;
  const ip = parseIp(entry.peer);
  if (!ip) return null;
  for (const { id, entry: e } of sameServiceEntries(entry, ids)) {
    const g = generalPeerOf(e.peer);
    if (g && generalPeerCovers(g, ip)) return id;
  }
  return null;
}

/** The network entry an id stands for; null for a process id or text that is not an entry id. */
export function networkEntryOfId(id: string): NetworkEntry | null {
  if (id.startsWith('exec|')) return null;
  try {
    const e = entryFromId(id);
    return e.type === 'network' ? e : null;
  } catch {
    return null;
  }
}

/** The network entries among `ids` of the same service as `entry`: its direction, protocol and port. */
export function* sameServiceEntries(entry: NetworkEntry, ids: Iterable<string>): Generator<{ id: string; entry: NetworkEntry }> {
  for (const id of ids) {
    const e = networkEntryOfId(id);
    if (e && e.direction === entry.direction && e.protocol === entry.protocol && e.port === entry.port) yield { id, entry: e };
  }
}

/**
 * Derive the entry an event would add to a baseline. Pure; the caller may cache by input.
 * Returns null when the event lacks what an entry needs (e.g. a connect without a port).
 */
export function entryOf(event: ActivityEvent, options: EntryOptions): Entry | null {
  if (event.kind === 'exec') {
    const p = event.process;
    const exe = p.exe !== '' ? normalizePath(p.exe) : p.name;
    if (exe === '') return null;
    const call = appletOf(p.exe !== '' ? p.exe : p.name, p.name, p.args);
    // The parent is named by its binary (a busybox shell parent is `busybox`, taken for a shell by
    // the severity rules): its comm would be a script's name, and not every source reports it.
    const parent = processName(p.parentExe !== '' ? p.parentExe : p.parentName);
    const user = userClass(p.uid);
    if (call) return { type: 'process', exe, applet: call.applet, parent, user, args: normalizeArgs(call.args) };
    return { type: 'process', exe, parent, user, args: normalizeArgs(p.args) };
  }
  const n = event.network;
  if (!n) return null;
  if (event.kind === 'connect') {
    if (n.remotePort < 0) return null;
    return { type: 'network', direction: 'egress', protocol: n.protocol, peer: peerOf(n.remoteAddress, n.remoteName, options), port: n.remotePort };
  }
  if (n.localPort < 0) return null;
  if (event.kind === 'accept') {
    return { type: 'network', direction: 'ingress', protocol: n.protocol, peer: peerOf(n.remoteAddress, n.remoteName, options), port: n.localPort };
  }
  return { type: 'network', direction: 'listen', protocol: n.protocol, peer: peerOf(n.localAddress, '', options), port: n.localPort };
}

/** The program of a process entry as people name it: `/usr/bin/curl`, or `/bin/busybox (wget)` for an applet. */
export function programLabel(entry: ProcessEntry): string {
  return entry.applet ? `${entry.exe} (${entry.applet})` : entry.exe;
}

/**
 * The name the severity rules know a program by: the applet of a multi-call binary, else the
 * basename of the executable (` (deleted)` removed), so `/bin/busybox` run as wget and a symlink
 * `/usr/bin/wget` are both `wget`.
 */
export function programName(entry: ProcessEntry): string {
  if (entry.applet) return entry.applet;
  const exe = stripDeleted(entry.exe);
  return exe.slice(exe.lastIndexOf('/') + 1);
}

/** One line a person can read: `/bin/sh -c <...> (parent nginx, root)` or `egress tcp 203.0.113.5:443`. */
export function describeEntry(entry: Entry): string {
  if (entry.type === 'process') {
    const args = entry.args === '' ? '' : ` ${entry.args}`;
    return `${programLabel(entry)}${args} (parent ${entry.parent || '?'}, ${entry.user})`;
  }
  const peer = entry.peer.includes(':') ? `[${entry.peer}]` : entry.peer;
  const any = entry.peer === PUBLIC_PEER ? ' (any public address)' : '';
  return `${entry.direction} ${entry.protocol} ${peer}:${entry.port}${any}`;
}

/** The raw value an entry was learned from, for reviewers: the command line, or the peer as seen. */
export function exampleOf(event: ActivityEvent): string {
  if (event.kind === 'exec') {
    const p = event.process;
    let cmd = p.exe !== '' ? p.exe : p.name;
    // A multi-call binary run through a symlink: the applet is only in the name, so show it.
    const call = p.exe !== '' ? appletOf(p.exe, p.name, p.args) : null;
    if (call && call.args === p.args) cmd = `${cmd} (${call.applet})`;
    return p.args.length === 0 ? cmd : `${cmd} ${p.args.join(' ')}`;
  }
  const n = event.network;
  if (!n) return '';
  const fmt = (a: string, port: number) => (a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`);
  if (event.kind === 'listen') return fmt(n.localAddress, n.localPort);
  const remote = n.remoteName !== '' ? `${n.remoteName} (${fmt(n.remoteAddress, n.remotePort)})` : fmt(n.remoteAddress, n.remotePort);
  // ASCII on purpose: one non-Latin-1 character makes V8 store the whole string at two bytes a
  // character, and an agent keeps one example per entry for hundreds of thousands of entries.
  return event.kind === 'connect' ? `-> ${remote}` : `<- ${remote} on :${n.localPort}`;
}
