/**
 * Loads the wire contract once and converts between core's model and the proto messages.
 * The .proto files are read at run time from the repository's proto/ folder.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { EXECUTABLE_ORIGINS, type ActivityEvent, type EventKind, type ExecutableOrigin } from '../core/event.js';
import { entryFromId, entryId, type Entry } from '../core/entry.js';
import type { UserClass } from '../core/normalize.js';
import { DRIFT_ALLOW_LIMITS, type BaselineSnapshot, type BaselineState, type ClusterBaseline, type DeviationReason, type EntryStats } from '../core/baseline.js';
import type { Deviation } from '../core/deviation.js';
import { INVENTORY_LIMITS, type ContainerReport, type RunningContainer } from '../core/inventory.js';

/** Wire protocol revision spoken by this build (see Hello.protocol). */
export const PROTOCOL_REVISION = 1;

const PROTO_ROOT = fileURLToPath(new URL('../../proto/', import.meta.url));

/** Options shared by every loader so that field names and int64s look the same everywhere. */
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  arrays: true,
  objects: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

let cached: grpc.GrpcObject | undefined;

/** The loaded driftwatch.v1 package (loaded on first use, then reused). */
export function driftwatchV1(): grpc.GrpcObject {
  if (!cached) {
    const def = protoLoader.loadSync('driftwatch/v1/agent.proto', LOADER_OPTIONS);
    const root = grpc.loadPackageDefinition(def) as unknown as { driftwatch: { v1: grpc.GrpcObject } };
    cached = root.driftwatch.v1;
  }
  return cached;
}

/** The AgentService client constructor and service definition. */
export function agentService(): { Client: grpc.ServiceClientConstructor; service: grpc.ServiceDefinition } {
  const Client = driftwatchV1().AgentService as grpc.ServiceClientConstructor;
  return { Client, service: Client.service };
}

// ---- wire shapes (as proto-loader presents them with the options above) ----

/** Wire Entry. */
export interface WireEntry {
  process?: { exe: string; parent: string; user: string; args: string; applet?: string } | null;
  network?: { direction: string; protocol: string; peer: string; port: number } | null;
  entry?: string;
}

/** Wire Event. */
export interface WireEvent {
  timeMs: number;
  node: string;
  source: string;
  container?: { id: string; name: string; image?: { repository: string; tag: string; digest: string } | null } | null;
  pod?: { namespace: string; name: string; labels: Record<string, string>; workload: string } | null;
  kind: string;
  process?: {
    pid: number;
    exe: string;
    name: string;
    args: string[];
    parentExe: string;
    parentName: string;
    uid: number;
    user: string;
    origin?: string;
  } | null;
  network?: {
    protocol: string;
    localAddress: string;
    localPort: number;
    remoteAddress: string;
    remotePort: number;
    remoteName: string;
  } | null;
}

/** Wire Deviation. */
export interface WireDeviation {
  id: string;
  baselineKey: string;
  baselineVersion: number;
  entry?: WireEntry | null;
  reason: string;
  explanation: string;
  nearest: string[];
  event?: WireEvent | null;
}

/** Wire EntryStats. */
export interface WireEntryStats {
  id: string;
  entry?: WireEntry | null;
  firstSeenMs: number;
  lastSeenMs: number;
  count: number;
  nodes: string[];
  examples: string[];
  addedBy?: string;
  origin?: string;
}

/** Wire BaselineSnapshot. */
export interface WireBaselineSnapshot {
  key: string;
  state: string;
  version: number;
  windowStartMs: number;
  learnUntilMs: number;
  enforcingSinceMs: number;
  events: number;
  overflow: number;
  images: { repository: string; tag: string; digest: string }[];
  entries: WireEntryStats[];
  partial?: boolean;
  namespaces?: string[];
}

/** Wire ClusterBaseline. */
export interface WireClusterBaseline {
  key: string;
  state: string;
  relearn: boolean;
  version: number;
  windowStartMs: number;
  learnUntilMs: number;
  entryIds: string[];
  removedIds: string[];
  /** Which part of a baseline sent in several messages (from 0), and how many parts; 0/1 parts: one message. */
  part?: number;
  parts?: number;
  driftAllowed?: string[];
}

