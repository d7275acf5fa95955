/**
 * The alert policy: what the store asks inside an ingest transaction. Severity, owner and receivers
 * of a new alert; the exception that covers a deviation; the notifications of a new or reopened
 * alert, through storm control. Built from plain data (the alerting config, the sink names, the
 * active exceptions), so that the ingest worker thread builds the same policy as the main thread.
 */
import { createHash } from 'node:crypto';
import type { Deviation } from '../../core/deviation.js';
import { describeEntry } from '../../core/entry.js';
import { classify, globMatch, parseSeverityRules } from '../../core/severity.js';
import { notificationOf, type Notification } from '../sinks/sink.js';
import type { Alert, AlertException, AlertPolicy, OutboxEntry, StormCount } from './alert.js';

export type { StormCount } from './alert.js';
import { ownerOf, routeAlert, type AlertingConfig } from './config.js';

/** Most active exceptions held (and matched per deviation group). */
export const MAX_EXCEPTIONS = 10_000;

/** Most storm windows held (one per baseline key with new alerts in its window, and the global one); past it they start again. */
export const MAX_STORM_WINDOWS = 10_000;

/** Everything a policy is made from: plain data, so it crosses to a worker thread as it is. */
export interface PolicySpec {
  config: AlertingConfig;
  /** Names of the configured sinks. */
  sinks: readonly string[];
  /** Base URL under which alerts are linked in notifications ('' = no link). */
  publicUrl: string;
}

/** Why a new or reopened alert was not notified. */
export type SuppressedReason = 'exception' | 'no-receiver' | 'storm';

/** What the policy tells its host (metrics and logs live there). */
export interface PolicyHooks {
  /** `n` (default 1) new or reopened alerts were not notified, for `reason`. */
  suppressed(reason: SuppressedReason, n?: number): void;
  /** Storm control paused notifications for `scope` until `until` (once per window and scope). */
  storm(scope: string, until: string): void;
}

/** A policy whose active exceptions, and what other replicas counted, can be replaced. */
export interface AlertPolicyHandle extends AlertPolicy {
  setExceptions(active: readonly AlertException[]): void;
  /** This policy's own counts of the storm windows still open at `at` (for the other replicas). */
  stormCounts(at: number): StormCount[];
  /** What the other replicas counted in their open windows (summed per scope and window): admitted alerts count against the same limits. */
  setPeerStorm(peers: readonly StormCount[]): void;
}

/** The window of length `per` that holds `t`: aligned, so that replicas agree on it without talking. */
export function windowStart(t: number, per: number): number {
  return t - (((t % per) + per) % per);
}

/** The active exceptions of `all` at `at`, bounded. */
export function activeExceptions(all: readonly AlertException[], at: number): AlertException[] {
  return all.filter((e) => e.revokedAt === 0 && e.expiresAt > at).slice(0, MAX_EXCEPTIONS);
}

/** The link to `path` under the collector's API at `publicUrl`, or '' when no public URL is configured. */
export function apiLink(publicUrl: string, path: string): string {
  return publicUrl ? `${publicUrl.replace(/\/+$/, '')}/api/v1/${path}` : '';
}

/** The receivers new alerts go to when no owner names its own: the configured ones, else every sink. */
export function defaultReceivers(spec: PolicySpec): readonly string[] {
  return spec.config.defaultReceivers ?? spec.sinks;
}

/** Prefix of the fingerprints of storm summaries (never a deviation alert's: those are hex). */
export const STORM_PREFIX = 'storm-';

/** Whether `fingerprint` is a storm summary's. */
export function isStormSummary(fingerprint: string): boolean {
  return fingerprint.startsWith(STORM_PREFIX);
}

/**
 * The summary storm control sends instead of the alerts it holds back for `scope` until `until`: an
 * alert of its own (category `storm`, its own title), raised by the trigger that crossed the line.
 */
export function stormSummary(trigger: Notification, scope: string, until: number): Notification {
  const at = new Date(until).toISOString();
  return {
    ...trigger,
    // Named by scope and window, not by the trigger: a replica that crosses the line in the same
    // window as another (before their counts met) sends the same summary, which PagerDuty and
    // Alertmanager take as one.
    fingerprint: `${STORM_PREFIX}${createHash('sha256').update(scope).digest('hex').slice(0, 16)}-${until}`,
    category: 'storm',
    // Past the global rate, the crossing alert's image is one of many: name none.
    baselineKey: scope === trigger.baselineKey ? trigger.baselineKey : '',
    image: scope === trigger.baselineKey ? trigger.image : '',
    nodes: [],
    pods: [],
    title: `Driftwatch storm control: new alerts for ${scope} are not notified until ${at}`,
    description: `storm control: too many new alerts for ${scope}; notifications paused until ${at}`,
    explanation: `More new alerts for ${scope} than the configured rate: until ${at} they are stored, not notified. Every alert is still stored: see the alert list. This alert resolves itself then.`,
    ruleId: 'storm-control',
    ruleReason: 'more new alerts than the configured rate',
    entry: null,
    example: '',
    nearest: [],
    reason: 'storm-control',
    actor: '',
    comment: '',
    state: 'firing',
  };
}

