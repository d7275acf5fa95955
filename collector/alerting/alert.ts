/**
 * The alert domain: an alert (deviations grouped by fingerprint) and its life cycle, the exceptions
 * that keep one from notifying, the notifications it makes (outbox items, one per sink), and the
 * policy the store consults while it writes them. Plain types: the store, alerting, the sinks and the
 * HTTP API all speak them, and none of them needs another to get them.
 */
import type { Deviation } from '../../core/deviation.js';
import type { Entry } from '../../core/entry.js';
import type { EventKind } from '../../core/event.js';
import type { BaselineFacts, Severity } from '../../core/severity.js';

/**
 * Life cycle of an alert: `firing` → `acknowledged` (someone is on it) → `resolved`; or `accepted`
 * (the behaviour is fine: its entry joins the baseline). A resolved alert fires again when its
 * behaviour comes back; an accepted one cannot, as the collector drops deviations its baseline knows.
 */
export type AlertState = 'firing' | 'acknowledged' | 'resolved' | 'accepted';

/** All alert states. */
export const ALERT_STATES: readonly AlertState[] = ['firing', 'acknowledged', 'resolved', 'accepted'];

/** What alerting decides for a new alert, from its first deviation. */
export interface AlertDecision {
  severity: Severity;
  ruleId: string;
  ruleReason: string;
  /** Owning team from the ownership map, or ''. */
  team: string;
  /** Names of the sinks it is routed to. */
  receivers: string[];
}

/** The policy the store consults inside the ingest transaction. */
export interface AlertPolicy {
  /** Decide severity, owner and routing of a new alert; `facts` reads the merged baseline of its key. */
  decide(d: Deviation, facts: () => BaselineFacts): AlertDecision;
  /** The id of an active exception that covers this deviation at `at`, or ''. */
  exceptionFor(d: Deviation, at: number): string;
  /** Notifications of a new or reopened alert at `at` (the batch's arrival), written to the outbox in the same transaction. */
  notify?(alert: Alert, at: number): OutboxEntry[];
}

/**
 * One storm-control window as a replica counted it: `count` new alerts of `scope` admitted in the
 * window that starts at `start` (windows are aligned to multiples of their length, so every replica
 * cuts the same ones), and whether it has already sent the window's summary.
 */
export interface StormCount {
  scope: string;
  start: number;
  /** When the window ends (start + its length). */
  until: number;
  count: number;
  summarized: boolean;
}

/** A notification to write to the outbox; `notBefore` (ms) holds a pending one back until then (default: due at once). */
export type OutboxEntry = Pick<OutboxItem, 'alert' | 'sink' | 'action' | 'body' | 'state' | 'lastError'> & { notBefore?: number };

/** A group of deviations with one fingerprint (baseline key + entry). */
export interface Alert {
  fingerprint: string;
  state: AlertState;
  baselineKey: string;
  /** Image repository of the key. */
  image: string;
  kind: EventKind;
  entry: Entry;
  reason: string;
  explanation: string;
  nearest: string[];
  firstSeen: number;
  lastSeen: number;
  count: number;
  nodes: string[];
  /** `namespace/name` of pods it was seen in (bounded). */
  pods: string[];
  /** The most recent deviation's id and raw example. */
  lastDeviationId: string;
  example: string;
  createdAt: number;
  severity: Severity;
  /** The severity rule that decided, and its reason. */
  ruleId: string;
  ruleReason: string;
  team: string;
  /** Namespace of the first pod it was seen in, or ''. */
  namespace: string;
  /** Pod labels of the first deviation (bounded). */
  labels: Record<string, string>;
  /** Sink names it is routed to. */
  receivers: string[];
  /** Id of the exception that covered its latest deviations, or '' (then it notifies). */
  suppressedBy: string;
  /** Who made the last life-cycle change, when, and their comment. */
  stateBy: string;
  stateAt: number;
  stateComment: string;
}

/** A life-cycle change asked for through the API. */
export interface AlertTransition {
  to: Exclude<AlertState, 'firing'>;
  by: string;
  at: number;
  comment: string;
}

/** One notification waiting for, or done with, delivery to one sink. */
export interface OutboxItem {
  seq: number;
  /** The alert fingerprint, or a synthetic id (storm summaries). */
  alert: string;
  sink: string;
  action: string;
  /** The notification, as JSON. */
  body: string;
  state: 'pending' | 'delivered' | 'failed' | 'skipped';
  attempts: number;
  nextAt: number;
  lastError: string;
  createdAt: number;
  doneAt: number;
}

/** A risk accepted by security: deviations it matches are stored and shown, but not notified. */
export interface AlertException {
  id: string;
  /** Glob over the baseline key ('' = any). */
  key: string;
  /** Glob over the entry as describeEntry shows it ('' = any). */
  entry: string;
  /** Exact namespace ('' = any). */
  namespace: string;
  reason: string;
  owner: string;
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  /** When it was revoked, or 0. */
  revokedAt: number;
  revokedBy: string;
  /** When the owner was told that it expires soon, or 0. */
  remindedAt: number;
}