/** Wire AgentMessage. */
export interface WireAgentMessage {
  hello?: { node: string; agentVersion: string; sources: string[]; protocol: number; runningKeys?: string[] } | null;
  batch?: { batchId: number; deviations: WireDeviation[]; baselines: WireBaselineSnapshot[] } | null;
  heartbeat?: { timeMs: number; spooled: number; watermarkMs: number; spoolBytes?: number; oldestSpooledAgeMs?: number; spoolDropped?: number; runningKeys?: string[]; containers?: WireContainerReport | null } | null;
  goodbye?: { spooled: number } | null;
  payload?: string;
}

/** Wire ContainerReport (a heartbeat's `containers`). */
export interface WireContainerReport {
  source: string;
  containers: {
    id: string;
    name: string;
    image?: { repository: string; tag: string; digest: string } | null;
    imageId: string;
    namespace: string;
    pod: string;
    workload: string;
  }[];
  truncated: boolean;
  total: number;
}

/** Wire CollectorMessage. */
export interface WireCollectorMessage {
  welcome?: { collectorVersion: string; maxBatchItems: number; baselines?: number } | null;
  ack?: { batchId: number; stored: number; duplicates: number; rejected: number } | null;
  baseline?: WireClusterBaseline | null;
  payload?: string;
}

const KIND_TO_WIRE: Record<EventKind, string> = {
  exec: 'EVENT_KIND_EXEC',
  connect: 'EVENT_KIND_CONNECT',
  accept: 'EVENT_KIND_ACCEPT',
  listen: 'EVENT_KIND_LISTEN',
};
const WIRE_TO_KIND: Record<string, EventKind> = Object.fromEntries(
  Object.entries(KIND_TO_WIRE).map(([k, v]) => [v, k as EventKind]),
);

/** core Entry → wire. */
export function entryToWire(e: Entry): WireEntry {
  return e.type === 'process'
    ? { process: { exe: e.exe, parent: e.parent, user: e.user, args: e.args, applet: e.applet ?? '' } }
    : { network: { direction: e.direction, protocol: e.protocol, peer: e.peer, port: e.port } };
}

/** core ActivityEvent → wire. */
export function eventToWire(ev: ActivityEvent): WireEvent {
  return {
    timeMs: ev.time,
    node: ev.node,
    source: ev.source,
    container: ev.container
      ? { id: ev.container.id, name: ev.container.name, image: { ...ev.container.image } }
      : null,
    pod: ev.pod ? { ...ev.pod, labels: { ...ev.pod.labels } } : null,
    kind: KIND_TO_WIRE[ev.kind],
    process: { ...ev.process, args: [...ev.process.args], origin: ev.process.origin ?? '' },
    network: ev.network ? { ...ev.network } : null,
  };
}

/** core Deviation → wire. */
export function deviationToWire(d: Deviation): WireDeviation {
  return {
    id: d.id,
    baselineKey: d.key,
    baselineVersion: d.baselineVersion,
    entry: entryToWire(d.entry),
    reason: d.reason,
    explanation: d.explanation,
    nearest: d.nearest,
    event: eventToWire(d.event),
  };
}

/** core BaselineSnapshot → wire. */
export function snapshotToWire(s: BaselineSnapshot): WireBaselineSnapshot {
  return {
    key: s.key,
    state: s.state,
    version: s.version,
    windowStartMs: s.windowStart,
    learnUntilMs: s.learnUntil,
    enforcingSinceMs: s.enforcingSince,
    events: s.events,
    overflow: s.overflow,
    images: s.images,
    partial: s.partial === true,
    namespaces: s.namespaces ?? [],
    entries: s.entries.map((e) => ({
      id: e.id,
      entry: entryToWire(e.entry),
      firstSeenMs: e.firstSeen,
      lastSeenMs: e.lastSeen,
      count: e.count,
      nodes: e.nodes,
      examples: e.examples,
      addedBy: e.addedBy ?? '',
      origin: e.origin ?? '',
    })),
  };
}

// ---- wire → core, validating: everything arriving over the wire is hostile ----

/** A field that failed validation, named for the log line and the reject counter. */
export class WireError extends Error {
  readonly code = 'invalid_message' as const;
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'WireError';
  }
}

/** A baseline entry whose id is not the one its entry makes. */
class EntryIdError extends WireError {
  constructor(field: string, readonly reason: 'id_mismatch' | 'id_invalid') {
    super(field, reason === 'id_mismatch' ? 'is not the id of its entry' : 'does not read back as its entry');
  }
}

