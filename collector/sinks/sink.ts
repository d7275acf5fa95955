/**
 * The sink interface: one destination for alert notifications (a webhook, Slack, PagerDuty,
 * Alertmanager). Each implementation lives in its own file, builds its payload with a pure function
 * that tests call directly, and sends it through ./http.ts, where HTTP status becomes a typed error.
 */
import { z } from 'zod';
import { describeEntry, type Entry } from '../../core/entry.js';
import type { EventKind } from '../../core/event.js';
import type { Severity } from '../../core/severity.js';
import type { Alert } from '../alerting/alert.js';
import type { RetryDeps } from './http.js';

/** What happened to the alert: it fires (or fires again), someone acknowledged it, or it is over. */
export type NotificationAction = 'trigger' | 'acknowledge' | 'resolve';

/** All actions, in life-cycle order. */
export const NOTIFICATION_ACTIONS: readonly NotificationAction[] = ['trigger', 'acknowledge', 'resolve'];

/** Everything a sink may show about one alert at one step of its life cycle. Times are ms since the epoch. */
export interface Notification {
  action: NotificationAction;
  /** When the action happened (the resolve time becomes Alertmanager's endsAt). */
  at: number;
  /** The alert's fingerprint (baseline key + entry): stable, so it keys PagerDuty's dedup_key. */
  fingerprint: string;
  severity: Severity;
  /** The severity rule that decided, and the human reason it gives. */
  ruleId: string;
  ruleReason: string;
  /** The baseline key and the image repository it belongs to. */
  baselineKey: string;
  image: string;
  /** The event kind of a deviation alert, or `agent` for an operational alert about a node's agent (silent). */
  kind: EventKind | 'agent';
  /** The deviation's entry; null for an operational alert. */
  entry: Entry | null;
  /** describeEntry(entry): one line a person can read. */
  description: string;
  /** A title that replaces the one made from the entry (operational alerts). */
  title?: string;
  /** The raw command line or peer of the latest deviation. */
  example: string;
  /** The deviation reason (`new-executable`, ...) and its sentence. */
  reason: string;
  explanation: string;
  nearest: readonly string[];
  count: number;
  firstSeen: number;
  lastSeen: number;
  nodes: readonly string[];
  /** `namespace/name` of pods it was seen in. */
  pods: readonly string[];
  namespace: string;
  /** Owning team from the ownership map, or ''. */
  team: string;
  /** Link to the alert in the console or API, or '' when the collector has no public URL. */
  url: string;
  /** Who acknowledged or resolved it, when known, else ''. */
  actor: string;
  /** Their comment, else ''. Absent in notifications written before it existed. */
  comment?: string;
  /** The alert's life-cycle state when this was written (absent: older notifications; see stateOf). */
  state?: 'firing' | 'acknowledged' | 'resolved' | 'accepted';
  /** What the alert is about (absent: older notifications; see categoryOf). */
  category?: AlertCategory;
  /** When the collector received the alert's first deviation: times shown to receivers never pass it. */
  receivedAt?: number;
  /**
   * The package behind a process alert's executable, from its image's SBOM (issue 22). Added by the
   * outbox worker when it delivers (not stored in the outbox); absent when no SBOM speaks for the
   * image, for network and operational alerts, and when the lookup failed.
   */
  package?: NotificationPackage;
}

/** The SBOM link of a notification's executable. */
export interface NotificationPackage {
  /** One line: `/usr/bin/curl, package curl 7.88.1-10+deb12u8`, `/tmp/x, not in the image's SBOM`. */
  text: string;
  /** `package`, `listed` (without a package), `not-listed` (drift evidence) or `unknown` (the SBOM lists no files). */
  status: 'package' | 'listed' | 'not-listed' | 'unknown';
  /** The package's name, version and purl; '' without a package. */
  name: string;
  version: string;
  purl: string;
  /** The SBOM lists the image's files, and not this one. */
  notInSbom: boolean;
  /** The digest of the SBOM used. */
  sbom: string;
  /** Why that SBOM when it is not the one of the digest that ran, else ''. */
  note: string;
}

/**
 * What kind of alert: a deviation from a baseline, an agent gone silent (operational), or the summary
 * storm control sends instead of the alerts it held back. Receivers route on it (Alertmanager's
 * alertname, PagerDuty's class).
 */
export type AlertCategory = 'deviation' | 'agent-silent' | 'storm';

/** The category of `n`, also for notifications stored before the field existed (told by their rule). */
export function categoryOf(n: Pick<Notification, 'category' | 'ruleId'>): AlertCategory {
  return n.category ?? (n.ruleId === 'agent-silent' ? 'agent-silent' : n.ruleId === 'storm-control' ? 'storm' : 'deviation');
}

/** The alert's state when `n` was written, also for notifications stored before the field existed. */
export function stateOf(n: Pick<Notification, 'state' | 'action'>): NonNullable<Notification['state']> {
  // The action is what happened: a resolve ends in resolved (or accepted), an acknowledge in acknowledged.
  if (n.action === 'resolve') return n.state === 'accepted' ? 'accepted' : 'resolved';
  if (n.action === 'acknowledge') return 'acknowledged';
  return n.state ?? 'firing';
}

/**
 * When the alert started, as receivers are told: its first event's time, but never later than when
 * the collector received it nor than `n.at` (a clock ahead on a node, or a forged event time, must not
 * make an alert that starts in the future: Alertmanager refuses it, and people misread it).
 */
