/**
 * Agent identity by Kubernetes ServiceAccount token: the agent sends its projected token (audience
 * `driftwatch`, bound to its pod and so to its node), and the collector asks the API server whether
 * it is valid with a TokenReview (POST /apis/authentication.k8s.io/v1/tokenreviews). The verdict
 * names the node the token was issued for (`status.user.extra["authentication.kubernetes.io/node-name"]`),
 * which is the only node that stream may speak for.
 *
 * Verdicts are cached briefly (by the token's SHA-256, never the token itself) so a reconnect storm
 * does not become a TokenReview storm; an API server that cannot be reached fails closed.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Logger } from '../../runtime/logger.js';

/** TokenReview settings. */
export interface TokenReviewOptions {
  /** API server base URL, e.g. https://10.96.0.1:443 (http: only for tests). */
  apiServer: string;
  /** The collector's own ServiceAccount token file (re-read on every review: the kubelet rotates it). */
  tokenFile: string;
  /** CA bundle that signed the API server's certificate; null to use the system's. */
  caFile: string | null;
  /** The audience agent tokens must be issued for. */
  audience: string;
  /** Service accounts allowed to speak for a node, as `namespace:name`. */
  serviceAccounts: readonly string[];
  timeoutMs?: number;
  /** How long a positive / negative verdict is reused. */
  cacheTtlMs?: number;
  negativeCacheTtlMs?: number;
  maxCacheEntries?: number;
}

/** What a review concluded. `unavailable` means it could not be decided (the stream is refused). */
export type TokenVerdict =
  | { ok: true; node: string; username: string }
  | { ok: false; code: 'invalid' | 'unavailable'; reason: string };

/** Verifies agent tokens. */
export interface TokenReviewer {
  review(token: string): Promise<TokenVerdict>;
  /** The node `token` claims if it could be an agent's, from its unverified claims; null if it cannot (see unverifiedAgentClaims). */
  claims(token: string): { node: string } | null;
}

const MAX_RESPONSE_BYTES = 256 << 10;
const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';

interface TokenReviewStatus {
  authenticated?: unknown;
  error?: unknown;
  audiences?: unknown;
  user?: { username?: unknown; extra?: Record<string, unknown> };
}

/** Judge a TokenReview status the way Driftwatch needs it (pure, tested with tables). */
export function judgeTokenReview(status: TokenReviewStatus | undefined, options: Pick<TokenReviewOptions, 'audience' | 'serviceAccounts'>): TokenVerdict {
  if (!status || typeof status !== 'object') return { ok: false, code: 'unavailable', reason: 'the TokenReview response has no status' };
  if (status.authenticated !== true) {
    const why = typeof status.error === 'string' && status.error !== '' ? status.error.slice(0, 200) : 'not authenticated';
    return { ok: false, code: 'invalid', reason: `the API server rejected the token: ${why}` };
  }
  // With spec.audiences set, the API server answers with the audiences the token is valid for;
  // an answer without ours means the token was issued for something else.
  if (!Array.isArray(status.audiences) || !status.audiences.includes(options.audience)) {
    return { ok: false, code: 'invalid', reason: `the token is not issued for the audience ${JSON.stringify(options.audience)}` };
  }
  const username = typeof status.user?.username === 'string' ? status.user.username : '';
  const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(username);
  if (!m) return { ok: false, code: 'invalid', reason: 'the token is not a ServiceAccount token' };
  if (!options.serviceAccounts.includes(`${m[1]}:${m[2]}`)) {
    return { ok: false, code: 'invalid', reason: `service account ${m[1]}:${m[2]} is not an agent's (agentServiceAccounts: ${options.serviceAccounts.join(', ')})` };
  }
  const nodes = status.user?.extra?.[NODE_NAME_EXTRA];
  const node = Array.isArray(nodes) && nodes.length === 1 && typeof nodes[0] === 'string' ? nodes[0] : null;
  if (!node) return { ok: false, code: 'invalid', reason: 'the token is not bound to a node (use a projected ServiceAccount token of the agent pod)' };
  return { ok: true, node, username };
}

/**
 * Whether a token could be an agent's ServiceAccount token, from its claims alone, unverified: a
 * JWT whose `aud` holds the audience, whose `sub` is one of the agent service accounts, and whose
 * `exp` has not passed; with the node it claims (`kubernetes.io.node.name`, '' when it names none).
 * An agent's real token always passes (the API server checks the same claims, and the signature);
 * a token that fails is not worth a TokenReview. Anyone can forge one that passes, so this never
 * lets a stream in: it decides only whether a TokenReview is spent where the failure bounds would
 * refuse without one (collector/node-identity.ts).
 */
