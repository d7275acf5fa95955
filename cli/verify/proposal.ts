/**
 * `--write-proposal FILE`: the baseline with this run's deviations added, as the `Baseline` document
 * `driftwatch baselines export` writes (core/baseline-doc toBaselineDocument: entries sorted by id,
 * so the merge request's diff is the added lines), headed by comments that say what was added and
 * why. An entry security removed is not proposed (it stays under `removed`; the header names it).
 * The text is read back with the importer's parser before it is written: a proposal that would not
 * import is an error, not a file.
 */
import { parseBaselineDocuments, toBaselineDocument, type BaselineDocument, type BaselineView, type BaselineViewEntry, type EntryStatus } from '../../core/baseline-doc.js';
import { describeEntry, entryId, type Entry } from '../../core/entry.js';
import type { Finding } from '../../core/verify.js';
import { visibleLine } from '../../collector/sinks/text.js';

function viewEntry(entry: Entry, status: EntryStatus): BaselineViewEntry {
  return { ...entry, id: entryId(entry), summary: describeEntry(entry), status, firstSeen: null, lastSeen: null, count: 0, nodes: [], examples: [] };
}

/** Comment lines: one line each, `#` prefixed, nothing a YAML reader could take for more. */
function comments(lines: readonly string[]): string {
  return lines.map((l) => `# ${visibleLine(l)}`.trimEnd()).join('\n');
}

/** The proposal text for `doc` plus `findings`; `at` dates it. Throws when it would not read back as intended. */
export function proposalDocument(doc: BaselineDocument, findings: readonly Finding[], source: string, at: Date): string {
  const added = findings.filter((f) => !f.removed);
  const refused = findings.filter((f) => f.removed);
  const view: BaselineView = {
    key: doc.key,
    state: doc.state,
    version: 0,
    windowStart: null,
    learnUntil: null,
    enforcingSince: null,
    images: [],
    nodes: [],
    partial: false,
    // Kept as it is: a proposal adds entries, it never drops what security allowed.
    driftAllowed: [...doc.driftAllowed],
    entries: [...doc.entries.map((e) => viewEntry(e, 'approved')), ...added.map((f) => viewEntry(f.entry, 'added')), ...doc.removed.map((e) => viewEntry(e, 'removed'))],
  };
  const head = [
    `Proposed by driftwatch verify on ${at.toISOString()} from ${source}:`,
    added.length === 0 ? 'no deviation: nothing added.' : `${added.length} entr${added.length === 1 ? 'y' : 'ies'} added for security to review:`,
    ...added.map((f) => `  + ${f.description}  [${f.severity}, ${f.ruleId}: ${f.ruleReason}] e.g. ${f.example}`),
    ...(refused.length > 0 ? ['Not proposed: security removed these entries, they stay removed:', ...refused.map((f) => `  - ${f.description}`)] : []),
  ];
  const text = `${comments(head)}\n${toBaselineDocument(view)}`;
  const back = parseBaselineDocuments(text);
  const want = new Set([...doc.entries, ...added.map((f) => f.entry)].map(entryId));
  const got = back.length === 1 ? new Set((back[0] as BaselineDocument).entries.map(entryId)) : new Set<string>();
  const sameAllowed = back.length === 1 && (back[0] as BaselineDocument).driftAllowed.join('\n') === [...doc.driftAllowed].sort().join('\n');
  if (got.size !== want.size || [...want].some((id) => !got.has(id)) || (back[0] as BaselineDocument).removed.length !== doc.removed.length || !sameAllowed) {
    throw new Error('the proposal does not read back as the baseline plus the deviations (a bug): not written');
  }
  return text;
}
