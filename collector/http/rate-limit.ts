/**
 * Rate limits at the collector's edges: failed authentication by credential, by client address and
 * overall (HTTP and gRPC), and requests per API token. All are bounded maps: when full, the oldest
 * key is forgotten (which at worst lets one key retry early; it never blocks a legitimate client).
 */
import { createHash } from 'node:crypto';

/** Counts failures per key in a fixed window; a key with too many is refused until the window ends. */
export interface FailureLimiter {
  /** Milliseconds until `key` may try again, 0 when it may now. */
  retryAfterMs(key: string): number;
  /** Record a failure of `key`. */
  fail(key: string): void;
}

/** Create a failure limiter: at most `maxFailures` per `windowMs` per key. */
export function createFailureLimiter(options: { maxFailures: number; windowMs: number; maxKeys?: number; now?: () => number }): FailureLimiter {
  const now = options.now ?? Date.now;
  const maxKeys = options.maxKeys ?? 10_000;
  const windows = new Map<string, { start: number; failures: number }>();
  return {
    retryAfterMs(key) {
      const w = windows.get(key);
      if (!w) return 0;
      const t = now();
      if (t - w.start >= options.windowMs) {
        windows.delete(key);
        return 0;
      }
      return w.failures >= options.maxFailures ? w.start + options.windowMs - t : 0;
    },
    fail(key) {
      const t = now();
      const w = windows.get(key);
      if (w && t - w.start < options.windowMs) {
        w.failures++;
        return;
      }
      windows.delete(key);
      if (windows.size >= maxKeys) windows.delete(windows.keys().next().value as string);
      windows.set(key, { start: t, failures: 1 });
    },
  };
}

/** A token bucket per key: `ratePerSecond` sustained, `burst` at once. */
export interface RateLimiter {
  /** Take one token for `key`; returns 0 when allowed, else milliseconds until one is available. */
  take(key: string): number;
}

/** Create a per-key token bucket limiter. */
export function createRateLimiter(options: { ratePerSecond: number; burst: number; maxKeys?: number; now?: () => number }): RateLimiter {
  const now = options.now ?? Date.now;
  const maxKeys = options.maxKeys ?? 10_000;
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    take(key) {
      const t = now();
      let b = buckets.get(key);
      if (!b) {
        if (buckets.size >= maxKeys) buckets.delete(buckets.keys().next().value as string);
        b = { tokens: options.burst, at: t };
        buckets.set(key, b);
      }
      b.tokens = Math.min(options.burst, b.tokens + ((t - b.at) / 1000) * options.ratePerSecond);
      b.at = t;
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return 0;
      }
      return Math.ceil(((1 - b.tokens) / options.ratePerSecond) * 1000);
    },
  };
}

/** Bounds on failed authentications; see createAuthFailureLimiter. */
export interface AuthFailureLimits {
  /** Failures of one credential (by its digest) before it is locked until its window ends. */
  perCredential: number;
  /** The window a credential's failures are counted in, and so the longest lock. */
  credentialWindowMs: number;
  /** Failures from one address per window before its further failing attempts are refused. */
  perAddress: number;
  /** Failures from everywhere per window before every further failing attempt is refused. */
  overall: number;
  /** The window of perAddress and overall. */
  windowMs: number;
}

/** The collector's defaults (HTTP API and agent streams), documented in the README. */
export const AUTH_FAILURE_LIMITS: Readonly<AuthFailureLimits> = Object.freeze({
  perCredential: 10,
  credentialWindowMs: 5 * 60_000,
  perAddress: 20,
  overall: 300,
  windowMs: 60_000,
});

/** Which bound refused an attempt (a label of the refusal metrics). */
export type AuthFailureGate = 'credential_locked' | 'address_throttled' | 'overall_throttled';

/**
 * Failed authentication, limited by credential, by address and overall. A credential that keeps
 * failing is locked (a rotated-out token, a node certificate that keeps claiming another node);
 * an address, or everyone together, past its failure budget gets its further *failing* attempts
 * refused (429 / RESOURCE_EXHAUSTED instead of 401), which bounds what guessing costs us (logs,
 * TokenReviews) while a valid credential from the same address still gets in: the limit is on
 * failures, never on the address's good requests. An attacker who rotates addresses still meets
 * the per-credential lock and the overall budget.
 */
export interface AuthFailureLimiter {
  /** Milliseconds `credential` stays locked (0: not locked). Check before spending anything on it. */
  lockedFor(credential: string): number;
  /** Whether a failing attempt from `address` is refused now, by which bound, for how long; null if not. */
  throttled(address: string): { gate: Exclude<AuthFailureGate, 'credential_locked'>; retryAfterMs: number } | null;
  /** Record a failed attempt; `credential` is the digest of what was offered (null: nothing was). */
  fail(address: string, credential: string | null): void;
}

/** Create an AuthFailureLimiter (bounded maps: see createFailureLimiter). */
export function createAuthFailureLimiter(limits: AuthFailureLimits = AUTH_FAILURE_LIMITS, options: { maxKeys?: number; now?: () => number } = {}): AuthFailureLimiter {
  const credentials = createFailureLimiter({ maxFailures: limits.perCredential, windowMs: limits.credentialWindowMs, ...options });
  const addresses = createFailureLimiter({ maxFailures: limits.perAddress, windowMs: limits.windowMs, ...options });
  const overall = createFailureLimiter({ maxFailures: limits.overall, windowMs: limits.windowMs, ...options });
  return {
    lockedFor: (credential) => credentials.retryAfterMs(credential),
    throttled(address) {
      const a = addresses.retryAfterMs(address);
      if (a > 0) return { gate: 'address_throttled', retryAfterMs: a };
      const o = overall.retryAfterMs('');
      return o > 0 ? { gate: 'overall_throttled', retryAfterMs: o } : null;
    },
    fail(address, credential) {
      addresses.fail(address);
      overall.fail('');
      if (credential !== null) credentials.fail(credential);
    },
  };
}

/**
 * The key a credential's failures are counted under: half of its SHA-256 (enough to tell
 * credentials apart), so the limiter's map holds no usable secret.
 */
export function credentialDigest(credential: string): string {
  return createHash('sha256').update(credential).digest('hex').slice(0, 32);
}