/** Bounds on what the collector accepts in one record. */
export const WIRE_LIMITS = Object.freeze({
  shortString: 256,
  pathString: 4096,
  args: 256,
  argLength: 4096,
  labels: 64,
  nearest: 3,
  entriesPerSnapshot: 10_000,
  nodesPerEntry: 64,
  examplesPerEntry: 8,
  images: 64,
});

/**
 * NUL, the other C0 controls but tab and newline, DEL and the C1 controls: nothing a command line or
 * a name needs, and what breaks terminals, log lines and C string handling downstream (Falco passes
 * NUL bytes through from argv).
 */
const CONTROL_RE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** `s` without control characters (see CONTROL_RE). */
export function stripControl(s: string): string {
  CONTROL_RE.lastIndex = 0;
  return CONTROL_RE.test(s) ? s.replace(CONTROL_RE, '') : s;
}

function str(v: unknown, field: string, max: number): string {
  if (typeof v !== 'string') throw new WireError(field, 'must be a string');
  if (v.length > max) throw new WireError(field, `longer than ${max} characters`);
  return stripControl(v);
}

/** The mark that ends a value cut at its bound: what was cut stays visible. */
export function cutMark(dropped: number, unit: 'chars' | 'args'): string {
  return `…[+${dropped} ${unit}]`;
}

/** `v` cut to `max` characters with a mark saying how much was cut; `onCut` hears of each cut. */
function cutStr(v: unknown, field: string, max: number, onCut: ((field: string) => void) | undefined): string {
  if (typeof v !== 'string') throw new WireError(field, 'must be a string');
  if (v.length <= max) return stripControl(v);
  onCut?.(field);
  return `${stripControl(v.slice(0, max))}${cutMark(v.length - max, 'chars')}`;
}

function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new WireError(field, 'must be an integer');
  if (v < min || v > max) throw new WireError(field, `out of range ${min}..${max}`);
  return v;
}

const USERS = new Set(['root', 'system', 'user', 'unknown']);
const DIRECTIONS = new Set(['egress', 'ingress', 'listen']);
const STATES = new Set<BaselineState>(['learning', 'enforcing', 'locked']);
const REASONS = new Set<DeviationReason>([
  'new-executable', 'new-parent', 'new-user', 'new-arguments', 'new-peer', 'new-port', 'new-listen-port', 'new-protocol', 'drift',
]);
const ORIGINS = new Set<string>(EXECUTABLE_ORIGINS);

/** An origin from the wire: '' (older agents) is absent; anything not in EXECUTABLE_ORIGINS is refused. */
function originFromWire(v: unknown, field: string): { origin?: ExecutableOrigin } {
  if (v === undefined || v === null || v === '') return {};
  const s = str(v, field, 16);
  if (!ORIGINS.has(s)) throw new WireError(field, `must be one of ${EXECUTABLE_ORIGINS.join(', ')}`);
  return { origin: s as ExecutableOrigin };
}
const MAX_TIME = 8_640_000_000_000_000;

function protocolOf(v: unknown, field: string): 'tcp' | 'udp' {
  if (v !== 'tcp' && v !== 'udp') throw new WireError(field, 'must be tcp or udp');
  return v;
}

/**
 * wire Entry → core, validated. With `onCut`, an argument pattern past its bound is cut and marked
 * (a deviation's entry); without, it is refused (a baseline entry, whose id must match it).
 */
