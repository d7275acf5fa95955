/**
 * The baseline as a test: events recorded while an image ran (or a command traced live) checked
 * against one `Baseline` document, offline. Pure: events in, findings out; no I/O, no wall clock.
 *
 * A deviation here is what the agent and the collector would make of the same event:
 * - the key and entry come from core/baseline (`baselineKey`) and core/entry (`entryOf`), and the
 *   verdict, reason and explanation from the engine's own `observe` on a baseline that holds the
 *   document's entries as the cluster pushes them to agents (`applyCluster`: generalized peers
 *   included, removed entries dropped);
 * - the severity, rule and reason come from `classify` with the facts of the document's entries
 *   (baselineFactsOf), as the collector's alert policy classifies against the merged baseline.
 * Deviations group as alerts do, by fingerprint (key + entry): one finding per entry, with a count.
 *
 * Which events are checked: those whose key (image) is the document's key, in the key mode the key
 * is written in (`repo`, `repo:tag`, `repo@digest`). Host events, events of a container whose image
 * is unknown and events of other images are counted, by key, and not checked, unless `allEvents`:
 * then every event counts as the document's image (a run recorded without container metadata).
 */
import type { BaselineDocument } from './baseline-doc.js';
import { HOST_KEY, baselineKey, createBaselineEngine, type BaselineEngine, type DeviationReason, type KeyMode } from './baseline.js';
import { deviationId } from './deviation.js';
import { describeEntry, entryId, entryOf, exampleOf, fingerprint, type Entry, type EntryOptions } from './entry.js';
import type { ActivityEvent, EventKind } from './event.js';
import { baselineFactsOf, classify, DEFAULT_SEVERITY_RULES, SEVERITIES, type BaselineFacts, type Severity, type SeverityRule } from './severity.js';

/** Bounds of one check: a hostile or huge recording cannot grow memory past them. */
export const VERIFY_LIMITS = Object.freeze({
  /** Distinct deviating entries kept as findings; further ones are counted in `overflow`. */
  findings: 10_000,
  /** Distinct other keys counted by name; the rest are counted together. */
  otherKeys: 1_000,
  /** Pids kept per finding (the first ones seen). */
  pids: 8,
  /** Characters of the raw example kept per finding. */
  example: 512,
});

/** The key mode a key is written in: `repo@sha256:…` digest, `repo:tag` tag, else repository. */
export function keyModeOf(key: string): KeyMode {
  if (key.includes('@') && key !== HOST_KEY) return 'digest';
  const colon = key.lastIndexOf(':');
  return colon > key.lastIndexOf('/') ? 'tag' : 'repository';
}

/** One deviating entry: what an alert of the collector would say about it. */
export interface Finding {
  /** The alert fingerprint (key + entry), stable across runs. */
  fingerprint: string;
  entryId: string;
  entry: Entry;
  /** describeEntry(entry). */
  description: string;
  kind: EventKind;
  reason: DeviationReason;
  /** The engine's sentence: why it is not in the baseline. */
  explanation: string;
  /** Up to three known entries closest to it. */
  nearest: string[];
  severity: Severity;
  ruleId: string;
  /** The severity rule's reason: the alert's "why". */
  ruleReason: string;
  /** Security removed this entry from the baseline (it stays removed: a proposal cannot add it back). */
  removed: boolean;
  /** Events that made it. */
  count: number;
  firstTime: number;
  /** The raw command line or peer of the first event. */
  example: string;
  /** The first event's deviation id, as the agent would send it. */
  deviationId: string;
  pids: number[];
}

/** Events not checked, by why. */
export interface Ignored {
  /** Host processes (no container), not the baseline's image. */
  host: number;
  /** A container whose image no event named. */
  noImage: number;
  /** Other images, by their key (bounded; the rest in `otherKeysOverflow`). */
  otherKeys: Map<string, number>;
  otherKeysOverflow: number;
  /** Events that lack what an entry needs (a connect without a port). */
  incomplete: number;
}

/** What one check found. */
export interface VerifyResult {
  key: string;
  keyMode: KeyMode;
  /** Events checked against the baseline, by kind. */
  checked: Record<EventKind, number>;
  /** Events that matched, per baseline entry id (every entry of the document, 0 when not exercised). */
  matched: Map<string, number>;
  /** Findings, most severe first, then by entry id. */
  findings: Finding[];
  /** Distinct deviating entries past VERIFY_LIMITS.findings (counted, not kept). */
  overflow: number;
  ignored: Ignored;
}

/** Settings of a check. */
export interface VerifyOptions {
  entryOptions: EntryOptions;
  /** The severity table; default the built-in one (a site's table: parseSeverityRules). */
  rules?: readonly SeverityRule[];
  /** Every event counts as the document's image (a recording without container metadata). */
  allEvents?: boolean;
}

/** Checks events against one document. */
export interface Verifier {
  /** Check one event (it may be changed in place, as the agent's pipeline does). */
  check(event: ActivityEvent): void;
  /** What was found so far. */
  result(): VerifyResult;
}

