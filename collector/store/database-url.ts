/**
 * A PostgreSQL URL as the collector and `driftwatch store migrate` take it: read from a file (a
 * Kubernetes Secret mounted as one) or the environment, checked, and its password known so that
 * every message can mask it. No driver is loaded here: the CLI's other commands import this too.
 */
import { readFileSync, statSync } from 'node:fs';

/** Longest URL file read (a URL is far shorter; a bigger file is not one). */
export const MAX_URL_FILE = 8_192;

/** A URL that cannot be read or is not a postgres:// one; the message names where it came from, never its content. */
export class DatabaseUrlError extends Error {
  readonly code = 'invalid_database_url' as const;
  constructor(message: string) {
    super(message);
    this.name = 'DatabaseUrlError';
  }
}

/** The password of a postgres URL, as written and decoded: what every message must not show. */
export function passwordsOf(url: string): string[] {
  try {
    const raw = new URL(url).password;
    if (raw === '') return [];
    let decoded = raw;
    try {
      decoded = decodeURIComponent(raw);
    } catch {
      // Not percent-encoded validly: the raw form is the one to hide.
    }
    return [...new Set([raw, decoded])].filter((s) => s.length > 0);
  } catch {
    return [];
  }
}

/** `text` with each of `secrets` replaced by ***. */
export function maskSecrets(text: string, secrets: readonly string[]): string {
  return secrets.reduce((t, s) => t.split(s).join('***'), text);
}

/** Whether `text` is a postgres:// (or postgresql://) URL rather than a file name. */
export function isPostgresUrl(text: string): boolean {
  return /^postgres(ql)?:\/\//i.test(text);
}

/** Check that `url` (from `from`, as a message names it) is a postgres://… URL; returns it. */
export function checkPostgresUrl(url: string, from: string): string {
  if (!/^postgres(ql)?:\/\//.test(url) || /\s/.test(url)) throw new DatabaseUrlError(`${from} does not hold a postgres://… URL`);
  return url;
}

/** Read the URL in `file` (`from` names it in messages: `--db-url-file /etc/…`), bounded, checked. */
export function readDatabaseUrlFile(file: string, from: string): string {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (err) {
    throw new DatabaseUrlError(`cannot read ${from}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (size > MAX_URL_FILE) throw new DatabaseUrlError(`${from} is ${size} bytes: not a database URL (at most ${MAX_URL_FILE})`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DatabaseUrlError(`cannot read ${from}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  return checkPostgresUrl(text.trim(), from);
}
