/**
 * Rate limits at the collector's edges: failed authentication per client address (HTTP and gRPC),
 * and requests per API token. Both are bounded maps: when full, the oldest key is forgotten (which
 * at worst lets one address retry early; it never blocks a legitimate client).
 */

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
