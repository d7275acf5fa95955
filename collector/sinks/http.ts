/**
 * The one HTTP client of the sinks: POST with a deadline and a bounded response read, the mapping
 * from HTTP status to a typed DeliveryError (the only place that decides what is retried), and a
 * retry helper with capped exponential backoff, jitter, Retry-After and abort.
 *
 * Secrets live in URLs (Slack and webhook paths), headers and bodies (PagerDuty routing keys), so
 * nothing here puts a URL, a header or a request body into an error message.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { z } from 'zod';
import { backoffDelay } from '../../runtime/backoff.js';
import { durationMs } from '../../runtime/config.js';
import { sleep as sleepOrAbort } from '../../runtime/sleep.js';

/**
 * Why a delivery failed: `rejected` (the destination refused the request, 3xx/4xx other than 429;
 * never retried), `throttled` (429; retried after Retry-After), `unavailable` (5xx, timeout or
 * network error; retried), `aborted` (the caller's signal; never retried).
 */
export type DeliveryErrorCode = 'rejected' | 'throttled' | 'unavailable' | 'aborted';

/** A failed delivery. Its message holds the status and a short, secret-free detail, never a URL. */
export class DeliveryError extends Error {
  /** Attempts made before giving up (set by withRetry). */
  attempts = 1;
  constructor(
    readonly code: DeliveryErrorCode,
    message: string,
    readonly status: number | undefined,
    /** For `throttled`: how long the destination asked us to wait. */
    readonly retryAfterMs: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DeliveryError';
  }

  /** Whether the same request may succeed later. */
  get retryable(): boolean {
    return this.code === 'throttled' || this.code === 'unavailable';
  }
}

/** Longest Retry-After honoured when parsing (a day); larger values are treated as a day. */
const MAX_RETRY_AFTER_MS = 86_400_000;

/** Parse a Retry-After header (delay-seconds or an HTTP-date, RFC 9110 §10.2.3) into ms from `now`. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d{1,10}$/.test(v)) return Math.min(Number(v) * 1000, MAX_RETRY_AFTER_MS);
  // Date.parse alone is lenient ('-5' is a year): require the shape of an HTTP-date (IMF-fixdate,
  // RFC 850 or asctime all name a day or month and carry hh:mm:ss).
  if (v.length > 64 || !/[A-Za-z]{3}/.test(v) || !/\d{1,2}:\d{2}:\d{2}/.test(v)) return undefined;
  const date = Date.parse(v);
  if (Number.isNaN(date)) return undefined;
  return Math.min(Math.max(0, date - now), MAX_RETRY_AFTER_MS);
}

/**
 * THE mapping from an HTTP status to the outcome of a delivery: null for 2xx, else the error.
 * 429 → throttled, 5xx → unavailable, any other status (3xx: we never follow redirects, since that
 * could carry a signed body to another host; 4xx: the request itself is wrong) → rejected.
 */
export function errorForStatus(status: number, retryAfter: string | undefined, detail: string, now: number, rateLimit?: RateLimitHeaders): DeliveryError | null {
  if (status >= 200 && status < 300) return null;
  const suffix = detail === '' ? '' : `: ${detail}`;
  if (status === 429) return new DeliveryError('throttled', `HTTP 429 (throttled)${suffix}`, status, parseRetryAfter(retryAfter, now) ?? rateLimitReset(rateLimit, now));
  // GitHub answers a spent rate limit with 403 (or 429) and either Retry-After (secondary limits) or
  // x-ratelimit-remaining 0 with x-ratelimit-reset (primary): that is throttling, not a refusal.
  if (status === 403 && (retryAfter !== undefined || rateLimit?.remaining?.trim() === '0')) {
    return new DeliveryError('throttled', `HTTP 403 (rate limited)${suffix}`, status, parseRetryAfter(retryAfter, now) ?? rateLimitReset(rateLimit, now));
  }
  if (status >= 500 && status < 600) return new DeliveryError('unavailable', `HTTP ${status}${suffix}`, status, undefined);
  return new DeliveryError('rejected', `HTTP ${status}${suffix}`, status, undefined);
}

/** GitHub's rate-limit headers (`x-ratelimit-remaining`, `x-ratelimit-reset`: Unix seconds when the window resets). */
export interface RateLimitHeaders {
  remaining?: string | undefined;
  reset?: string | undefined;
}

/** The wait until a spent rate limit resets, from `x-ratelimit-reset` (bounded like Retry-After); undefined when unknown. */
export function rateLimitReset(h: RateLimitHeaders | undefined, now: number): number | undefined {
  if (h?.remaining?.trim() !== '0' || h.reset === undefined || !/^\d{1,12}$/.test(h.reset.trim())) return undefined;
  return Math.min(Math.max(0, Number(h.reset.trim()) * 1000 - now), MAX_RETRY_AFTER_MS);
}