export function unverifiedAgentClaims(token: string, options: Pick<TokenReviewOptions, 'audience' | 'serviceAccounts'>, nowMs: number): { node: string } | null {
  const parts = token.split('.');
  if (parts.length !== 3 || (parts[1] as string).length > 8192) return null;
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  if (typeof claims !== 'object' || claims === null) return null;
  const { aud, sub, exp } = claims as { aud?: unknown; sub?: unknown; exp?: unknown };
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  if (!audiences.includes(options.audience)) return null;
  const m = typeof sub === 'string' ? /^system:serviceaccount:([^:]+):([^:]+)$/.exec(sub) : null;
  if (!m || !options.serviceAccounts.includes(`${m[1]}:${m[2]}`)) return null;
  if (typeof exp === 'number' && exp * 1000 <= nowMs) return null;
  const k8s = (claims as { 'kubernetes.io'?: { node?: { name?: unknown } } })['kubernetes.io'];
  const node = typeof k8s?.node?.name === 'string' ? k8s.node.name.slice(0, 253) : '';
  return { node };
}

/** Create a reviewer that asks the API server. */
export function createTokenReviewer(options: TokenReviewOptions, deps: { logger: Logger; now?: () => number }): TokenReviewer {
  const now = deps.now ?? Date.now;
  const url = new URL('/apis/authentication.k8s.io/v1/tokenreviews', options.apiServer);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`kubeApiServer must be an http(s) URL, not ${options.apiServer}`);
  const timeoutMs = options.timeoutMs ?? 5_000;
  const ttl = options.cacheTtlMs ?? 30_000;
  const negativeTtl = options.negativeCacheTtlMs ?? 5_000;
  const maxEntries = options.maxCacheEntries ?? 10_000;
  // Insertion-ordered: the oldest entry goes first when the cache is full.
  const cache = new Map<string, { verdict: TokenVerdict; until: number }>();
  const pending = new Map<string, Promise<TokenVerdict>>();

  function post(token: string): Promise<TokenVerdict> {
    let credential: string;
    let ca: Buffer | undefined;
    try {
      credential = readFileSync(options.tokenFile, 'utf8').trim();
      ca = options.caFile && url.protocol === 'https:' ? readFileSync(options.caFile) : undefined;
    } catch (err) {
      return Promise.resolve({ ok: false, code: 'unavailable', reason: `cannot read the collector's own credentials: ${(err as Error).message}` });
    }
    const body = JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [options.audience] } });
    return new Promise((resolve) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(
        url,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${credential}`, 'content-length': Buffer.byteLength(body) },
          timeout: timeoutMs,
          ...(ca ? { ca } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) req.destroy(new Error(`response larger than ${MAX_RESPONSE_BYTES} bytes`));
            else chunks.push(c);
          });
          res.on('end', () => {
            if (res.statusCode !== 201 && res.statusCode !== 200) {
              return resolve({ ok: false, code: 'unavailable', reason: `the API server answered the TokenReview with HTTP ${res.statusCode} (can the collector's service account create tokenreviews?)` });
            }
            try {
              const doc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { status?: TokenReviewStatus };
              resolve(judgeTokenReview(doc.status, options));
            } catch {
              resolve({ ok: false, code: 'unavailable', reason: 'the TokenReview response is not JSON' });
            }
          });
          res.on('error', (err) => resolve({ ok: false, code: 'unavailable', reason: `TokenReview failed: ${err.message}` }));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (err) => resolve({ ok: false, code: 'unavailable', reason: `TokenReview at ${url.origin} failed: ${err.message}` }));
      req.end(body);
    });
  }

  return {
    claims: (token) => unverifiedAgentClaims(token, options, now()),
    review(token) {
      const id = createHash('sha256').update(token).digest('hex');
      const hit = cache.get(id);
      if (hit && hit.until > now()) return Promise.resolve(hit.verdict);
      if (hit) cache.delete(id);
      const inFlight = pending.get(id);
      if (inFlight) return inFlight;
      const p = post(token).then((verdict) => {
        pending.delete(id);
        // Only decided verdicts are cached: an outage must not outlive itself.
        if (verdict.ok || verdict.code === 'invalid') {
          if (cache.size >= maxEntries) cache.delete(cache.keys().next().value as string);
          cache.set(id, { verdict, until: now() + (verdict.ok ? ttl : negativeTtl) });
        } else {
          deps.logger.error({ reason: verdict.reason }, 'cannot verify an agent token; refusing the stream');
        }
        return verdict;
      });
      pending.set(id, p);
      return p;
    },
  };
}