/** Create a policy. */
export function createAlertPolicy(spec: PolicySpec, hooks: PolicyHooks): AlertPolicyHandle {
  const { config } = spec;
  const rules = parseSeverityRules(config.severity ?? {});
  const defaults = defaultReceivers(spec);
  const knownSink = new Set(spec.sinks);
  let exceptions: readonly AlertException[] = [];

  // ---- storm control: fixed windows per image and for everything, shared by the replicas ----
  const windows = new Map<string, { start: number; count: number; summarized: boolean }>();
  /** What the other replicas counted, by `scope\nstart`. */
  let peers = new Map<string, { count: number; summarized: boolean }>();
  /** Whether a trigger for `image` may go out at `t`; when not, whether this is the first refusal of the window. */
  function admit(image: string, t: number): { ok: true } | { ok: false; scope: string; first: boolean; until: number } {
    const check = (scope: string, limit: { max: number; per: number }) => {
      const start = windowStart(t, limit.per);
      let w = windows.get(scope);
      if (!w || w.start !== start) {
        if (windows.size >= MAX_STORM_WINDOWS) windows.clear();
        windows.set(scope, (w = { start, count: 0, summarized: false }));
      }
      const peer = peers.get(`${scope}\n${start}`);
      return { w, count: w.count + (peer?.count ?? 0), summarized: w.summarized || (peer?.summarized ?? false) };
    };
    const g = check('*', config.storm.global);
    const i = check(image, config.storm.perImage);
    const over = g.count >= config.storm.global.max ? { c: g, scope: 'all images', per: config.storm.global.per } : i.count >= config.storm.perImage.max ? { c: i, scope: image, per: config.storm.perImage.per } : null;
    if (!over) {
      g.w.count++;
      i.w.count++;
      return { ok: true };
    }
    const first = !over.c.summarized;
    over.c.w.summarized = true;
    return { ok: false, scope: over.scope, first, until: over.c.w.start + over.per };
  }

  return {
    setExceptions(active) {
      exceptions = active.slice(0, MAX_EXCEPTIONS);
    },
    stormCounts(at) {
      const out: StormCount[] = [];
      for (const [scope, w] of windows) {
        const per = scope === '*' ? config.storm.global.per : config.storm.perImage.per;
        if (at < w.start + per && (w.count > 0 || w.summarized)) out.push({ scope, start: w.start, until: w.start + per, count: w.count, summarized: w.summarized });
      }
      return out;
    },
    setPeerStorm(counts) {
      const next = new Map<string, { count: number; summarized: boolean }>();
      for (const c of counts.slice(0, MAX_STORM_WINDOWS)) next.set(`${c.scope}\n${c.start}`, { count: c.count, summarized: c.summarized });
      peers = next;
    },
    decide(d, facts) {
      const c = classify({ kind: d.event.kind, reason: d.reason, entry: d.entry, exe: d.event.process.exe, baseline: d.event.kind === 'exec' ? facts() : { hasShell: false, hasRoot: false } }, rules);
      const m = { baselineKey: d.key, namespace: d.event.pod?.namespace ?? '', labels: d.event.pod?.labels ?? {}, severity: c.severity };
      return { severity: c.severity, ruleId: c.ruleId, ruleReason: c.reason, team: ownerOf(config, m), receivers: routeAlert(config, defaults, m) };
    },
    exceptionFor(d: Deviation, at: number) {
      if (exceptions.length === 0) return '';
      let described: string | null = null;
      const namespace = d.event.pod?.namespace ?? '';
      for (const e of exceptions) {
        if (e.expiresAt <= at || e.createdAt > at) continue;
        if (e.namespace !== '' && e.namespace !== namespace) continue;
        if (e.key !== '' && !globMatch(e.key, d.key)) continue;
        if (e.entry !== '' && !globMatch(e.entry, (described ??= describeEntry(d.entry)))) continue;
        return e.id;
      }
      return '';
    },
    /**
     * The notifications of a new or reopened alert (storm control decides which go out): returned, so
     * that the store writes them in the very transaction that created the alert. A crash cannot leave
     * an alert that nobody is told about.
     */
    notify(alert: Alert, at: number): OutboxEntry[] {
      if (alert.suppressedBy !== '') {
        hooks.suppressed('exception');
        return [];
      }
      const receivers = alert.receivers.filter((s) => knownSink.has(s));
      if (receivers.length === 0) {
        hooks.suppressed('no-receiver');
        return [];
      }
      const admitted = admit(alert.baselineKey, at);
      const trigger = notificationOf(alert, { action: 'trigger', at, url: apiLink(spec.publicUrl, `alerts/${alert.fingerprint}`), actor: '' });
      const body = JSON.stringify(trigger);
      if (admitted.ok) return receivers.map((sink) => ({ alert: alert.fingerprint, sink, action: 'trigger', body, state: 'pending', lastError: '' }));
      hooks.suppressed('storm');
      const why = `storm: over the notification rate for ${admitted.scope}; stored, not notified`;
      const items: OutboxEntry[] = receivers.map((sink) => ({ alert: alert.fingerprint, sink, action: 'trigger', body, state: 'skipped', lastError: why }));
      if (!admitted.first) return items;
      // One summary per window and scope, to the receivers of the alert that crossed the line. Its
      // resolve is written now and held until the window ends: whatever happens to this process, the
      // incident it opens (PagerDuty, Alertmanager) is closed when the storm is over.
      const until = new Date(admitted.until).toISOString();
      const summary = stormSummary(trigger, admitted.scope, admitted.until);
      hooks.storm(admitted.scope, until);
      const resolve = JSON.stringify({ ...summary, action: 'resolve', at: admitted.until, state: 'resolved' } satisfies Notification);
      return [
        ...items,
        ...receivers.map((sink) => ({ alert: summary.fingerprint, sink, action: 'trigger', body: JSON.stringify(summary), state: 'pending' as const, lastError: '' })),
        ...receivers.map((sink) => ({ alert: summary.fingerprint, sink, action: 'resolve', body: resolve, state: 'pending' as const, lastError: '', notBefore: admitted.until })),
      ];
    },
  };
}