/** One request (a POST unless `method` says otherwise). */
export interface PostRequest {
  /** Default POST; a GET sends no body. */
  method?: 'POST' | 'PUT' | 'PATCH' | 'GET' | undefined;
  url: string;
  headers: Readonly<Record<string, string>>;
  body: string;
  timeoutMs: number;
  maxResponseBytes: number;
  /** Values to blank out of any response text that ends up in an error (echoed keys, tokens). */
  secrets?: readonly string[] | undefined;
  now?: (() => number) | undefined;
}

/** A 2xx answer. */
export interface PostResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** At most maxResponseBytes of the body, as UTF-8. */
  body: string;
  truncated: boolean;
}

/** Longest response excerpt quoted in an error. */
const MAX_DETAIL = 200;

/** Response text made safe to log: secrets blanked, control characters dropped, bounded. */
export function responseDetail(body: string, secrets: readonly string[] = []): string {
  let text = body.slice(0, 4 * MAX_DETAIL);
  for (const s of secrets) if (s.length >= 4) text = text.split(s).join('[redacted]');
  // eslint-disable-next-line no-control-regex
  text = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return text.length > MAX_DETAIL ? `${text.slice(0, MAX_DETAIL)}…` : text;
}

/**
 * Send `body` (POST unless `req.method` says otherwise) and resolve with the 2xx response; otherwise reject with a DeliveryError: by status
 * (errorForStatus), `unavailable` for a timeout or network error, `aborted` when `signal` aborts.
 */
export function post(req: PostRequest, signal: AbortSignal): Promise<PostResponse> {
  const now = req.now ?? Date.now;
  if (signal.aborted) return Promise.reject(abortedError(signal));
  let url: URL;
  try {
    url = new URL(req.url);
  } catch (err) {
    return Promise.reject(new DeliveryError('rejected', 'the configured URL is not valid', undefined, undefined, { cause: err }));
  }
  const send = url.protocol === 'https:' ? httpsRequest : url.protocol === 'http:' ? httpRequest : null;
  if (!send) return Promise.reject(new DeliveryError('rejected', `unsupported URL scheme ${url.protocol}`, undefined, undefined));
  const method = req.method ?? 'POST';
  const body = Buffer.from(method === 'GET' ? '' : req.body, 'utf8');
  return new Promise<PostResponse>((resolve, reject) => {
    let settled = false;
    const finish = (err: DeliveryError | null, res?: PostResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(res as PostResponse);
    };
    const request = send(url, {
      method,
      headers: { ...(method === 'GET' ? {} : { 'content-type': 'application/json' }), 'user-agent': 'driftwatch', ...req.headers, 'content-length': String(body.length) },
    });
    // One deadline for connect, send and the bounded read: a slow drip of response bytes is a timeout too.
    const timer = setTimeout(() => {
      finish(new DeliveryError('unavailable', `no complete answer within ${req.timeoutMs} ms`, undefined, undefined));
      request.destroy();
    }, req.timeoutMs);
    const onAbort = () => {
      finish(abortedError(signal));
      request.destroy();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    request.on('error', (err: NodeJS.ErrnoException) => {
      // The error's own message may name the host and port; the code is enough and holds no secret.
      finish(new DeliveryError('unavailable', `network error ${err.code ?? err.name}`, undefined, undefined, { cause: err }));
    });
    request.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let truncated = false;
      const done = () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const status = res.statusCode ?? 0;
        const retryAfter = res.headers['retry-after'];
        const header = (name: string) => (typeof res.headers[name] === 'string' ? (res.headers[name] as string) : undefined);
        const rateLimit = { remaining: header('x-ratelimit-remaining'), reset: header('x-ratelimit-reset') };
        const err = errorForStatus(status, typeof retryAfter === 'string' ? retryAfter : undefined, responseDetail(text, req.secrets), now(), rateLimit);
        if (err) finish(err);
        else finish(null, { status, headers: res.headers, body: text, truncated });
      };
      res.on('data', (chunk: Buffer) => {
        if (truncated) return;
        const room = req.maxResponseBytes - size;
        if (chunk.length >= room) {
          if (room > 0) chunks.push(chunk.subarray(0, room));
          size = req.maxResponseBytes;
          truncated = true;
          // Enough read: stop the download instead of buffering a hostile or broken endpoint's stream.
          done();
          res.destroy();
          return;
        }
        chunks.push(chunk);
        size += chunk.length;
      });
      res.on('end', done);
      res.on('error', (err) => finish(new DeliveryError('unavailable', 'response interrupted', res.statusCode, undefined, { cause: err })));
    });
    request.end(body);
  });
}

function abortedError(signal: AbortSignal): DeliveryError {
  return new DeliveryError('aborted', 'delivery aborted', undefined, undefined, { cause: signal.reason });
}

