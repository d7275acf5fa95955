/**
 * Loads the wire contract once and converts between core's model and the proto messages.
 * The .proto files are read at run time from the repository's proto/ folder.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ActivityEvent, EventKind } from '../core/event.js';
import type { Entry } from '../core/entry.js';
import type { UserClass } from '../core/normalize.js';
import type { BaselineSnapshot, BaselineState, ClusterBaseline, DeviationReason, EntryStats } from '../core/baseline.js';
import type { Deviation } from '../core/deviation.js';

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
  process?: { exe: string; parent: string; user: string; args: string } | null;
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
}

/** Wire AgentMessage. */
export interface WireAgentMessage {
  hello?: { node: string; agentVersion: string; sources: string[]; protocol: number } | null;
  batch?: { batchId: number; deviations: WireDeviation[]; baselines: WireBaselineSnapshot[] } | null;
  heartbeat?: { timeMs: number; spooled: number; watermarkMs: number; spoolBytes?: number; oldestSpooledAgeMs?: number; spoolDropped?: number } | null;
  goodbye?: { spooled: number } | null;
  payload?: string;
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
    ? { process: { exe: e.exe, parent: e.parent, user: e.user, args: e.args } }
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
    process: { ...ev.process, args: [...ev.process.args] },
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

function str(v: unknown, field: string, max: number): string {
  if (typeof v !== 'string') throw new WireError(field, 'must be a string');
  if (v.length > max) throw new WireError(field, `longer than ${max} characters`);
  return v;
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
  'new-executable', 'new-parent', 'new-user', 'new-arguments', 'new-peer', 'new-port', 'new-listen-port', 'new-protocol',
]);
const MAX_TIME = 8_640_000_000_000_000;

function protocolOf(v: unknown, field: string): 'tcp' | 'udp' {
  if (v !== 'tcp' && v !== 'udp') throw new WireError(field, 'must be tcp or udp');
  return v;
}

/** wire Entry → core, validated. */
export function entryFromWire(w: WireEntry | null | undefined, field = 'entry'): Entry {
  if (w?.process) {
    const p = w.process;
    const user = str(p.user, `${field}.process.user`, 16);
    if (!USERS.has(user)) throw new WireError(`${field}.process.user`, 'unknown user class');
    return {
      type: 'process',
      exe: str(p.exe, `${field}.process.exe`, WIRE_LIMITS.pathString),
      parent: str(p.parent, `${field}.process.parent`, WIRE_LIMITS.shortString),
      user: user as UserClass,
      args: str(p.args, `${field}.process.args`, WIRE_LIMITS.pathString),
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

/** wire Event → core, validated. */
export function eventFromWire(w: WireEvent | null | undefined): ActivityEvent {
  if (!w) throw new WireError('event', 'missing');
  const kind = WIRE_TO_KIND[w.kind];
  if (!kind) throw new WireError('event.kind', 'unknown kind');
  const p = w.process;
  if (!p) throw new WireError('event.process', 'missing');
  if (!Array.isArray(p.args) || p.args.length > WIRE_LIMITS.args) throw new WireError('event.process.args', `at most ${WIRE_LIMITS.args} arguments`);
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
      args: p.args.map((a, i) => str(a, `event.process.args[${i}]`, WIRE_LIMITS.argLength)),
      parentExe: str(p.parentExe, 'event.process.parentExe', WIRE_LIMITS.pathString),
      parentName: str(p.parentName, 'event.process.parentName', WIRE_LIMITS.shortString),
      uid: int(p.uid, 'event.process.uid', -1, 2 ** 32),
      user: str(p.user, 'event.process.user', WIRE_LIMITS.shortString),
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

/** wire Deviation → core, validated. The id must be 32 lower-case hex characters. */
export function deviationFromWire(w: WireDeviation): Deviation {
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
    entry: entryFromWire(w.entry),
    reason: reason as DeviationReason,
    explanation: str(w.explanation, 'explanation', 1024),
    nearest: w.nearest.map((s, i) => str(s, `nearest[${i}]`, 1024)),
    event: eventFromWire(w.event),
  };
}

/** core ClusterBaseline → wire. */
export function clusterBaselineToWire(c: ClusterBaseline): WireClusterBaseline {
  return { key: c.key, state: c.state, relearn: c.relearn, version: c.version, windowStartMs: c.windowStart, learnUntilMs: c.learnUntil, entryIds: c.entryIds, removedIds: c.removedIds };
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
  };
}

/** wire BaselineSnapshot → core, validated. */
export function snapshotFromWire(w: WireBaselineSnapshot): BaselineSnapshot {
  const key = str(w.key, 'key', WIRE_LIMITS.shortString);
  if (key === '') throw new WireError('key', 'must not be empty');
  const state = str(w.state, 'state', 16) as BaselineState;
  if (!STATES.has(state)) throw new WireError('state', 'must be learning, enforcing or locked');
  if (!Array.isArray(w.entries) || w.entries.length > WIRE_LIMITS.entriesPerSnapshot) {
    throw new WireError('entries', `at most ${WIRE_LIMITS.entriesPerSnapshot}`);
  }
  if (!Array.isArray(w.images) || w.images.length > WIRE_LIMITS.images) throw new WireError('images', `at most ${WIRE_LIMITS.images}`);
  const entries: EntryStats[] = w.entries.map((e, i) => {
    const f = `entries[${i}]`;
    if (!Array.isArray(e.nodes) || e.nodes.length > WIRE_LIMITS.nodesPerEntry) throw new WireError(`${f}.nodes`, 'too many');
    if (!Array.isArray(e.examples) || e.examples.length > WIRE_LIMITS.examplesPerEntry) throw new WireError(`${f}.examples`, 'too many');
    return {
      id: str(e.id, `${f}.id`, WIRE_LIMITS.pathString * 2),
      entry: entryFromWire(e.entry, `${f}.entry`),
      firstSeen: int(e.firstSeenMs, `${f}.firstSeenMs`, 0, MAX_TIME),
      lastSeen: int(e.lastSeenMs, `${f}.lastSeenMs`, 0, MAX_TIME),
      count: int(e.count, `${f}.count`, 0, Number.MAX_SAFE_INTEGER),
      nodes: e.nodes.map((n) => str(n, `${f}.nodes`, WIRE_LIMITS.shortString)),
      examples: e.examples.map((x) => str(x, `${f}.examples`, 1024)),
      ...(typeof e.addedBy === 'string' && e.addedBy !== '' ? { addedBy: str(e.addedBy, `${f}.addedBy`, WIRE_LIMITS.shortString * 2) } : {}),
    };
  });
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
