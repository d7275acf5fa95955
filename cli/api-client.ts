/**
 * The HTTP client the review commands (`alerts`, `exceptions`, `baselines`) share: where the
 * collector is, the bearer token, one error message per failure, and safe printing of what the
 * collector sends (keys and entries come from the wire: never let them drive the terminal).
 */
import { readFileSync } from 'node:fs';
import type { ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Flags every review command takes. `--server` is `--url` by the name the issue gives it. */
export const CLIENT_OPTIONS = {
  url: { type: 'string' },
  server: { type: 'string' },
  'token-file': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options;

/** Bad usage: exit code 2 and the command's help. */
export class UsageError extends Error {}

/** The collector answered with a non-2xx status; the message carries its reason. */
export class CollectorError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'CollectorError';
  }
}

/** The collector's answer when the caller wants it as text (YAML exports). */
export interface RawResponse {
  status: number;
  contentType: string;
  text: string;
}

/** A collector's HTTP API. */
export interface ApiClient {
  /** Send JSON (or nothing), return the parsed JSON answer; throws with the collector's message on a non-2xx. */
  call(method: string, path: string, body?: unknown): Promise<any>;
  /** Send a text body with its content type, return the answer as text; throws on a non-2xx. */
  raw(method: string, path: string, body?: { text: string; contentType: string }): Promise<RawResponse>;
}

/** Largest answer read from a collector. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** A client from the common flags and the environment. */
export function createApiClient(values: Record<string, unknown>, env: NodeJS.ProcessEnv): ApiClient {
  const given = (values.url as string | undefined) ?? (values.server as string | undefined);
  const base = (given ?? env.DRIFTWATCH_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
  if (!/^https?:\/\//.test(base)) throw new UsageError(`--url must be an http(s) URL, not ${JSON.stringify(base.slice(0, 100))}`);
  const tokenFile = (values['token-file'] as string | undefined) ?? env.DRIFTWATCH_TOKEN_FILE;
  const token = tokenFile ? readFileSync(tokenFile, 'utf8').trim() : env.DRIFTWATCH_TOKEN;

  async function send(method: string, path: string, body: string | undefined, contentType: string | undefined): Promise<RawResponse> {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (contentType) headers['content-type'] = contentType;
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, { method, headers, body, signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      throw new Error(`cannot reach the collector at ${base}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`);
    }
    const length = Number(res.headers.get('content-length') ?? 0);
    if (length > MAX_RESPONSE_BYTES) throw new Error(`the collector's answer is ${length} bytes; at most ${MAX_RESPONSE_BYTES}`);
    const text = await res.text();
    const type = res.headers.get('content-type') ?? '';
    if (!res.ok) {
      let message = text.slice(0, 200);
      try {
        message = JSON.parse(text)?.error?.message ?? message;
      } catch {
        // not JSON: the text itself
      }
      throw new CollectorError(res.status, `the collector answered ${res.status}: ${printable(String(message))}`);
    }
    return { status: res.status, contentType: type, text };
  }

  return {
    async call(method, path, body) {
      const r = await send(method, path, body === undefined ? undefined : JSON.stringify(body), body === undefined ? undefined : 'application/json');
      try {
        return JSON.parse(r.text);
      } catch {
        return null;
      }
    },
    raw(method, path, body) {
      return send(method, path, body?.text, body?.contentType);
    },
  };
}

// C0, DEL, C1, line separators, zero-width and bidi controls: what could move the cursor, hide
// text or reorder it on a terminal.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

/** Text from the wire made safe to print: control characters shown as \uXXXX escapes. */
export function printable(s: string): string {
  return s.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Columns padded to the widest cell; the last column is not padded. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_c, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

/** Cut text to n characters with an ellipsis. */
export const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** `?a=1&b=2` from the named flags that were given, or ''. */
export function query(values: Record<string, unknown>, names: string[]): string {
  const q = new URLSearchParams();
  for (const n of names) if (values[n] !== undefined) q.set(n, String(values[n]));
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}