/** How often and how patiently to retry. */
export interface RetryPolicy {
  /** Total attempts, the first included. */
  maxAttempts: number;
  /** Backoff before the second attempt; doubles each time. */
  baseDelayMs: number;
  /** Cap of the backoff. */
  maxDelayMs: number;
  /**
   * Longest Retry-After waited in process. A longer one ends the retries with the throttled error
   * (carrying retryAfterMs), so a durable outbox can reschedule instead of holding a worker.
   */
  maxRetryAfterMs: number;
}

/** Defaults that suit PagerDuty's and Slack's advice ("retry after some time, with a back off"). */
export const DEFAULT_RETRY: RetryPolicy = Object.freeze({ maxAttempts: 5, baseDelayMs: 500, maxDelayMs: 30_000, maxRetryAfterMs: 60_000 });

/** Injectable timing for tests. */
export interface RetryDeps {
  sleep?: ((ms: number, signal: AbortSignal) => Promise<void>) | undefined;
  random?: (() => number) | undefined;
  /** Called before each wait, e.g. to log a retry. */
  onRetry?: ((err: DeliveryError, attempt: number, delayMs: number) => void) | undefined;
}

/** Wait `ms`, rejecting with an `aborted` DeliveryError as soon as `signal` aborts. */
export async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  await sleepOrAbort(ms, signal);
  if (signal.aborted) throw abortedError(signal);
}

/**
 * Run `attempt` until it succeeds, fails with a non-retryable error, runs out of attempts, meets a
 * Retry-After longer than policy allows, or `signal` aborts. The error thrown carries `attempts`.
 */
export async function withRetry<T>(attempt: (n: number) => Promise<T>, policy: RetryPolicy, signal: AbortSignal, deps: RetryDeps = {}): Promise<T> {
  const wait = deps.sleep ?? sleep;
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (!(err instanceof DeliveryError)) throw err;
      err.attempts = n;
      if (!err.retryable || n >= policy.maxAttempts || signal.aborted) throw err;
      let delay = backoffDelay(n, { baseMs: policy.baseDelayMs, capMs: policy.maxDelayMs }, deps.random);
      if (err.retryAfterMs !== undefined) {
        if (err.retryAfterMs > policy.maxRetryAfterMs) throw err;
        delay = err.retryAfterMs;
      }
      deps.onRetry?.(err, n, delay);
      await wait(delay, signal);
    }
  }
}

/** A URL and its path (a Slack or webhook path alone is the secret), for PostRequest.secrets. */
export function urlSecrets(url: string): string[] {
  try {
    const u = new URL(url);
    return u.pathname.length > 1 ? [url, u.pathname + u.search] : [url];
  } catch {
    return [url];
  }
}

/** Config keys every sink accepts for its HTTP delivery. */
export const deliveryShape = {
  /** Deadline of one attempt. */
  timeout: durationMs.pipe(z.number().int().min(1).max(300_000)).default(10_000),
  /** Most response bytes read (the rest is discarded). */
  maxResponseBytes: z.number().int().min(256).max(1 << 20).default(64 << 10),
  retry: z
    .strictObject({
      maxAttempts: z.number().int().min(1).max(20).default(DEFAULT_RETRY.maxAttempts),
      baseDelay: durationMs.pipe(z.number().int().min(0).max(600_000)).default(DEFAULT_RETRY.baseDelayMs),
      maxDelay: durationMs.pipe(z.number().int().min(0).max(3_600_000)).default(DEFAULT_RETRY.maxDelayMs),
      maxRetryAfter: durationMs.pipe(z.number().int().min(0).max(86_400_000)).default(DEFAULT_RETRY.maxRetryAfterMs),
    })
    .default({ maxAttempts: DEFAULT_RETRY.maxAttempts, baseDelay: DEFAULT_RETRY.baseDelayMs, maxDelay: DEFAULT_RETRY.maxDelayMs, maxRetryAfter: DEFAULT_RETRY.maxRetryAfterMs }),
};

/** The retry policy of a parsed sink config. */
export function retryPolicyOf(c: { retry: { maxAttempts: number; baseDelay: number; maxDelay: number; maxRetryAfter: number } }): RetryPolicy {
  return { maxAttempts: c.retry.maxAttempts, baseDelayMs: c.retry.baseDelay, maxDelayMs: c.retry.maxDelay, maxRetryAfterMs: c.retry.maxRetryAfter };
}

/** An http(s) URL without credentials in it (those belong in dedicated, redacted settings). */
export const httpUrl = z
  .string()
  .max(2048)
  .superRefine((v, ctx) => {
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      // Do not echo the value: webhook URLs are secrets.
      ctx.addIssue({ code: 'custom', message: 'must be an absolute http:// or https:// URL' });
      return;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') ctx.addIssue({ code: 'custom', message: 'must be an http:// or https:// URL' });
    else if (u.username !== '' || u.password !== '') ctx.addIssue({ code: 'custom', message: 'must not carry user:password (use the sink\'s auth settings)' });
  });