export function entryFromWire(w: WireEntry | null | undefined, field = 'entry', onCut?: (field: string) => void): Entry {
  if (w?.process) {
    const p = w.process;
    const user = str(p.user, `${field}.process.user`, 16);
    if (!USERS.has(user)) throw new WireError(`${field}.process.user`, 'unknown user class');
    // Absent from older agents' messages: no applet, as before applets existed.
    const applet = str(p.applet ?? '', `${field}.process.applet`, 64);
    return {
      type: 'process',
      exe: str(p.exe, `${field}.process.exe`, WIRE_LIMITS.pathString),
      ...(applet === '' ? {} : { applet }),
      parent: str(p.parent, `${field}.process.parent`, WIRE_LIMITS.shortString),
      user: user as UserClass,
      args: onCut ? cutStr(p.args, `${field}.process.args`, WIRE_LIMITS.pathString, onCut) : str(p.args, `${field}.process.args`, WIRE_LIMITS.pathString),
    };
  }
  if (w?.network) {
    const n = w.network;
    const direction = str(n.direction, `${field}.network.direction`, 16);
    if (!DIRECTIONS.has(direction)) throw new WireError(`${field}.network.direction`, 'must be egress, ingress or listen');
    return {
      type: 'network',
      direction: direction as 'egress' | 'ingress' | 'listen',
      protocol: protocolOf(n.protocol, `${field}.network.protocol`),
      peer: str(n.peer, `${field}.network.peer`, WIRE_LIMITS.shortString),
      port: int(n.port, `${field}.network.port`, 0, 65535),
    };
  }
  throw new WireError(field, 'must hold a process or a network entry');
}

/**
 * The arguments of an event, bounded: each cut at argLength characters and the list at `args`
 * arguments, with a mark where something was cut. A long command line is never a reason to drop a
 * deviation: padding one would be a way never to be alerted on.
 */
function argsFromWire(args: unknown, onCut: ((field: string) => void) | undefined): string[] {
  if (!Array.isArray(args)) throw new WireError('event.process.args', 'must be a list');
  const out = args.slice(0, WIRE_LIMITS.args).map((a, i) => cutStr(a, `event.process.args[${i}]`, WIRE_LIMITS.argLength, onCut));
  if (args.length > WIRE_LIMITS.args) {
    onCut?.('event.process.args');
    out.push(cutMark(args.length - WIRE_LIMITS.args, 'args'));
  }
  return out;
}

/** wire Event → core, validated; over-long arguments are cut and marked (`onCut`). */
export function eventFromWire(w: WireEvent | null | undefined, onCut?: (field: string) => void): ActivityEvent {
  if (!w) throw new WireError('event', 'missing');
  const kind = WIRE_TO_KIND[w.kind];
  if (!kind) throw new WireError('event.kind', 'unknown kind');
  const p = w.process;
  if (!p) throw new WireError('event.process', 'missing');
  const args = argsFromWire(p.args, onCut);
  const c = w.container;
  const pod = w.pod;
  const labels: Record<string, string> = {};
  if (pod) {
    const entries = Object.entries(pod.labels ?? {});
    if (entries.length > WIRE_LIMITS.labels) throw new WireError('event.pod.labels', `at most ${WIRE_LIMITS.labels} labels`);
    for (const [k, v] of entries) labels[str(k, 'event.pod.labels', WIRE_LIMITS.shortString)] = str(v, 'event.pod.labels', WIRE_LIMITS.shortString);
  }
  const n = w.network;
  if ((kind === 'exec') !== !n) throw new WireError('event.network', kind === 'exec' ? 'not allowed on exec' : 'required on network kinds');
  return {
    time: int(w.timeMs, 'event.timeMs', 0, MAX_TIME),
    node: str(w.node, 'event.node', WIRE_LIMITS.shortString),
    source: str(w.source, 'event.source', WIRE_LIMITS.pathString),
    container: c
      ? {
          id: str(c.id, 'event.container.id', WIRE_LIMITS.shortString),
          name: str(c.name, 'event.container.name', WIRE_LIMITS.shortString),
          image: {
            repository: str(c.image?.repository ?? '', 'event.container.image.repository', WIRE_LIMITS.shortString),
            tag: str(c.image?.tag ?? '', 'event.container.image.tag', WIRE_LIMITS.shortString),
            digest: str(c.image?.digest ?? '', 'event.container.image.digest', WIRE_LIMITS.shortString),
          },
        }
      : null,
    pod: pod
      ? {
          namespace: str(pod.namespace, 'event.pod.namespace', WIRE_LIMITS.shortString),
          name: str(pod.name, 'event.pod.name', WIRE_LIMITS.shortString),
          labels,
          workload: str(pod.workload, 'event.pod.workload', WIRE_LIMITS.shortString),
        }
      : null,
    kind,
    process: {
      pid: int(p.pid, 'event.process.pid', -1, 2 ** 32),
      exe: str(p.exe, 'event.process.exe', WIRE_LIMITS.pathString),
      name: str(p.name, 'event.process.name', WIRE_LIMITS.shortString),
      args,
      parentExe: str(p.parentExe, 'event.process.parentExe', WIRE_LIMITS.pathString),
      parentName: str(p.parentName, 'event.process.parentName', WIRE_LIMITS.shortString),
      uid: int(p.uid, 'event.process.uid', -1, 2 ** 32),
      user: str(p.user, 'event.process.user', WIRE_LIMITS.shortString),
      ...originFromWire(p.origin, 'event.process.origin'),
    },
    network: n
      ? {
          protocol: protocolOf(n.protocol, 'event.network.protocol'),
          localAddress: str(n.localAddress, 'event.network.localAddress', WIRE_LIMITS.shortString),
          localPort: int(n.localPort, 'event.network.localPort', -1, 65535),
          remoteAddress: str(n.remoteAddress, 'event.network.remoteAddress', WIRE_LIMITS.shortString),
          remotePort: int(n.remotePort, 'event.network.remotePort', -1, 65535),
          remoteName: str(n.remoteName, 'event.network.remoteName', WIRE_LIMITS.shortString),
        }
      : null,
  };
}

