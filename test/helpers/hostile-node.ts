/**
 * A scripted node: one agent stream that sends whatever a test tells it (a node owned by an
 * attacker has a valid certificate and says what it likes), and records what the collector answers:
 * the Welcome, acks, and the cluster baselines reassembled from their parts as an agent does.
 */
import * as grpc from '@grpc/grpc-js';
import type { ClusterBaseline } from '../../core/baseline.js';
import { PROTOCOL_REVISION, agentService, createClusterAssembler, type WireAgentMessage, type WireCollectorMessage } from '../../proto/index.js';

/** An open scripted stream. */
export interface ScriptedNode {
  /** Resolves when welcomed; rejects when the stream ended first. */
  readonly welcomed: Promise<NonNullable<WireCollectorMessage['welcome']>>;
  /** Cluster baselines received (complete ones), by key. */
  readonly baselines: Map<string, ClusterBaseline>;
  /** Every message received, in order. */
  readonly replies: WireCollectorMessage[];
  send(msg: WireAgentMessage): void;
  /** Send a batch and resolve with its ack (rejects if the stream ends first). */
  batch(batch: NonNullable<WireAgentMessage['batch']>): Promise<NonNullable<WireCollectorMessage['ack']>>;
  /** Resolve once `check` holds on what was received (polled), or reject after `timeoutMs`. */
  until(check: () => boolean, timeoutMs?: number): Promise<void>;
  close(): void;
}

/** Open a stream to `port` as `node` with `credentials` (TLS names checked as localhost); `hello` overrides Hello fields. */
export function scriptedNode(port: number, credentials: grpc.ChannelCredentials, node: string, hello: Partial<NonNullable<WireAgentMessage['hello']>> = {}): ScriptedNode {
  const { Client } = agentService();
  const client = new Client(`127.0.0.1:${port}`, credentials, {
    'grpc.ssl_target_name_override': 'localhost',
    'grpc.default_authority': 'localhost',
    'grpc.max_send_message_length': 64 << 20,
    'grpc.max_receive_message_length': 64 << 20,
  });
  const call = (client.Connect as (md: grpc.Metadata) => grpc.ClientDuplexStream<WireAgentMessage, WireCollectorMessage>).call(client, new grpc.Metadata());
  const replies: WireCollectorMessage[] = [];
  const baselines = new Map<string, ClusterBaseline>();
  const assembler = createClusterAssembler();
  const waiters = new Map<number, (ack: NonNullable<WireCollectorMessage['ack']>) => void>();
  let ended: Error | null = null;
  const failures: ((err: Error) => void)[] = [];
  let welcome: (w: NonNullable<WireCollectorMessage['welcome']>) => void = () => undefined;
  const welcomed = new Promise<NonNullable<WireCollectorMessage['welcome']>>((resolve, reject) => {
    welcome = resolve;
    failures.push(reject);
  });
  welcomed.catch(() => undefined);
  call.on('data', (m: WireCollectorMessage) => {
    replies.push(m);
    if (m.welcome) welcome(m.welcome);
    if (m.baseline) {
      const c = assembler.add(m.baseline);
      if (c) baselines.set(c.key, c);
    }
    if (m.ack) waiters.get(m.ack.batchId)?.(m.ack);
  });
  const end = (err: Error) => {
    ended ??= err;
    for (const f of failures.splice(0)) f(err);
  };
  call.on('error', (e: grpc.ServiceError) => end(new Error(`stream ended: ${grpc.status[e.code]} ${e.details}`)));
  call.on('end', () => end(new Error('stream ended')));
  call.write({ hello: { node, agentVersion: 'scripted', sources: [], protocol: PROTOCOL_REVISION, runningKeys: [], ...hello } });
  return {
    welcomed,
    baselines,
    replies,
    send: (msg) => call.write(msg),
    batch(b) {
      return new Promise((resolve, reject) => {
        if (ended) return reject(ended);
        waiters.set(b.batchId, resolve);
        failures.push(reject);
        call.write({ batch: b });
      });
    },
    async until(check, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (!check()) {
        if (Date.now() > deadline) throw new Error('timed out waiting on a scripted node');
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    close() {
      call.removeAllListeners();
      call.on('error', () => undefined);
      call.cancel();
      client.close();
    },
  };
}
