/**
 * A collector (or something posing as one) that welcomes every agent and ends the stream at once
 * must not make agents reconnect at the minimum delay forever: the uplink's backoff starts over only
 * after a healthy stream (an acknowledged batch, or HEALTHY_STREAM_MS open), not at the Welcome.
 * Only lower bounds on delays are asserted: a timer never fires early, however loaded the machine.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { createAgentMetrics } from '../../agent/metrics.js';
import { openAgentState } from '../../agent/state/index.js';
import { DEFAULT_UPLINK, startUplink } from '../../agent/uplink.js';
import { agentService, type WireAgentMessage, type WireCollectorMessage } from '../../proto/index.js';

test('welcomed then cut off at once: the agent backs off further each time instead of starting over', async (t) => {
  const connects: number[] = [];
  const server = new grpc.Server();
  server.addService(agentService().service, {
    connect(call: grpc.ServerDuplexStream<WireAgentMessage, WireCollectorMessage>) {
      call.on('data', (m: WireAgentMessage) => {
        if (!m.hello) return;
        connects.push(performance.now());
        call.write({ welcome: { collectorVersion: 'hostile', maxBatchItems: 100, baselines: 0 } });
        // Right after the handshake: what a collector that fails every push-down looked like.
        setImmediate(() => {
          call.emit('error', { code: grpc.status.INTERNAL, details: 'push-down failed' });
          call.end();
        });
      });
      call.on('error', () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  const dir = mkdtempSync(join(tmpdir(), 'dw-backoff-'));
  const state = openAgentState(dir, 1 << 20);
  const uplink = startUplink(
    { ...DEFAULT_UPLINK, security: { insecure: true }, target: `127.0.0.1:${port}`, node: 'node-1', version: 'test', sources: [], backoffMinMs: 20, backoffMaxMs: 640 },
    { state, metrics: createAgentMetrics(), logger: pino({ level: 'silent' }), watermark: () => 0 },
  );
  t.teardown(async () => {
    await uplink.stop();
    state.close?.();
    server.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  });
  const deadline = Date.now() + 60_000;
  while (connects.length < 8 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.true(connects.length >= 8, `${connects.length} connects`);
  // After 6 failures the delay is min(640, 20 × 2^6) = 640 ms, jittered to at least half of it.
  const gap = (connects[7] as number) - (connects[6] as number);
  t.true(gap >= 300, `the 8th connect came ${Math.round(gap)} ms after the 7th (the minimum delay is 20 ms)`);
});