/**
 * wire Deviation → core, validated. The id must be 32 lower-case hex characters. Over-long
 * arguments (event and entry) are cut and marked, and `onCut` hears which field.
 */
export function deviationFromWire(w: WireDeviation, onCut: (field: string) => void = () => undefined): Deviation {
  const id = str(w.id, 'id', 64);
  if (!/^[0-9a-f]{32}$/.test(id)) throw new WireError('id', 'must be 32 lower-case hex characters');
  const reason = str(w.reason, 'reason', 32);
  if (!REASONS.has(reason as DeviationReason)) throw new WireError('reason', 'unknown reason');
  if (!Array.isArray(w.nearest) || w.nearest.length > WIRE_LIMITS.nearest) throw new WireError('nearest', `at most ${WIRE_LIMITS.nearest}`);
  const key = str(w.baselineKey, 'baselineKey', WIRE_LIMITS.shortString);
  if (key === '') throw new WireError('baselineKey', 'must not be empty');
  return {
    id,
    key,
    baselineVersion: int(w.baselineVersion, 'baselineVersion', 0, 2 ** 32),
    entry: entryFromWire(w.entry, 'entry', onCut),
    reason: reason as DeviationReason,
    explanation: str(w.explanation, 'explanation', 1024),
    nearest: w.nearest.map((s, i) => str(s, `nearest[${i}]`, 1024)),
    event: eventFromWire(w.event, onCut),
  };
}

/** core ClusterBaseline → wire, as one message. */
export function clusterBaselineToWire(c: ClusterBaseline): WireClusterBaseline {
  return { key: c.key, state: c.state, relearn: c.relearn, version: c.version, windowStartMs: c.windowStart, learnUntilMs: c.learnUntil, entryIds: c.entryIds, removedIds: c.removedIds, driftAllowed: c.driftAllowed ?? [] };
}

/**
 * Most bytes of entry ids in one ClusterBaseline message: the collector's gRPC messages are at most
 * 1 MiB, and a part carries its key, its header and ~4 bytes of framing per id besides.
 */
export const CLUSTER_PART_BYTES = 512 << 10;
/** Most parts of one cluster baseline (an agent refuses more: 128 × 512 KiB = 64 MiB). */
export const MAX_CLUSTER_PARTS = 128;

/**
 * core ClusterBaseline → the wire messages that carry it: one when it fits in `partBytes` of ids,
 * else parts of at most `partBytes` (and WIRE_LIMITS.entriesPerSnapshot ids) each, numbered from 0,
 * that an agent reassembles (see createClusterAssembler).
 */
export function clusterBaselineToParts(c: ClusterBaseline, partBytes = CLUSTER_PART_BYTES): WireClusterBaseline[] {
  const parts: { entryIds: string[]; removedIds: string[] }[] = [{ entryIds: [], removedIds: [] }];
  let bytes = 0;
  let count = 0;
  const add = (id: string, list: 'entryIds' | 'removedIds') => {
    const size = Buffer.byteLength(id) + 4;
    if (count > 0 && (bytes + size > partBytes || count >= WIRE_LIMITS.entriesPerSnapshot)) {
      parts.push({ entryIds: [], removedIds: [] });
      bytes = 0;
      count = 0;
    }
    (parts[parts.length - 1] as { entryIds: string[]; removedIds: string[] })[list].push(id);
    bytes += size;
    count++;
  };
  for (const id of c.entryIds) add(id, 'entryIds');
  for (const id of c.removedIds) add(id, 'removedIds');
  const whole = clusterBaselineToWire(c);
  if (parts.length === 1) return [whole];
  return parts.map((p, i) => ({ ...whole, entryIds: p.entryIds, removedIds: p.removedIds, part: i, parts: parts.length }));
}