export function saneStart(n: Pick<Notification, 'firstSeen' | 'receivedAt' | 'at'>): number {
  const bound = Math.min(n.at, n.receivedAt !== undefined && n.receivedAt > 0 ? n.receivedAt : n.at);
  return n.firstSeen > 0 ? Math.min(n.firstSeen, bound) : bound;
}

/**
 * A message for people that is not an alert: an exception about to expire, a team's daily digest.
 * Only chat-like sinks (webhook, Slack) take notices; pagers and Alertmanager never see them.
 */
export interface Notice {
  kind: 'exception-expiring' | 'digest';
  at: number;
  /** The team it is for, or ''. */
  team: string;
  /** One line. */
  title: string;
  /** The body, one item per line (bounded by the sender). */
  lines: string[];
  /** Link for more, or ''. */
  url: string;
}

/**
 * Thrown by `send` when the sink decided not to deliver this notification (a ticket sink past its
 * maxNewTicketsPerHour): the outbox records the delivery as skipped, `reason: message`, and does not retry it.
 */
export class SkippedDelivery extends Error {
  constructor(
    /** A short key (`ticket-limit`), the first word of the recorded reason. */
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'SkippedDelivery';
  }
}

/** One destination. `send` resolves once the destination accepted the notification, or throws a DeliveryError. */
export interface Sink {
  /** The configured name, used in logs and metrics (never a URL or key). */
  readonly name: string;
  /** The sink type (`webhook`, `slack`, ...). */
  readonly type: string;
  /** Deliver one notification, retrying what the destination allows, until done, failed for good, or `signal` aborts. */
  send(notification: Notification, signal: AbortSignal): Promise<void>;
  /** Deliver a notice; absent on sinks that take none. */
  notify?(notice: Notice, signal: AbortSignal): Promise<void>;
}

/** What the collector knows besides the stored alert when it notifies. */
export interface NotificationContext {
  action: NotificationAction;
  at: number;
  /** Severity and rule; default: the alert's own. */
  severity?: Severity | undefined;
  ruleId?: string | undefined;
  ruleReason?: string | undefined;
  team?: string | undefined;
  url?: string | undefined;
  /** Who made the alert's current state, and their comment; default: the alert's own (none while firing). */
  actor?: string | undefined;
  comment?: string | undefined;
}

/** Build a notification from a stored alert plus what alerting decided (severity, owner, action). Pure. */
export function notificationOf(alert: Alert, ctx: NotificationContext): Notification {
  const first = alert.pods[0] ?? '';
  const slash = first.indexOf('/');
  return {
    action: ctx.action,
    at: ctx.at,
    fingerprint: alert.fingerprint,
    severity: ctx.severity ?? alert.severity,
    ruleId: ctx.ruleId ?? alert.ruleId,
    ruleReason: ctx.ruleReason ?? alert.ruleReason,
    baselineKey: alert.baselineKey,
    image: alert.image,
    kind: alert.kind,
    entry: alert.entry,
    description: describeEntry(alert.entry),
    example: alert.example,
    reason: alert.reason,
    explanation: alert.explanation,
    nearest: alert.nearest,
    count: alert.count,
    firstSeen: alert.firstSeen,
    lastSeen: alert.lastSeen,
    nodes: alert.nodes,
    pods: alert.pods,
    namespace: alert.namespace !== '' ? alert.namespace : slash > 0 ? first.slice(0, slash) : '',
    team: ctx.team ?? alert.team,
    url: ctx.url ?? '',
    // Taken from the alert, so a re-send carries who acknowledged it as the first post did.
    actor: ctx.actor ?? (alert.state !== 'firing' ? alert.stateBy : ''),
    comment: ctx.comment ?? (alert.state !== 'firing' ? alert.stateComment : ''),
    state: alert.state,
    category: 'deviation',
    receivedAt: alert.createdAt,
  };
}

/** Cut `text` to at most `max` characters, marking the cut with an ellipsis. Never splits a surrogate pair. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - 1;
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--;
  return `${text.slice(0, end)}…`;
}

/** RFC 3339 time of ms since the epoch; '' for 0 (unknown). */
export function isoTime(ms: number): string {
  return ms > 0 ? new Date(ms).toISOString() : '';
}

/** A short title: `nginx: new process /bin/sh -c <...>`. */
export function titleOf(n: Notification): string {
  if (n.title !== undefined) return n.title;
  const slash = n.image.lastIndexOf('/');
  const short = slash === -1 ? n.image : n.image.slice(slash + 1);
  // Drift is not "new" behaviour but code that did not come with the image; the explanation says
  // which origin (core/event originText: "binary not from the image (written after start)", ...).
  const what = n.reason === 'drift' ? 'binary not from the image:' : n.kind === 'exec' ? 'new process' : n.entry?.type === 'network' && n.entry.direction === 'listen' ? 'new listening port' : 'new connection';
  return `${short || n.baselineKey}: ${what} ${n.description}`;
}

/** Injected effects shared by all sinks, so tests control time and retries. */
export interface SinkDeps extends RetryDeps {
  /** Wall clock in ms (signature timestamps, Retry-After dates, rate spacing). */
  now?: (() => number) | undefined;
}

/** A sink's configured name: it appears in logs and metric labels, so it is short and plain. */
export const sinkName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be 1-63 lowercase letters, digits, - or _');
