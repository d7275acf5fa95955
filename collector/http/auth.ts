/**
 * Authentication and authorization of the collector's HTTP server (and its websocket upgrades):
 * bearer tokens from a YAML file, each with a name and a role; the least role of a request is the
 * matched route's (routes/index.ts: one table for dispatch and roles); 401 without or with a wrong
 * token, 403 for a role too weak, 429 for a failing attempt past the failure bounds (by credential,
 * by address, overall; a valid token is never refused for others' failures) or too many requests
 * on one token.
 *
 * A request no route takes needs a token of any role (it gets 404 or 405 from the server), so an
 * anonymous caller learns nothing from the table. Tokens are compared as SHA-256 digests in
 * constant time against every entry; no token or digest is ever logged. The file is re-read when
 * it changes (a Kubernetes Secret volume updates in place); a file that no longer parses is
 * refused and the previous tokens stay in force, loudly.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, type Registry } from 'prom-client';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { firstIssue } from '../../core/zod-issue.js';
import type { Logger } from '../../runtime/logger.js';
import { sendError } from './errors.js';
import { createAuthFailureLimiter, createRateLimiter, credentialDigest, type AuthFailureLimits } from './rate-limit.js';

/** Roles, weakest first; each can do everything the ones before it can. */
export const ROLES = ['viewer', 'responder', 'reviewer', 'admin'] as const;
/** One of ROLES. */
export type Role = (typeof ROLES)[number];

/** Who made a request. */
export interface Principal {
  /** The token's name from the tokens file (`anonymous` when the API is open). */
  name: string;
  role: Role;
}

/** True when `have` is at least `need`. */
export function roleAtLeast(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

const TOKEN_RE = /^[A-Za-z0-9._~+/=-]{16,4096}$/;

const TokenEntrySchema = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$/, 'a name of letters, digits and ._@:- (at most 64)'),
    role: z.enum(ROLES),
    /** Hex SHA-256 of the token (preferred: the file then holds no usable secret). */
    sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'the hex SHA-256 of the token').optional(),
    /** The token itself, 16 to 4096 characters of [A-Za-z0-9._~+/=-]. */
    token: z.string().regex(TOKEN_RE, '16 to 4096 characters of A-Z a-z 0-9 . _ ~ + / = -').optional(),
  })
  .refine((e) => (e.sha256 === undefined) !== (e.token === undefined), 'give exactly one of sha256 or token');

const TokensFileSchema = z.strictObject({ tokens: z.array(TokenEntrySchema).max(10_000) });

interface TokenEntry {
  name: string;
  role: Role;
  digest: Buffer;
}

/** Parse a tokens file's text; throws an Error naming the entry and the problem. */
export function parseTokensFile(text: string): TokenEntry[] {
  const doc: unknown = parseYaml(text, { maxAliasCount: 10 });
  const parsed = TokensFileSchema.safeParse(doc ?? { tokens: [] });
  if (!parsed.success) {
    const { path, unknownKeys, message } = firstIssue(parsed.error);
    throw new Error(`${path || '(top level)'}: ${unknownKeys.length > 0 ? `unknown key ${unknownKeys.join(', ')}` : message}`);
  }
  const names = new Set<string>();
  const digests = new Set<string>();
  return parsed.data.tokens.map((e, i) => {
    if (names.has(e.name)) throw new Error(`tokens.${i}.name: ${e.name} is given twice`);
    names.add(e.name);
    const digest = e.sha256 !== undefined ? Buffer.from(e.sha256, 'hex') : createHash('sha256').update(e.token as string).digest();
    const hex = digest.toString('hex');
    if (digests.has(hex)) throw new Error(`tokens.${i}: the same token is given twice`);
    digests.add(hex);
    return { name: e.name, role: e.role, digest };
  });
}

/** API auth settings. */
export interface ApiAuthOptions {
  /** The YAML tokens file; null leaves the API open (only with `insecure`). */
  tokensFile: string | null;
  /** Require `viewer` for /metrics. */
  metricsAuth: boolean;
  /** How often the tokens file is checked for changes. */
  reloadIntervalMs: number;
  /** Bounds on failed authentications (default AUTH_FAILURE_LIMITS). */
  failureLimits?: AuthFailureLimits | undefined;
  /** Requests per second per token (burst: twice that). */
  requestsPerSecond: number;
  /** Largest request body (by Content-Length) before 413. */
  maxBodyBytes: number;
}

/** What the auth layer decided for one request. */
export type AuthDecision =
  | { allow: true; principal: Principal | null }
  | { allow: false; status: 400 | 401 | 403 | 413 | 414 | 429; code: string; message: string; retryAfterS?: number };

/** The API's gatekeeper. */
export interface ApiAuth {
  /** Decide on a request (also for websocket upgrades: call it from the server's 'upgrade' handler). */
  authorize(req: IncomingMessage): AuthDecision;
  /** The principal of an allowed request (null for open routes). */
  principalOf(req: IncomingMessage): Principal | null;
  /** Stop watching the tokens file. */
  close(): void;
}

