/**
 * The one place where an error becomes an HTTP answer. Every refusal of the collector's HTTP
 * server is `{"error": {"code", "message"}}` with a 4xx status that says what was wrong with the
 * request; what is not one of the errors below is a fault of the collector (500, logged, no detail
 * to the client).
 */
import type { ServerResponse } from 'node:http';
import { BaselineDocError } from '../../core/baseline-doc.js';
import { AuditCursorError } from '../audit.js';
import { CursorError } from '../store/store.js';
import { BodyError, bodyRefusalHeaders } from './request-body.js';

/** A refusal with its HTTP status and a stable code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Headers the answer needs (`allow` with a 405). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** A refusal as it is answered. */
export interface Refusal {
  status: number;
  code: string;
  message: string;
  headers: Readonly<Record<string, string>>;
}

/**
 * What to answer for `err`, or null when it is not a refusal (a fault: 500). A Baseline document
 * that cannot be expressed in the asked format is 422, any other document error 400; a cursor that
 * is not one of ours 400; a body refusal keeps its own status (413 closes the connection).
 */
export function refusalOf(err: unknown): Refusal | null {
  if (err instanceof ApiError) return { status: err.status, code: err.code, message: err.message, headers: err.headers };
  if (err instanceof BodyError) return { status: err.status, code: err.code, message: err.message, headers: bodyRefusalHeaders(err.status) };
  if (err instanceof CursorError || err instanceof AuditCursorError) return { status: 400, code: err.code, message: err.message, headers: {} };
  if (err instanceof BaselineDocError) return { status: err.code === 'not_expressible' ? 422 : 400, code: err.code, message: err.message, headers: {} };
  return null;
}

/** The headers of every JSON answer. */
export const JSON_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
});

/** Answer with JSON. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...JSON_HEADERS, ...headers });
  res.end(text);
}

/** Answer with a refusal in the API's error shape. */
export function sendError(res: ServerResponse, r: Pick<Refusal, 'status' | 'code' | 'message'> & { headers?: Readonly<Record<string, string>> | undefined }): void {
  sendJson(res, r.status, { error: { code: r.code, message: r.message } }, r.headers ?? {});
}