/** Reassembles cluster baselines sent in parts; a whole one passes at once. */
export interface ClusterAssembler {
  /** The cluster baseline once complete (this message, or its last missing part), else null. Throws a WireError for a part that does not fit. */
  add(w: WireClusterBaseline): ClusterBaseline | null;
  /** Keys with parts waiting. */
  readonly pending: number;
}

/** Create an assembler: at most `maxPending` keys in parts at once (the oldest is dropped beyond). */
export function createClusterAssembler(maxPending = 64): ClusterAssembler {
  const waiting = new Map<string, { version: number; parts: number; got: Map<number, ClusterBaseline> }>();
  return {
    get pending() {
      return waiting.size;
    },
    add(w) {
      const parts = typeof w.parts === 'number' ? w.parts : 0;
      const one = clusterBaselineFromWire(w);
      if (parts <= 1) {
        waiting.delete(one.key);
        return one;
      }
      if (parts > MAX_CLUSTER_PARTS) throw new WireError('parts', `at most ${MAX_CLUSTER_PARTS}`);
      const part = int(w.part ?? 0, 'part', 0, parts - 1);
      let w8 = waiting.get(one.key);
      // A new version (or a different split) replaces what was waiting: parts never mix versions.
      if (!w8 || w8.version !== one.version || w8.parts !== parts) {
        waiting.delete(one.key);
        if (waiting.size >= maxPending) waiting.delete(waiting.keys().next().value as string);
        waiting.set(one.key, (w8 = { version: one.version, parts, got: new Map() }));
      }
      w8.got.set(part, one);
      if (w8.got.size < parts) return null;
      waiting.delete(one.key);
      const ordered = [...w8.got.entries()].sort(([a], [b]) => a - b).map(([, c]) => c);
      return { ...one, entryIds: ordered.flatMap((c) => c.entryIds), removedIds: ordered.flatMap((c) => c.removedIds) };
    },
  };
}

/** Most running keys a node reports (kubelet's default max-pods is 110, each pod a few containers). */
export const MAX_RUNNING_KEYS = 512;

/** The running keys of a Hello or Heartbeat, validated and bounded (the rest is cut; `onCut` hears of it). */
export function runningKeysFromWire(v: unknown, onCut?: (field: string) => void): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new WireError('runningKeys', 'must be a list');
  if (v.length > MAX_RUNNING_KEYS) onCut?.('runningKeys');
  const out = new Set<string>();
  for (const [i, k] of v.slice(0, MAX_RUNNING_KEYS).entries()) {
    const key = str(k, `runningKeys[${i}]`, WIRE_LIMITS.shortString);
    if (key !== '') out.add(key);
  }
  return [...out];
}

/** wire ClusterBaseline → core, validated (the collector is trusted, its bytes are still bounded). */
export function clusterBaselineFromWire(w: WireClusterBaseline): ClusterBaseline {
  const key = str(w.key, 'key', WIRE_LIMITS.shortString);
  if (key === '') throw new WireError('key', 'must not be empty');
  const state = str(w.state, 'state', 16) as BaselineState;
  if (!STATES.has(state)) throw new WireError('state', 'must be learning, enforcing or locked');
  const ids = (list: unknown, field: string) => {
    if (!Array.isArray(list) || list.length > WIRE_LIMITS.entriesPerSnapshot) throw new WireError(field, `at most ${WIRE_LIMITS.entriesPerSnapshot}`);
    return list.map((id, i) => str(id, `${field}[${i}]`, WIRE_LIMITS.pathString * 2));
  };
  return {
    key,
    state,
    relearn: w.relearn === true,
    version: int(w.version, 'version', 0, 2 ** 32),
    windowStart: int(w.windowStartMs, 'windowStartMs', 0, MAX_TIME),
    learnUntil: int(w.learnUntilMs, 'learnUntilMs', 0, MAX_TIME),
    entryIds: ids(w.entryIds, 'entryIds'),
    removedIds: ids(w.removedIds, 'removedIds'),
    ...driftAllowedFromWire(w.driftAllowed),
  };
}