/** Principal of every request when the API is open (insecure). */
export const ANONYMOUS: Principal = Object.freeze({ name: 'anonymous', role: 'admin' as Role });

function clientAddress(req: IncomingMessage): string {
  // The socket's peer, never X-Forwarded-For: a header anyone can set must not pick the bucket.
  return req.socket.remoteAddress ?? 'unknown';
}

/** Send a refusal in the API's error shape. */
export function sendRefusal(res: ServerResponse, d: Extract<AuthDecision, { allow: false }>): void {
  const headers: Record<string, string> = {};
  if (d.status === 401) headers['www-authenticate'] = d.code === 'invalid_token' ? 'Bearer realm="driftwatch", error="invalid_token"' : 'Bearer realm="driftwatch"';
  if (d.retryAfterS !== undefined) headers['retry-after'] = String(d.retryAfterS);
  // The body is not read: do not keep the connection for a next request behind it.
  if (d.status === 413) headers.connection = 'close';
  sendError(res, { status: d.status, code: d.code, message: d.message, headers });
}

/** Create the API auth layer; throws when the tokens file cannot be read at startup. */
export function createApiAuth(
  options: ApiAuthOptions,
  deps: {
    logger: Logger;
    registry: Registry;
    /** The least role of a method and path (routes/index.ts requiredRole); null for a malformed path. */
    roleOf: (method: string, path: string) => Role | 'open' | null;
    /** A larger body bound a route declares (routes/index.ts requestBodyLimit), or null: maxBodyBytes. */
    bodyLimitOf?: (method: string, path: string) => number | null;
    now?: () => number;
    onTokensChanged?: (before: Principal[], after: Principal[]) => void;
  },
): ApiAuth {
  const { logger } = deps;
  const now = deps.now ?? Date.now;
  const r = [deps.registry];
  const denied = new Counter({ name: 'driftwatch_collector_api_requests_denied_total', help: 'API requests refused by authentication or authorization, by reason', labelNames: ['reason'], registers: r });
  const reloads = new Counter({ name: 'driftwatch_collector_api_tokens_reloads_total', help: 'Reloads of the API tokens file, by result', labelNames: ['result'], registers: r });
  const tokenCount = new Gauge({ name: 'driftwatch_collector_api_tokens', help: 'API tokens in force', registers: r });
  const failures = createAuthFailureLimiter(options.failureLimits, { now });
  const rates = createRateLimiter({ ratePerSecond: options.requestsPerSecond, burst: options.requestsPerSecond * 2, now });
  const principals = new WeakMap<IncomingMessage, Principal>();

  let entries: TokenEntry[] = [];
  let lastStamp = '';
  const stampOf = (file: string) => {
    try {
      const s = statSync(file);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      return 'missing';
    }
  };
  const load = (file: string): TokenEntry[] => {
    const size = statSync(file).size;
    if (size > 4 << 20) throw new Error(`${file} is ${size} bytes; at most 4 MiB`);
    return parseTokensFile(readFileSync(file, 'utf8'));
  };
  const listOf = (es: TokenEntry[]): Principal[] => es.map((e) => ({ name: e.name, role: e.role }));
  let timer: NodeJS.Timeout | null = null;
  if (options.tokensFile !== null) {
    const file = options.tokensFile;
    lastStamp = stampOf(file);
    try {
      entries = load(file);
    } catch (err) {
      throw new Error(`apiTokensFile ${file}: ${(err as Error).message}`, { cause: err });
    }
    tokenCount.set(entries.length);
    timer = setInterval(() => {
      const s = stampOf(file);
      if (s === lastStamp) return;
      lastStamp = s;
      try {
        const next = load(file);
        const before = listOf(entries);
        entries = next;
        tokenCount.set(entries.length);
        reloads.inc({ result: 'ok' });
        logger.info({ file, tokens: entries.length }, 'API tokens reloaded');
        deps.onTokensChanged?.(before, listOf(entries));
      } catch (err) {
        reloads.inc({ result: 'error' });
        logger.error({ file, err: (err as Error).message }, 'API tokens file changed but cannot be used; the previous tokens stay in force');
      }
    }, options.reloadIntervalMs);
    timer.unref();
  }

  function lookup(token: string): TokenEntry | null {
    const digest = createHash('sha256').update(token).digest();
    let found: TokenEntry | null = null;
    // Every entry is compared, so the time taken says nothing about which one (if any) matched.
    for (const e of entries) if (timingSafeEqual(e.digest, digest) && found === null) found = e;
    return found;
  }

  function authorize(req: IncomingMessage): AuthDecision {
    const rawUrl = req.url ?? '/';
    if (rawUrl.length > 8192) return { allow: false, status: 414, code: 'uri_too_long', message: 'request URI longer than 8192 characters' };
    const q = rawUrl.indexOf('?');
    const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
    const method = req.method ?? 'GET';
    let need = deps.roleOf(method, path);
    if (need === null) return { allow: false, status: 400, code: 'invalid_path', message: 'malformed percent-encoding in the path' };
    if (need === 'open' && path === '/metrics' && options.metricsAuth) need = 'viewer';
    const length = Number(req.headers['content-length'] ?? 0);
    // Only a route that reads a larger body itself (an SBOM import) raises the bound, for itself.
    const limit = Math.max(options.maxBodyBytes, deps.bodyLimitOf?.(method, path) ?? 0);
    if (length > limit) {
      denied.inc({ reason: 'body_too_large' });
      return { allow: false, status: 413, code: 'body_too_large', message: `request body larger than ${limit} bytes` };
    }
    if (need === 'open') return { allow: true, principal: null };
    if (options.tokensFile === null) return { allow: true, principal: ANONYMOUS };

    const header = req.headers.authorization ?? bearerFromWebSocketProtocol(req);
    if (header === undefined || header === '') {
      // Not a guess, so not a failure: the console's first load, a probe, a misconfigured client.
      denied.inc({ reason: 'unauthenticated' });
      return { allow: false, status: 401, code: 'unauthenticated', message: 'send a token: Authorization: Bearer TOKEN' };
    }
    const m = /^Bearer ([^\s]+)$/i.exec(header);
    const entry = m && TOKEN_RE.test(m[1] as string) ? lookup(m[1] as string) : null;
    if (!entry) {
      // A valid token was decided above without looking at any failure bound, so failures of
      // others (same address, or everywhere) never refuse it; only failing attempts are limited.
      const address = clientAddress(req);
      const credential = credentialDigest(header);
      const locked = failures.lockedFor(credential);
      const gate = locked > 0 ? { gate: 'credential_locked' as const, retryAfterMs: locked } : failures.throttled(address);
      failures.fail(address, credential);
      if (gate !== null) {
        // Counted, not logged: past a bound, a log line per attempt is what an attacker wants.
        denied.inc({ reason: gate.gate });
        const what = gate.gate === 'credential_locked' ? 'with this token' : gate.gate === 'address_throttled' ? 'from this address' : 'from all clients';
        return { allow: false, status: 429, code: 'too_many_failures', message: `too many failed authentications ${what}; retry later`, retryAfterS: Math.ceil(gate.retryAfterMs / 1000) };
      }
      denied.inc({ reason: 'invalid_token' });
      logger.warn({ address, method, path: path.slice(0, 256) }, 'API request with an unknown token');
      return { allow: false, status: 401, code: 'invalid_token', message: 'the token is not valid' };
    }
    if (!roleAtLeast(entry.role, need)) {
      denied.inc({ reason: 'forbidden' });
      return { allow: false, status: 403, code: 'forbidden', message: `${method} ${path.slice(0, 256)} needs the role ${need}; ${entry.name} has ${entry.role}` };
    }
    const slow = rates.take(entry.name);
    if (slow > 0) {
      denied.inc({ reason: 'rate_limited' });
      return { allow: false, status: 429, code: 'rate_limited', message: `more than ${options.requestsPerSecond} requests per second on this token`, retryAfterS: Math.ceil(slow / 1000) };
    }
    const principal = { name: entry.name, role: entry.role };
    principals.set(req, principal);
    return { allow: true, principal };
  }

  return {
    authorize,
    principalOf(req) {
      return principals.get(req) ?? (options.tokensFile === null ? ANONYMOUS : null);
    },
    close() {
      if (timer) clearInterval(timer);
    },
  };
}

