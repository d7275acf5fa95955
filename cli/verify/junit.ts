/**
 * The run as JUnit XML, in the shape of the Jenkins/Surefire schema (fixtures/schemas/junit-10.xsd, the
 * one GitLab's and GitHub's test-report actions read too): one suite per baseline, a passing case per
 * kind of entry that was checked (`processes`, `network`), and one case per deviation, failed when
 * it is at or above --fail-on with the alert's why as the failure message (what GitLab shows in the
 * merge request widget and Jenkins in the test list), passed with a note below it. An incomplete
 * check (lost kernel events) is a case with an <error>. Classnames `driftwatch.verify.processes` and
 * `driftwatch.verify.network` group the cases in Jenkins' package view.
 */
import { hostname } from 'node:os';
import type { Finding } from '../../core/verify.js';
import { visible, visibleLine } from '../../collector/sinks/text.js';
import { commandFailed, failing, ignoredText, incomplete, kindsText, nothingChecked, pidsText, type VerifyRun } from './report.js';
import { atOrAbove } from '../../core/verify.js';
import { describeEntry, entryFromId } from '../../core/entry.js';

/** Characters XML 1.0 cannot hold at all, even escaped (visibleLine already escapes the controls). */
const NOT_XML = /[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu;

/** Text for an attribute value: one line, escaped. */
export function xmlAttr(s: string): string {
  return visibleLine(s).replace(NOT_XML, '\ufffd').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Text for element content: lines kept, escaped. */
export function xmlText(s: string): string {
  return visible(s).replace(NOT_XML, '\ufffd').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const seconds = (ms: number) => (ms / 1000).toFixed(3);

function classOf(f: Finding): string {
  return `driftwatch.verify.${f.entry.type === 'process' ? 'processes' : 'network'}`;
}

function details(f: Finding): string {
  return [
    `severity: ${f.severity} (rule ${f.ruleId})`,
    `why: ${f.ruleReason}`,
    `${f.explanation} (${f.reason})`,
    `entry: ${f.entryId}`,
    `seen ${f.count} time(s), e.g. ${f.example}${pidsText(f.pids)}`,
    ...(f.nearest.length > 0 ? [`nearest in the baseline: ${f.nearest.join('; ')}`] : []),
    ...(f.removed ? ['security removed this entry from the baseline: it stays removed'] : []),
  ].join('\n');
}

function findingCase(f: Finding, run: VerifyRun): string {
  const name = `[${f.severity}] ${f.description}`;
  const open = `    <testcase classname="${xmlAttr(classOf(f))}" name="${xmlAttr(name)}" time="0">`;
  if (atOrAbove(f.severity, run.failOn)) {
    return `${open}\n      <failure type="${xmlAttr(f.ruleId)}" message="${xmlAttr(`${f.ruleReason}: ${f.explanation}`)}">${xmlText(details(f))}</failure>\n    </testcase>`;
  }
  return `${open}\n      <system-out>${xmlText(`below --fail-on ${run.failOn}: reported, not failed\n${details(f)}`)}</system-out>\n    </testcase>`;
}

function kindCase(run: VerifyRun, type: 'process' | 'network'): string | null {
  const { result } = run;
  const n = type === 'process' ? result.checked.exec : result.checked.connect + result.checked.accept + result.checked.listen;
  const entries = [...result.matched].filter(([id]) => (type === 'process') === id.startsWith('exec|'));
  if (n === 0 && entries.length === 0) return null;
  const deviating = result.findings.filter((f) => f.entry.type === type).length;
  const exercised = entries.filter(([, c]) => c > 0);
  const out = [`${n} ${type === 'process' ? 'exec' : 'network'} events checked; ${deviating} distinct deviations (one case each); ${exercised.length} of ${entries.length} baseline entries exercised${exercised.length > 0 ? ':' : ''}`, ...exercised.map(([id, c]) => `  ${describeEntry(entryFromId(id))} (${c})`)];
  const label = type === 'process' ? 'processes' : 'network';
  return `    <testcase classname="driftwatch.verify.${label}" name="${label}: the events that match the baseline" time="0">\n      <system-out>${xmlText(out.join('\n'))}</system-out>\n    </testcase>`;
}

/** A check of the run itself that did not hold: one test case with its failure or error (`name` and `type` are fixed text; the message is escaped). */
function checkCase(name: string, kind: 'failure' | 'error', type: string, message: string): string {
  return `    <testcase classname="driftwatch.verify" name="${name}" time="0">\n      <${kind} type="${type}" message="${xmlAttr(message)}"/>\n    </testcase>`;
}

/** The JUnit XML document of `run`. */
export function junitReport(run: VerifyRun): string {
  const { result } = run;
  const cases: string[] = [];
  let failures = 0;
  let errors = 0;
  for (const type of ['process', 'network'] as const) {
    const c = kindCase(run, type);
    if (c) cases.push(c);
  }
  for (const f of result.findings) cases.push(findingCase(f, run));
  failures = failing(run).length;
  if (result.overflow > 0) {
    failures++;
    cases.push(checkCase('more deviations', 'failure', 'overflow', `${result.overflow} more distinct deviations were not listed`));
  }
  const gap = incomplete(run);
  if (gap) {
    errors++;
    cases.push(checkCase('every event was seen', 'error', 'lost-events', gap));
  }
  const none = nothingChecked(run);
  if (none) {
    errors++;
    cases.push(checkCase("events of the baseline's image were checked", 'error', 'nothing-checked', none));
  }
  const failed = commandFailed(run);
  if (failed) {
    errors++;
    cases.push(checkCase('the command succeeded', 'error', 'command-failed', failed));
  }
  const props: [string, string][] = [
    ['baseline', run.baselinePath],
    ['key', run.doc.key],
    ['state', run.doc.state],
    ['fail-on', run.failOn],
    ['checked', kindsText(result.checked)],
  ];
  const ignored = ignoredText(result);
  if (ignored.length > 0) props.push(['not-checked', ignored.join('; ')]);
  if (run.input.mode === 'command') {
    props.push(['command', run.input.argv.join(' ')]);
    props.push(['command-exit', run.input.outcome.signal ?? String(run.input.outcome.exitCode)]);
  } else props.push(['events', run.input.files.map((f) => `${f.path} (${f.format})`).join(', ')]);
  const suiteName = `driftwatch verify ${run.doc.key}`;
  const time = seconds(run.durationMs);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="driftwatch verify" tests="${cases.length}" failures="${failures}" errors="${errors}" time="${time}">`,
    `  <testsuite name="${xmlAttr(suiteName)}" tests="${cases.length}" failures="${failures}" errors="${errors}" skipped="0" time="${time}" timestamp="${new Date(run.startedAt).toISOString().slice(0, 19)}" hostname="${xmlAttr(hostname())}" file="${xmlAttr(run.baselinePath)}">`,
    '    <properties>',
    ...props.map(([k, val]) => `      <property name="${xmlAttr(k)}" value="${xmlAttr(val)}"/>`),
    '    </properties>',
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}
