/**
 * A simulated agent process for the collector scenarios. It speaks the real wire contract
 * (driftwatch.v1.AgentService/Connect: Hello, then Batch messages acknowledged by BatchAck, and
 * Heartbeats when idle) over loopback gRPC, one HTTP/2 connection per stream like separate agents.
 * Batches are encoded with the real proto serializer before the start signal, so that during the
 * measurement this process only writes bytes and reads acks.
 *
 * Config (argv[2], JSON): see SimConfig. IPC: sends {type:'ready'} once every stream was welcomed
 * and every batch encoded; on {type:'go', burst} the first `burst` streams send their batches
 * (window-limited) and report {type:'done', ...}; on {type:'stop'} it closes its streams and exits.
 */
import * as grpc from '@grpc/grpc-js';
import { PROTOCOL_REVISION, agentService, deviationToWire, type WireAgentMessage, type WireCollectorMessage } from '../../proto/index.js';
import { eventPool, makeDeviation } from '../lib/deviations.js';

/** What the parent asks for. */
export interface SimConfig {
  target: string;
  /** One stream per node name. */
  nodes: string[];
  /** Stream file to take real events from, how many, and of how many images at most. */
  poolPath: string;
  poolSize: number;
  poolImages?: number;
  /** Batches each bursting stream sends, deviations per batch, and batches in flight. */
  batchesPerStream: number;
  batchSize: number;
  window: number;
  /** Distinct behaviours (fingerprints per image). */
  variants: number;
  /** Offset making serials (and so ids) unique across processes. */
  serialBase: number;
  heartbeatMs: number;
  /** Stop sending new batches after this long (the ones in flight are still acknowledged). */
  maxSendMs: number;
  /** Only the first this many streams get batches (the others only say hello and heartbeat); default all. */
  encodeStreams?: number;
}

type Msg = { type: 'go'; burst: number } | { type: 'stop' } | { type: 'connect'; target: string };

const now = () => performance.timeOrigin + performance.now();

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] as string) as SimConfig;
  const { service } = agentService();
  const connect = service.Connect as grpc.MethodDefinition<WireAgentMessage, WireCollectorMessage>;
  const encode = (m: WireAgentMessage) => connect.requestSerialize(m);
  const pool = eventPool(cfg.poolPath, cfg.poolSize, cfg.poolImages);

  interface Stream {
    node: string;
    client: grpc.Client;
    call: grpc.ClientDuplexStream<Buffer, WireCollectorMessage>;
    welcomed: Promise<void>;
    onAck: ((m: WireCollectorMessage) => void) | null;
    batches: Buffer[];
    deviations: number[];
  }
  let streams: Stream[] = [];
  let serial = cfg.serialBase;
  const open = (target: string, node: string): Stream => {
    // Like separate agents: each stream has its own channel and connection.
    const client = new grpc.Client(target, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.max_send_message_length': 16 << 20,
      'grpc.max_receive_message_length': 16 << 20,
    });
    const call = client.makeBidiStreamRequest<Buffer, WireCollectorMessage>(connect.path, (b: Buffer) => b, connect.responseDeserialize);
    const s: Stream = { node, client, call, welcomed: Promise.resolve(), onAck: null, batches: [], deviations: [] };
    s.welcomed = new Promise<void>((resolve, reject) => {
      call.on('data', (m: WireCollectorMessage) => {
        if (m.welcome) resolve();
        else if (m.ack) s.onAck?.(m);
      });
      call.on('error', (err: Error) => reject(err));
    });
    call.on('error', () => {});
    call.write(encode({ hello: { node, agentVersion: 'bench', sources: ['bench:sim'], protocol: PROTOCOL_REVISION } }));
    return s;
  };
  streams = cfg.nodes.map((node) => open(cfg.target, node));
  await Promise.all(streams.map((s) => s.welcomed));

  // Encode every batch now (bursting streams are the first ones; they are told how many at 'go').
  let batchId = 1;
  for (const s of streams.slice(0, cfg.encodeStreams ?? streams.length)) {
    for (let b = 0; b < cfg.batchesPerStream; b++) {
      const deviations = [];
      for (let i = 0; i < cfg.batchSize; i++) {
        const base = pool[serial % pool.length]!;
        deviations.push(deviationToWire(makeDeviation(base, s.node, serial % cfg.variants, serial)));
        serial++;
      }
      s.batches.push(encode({ batch: { batchId: batchId++, deviations, baselines: [] } }));
      s.deviations.push(deviations.length);
    }
  }
  const hb = setInterval(() => {
    for (const s of streams) s.call.write(encode({ heartbeat: { timeMs: Date.now(), spooled: 0, watermarkMs: Date.now() } }));
  }, cfg.heartbeatMs);

  process.send!({ type: 'ready', streams: streams.length, bytes: streams.reduce((n, s) => n + s.batches.reduce((m, b) => m + b.length, 0), 0) });

  process.on('message', (msg: Msg) => {
    if (msg.type === 'connect') {
      // Same batches, another server: close every stream and open new ones.
      const old = streams;
      for (const s of old) {
        s.call.end();
        s.client.close();
      }
      streams = old.map((s) => Object.assign(open(msg.target, s.node), { batches: s.batches, deviations: s.deviations }));
      void Promise.all(streams.map((s) => s.welcomed)).then(() => process.send!({ type: 'ready', streams: streams.length, bytes: 0 }));
      return;
    }
    if (msg.type === 'stop') {
      clearInterval(hb);
      for (const s of streams) {
        s.call.end();
        s.client.close();
      }
      setTimeout(() => process.exit(0), 200);
      return;
    }
    if (msg.type !== 'go') return;
    const bursting = streams.slice(0, msg.burst);
    const start = now();
    const results = bursting.map(
      (s) =>
        new Promise<{ acked: number; batches: number; lastAck: number; latencies: number[] }>((resolve) => {
          let next = 0;
          let inflight = 0;
          let acked = 0;
          let batches = 0;
          const sentAt: number[] = [];
          const latencies: number[] = [];
          const pump = () => {
            while (inflight < cfg.window && next < s.batches.length && now() - start < cfg.maxSendMs) {
              sentAt.push(now());
              s.call.write(s.batches[next]!);
              next++;
              inflight++;
            }
            if (inflight === 0) resolve({ acked, batches, lastAck: now(), latencies });
          };
          s.onAck = (m) => {
            inflight--;
            // Acks come in order on one stream: the oldest batch in flight is the one acknowledged.
            latencies.push(now() - (sentAt[batches] as number));
            acked += (m.ack!.stored ?? 0) + (m.ack!.duplicates ?? 0);
            batches++;
            pump();
          };
          pump();
        }),
    );
    void Promise.all(results).then((rs) => {
      process.send!({
        type: 'done',
        start,
        acked: rs.reduce((n, r) => n + r.acked, 0),
        batches: rs.reduce((n, r) => n + r.batches, 0),
        lastAck: Math.max(start, ...rs.map((r) => r.lastAck)),
        latencies: rs.flatMap((r) => r.latencies),
      });
    });
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`sim-agent: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