/** The subprotocol a browser offers (and the collector echoes) on the live feed. */
export const WEBSOCKET_PROTOCOL = 'driftwatch.v1';
/** Prefix of the subprotocol that carries a browser's token, base64url-encoded. */
export const WEBSOCKET_BEARER_PREFIX = 'driftwatch.bearer.';

/**
 * Browsers cannot set Authorization on a websocket; they can offer subprotocols. A websocket
 * upgrade without Authorization may offer `driftwatch.bearer.<base64url(token)>` (base64url because
 * a subprotocol is an HTTP token: no `/`, `+` or `=`) next to `driftwatch.v1`; the collector
 * answers with `driftwatch.v1` only, so the token is never echoed (as Kubernetes does for
 * `base64url.bearer.authorization.k8s.io.`). Returns an Authorization value, or undefined.
 */
export function bearerFromWebSocketProtocol(req: IncomingMessage): string | undefined {
  if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return undefined;
  const offered = req.headers['sec-websocket-protocol'];
  if (typeof offered !== 'string' || offered.length > 8192) return undefined;
  for (const p of offered.split(',')) {
    const v = p.trim();
    if (!v.startsWith(WEBSOCKET_BEARER_PREFIX)) continue;
    const encoded = v.slice(WEBSOCKET_BEARER_PREFIX.length);
    if (!/^[A-Za-z0-9_-]{1,5600}$/.test(encoded)) return 'Bearer -';
    return `Bearer ${Buffer.from(encoded, 'base64url').toString('latin1')}`;
  }
  return undefined;
}
