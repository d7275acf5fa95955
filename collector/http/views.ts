/**
 * The JSON shapes of the collector's objects as the HTTP API, the live feed and the alert log line
 * show them: pure functions from the store's records. Times are RFC 3339 strings (null when unset);
 * nothing here reads a request or the store.
 */
import { describeEntry, type Entry } from '../../core/entry.js';
import { generalizationOf } from '../../core/baseline.js';
import { originText } from '../../core/event.js';
import type { NodeStatus } from '../ingest/node-tracker.js';
import type { Alert, AlertException, OutboxItem } from '../alerting/alert.js';
import type { BaselineSummary, BaselineVersion, BaselineView, StoredDeviation } from '../store/store.js';

/** Last millisecond of year 9999: later times have no RFC 3339 form (rows stored before times were bounded). */
const MAX_RFC3339_MS = 253_402_300_799_999;

/** A time in ms since the epoch as RFC 3339, or null when unset (0) or beyond year 9999. */
export function iso(ms: number): string | null {
  return ms > 0 && ms <= MAX_RFC3339_MS ? new Date(ms).toISOString() : null;
}

/** An alert as `GET /api/v1/alerts` shows it (and the live feed, and the collector's alert log line). */
export function alertView(a: Alert) {
  const [podNamespace] = a.pods.length > 0 ? (a.pods[0] as string).split('/') : [''];
  const namespace = a.namespace !== '' ? a.namespace : podNamespace;
  return {
    id: a.fingerprint,
    state: a.state,
    image: a.image,
    baselineKey: a.baselineKey,
    kind: a.kind,
    summary: describeEntry(a.entry),
    reason: a.reason,
    explanation: a.explanation,
    // Drift: the binary did not come from the image (the explanation says from where).
    drift: a.reason === 'drift',
    process: a.entry.type === 'process' ? { exe: a.entry.exe, applet: a.entry.applet ?? null, args: a.entry.args, parent: a.entry.parent, user: a.entry.user } : null,
    network: a.entry.type === 'network' ? { direction: a.entry.direction, protocol: a.entry.protocol, peer: a.entry.peer, port: a.entry.port } : null,
    example: a.example,
    nearest: a.nearest,
    firstSeen: iso(a.firstSeen),
    lastSeen: iso(a.lastSeen),
    count: a.count,
    nodes: a.nodes,
    pods: a.pods,
    namespace: namespace ?? '',
    lastDeviationId: a.lastDeviationId,
    createdAt: iso(a.createdAt),
    severity: a.severity,
    rule: { id: a.ruleId, reason: a.ruleReason },
    team: a.team,
    labels: a.labels,
    receivers: a.receivers,
    suppressedBy: a.suppressedBy === '' ? null : a.suppressedBy,
    stateChange: a.stateAt > 0 ? { by: a.stateBy, at: iso(a.stateAt), comment: a.stateComment } : null,
  };
}

/** The JSON shape of an alert. */
export type AlertView = ReturnType<typeof alertView>;

/** One delivery of an alert to a sink (`deliveries` of `GET /api/v1/alerts/{id}`). */
export function deliveryView(d: OutboxItem) {
  return {
    sink: d.sink,
    action: d.action,
    state: d.state,
    attempts: d.attempts,
    lastError: d.lastError === '' ? null : d.lastError,
    createdAt: iso(d.createdAt),
    nextAttemptAt: d.state === 'pending' ? iso(d.nextAt) : null,
    doneAt: iso(d.doneAt),
  };
}

/** An exception, with its status at `now`. */
export function exceptionView(e: AlertException, now: number) {
  return {
    id: e.id,
    status: e.revokedAt > 0 ? 'revoked' : e.expiresAt <= now ? 'expired' : 'active',
    match: { key: e.key || null, entry: e.entry || null, namespace: e.namespace || null },
    reason: e.reason,
    owner: e.owner,
    createdBy: e.createdBy,
    createdAt: iso(e.createdAt),
    expiresAt: iso(e.expiresAt),
    revokedAt: iso(e.revokedAt),
    revokedBy: e.revokedBy || null,
    remindedAt: iso(e.remindedAt),
  };
}