/** The engine holding `doc` as agents hold an enforcing baseline pushed by the collector. */
function enforcingEngine(doc: BaselineDocument, keyMode: KeyMode): BaselineEngine {
  const engine = createBaselineEngine({ keyMode, maxEntriesPerBaseline: Math.max(2_000, doc.entries.length + VERIFY_LIMITS.findings) });
  engine.applyCluster({
    key: doc.key,
    // A document that is still learning is checked all the same: verify asks "is this in the baseline?".
    state: doc.state === 'locked' ? 'locked' : 'enforcing',
    relearn: false,
    version: 1,
    windowStart: 0,
    learnUntil: 0,
    entryIds: doc.entries.map(entryId),
    removedIds: doc.removed.map(entryId),
    // What the cluster's agents are told too: a drift exec the list covers is no deviation there either.
    driftAllowed: [...doc.driftAllowed],
  });
  return engine;
}

const severityRank = (s: Severity) => SEVERITIES.indexOf(s);

/** Create a verifier for `doc`. */
export function createVerifier(doc: BaselineDocument, options: VerifyOptions): Verifier {
  const keyMode = keyModeOf(doc.key);
  const engine = enforcingEngine(doc, keyMode);
  const rules = options.rules ?? DEFAULT_SEVERITY_RULES;
  const facts: BaselineFacts = baselineFactsOf(doc.entries);
  const removed = new Set(doc.removed.map(entryId));
  const findings = new Map<string, Finding>();
  const checked: Record<EventKind, number> = { exec: 0, connect: 0, accept: 0, listen: 0 };
  const ignored: Ignored = { host: 0, noImage: 0, otherKeys: new Map(), otherKeysOverflow: 0, incomplete: 0 };
  let overflow = 0;

  /** The key the event is checked under, or null when it is not the document's (counted). */
  function keyOf(ev: ActivityEvent): string | null {
    if (options.allEvents) return doc.key;
    const key = baselineKey(ev, keyMode);
    if (key === doc.key) return key;
    if (key === null) ignored.noImage++;
    else if (key === HOST_KEY) ignored.host++;
    else if (ignored.otherKeys.has(key) || ignored.otherKeys.size < VERIFY_LIMITS.otherKeys) ignored.otherKeys.set(key, (ignored.otherKeys.get(key) ?? 0) + 1);
    else ignored.otherKeysOverflow++;
    return null;
  }

  function record(ev: ActivityEvent, key: string, entry: Entry, id: string, obs: { reason: DeviationReason; explanation: string; nearest: string[] }): void {
    const known = findings.get(id);
    if (known) {
      known.count++;
      if (known.pids.length < VERIFY_LIMITS.pids && !known.pids.includes(ev.process.pid)) known.pids.push(ev.process.pid);
      return;
    }
    if (findings.size >= VERIFY_LIMITS.findings) {
      overflow++;
      return;
    }
    // As the collector's alert policy decides: the raw executable, and baseline facts for an exec only.
    const c = classify({ kind: ev.kind, reason: obs.reason, entry, exe: ev.process.exe, baseline: ev.kind === 'exec' ? facts : { hasShell: false, hasRoot: false } }, rules);
    findings.set(id, {
      fingerprint: fingerprint(key, id),
      entryId: id,
      entry,
      description: describeEntry(entry),
      kind: ev.kind,
      reason: obs.reason,
      explanation: obs.explanation,
      nearest: obs.nearest,
      severity: c.severity,
      ruleId: c.ruleId,
      ruleReason: c.reason,
      removed: removed.has(id),
      count: 1,
      firstTime: ev.time,
      example: exampleOf(ev).slice(0, VERIFY_LIMITS.example),
      deviationId: deviationId(ev, key, entry),
      pids: [ev.process.pid],
    });
  }

  return {
    check(ev) {
      const key = keyOf(ev);
      if (key === null) return;
      const entry = entryOf(ev, options.entryOptions);
      if (!entry) {
        ignored.incomplete++;
        return;
      }
      checked[ev.kind]++;
      const id = entryId(entry);
      const obs = engine.observe(ev, key, entry, id);
      if (obs.verdict === 'deviation') record(ev, key, entry, id, obs);
    },
    result() {
      const list = [...findings.values()].sort((a, b) => severityRank(a.severity) - severityRank(b.severity) || (a.entryId < b.entryId ? -1 : a.entryId > b.entryId ? 1 : 0));
      // The engine counts what matched each entry (a generalized one counts the peers it covers).
      const held = engine.get(doc.key)?.entries;
      const matched = new Map(doc.entries.map((e) => {
        const id = entryId(e);
        return [id, held?.get(id)?.count ?? 0] as [string, number];
      }));
      return { key: doc.key, keyMode, checked: { ...checked }, matched, findings: list, overflow, ignored: { ...ignored, otherKeys: new Map(ignored.otherKeys) } };
    },
  };
}

/** Whether a finding's severity is at or above `threshold` (critical is the most urgent). */
export function atOrAbove(severity: Severity, threshold: Severity): boolean {
  return severityRank(severity) <= severityRank(threshold);
}
