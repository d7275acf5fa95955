/**
 * The run as SARIF 2.1.0 (OASIS, errata 01; fixtures/schemas/sarif-schema-2.1.0.json), for GitHub code
 * scanning. A rule per severity rule that decided a deviation (`network-tool`, `shell-where-none`…):
 * its description is the alert's why, so one rule has one severity and reads the same in every run.
 * A result per deviation: level from the severity (critical, high → error; medium → warning; low →
 * note), GitHub's `security-severity` on the rule, the location the baseline file at the list the
 * entry would join (`spec.processes` or `spec.network`), and a partial fingerprint from the alert
 * fingerprint (key + entry), so that GitHub tracks one alert across runs and closes it once the
 * entry is in the baseline. `automationDetails.id` is per baseline key: several verify jobs of one
 * repository upload side by side without closing each other's alerts.
 */
import { relative, sep } from 'node:path';
import { LineCounter, parseAllDocuments } from 'yaml';
import type { Severity } from '../../core/severity.js';
import type { Finding } from '../../core/verify.js';
import { VERSION } from '../../runtime/version.js';
import { commandFailed, failing, incomplete, nothingChecked, type VerifyRun } from './report.js';

/** The schema a SARIF log names (the OASIS errata 01 schema it is validated against in the tests). */
export const SARIF_SCHEMA = 'https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json';

const LEVEL: Record<Severity, 'error' | 'warning' | 'note'> = { critical: 'error', high: 'error', medium: 'warning', low: 'note' };
/** GitHub maps security-severity > 9 to critical, 7–8.9 high, 4–6.9 medium, below that low. */
const SECURITY_SEVERITY: Record<Severity, string> = { critical: '9.5', high: '8.0', medium: '5.5', low: '2.0' };

/** The 1-based line of `spec.processes` / `spec.network` of the document for `key` in `text`, else of its `spec`, else 1. */
export function lineOfList(text: string, key: string, list: 'processes' | 'network'): number {
  const counter = new LineCounter();
  let docs;
  try {
    docs = parseAllDocuments(text, { lineCounter: counter });
  } catch {
    return 1;
  }
  for (const doc of Array.isArray(docs) ? docs : []) {
    if (doc.getIn(['spec', 'key']) !== key) continue;
    for (const path of [['spec', list], ['spec']]) {
      const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
      const start = node?.range?.[0];
      // The list's own line is the one above its first item; a flow list `[]` sits on the key's line.
      if (typeof start === 'number') return Math.max(1, counter.linePos(start).line - (path.length === 2 && text[start] !== '[' ? 1 : 0));
    }
  }
  return 1;
}

/** The baseline's path as GitHub wants it: relative to the checkout (the working directory), with `/`. */
function artifactUri(path: string): string {
  const rel = relative(process.cwd(), path);
  if (rel.startsWith('..') || rel === '') return new URL(`file://${path.startsWith('/') ? '' : `${process.cwd()}/`}${path}`).href;
  return rel.split(sep).map(encodeURIComponent).join('/');
}

function ruleOf(f: Finding) {
  return {
    id: f.ruleId,
    name: f.ruleId.replace(/(^|-)([a-z0-9])/g, (_, _d: string, c: string) => c.toUpperCase()),
    shortDescription: { text: f.ruleReason },
    fullDescription: { text: `A deviation from the Driftwatch baseline: ${f.ruleReason}. In a cluster, the same event under this baseline raises a ${f.severity} alert.` },
    help: { text: 'Remove the behaviour from the build, or propose the entry for the baseline (driftwatch verify --write-proposal) for security to review.' },
    defaultConfiguration: { level: LEVEL[f.severity] },
    properties: { tags: ['security', 'driftwatch', 'runtime-baseline'], 'security-severity': SECURITY_SEVERITY[f.severity], precision: 'high' },
  };
}

/** The SARIF log of `run`, as a JSON value. */
export function sarifLog(run: VerifyRun): object {
  const rules: ReturnType<typeof ruleOf>[] = [];
  const ruleIndex = new Map<string, number>();
  const uri = artifactUri(run.baselinePath);
  const lines = { processes: lineOfList(run.docText, run.doc.key, 'processes'), network: lineOfList(run.docText, run.doc.key, 'network') };
  const results = run.result.findings.map((f) => {
    if (!ruleIndex.has(f.ruleId)) {
      ruleIndex.set(f.ruleId, rules.length);
      rules.push(ruleOf(f));
    }
    return {
      ruleId: f.ruleId,
      ruleIndex: ruleIndex.get(f.ruleId) as number,
      level: LEVEL[f.severity],
      message: { text: `${run.doc.key}: ${f.description}. Why: ${f.ruleReason}. ${f.explanation}. Seen ${f.count} time(s), e.g. ${f.example}.` },
      locations: [
        {
          physicalLocation: { artifactLocation: { uri, ...(uri.startsWith('file:') ? {} : { uriBaseId: '%SRCROOT%' }) }, region: { startLine: f.entry.type === 'process' ? lines.processes : lines.network } },
          logicalLocations: [{ name: f.entryId, fullyQualifiedName: `${run.doc.key}/${f.entryId}`, kind: 'element' }],
        },
      ],
      partialFingerprints: { 'driftwatchAlert/v1': f.fingerprint },
      properties: { severity: f.severity, reason: f.reason, entry: f.entryId, count: f.count, example: f.example, nearest: f.nearest, removedBySecurity: f.removed },
    };
  });
  const gap = incomplete(run) ?? nothingChecked(run) ?? commandFailed(run);
  const notifications = gap ? [{ level: 'error', message: { text: gap } }] : [];
  return {
    $schema: SARIF_SCHEMA,
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'driftwatch', semanticVersion: VERSION, version: VERSION, rules } },
        automationDetails: { id: `driftwatch-verify/${run.doc.key}/` },
        invocations: [
          {
            executionSuccessful: gap === null,
            startTimeUtc: new Date(run.startedAt).toISOString(),
            endTimeUtc: new Date(run.startedAt + run.durationMs).toISOString(),
            toolExecutionNotifications: notifications,
            // The traced command is not the tool: its argv and exit are properties, not commandLine/exitCode.
            properties: {
              failOn: run.failOn,
              failing: failing(run).length,
              checked: run.result.checked,
              ...(run.input.mode === 'command' ? { command: run.input.argv, commandExitCode: run.input.outcome.exitCode, commandSignal: run.input.outcome.signal } : { events: run.input.files }),
            },
          },
        ],
        results,
      },
    ],
  };
}