/** A cluster baseline's drift allow list, bounded (DRIFT_ALLOW_LIMITS); absent when empty. */
function driftAllowedFromWire(v: unknown): { driftAllowed?: string[] } {
  if (v === undefined || v === null) return {};
  if (!Array.isArray(v) || v.length > DRIFT_ALLOW_LIMITS.patterns) throw new WireError('driftAllowed', `at most ${DRIFT_ALLOW_LIMITS.patterns} patterns`);
  const list = v.map((g, i) => str(g, `driftAllowed[${i}]`, DRIFT_ALLOW_LIMITS.length)).filter((g) => g !== '');
  return list.length > 0 ? { driftAllowed: list } : {};
}

/** Why an entry of a snapshot was refused (the rest of the snapshot is kept). */
export type EntryRefusal = 'invalid' | 'id_mismatch' | 'id_invalid';

/**
 * The entry id a baseline entry must carry: the one computed from the entry itself, provided it
 * reads back as that entry (entryFromId). Anything else is refused: an id that does not stand for its
 * entry would allow one thing under the name of another, and one that does not parse would break
 * every read of its baseline.
 */
export function checkEntryId(id: string, entry: Entry): EntryRefusal | null {
  const computed = entryId(entry);
  if (id !== computed) return 'id_mismatch';
  try {
    if (entryId(entryFromId(computed)) !== computed) return 'id_invalid';
  } catch {
    return 'id_invalid';
  }
  return null;
}

/**
 * wire BaselineSnapshot → core, validated. An entry that is invalid or whose id is not its own
 * (checkEntryId) is left out and told to `refuse`; without `refuse`, it fails the whole snapshot.
 */
export function snapshotFromWire(w: WireBaselineSnapshot, refuse?: (reason: EntryRefusal, err: WireError) => void): BaselineSnapshot {
  const key = str(w.key, 'key', WIRE_LIMITS.shortString);
  if (key === '') throw new WireError('key', 'must not be empty');
  const state = str(w.state, 'state', 16) as BaselineState;
  if (!STATES.has(state)) throw new WireError('state', 'must be learning, enforcing or locked');
  if (!Array.isArray(w.entries) || w.entries.length > WIRE_LIMITS.entriesPerSnapshot) {
    throw new WireError('entries', `at most ${WIRE_LIMITS.entriesPerSnapshot}`);
  }
  if (!Array.isArray(w.images) || w.images.length > WIRE_LIMITS.images) throw new WireError('images', `at most ${WIRE_LIMITS.images}`);
  const entryOf = (e: WireEntryStats, i: number): EntryStats => {
    const f = `entries[${i}]`;
    if (!Array.isArray(e.nodes) || e.nodes.length > WIRE_LIMITS.nodesPerEntry) throw new WireError(`${f}.nodes`, 'too many');
    if (!Array.isArray(e.examples) || e.examples.length > WIRE_LIMITS.examplesPerEntry) throw new WireError(`${f}.examples`, 'too many');
    const entry = entryFromWire(e.entry, `${f}.entry`);
    const id = str(e.id, `${f}.id`, WIRE_LIMITS.pathString * 2);
    const wrong = checkEntryId(id, entry);
    if (wrong === 'id_mismatch' || wrong === 'id_invalid') throw new EntryIdError(`${f}.id`, wrong);
    return {
      id,
      entry,
      firstSeen: int(e.firstSeenMs, `${f}.firstSeenMs`, 0, MAX_TIME),
      lastSeen: int(e.lastSeenMs, `${f}.lastSeenMs`, 0, MAX_TIME),
      count: int(e.count, `${f}.count`, 0, Number.MAX_SAFE_INTEGER),
      nodes: e.nodes.map((n) => str(n, `${f}.nodes`, WIRE_LIMITS.shortString)),
      examples: e.examples.map((x) => str(x, `${f}.examples`, 1024)),
      ...(typeof e.addedBy === 'string' && e.addedBy !== '' ? { addedBy: str(e.addedBy, `${f}.addedBy`, WIRE_LIMITS.shortString * 2) } : {}),
      ...(entry.type === 'process' ? originFromWire(e.origin, `${f}.origin`) : {}),
    };
  };
  const entries: EntryStats[] = [];
  for (const [i, e] of w.entries.entries()) {
    try {
      entries.push(entryOf(e, i));
    } catch (err) {
      if (!refuse || !(err instanceof WireError)) throw err;
      refuse(err instanceof EntryIdError ? err.reason : 'invalid', err);
    }
  }
  return {
    key,
    state,
    version: int(w.version, 'version', 0, 2 ** 32),
    windowStart: int(w.windowStartMs, 'windowStartMs', 0, MAX_TIME),
    learnUntil: int(w.learnUntilMs, 'learnUntilMs', 0, MAX_TIME),
    enforcingSince: int(w.enforcingSinceMs, 'enforcingSinceMs', 0, MAX_TIME),
    events: int(w.events, 'events', 0, Number.MAX_SAFE_INTEGER),
    overflow: int(w.overflow, 'overflow', 0, Number.MAX_SAFE_INTEGER),
    images: w.images.map((img, i) => ({
      repository: str(img.repository, `images[${i}].repository`, WIRE_LIMITS.shortString),
      tag: str(img.tag, `images[${i}].tag`, WIRE_LIMITS.shortString),
      digest: str(img.digest, `images[${i}].digest`, WIRE_LIMITS.shortString),
    })),
    entries,
    ...(w.partial === true ? { partial: true } : {}),
    ...(Array.isArray(w.namespaces) && w.namespaces.length > 0 ? { namespaces: w.namespaces.slice(0, 16).map((n, i) => str(n, `namespaces[${i}]`, 63)) } : {}),
  };
}

