/**
 * One backoff schedule for every retry loop, each caller with its own numbers. A row per caller:
 * its policy taken from its exported defaults the way the caller builds it, and the delays before
 * retries 1..8 at the two ends of the jitter (random() = 0 and 1).
 */
import test from 'ava';
import { GRPC_STREAM_DEFAULTS } from '../../agent/sources/grpc-stream.js';
import { DEFAULT_UPLINK } from '../../agent/uplink.js';
import { AlertingConfigSchema } from '../../collector/alerting/config.js';
import { DEFAULT_RETRY, sleep as deliverySleep } from '../../collector/sinks/http.js';
import { backoffDelay, type BackoffPolicy } from '../../runtime/backoff.js';
import { sleep } from '../../runtime/sleep.js';

const outbox = AlertingConfigSchema.parse({}).outbox;

const schedules: [string, BackoffPolicy, number[], number[]][] = [
  // agent/uplink.ts: reset by an acknowledged batch or a stream up HEALTHY_STREAM_MS (30 s), not by the Welcome.
  ['agent uplink, stream closed', { baseMs: DEFAULT_UPLINK.backoffMinMs, capMs: DEFAULT_UPLINK.backoffMaxMs }, [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000], [200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000]],
  // The same failure count when the stream cannot even be opened (unreadable TLS or token files): no jitter.
  ['agent uplink, stream not opened', { baseMs: DEFAULT_UPLINK.backoffMinMs, capMs: DEFAULT_UPLINK.backoffMaxMs, jitter: 'none' }, [200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000], [200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000]],
  // agent/sources/grpc-stream.ts (Falco and Tetragon gRPC): starts over after a stream that delivered events.
  ['gRPC sources', { baseMs: GRPC_STREAM_DEFAULTS.initialBackoffMs, capMs: GRPC_STREAM_DEFAULTS.maxBackoffMs }, [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000], [200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000]],
  // agent/sources/ebpf/source.ts (its defaults: 500 ms, 30 s): starts over after a bpftrace run that delivered events.
  ['ebpf source', { baseMs: 500, capMs: 30_000 }, [250, 500, 1_000, 2_000, 4_000, 8_000, 15_000, 15_000], [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]],
  // collector/sinks/http.ts withRetry: attempts within one delivery (a Retry-After replaces the delay).
  ['sink retries', { baseMs: DEFAULT_RETRY.baseDelayMs, capMs: DEFAULT_RETRY.maxDelayMs }, [250, 500, 1_000, 2_000, 4_000, 8_000, 15_000, 15_000], [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]],
  // collector/alerting outbox: by the row's attempts; the longer of this and a Retry-After.
  ['alert outbox', { baseMs: outbox.baseDelay, capMs: outbox.maxDelay }, [5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000], [10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 600_000, 600_000]],
];

for (const [caller, policy, low, high] of schedules) {
  test(`backoff schedule: ${caller}`, (t) => {
    const n = [1, 2, 3, 4, 5, 6, 7, 8];
    t.deepEqual(n.map((i) => backoffDelay(i, policy, () => 0)), low);
    t.deepEqual(n.map((i) => backoffDelay(i, policy, () => 1)), high);
    // However long the outage, the delay stays within [cap/2, cap] (or exactly the cap without jitter).
    const late = backoffDelay(10_000, policy, Math.random);
    t.true(late <= policy.capMs && late >= (policy.jitter === 'none' ? policy.capMs : policy.capMs / 2), String(late));
  });
}

test('backoff: jitter lands anywhere in the upper half of the delay', (t) => {
  const p = { baseMs: 100, capMs: 1_000 };
  t.is(backoffDelay(4, p, () => 0.5), 600);
  t.is(backoffDelay(100, p, () => 0.5), 750);
  t.is(backoffDelay(0, p, () => 1), 100, 'n below 1 counts as the first retry');
});

test('sleep ends at once when its signal aborts, before or during the wait', async (t) => {
  const aborted = AbortSignal.abort();
  await sleep(3_600_000, aborted);
  const ac = new AbortController();
  const waiting = sleep(3_600_000, ac.signal);
  setTimeout(() => ac.abort(), 10);
  await waiting;
  t.true(ac.signal.aborted);
  // A delivery's wait throws instead, so a retry loop stops where it is.
  await t.throwsAsync(deliverySleep(3_600_000, aborted), { message: /abort/i });
  await sleep(1, new AbortController().signal);
});