/** A deviation with its full event. */
export function deviationView(s: StoredDeviation) {
  const d = s.deviation;
  return {
    id: d.id,
    alertId: s.fingerprint,
    baselineKey: d.key,
    baselineVersion: d.baselineVersion,
    kind: d.event.kind,
    summary: describeEntry(d.entry),
    reason: d.reason,
    explanation: d.explanation,
    entry: d.entry,
    time: iso(d.event.time),
    // The node's own time when it was too far ahead of the collector's clock (`time` is then the receive time).
    reportedTime: d.reportedTime === undefined ? null : Number.isSafeInteger(d.reportedTime) ? d.reportedTime : null,
    receivedAt: iso(s.receivedAt),
    node: d.event.node,
    nodeQuarantined: s.nodeQuarantined,
    container: d.event.container,
    pod: d.event.pod,
    process: d.event.process,
    network: d.event.network,
  };
}

function baselineHeaderView(b: Omit<BaselineView, 'entries' | 'driftAllowed'>) {
  return {
    key: b.key,
    state: b.state,
    version: b.version,
    partial: b.partial,
    namespaces: b.namespaces,
    windowStart: iso(b.windowStart),
    learnUntil: iso(b.learnUntil),
    enforcingSince: iso(b.enforcingSince),
    events: b.events,
    overflow: b.overflow,
    images: b.images,
    nodes: b.nodes.map((n) => n.node),
    nodeStates: b.nodes,
  };
}

/** A baseline as `GET /api/v1/baselines` lists it: its header and entry counts. */
export function baselineSummaryView(b: BaselineSummary) {
  return { ...baselineHeaderView(b), processEntries: b.processEntries, networkEntries: b.networkEntries, openAlerts: b.openAlerts };
}

/** An entry by its id: the id, a one-line summary and the entry's fields. */
export function entryView(e: { id: string; entry: Entry }) {
  return { id: e.id, summary: describeEntry(e.entry), ...e.entry };
}

/** A baseline with its entries (the contract of core/baseline-doc's BaselineView). */
export function baselineView(b: BaselineView) {
  const active = b.entries.filter((e) => e.status !== 'removed').map((e) => e.id);
  return {
    ...baselineHeaderView(b),
    // Executable path globs whose drift (a binary not from the image) security allowed for this key.
    driftAllowed: b.driftAllowed,
    entries: b.entries.map((e) => ({
      ...entryView(e),
      status: e.status,
      statusReason: e.statusReason,
      // A block or class learned from many addresses: the evidence the baseline holds for it; null for any other entry.
      generalization: generalizationOf(e.entry, active),
      firstSeen: iso(e.firstSeen),
      lastSeen: iso(e.lastSeen),
      count: e.count,
      nodes: e.nodes,
      // Nodes whose share of the entry was dropped (quarantined, or by a reviewer): it stays through other nodes or security.
      droppedNodes: e.droppedNodes,
      examples: e.examples,
      // Where a process entry's executable came from (core/event ExecutableOrigin) and what that means; null: no source told.
      origin: e.entry.type === 'process' ? e.origin ?? null : null,
      originText: e.entry.type === 'process' && e.origin !== undefined ? originText(e.origin) : null,
    })),
  };
}

/** One version of a baseline. */
export function versionView(v: BaselineVersion) {
  return { version: v.version, at: iso(v.at), by: v.by, action: v.action, reason: v.reason, state: v.state, entries: v.entryIds.length, removed: v.removedIds.length };
}

/** A node's agent. */
export function nodeView(n: NodeStatus) {
  return {
    node: n.node,
    agentVersion: n.agentVersion,
    sources: n.sources,
    connected: n.streams > 0,
    streams: n.streams,
    firstSeen: iso(n.firstSeen),
    lastContact: iso(n.lastContact),
    /** Age of the oldest record in its spool not yet acknowledged, in seconds (0: nothing waits). */
    lagSeconds: n.lagMs / 1000,
    spooled: n.spooled,
    spoolBytes: n.spoolBytes,
    spoolDropped: n.spoolDropped,
    watermark: iso(n.watermark),
    silent: n.silent,
    silentSince: iso(n.silentSince),
    stopped: n.stopped,
    stoppedAt: iso(n.stoppedAt),
  };
}
