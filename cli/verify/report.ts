/**
 * What one `driftwatch verify` run found, as the reports see it, and the human text report. Pure:
 * the run in, text out. Every value that came from an event or a file is made visible
 * (collector/sinks/text.ts visibleLine) before a person reads it.
 */
import type { BaselineDocument } from '../../core/baseline-doc.js';
import { describeEntry, entryFromId } from '../../core/entry.js';
import type { EventKind } from '../../core/event.js';
import type { Severity } from '../../core/severity.js';
import { atOrAbove, type Finding, type VerifyResult } from '../../core/verify.js';
import { visibleLine } from '../../collector/sinks/text.js';
import type { EventFormat, ReadCounts } from './events-file.js';
import type { TraceOutcome } from './run-command.js';

/** Where the events came from. */
export type VerifyInput = { mode: 'events'; files: { path: string; format: EventFormat }[]; scope: 'image' | 'all-events' | 'container'; container?: string } | { mode: 'command'; argv: string[]; outcome: TraceOutcome; ignoreStatus: boolean };

/** One run, everything the reports need. */
export interface VerifyRun {
  baselinePath: string;
  doc: BaselineDocument;
  /** The baseline file's text (SARIF points at lines in it). */
  docText: string;
  result: VerifyResult;
  failOn: Severity;
  input: VerifyInput;
  counts: ReadCounts;
  startedAt: number;
  durationMs: number;
}

/** Exit codes of `driftwatch verify`. */
export const EXIT = Object.freeze({ ok: 0, deviations: 1, usage: 2 });

/** Findings at or above the threshold: what fails the run. */
export function failing(run: VerifyRun): Finding[] {
  return run.result.findings.filter((f) => atOrAbove(f.severity, run.failOn));
}

/** Why the check is incomplete (the kernel dropped events, bpftrace stopped early), or null. */
export function incomplete(run: VerifyRun): string | null {
  if (run.input.mode === 'command' && run.input.outcome.traceStopped !== null) return run.input.outcome.traceStopped;
  if (run.input.mode === 'command' && run.input.outcome.escaped > 0) {
    return `${run.input.outcome.escaped} events of the command's processes came from outside its cgroup (a process left it): what they ran there was not checked`;
  }
  return run.counts.lost > 0 ? `the kernel dropped ${run.counts.lost} events before they were read (perf buffers full): some processes or connections were not checked` : null;
}

/**
 * Why the traced command failed (a non-zero exit, a signal), or null; always null under
 * --ignore-command-status. A build whose tests fail at once runs almost nothing: no deviation among
 * so little is no pass.
 */
export function commandFailed(run: VerifyRun): string | null {
  if (run.input.mode !== 'command' || run.input.ignoreStatus) return null;
  const o = run.input.outcome;
  if (o.signal !== null) return `the command was ended by ${o.signal}`;
  return o.exitCode === 0 ? null : `the command exited with code ${o.exitCode}`;
}

/** Events checked in all. */
export function checkedTotal(run: VerifyRun): number {
  return Object.values(run.result.checked).reduce((a, b) => a + b, 0);
}

/**
 * Why nothing was checked, or null. A check of nothing is not a pass: a key that names no image of
 * the recording (a typo, a recording without container metadata) would otherwise pass every build.
 */
export function nothingChecked(run: VerifyRun): string | null {
  if (checkedTotal(run) > 0) return null;
  const hint = run.input.mode === 'events' && run.input.scope === 'image' ? '; if the recording has no container metadata (an ebpf recording, a run outside a container), use --all-events or --container ID' : '';
  return `no event of ${run.doc.key} was checked${hint}`;
}

/**
 * The exit code: 1 with a failing deviation, else 2 when the check could not see everything (or saw
 * nothing) or the traced command failed, else 0.
 */
export function exitCodeOf(run: VerifyRun): number {
  if (failing(run).length > 0 || run.result.overflow > 0) return EXIT.deviations;
  return incomplete(run) !== null || nothingChecked(run) !== null || commandFailed(run) !== null ? EXIT.usage : EXIT.ok;
}