/** core ContainerReport → wire. */
export function containerReportToWire(r: ContainerReport): WireContainerReport {
  return {
    source: r.source,
    containers: r.containers.map((c) => ({ id: c.id, name: c.name, image: c.image, imageId: c.imageId, namespace: c.namespace, pod: c.pod, workload: c.workload })),
    truncated: r.truncated,
    total: r.total,
  };
}

/**
 * A heartbeat's container report → core, validated and bounded: more than INVENTORY_LIMITS.containers
 * containers is refused whole (the agent cuts its own reports), a string too long refuses the report,
 * control characters are stripped. Containers without a repository are skipped (nothing to inventory).
 */
export function containerReportFromWire(w: WireContainerReport): ContainerReport {
  const source = w.source;
  if (source !== 'cri' && source !== 'events') throw new WireError('containers.source', 'must be cri or events');
  if (!Array.isArray(w.containers)) throw new WireError('containers.containers', 'must be a list');
  if (w.containers.length > INVENTORY_LIMITS.containers) throw new WireError('containers.containers', `more than ${INVENTORY_LIMITS.containers} containers`);
  const containers: RunningContainer[] = [];
  const seen = new Set<string>();
  for (const [i, c] of w.containers.entries()) {
    const f = `containers.containers[${i}]`;
    if (typeof c !== 'object' || c === null) throw new WireError(f, 'must be a container');
    const image = c.image ?? { repository: '', tag: '', digest: '' };
    const repository = str(image.repository, `${f}.image.repository`, INVENTORY_LIMITS.text);
    const id = str(c.id, `${f}.id`, INVENTORY_LIMITS.text);
    if (repository === '' || id === '' || seen.has(id)) continue;
    seen.add(id);
    containers.push({
      id,
      name: str(c.name, `${f}.name`, INVENTORY_LIMITS.text),
      image: { repository, tag: str(image.tag, `${f}.image.tag`, INVENTORY_LIMITS.tag), digest: str(image.digest, `${f}.image.digest`, INVENTORY_LIMITS.digest) },
      imageId: str(c.imageId, `${f}.imageId`, INVENTORY_LIMITS.digest),
      namespace: str(c.namespace, `${f}.namespace`, INVENTORY_LIMITS.text),
      pod: str(c.pod, `${f}.pod`, INVENTORY_LIMITS.text),
      workload: str(c.workload, `${f}.workload`, INVENTORY_LIMITS.text),
    });
  }
  const total = typeof w.total === 'number' && Number.isSafeInteger(w.total) && w.total >= 0 ? w.total : containers.length;
  return { source, containers, truncated: w.truncated === true, total: Math.max(total, containers.length) };
}
