/**
 * Capped exponential backoff, the one schedule every retry loop uses: the agent's uplink to the
 * collector, the gRPC and eBPF sources' reconnects, the sinks' in-process retries and the outbox.
 * The delay before retry n is base × 2^(n−1), capped, then drawn from its upper half ("equal
 * jitter"): many clients that failed together do not retry in step, and no delay collapses to 0.
 * When a failure count starts over is each caller's rule (an acknowledged batch, a stream that
 * delivered), not this module's.
 */

/** A backoff schedule. */
export interface BackoffPolicy {
  /** The delay before the first retry, before jitter. */
  readonly baseMs: number;
  /** The longest delay, before jitter. */
  readonly capMs: number;
  /** `equal` (the default): half fixed, half random; `none`: the full delay. */
  readonly jitter?: 'equal' | 'none';
}

/** The delay before retry `n` (1-based: n = 1 after the first failure). */
export function backoffDelay(n: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  // The exponent is bounded so that a long outage cannot overflow to Infinity before the cap applies.
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(Math.max(n, 1) - 1, 30));
  return policy.jitter === 'none' ? ceiling : Math.round(ceiling / 2 + random() * (ceiling / 2));
}