const v = visibleLine;
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** `30 exec, 12 connect`. */
export function kindsText(checked: Record<EventKind, number>): string {
  const parts = (Object.entries(checked) as [EventKind, number][]).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`);
  return parts.length > 0 ? parts.join(', ') : 'none';
}

/** What was not checked, one phrase per reason; empty when everything was. */
export function ignoredText(result: VerifyResult): string[] {
  const i = result.ignored;
  const out: string[] = [];
  const others = [...i.otherKeys].sort((a, b) => b[1] - a[1]);
  const otherTotal = others.reduce((n, [, c]) => n + c, 0) + i.otherKeysOverflow;
  if (otherTotal > 0) {
    const top = others.slice(0, 5).map(([k, n]) => `${v(k)}: ${n}`).join(', ');
    out.push(`${plural(otherTotal, 'event')} of ${plural(others.length + (i.otherKeysOverflow > 0 ? 1 : 0), 'other image')} (${top}${others.length > 5 || i.otherKeysOverflow > 0 ? ', …' : ''})`);
  }
  if (i.host > 0) out.push(`${plural(i.host, 'host event')} (no container)`);
  if (i.noImage > 0) out.push(`${plural(i.noImage, 'event')} of containers whose image no event named`);
  if (i.incomplete > 0) out.push(`${plural(i.incomplete, 'event')} without what an entry needs (a connection without a port)`);
  return out;
}

/** ` (pid 12, 14)`, or '' when the source gave none. */
export function pidsText(pids: readonly number[]): string {
  const known = pids.filter((p) => p > 0);
  return known.length > 0 ? ` (pid ${known.join(', ')})` : '';
}

/** One finding as the lines of the text report. */
function findingLines(f: Finding, fails: boolean): string[] {
  const lines = [
    `  ${fails ? 'FAIL' : 'warn'} [${f.severity}] ${v(f.description)}`,
    `       why: ${v(f.ruleReason)} (rule ${v(f.ruleId)})`,
    `       ${v(f.explanation)} (${f.reason})`,
    `       seen ${plural(f.count, 'time')}, e.g. ${v(f.example)}${pidsText(f.pids)}`,
  ];
  if (f.nearest.length > 0) lines.push(`       nearest in the baseline: ${f.nearest.map(v).join('; ')}`);
  if (f.removed) lines.push('       security removed this entry from the baseline: it stays removed');
  return lines;
}

/** The human report. */
export function textReport(run: VerifyRun): string {
  const { doc, result } = run;
  const processes = doc.entries.filter((e) => e.type === 'process').length;
  const out: string[] = [];
  out.push(`driftwatch verify: ${v(doc.key)} (${v(run.baselinePath)}, ${doc.state}, ${plural(processes, 'process entry', 'process entries')}, ${plural(doc.entries.length - processes, 'network entry', 'network entries')})`);
  if (doc.state === 'learning') out.push('  note: the document is still learning; verify checks its entries as if it were enforcing');
  if (run.input.mode === 'events') {
    const scope = run.input.scope === 'all-events' ? ', every event as this image (--all-events)' : run.input.scope === 'container' ? `, container ${v(run.input.container ?? '')} as this image` : '';
    out.push(`events: ${run.input.files.map((f) => `${v(f.path)} (${f.format})`).join(', ')}${scope}`);
  } else {
    const o = run.input.outcome;
    out.push(`command: ${run.input.argv.map((a) => v(JSON.stringify(a))).join(' ')} — ${o.signal ? `ended by ${o.signal}` : `exit code ${o.exitCode}`}${o.killed > 0 ? `; ${plural(o.killed, 'process')} still running afterwards, killed` : ''}`);
  }
  out.push(`checked: ${plural(Object.values(result.checked).reduce((a, b) => a + b, 0), 'event')} (${kindsText(result.checked)})`);
  const ignored = ignoredText(result);
  if (ignored.length > 0) out.push(`not checked: ${ignored.join('; ')}`);
  const malformed = [...run.counts.malformed].map(([r, n]) => `${r}: ${n}`).join(', ');
  if (malformed !== '') out.push(`skipped as malformed: ${malformed}`);
  const unsupported = [...run.counts.unsupported].reduce((n, [, c]) => n + c, 0);
  if (unsupported > 0) out.push(`records of no interest (file events, exits, other sources…): ${unsupported}`);
  const matched = [...result.matched].filter(([, n]) => n > 0);
  out.push(`matched: ${matched.length} of ${result.matched.size} baseline entries were exercised`);
  for (const [id, n] of matched) out.push(`  ok   ${v(describeEntry(entryFromId(id)))}  (${plural(n, 'event')})`);
  const fails = failing(run);
  out.push(`deviations: ${result.findings.length}${result.findings.length > 0 ? ` (${fails.length} at or above --fail-on ${run.failOn})` : ''}`);
  for (const f of result.findings) out.push(...findingLines(f, atOrAbove(f.severity, run.failOn)));
  if (result.overflow > 0) out.push(`  … and ${result.overflow} more distinct deviations, not listed (over ${result.findings.length})`);
  const gap = incomplete(run);
  if (gap) out.push(`incomplete: ${gap}`);
  const code = exitCodeOf(run);
  out.push(
    code === EXIT.ok
      ? `result: PASS (exit 0)${result.findings.length > 0 ? `: every deviation is below --fail-on ${run.failOn}` : ''}`
      : code === EXIT.deviations
        ? `result: FAIL (exit 1): ${plural(fails.length + result.overflow, 'deviation')} at or above --fail-on ${run.failOn}`
        : nothingChecked(run) !== null
          ? `result: NOTHING CHECKED (exit 2): ${v(nothingChecked(run) as string)}`
          : incomplete(run) === null && commandFailed(run) !== null
            ? `result: COMMAND FAILED (exit 2): ${v(commandFailed(run) as string)}; no failing deviation among what it ran (--ignore-command-status to judge the trace alone)`
            : 'result: INCOMPLETE (exit 2): no failing deviation among what was seen, but not everything was seen',
  );
  return out.join('\n');
}
