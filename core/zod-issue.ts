/**
 * The first problem of a failed zod parse, in words for a person: where it is and what is wrong.
 * Config files, sink and severity tables, token files, baseline documents and API bodies all report
 * their first problem through this, each in its own sentence around the same parts. Unknown keys
 * come from hostile input, so each is cut to 64 characters.
 */
import type { z } from 'zod';

/** The longest unknown key quoted back. */
const MAX_KEY_CHARS = 64;

/** The first issue of a failed parse, described. */
export interface IssueText {
  /** Dotted path of the value the problem is in; '' at the top level. */
  readonly path: string;
  /** The keys no schema knows, when that is the problem (each cut to 64 characters); else empty. */
  readonly unknownKeys: readonly string[];
  /** The setting(s) to name: each unknown key under `path` (comma-separated), else `path`. */
  readonly key: string;
  /** `unknown setting`, `must be one of: a, b` for a value outside an enum, else zod's message. */
  readonly message: string;
  /** The issue itself, for a caller with a case of its own. */
  readonly issue: z.core.$ZodIssue;
}

/** Describe the first issue of `error`. */
export function firstIssue(error: z.ZodError): IssueText {
  const issue = error.issues[0] as z.core.$ZodIssue;
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const unknownKeys = issue.keys.map((k) => k.slice(0, MAX_KEY_CHARS));
    return { path, unknownKeys, key: unknownKeys.map((k) => (path === '' ? k : `${path}.${k}`)).join(', '), message: 'unknown setting', issue };
  }
  const message = issue.code === 'invalid_value' && 'values' in issue ? `must be one of: ${(issue.values as unknown[]).join(', ')}` : issue.message;
  return { path, unknownKeys: [], key: path, message, issue };
}
