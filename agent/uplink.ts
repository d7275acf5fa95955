/**
 * The uplink streams the spool to the collector over one gRPC bidi stream: Hello, then batches read
 * from the spool in order, at most `window` unacknowledged at once (flow control without an in-memory
 * queue: the spool is the queue). A record leaves the spool only when its batch is acknowledged.
 * On any stream error it reconnects with capped exponential backoff and jitter, and resends
 * everything unacknowledged from the start of the spool; the collector recognises resends by id.
 * The backoff starts over only once a stream proved healthy (an acknowledged batch, or open for
 * HEALTHY_STREAM_MS), not at the Welcome: a collector that ends every stream right after the
 * handshake must not make every agent reconnect at the minimum delay forever.
 * The keys the agent sends records of are its running keys (Hello and heartbeats): the collector
 * takes baseline deltas only for keys a node reported, so a new key is reported before its first batch.
 * A cluster baseline larger than one message arrives in parts and is applied once complete.
 * Heartbeats (right after the Welcome, then every `heartbeatMs`) carry the agent's lag: records and
 * bytes in the spool, the age of the oldest unacknowledged one, and what a full spool dropped.
 * One heartbeat right after the Welcome, and one every `inventoryMs`, also carries the containers
 * running on the node (the image inventory); collectors that predate the field skip it.
 */
import { readFileSync, statSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { BaselineSnapshot, ClusterBaseline } from '../core/baseline.js';
import type { Deviation } from '../core/deviation.js';
import type { ContainerReport } from '../core/inventory.js';
import {
  containerReportToWire,
  createClusterAssembler,
  MAX_RUNNING_KEYS,
  PROTOCOL_REVISION,
  WireError,
  agentService,
  deviationToWire,
  snapshotToWire,
  type WireAgentMessage,
  type WireCollectorMessage,
  type WireDeviation,
  type WireBaselineSnapshot,
} from '../proto/index.js';
import { backoffDelay, type BackoffPolicy } from '../runtime/backoff.js';
import type { Logger } from '../runtime/logger.js';
import type { ReloadingTls } from '../runtime/tls.js';
import type { AgentMetrics } from './metrics.js';
import type { AgentState } from './state/index.js';

/**
 * How the stream is secured: plaintext only when asked for; otherwise TLS with the collector's CA,
 * this node's certificate (mTLS) and/or a ServiceAccount token sent as `authorization` metadata.
 */
export type UplinkSecurity =
  | { insecure: true }
  | { insecure: false; tls: ReloadingTls; serverName?: string | undefined; tokenFile?: string | undefined };

/** Uplink settings. */
export interface UplinkOptions {
  security: UplinkSecurity;
  /** Collector gRPC address, HOST:PORT. */
  target: string;
  node: string;
  version: string;
  sources: string[];
  /** Most records per batch. */
  batchItems: number;
  /** About the most bytes per batch. */
  batchBytes: number;
  /** Most batches in flight without an ack. */
  window: number;
  heartbeatMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  /** How often the containers running on the node are reported (also right after each Welcome); 0: never. */
  inventoryMs?: number | undefined;
}

/** Default uplink settings. */
export const DEFAULT_UPLINK: Omit<UplinkOptions, 'target' | 'node' | 'version' | 'sources' | 'security'> = {
  batchItems: 500,
  batchBytes: 1 << 20,
  window: 4,
  heartbeatMs: 10_000,
  backoffMinMs: 200,
  backoffMaxMs: 10_000,
};

/** A stream open this long without failing resets the reconnect backoff. */
export const HEALTHY_STREAM_MS = 30_000;
/** A key the agent sent nothing of for this long leaves its running keys. */
const RUNNING_KEY_TTL_MS = 24 * 3_600_000;

/** The running uplink. */
export interface Uplink {
  /** New records are in the spool. */
  wake(): void;
  /** Resolve true once the collector's cluster baselines arrived after the first connect, false after `timeoutMs`. */
  synced(timeoutMs: number): Promise<boolean>;
  /** Resolve true once the spool is empty and nothing is in flight, false after `timeoutMs`. */
  drain(timeoutMs: number): Promise<boolean>;
  readonly connected: boolean;
  stop(): Promise<void>;
}

/**
 * Start streaming. `watermark` reports the newest event time and `dropped` the deviations a full
 * spool dropped since start, for heartbeats; `now` is the wall clock.
 */
export function startUplink(
  options: UplinkOptions,
  deps: {
    state: AgentState;
    metrics: AgentMetrics;
    logger: Logger;
    watermark: () => number;
    dropped?: () => number;
    now?: () => number;
    /** What runs on this node now (the image inventory), sent in a heartbeat on connect and every `inventoryMs`. */
    inventory?: { report(): Promise<ContainerReport> } | undefined;
    /** A cluster baseline the collector pushed; true when it changed the local one. */
    onBaseline?: ((cluster: ClusterBaseline) => boolean) | undefined;
  },
): Uplink {
  const { state, metrics, logger } = deps;
  const now = deps.now ?? Date.now;
  const { Client } = agentService();
  const channelOptions: grpc.ChannelOptions = {
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.max_send_message_length': 16 << 20,
    'grpc.max_receive_message_length': 16 << 20,
    'grpc.initial_reconnect_backoff_ms': options.backoffMinMs,
    'grpc.max_reconnect_backoff_ms': options.backoffMaxMs,
  };
  const security = options.security;
  let client: grpc.Client | null = null;
  let clientGeneration = 0;

  /** The channel for the next stream: rebuilt when the TLS files changed, so a rotated certificate is used. */
  function channel(): grpc.Client {
    if (security.insecure) return (client ??= new Client(options.target, grpc.credentials.createInsecure(), channelOptions));
    security.tls.refresh();
    if (client && clientGeneration === security.tls.generation) return client;
    client?.close();
    const m = security.tls.current();
    const name = security.serverName;
    client = new Client(options.target, grpc.credentials.createSsl(m.ca, m.key, m.cert), {
      ...channelOptions,
      ...(name !== undefined ? { 'grpc.ssl_target_name_override': name, 'grpc.default_authority': name } : {}),
    });
    clientGeneration = security.tls.generation;
    return client;
  }

  /** Call metadata: the ServiceAccount token, re-read each time (the kubelet rotates it). */
  function metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (!security.insecure && security.tokenFile !== undefined) {
      const file = security.tokenFile;
      if (statSync(file).size > 64 << 10) throw new Error(`${file} is larger than 64 KiB; not a token`);
      md.set('authorization', `Bearer ${readFileSync(file, 'utf8').trim()}`);
    }
    return md;
  }

  let call: grpc.ClientDuplexStream<WireAgentMessage, WireCollectorMessage> | null = null;
  let ready = false;
  let stopped = false;
  // Failures since the last healthy stream: the backoff's n. Reset only by an ack or HEALTHY_STREAM_MS up.
  let failures = 0;
  const backoff: BackoffPolicy = { baseMs: options.backoffMinMs, capMs: options.backoffMaxMs };
  let nextBatchId = 1;
  // The collector says how large a batch it accepts; never send more.
  let batchItems = options.batchItems;
  let lastSentSeq = 0;
  const inflight = new Map<number, number[]>();
  let reconnectTimer: NodeJS.Timeout | null = null;
  let healthyTimer: NodeJS.Timeout | null = null;
  const assembler = createClusterAssembler();
  // Keys this agent sent records of, with when (its running keys), and those reported on this stream.
  const keysSeen = new Map<string, number>();
  let reported = new Set<string>();

  /** The running keys to report: the most recently used, at most MAX_RUNNING_KEYS, none older than the TTL. */
  function runningKeys(): string[] {
    const t = now();
    for (const [k, at] of keysSeen) if (t - at > RUNNING_KEY_TTL_MS) keysSeen.delete(k);
    const keys = [...keysSeen].sort((a, b) => b[1] - a[1]).slice(0, MAX_RUNNING_KEYS).map(([k]) => k);
    reported = new Set(keys);
    return keys;
  }
  let heartbeatTimer: NodeJS.Timeout | null = null;
  let inventoryTimer: NodeJS.Timeout | null = null;
  // One inventory report at a time: a slow runtime does not pile up ListContainers calls.
  let reporting = false;

  /** Report what runs on the node, in a heartbeat of the current stream (skipped while one is being made). */
  function sendInventory(): void {
    const inventory = deps.inventory;
    if (!inventory || !options.inventoryMs || reporting) return;
    reporting = true;
    inventory
      .report()
      .then((r) => {
        heartbeat(r);
        metrics.inventoryReports.inc({ source: r.source });
      })
      .catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'cannot make the container report'))
      .finally(() => (reporting = false));
  }

  function toBatch(rows: ReturnType<AgentState['peek']>): { deviations: WireDeviation[]; baselines: WireBaselineSnapshot[] } {
    const deviations: WireDeviation[] = [];
    const baselines: WireBaselineSnapshot[] = [];
    const t = now();
    let unreported = false;
    for (const row of rows) {
      const rec = JSON.parse(row.body) as Deviation | BaselineSnapshot;
      keysSeen.set(rec.key, t);
      if (!reported.has(rec.key)) unreported = true;
      if (row.kind === 'deviation') deviations.push(deviationToWire(rec as Deviation));
      else baselines.push(snapshotToWire(rec as BaselineSnapshot));
    }
    // The collector hears of a key before the first delta of it (the stream keeps the order).
    if (unreported) heartbeat();
    return { deviations, baselines };
  }

  function pump(): void {
    while (call && ready && inflight.size < options.window) {
      const rows = state.peek(lastSentSeq, batchItems, options.batchBytes);
      if (rows.length === 0) break;
      const batchId = nextBatchId++;
      const seqs = rows.map((r) => r.seq);
      inflight.set(batchId, seqs);
      lastSentSeq = seqs[seqs.length - 1] as number;
      call.write({ batch: { batchId, ...toBatch(rows) } });
      metrics.batchesSent.inc();
    }
    updateSpoolGauges();
  }

  /** Age in ms of the oldest record waiting for an ack, 0 when the spool is empty. */
  function lagMs(): number {
    const oldest = state.oldestSpooledAt();
    return oldest === null ? 0 : Math.max(0, now() - oldest);
  }

  function updateSpoolGauges(): void {
    metrics.spoolRecords.set(state.spoolCount());
    metrics.spoolBytes.set(state.spoolBytes());
    metrics.spoolOldestAge.set(lagMs() / 1000);
  }

  function heartbeat(containers?: ContainerReport): void {
    if (!call || !ready) return;
    call.write({
      heartbeat: {
        ...(containers ? { containers: containerReportToWire(containers) } : {}),
        timeMs: now(),
        spooled: state.spoolCount(),
        watermarkMs: deps.watermark(),
        spoolBytes: state.spoolBytes(),
        oldestSpooledAgeMs: lagMs(),
        spoolDropped: deps.dropped?.() ?? 0,
        runningKeys: runningKeys(),
      },
    });
  }

  // The first sync: the Welcome, then as many cluster baselines as it announced.
  let syncExpected = 0;
  let syncReceived = 0;
  let synced = false;
  const syncWaiters: ((ok: boolean) => void)[] = [];
  function markSynced(): void {
    if (synced) return;
    synced = true;
    for (const w of syncWaiters.splice(0)) w(true);
  }

  function onMessage(msg: WireCollectorMessage): void {
    if (msg.welcome) {
      if (msg.welcome.maxBatchItems > 0) batchItems = Math.min(options.batchItems, msg.welcome.maxBatchItems);
      syncExpected = Math.max(0, Math.min(Number(msg.welcome.baselines) || 0, 1_000_000));
      syncReceived = 0;
      if (syncExpected === 0) markSynced();
      ready = true;
      // Not reset here: only a stream that stays up (or gets a batch acknowledged) proves healthy.
      if (healthyTimer) clearTimeout(healthyTimer);
      healthyTimer = setTimeout(() => (failures = 0), HEALTHY_STREAM_MS);
      healthyTimer.unref();
      metrics.connected.set(1);
      logger.info({ collector: options.target, collectorVersion: msg.welcome.collectorVersion }, 'connected to collector');
      // The collector learns this node's lag at once, not a heartbeat interval later.
      heartbeat();
      sendInventory();
      pump();
      return;
    }
    if (msg.baseline) {
      syncReceived++;
      if (syncReceived >= syncExpected) markSynced();
      try {
        const cluster = assembler.add(msg.baseline);
        if (cluster && deps.onBaseline?.(cluster)) metrics.clusterBaselines.inc();
      } catch (err) {
        if (!(err instanceof WireError)) throw err;
        logger.warn({ field: err.field, error: err.message }, 'ignored an invalid baseline from the collector');
      }
      return;
    }
    if (msg.ack) {
      const seqs = inflight.get(msg.ack.batchId);
      if (!seqs) return;
      inflight.delete(msg.ack.batchId);
      failures = 0;
      state.remove(seqs);
      metrics.batchesAcked.inc();
      if (msg.ack.rejected > 0) logger.warn({ batchId: msg.ack.batchId, rejected: msg.ack.rejected }, 'collector rejected records as invalid');
      pump();
    }
  }

  function disconnect(reason: string, err?: unknown): void {
    if (!call) return;
    const c = call;
    call = null;
    ready = false;
    metrics.connected.set(0);
    if (healthyTimer) clearTimeout(healthyTimer);
    healthyTimer = null;
    c.removeAllListeners();
    c.on('error', () => {});
    c.cancel();
    // Everything in flight is unacknowledged: resend from the start of the spool.
    inflight.clear();
    lastSentSeq = 0;
    if (stopped) return;
    const jittered = backoffDelay(++failures, backoff);
    const code = (err as grpc.ServiceError | undefined)?.code;
    if (code === grpc.status.UNAUTHENTICATED || code === grpc.status.PERMISSION_DENIED) {
      logger.error({ reason, err: (err as Error).message, retryInMs: jittered }, 'the collector refused this agent (check its certificate or token and --node)');
    } else {
      logger.warn({ reason, err: err instanceof Error ? err.message : undefined, retryInMs: jittered }, 'collector stream closed');
    }
    reconnectTimer = setTimeout(connect, jittered);
  }

  function connect(): void {
    reconnectTimer = null;
    if (stopped) return;
    metrics.reconnects.inc();
    let c: grpc.ClientDuplexStream<WireAgentMessage, WireCollectorMessage>;
    try {
      const ch = channel() as grpc.Client & { Connect: (md: grpc.Metadata) => grpc.ClientDuplexStream<WireAgentMessage, WireCollectorMessage> };
      c = ch.Connect(metadata());
    } catch (err) {
      // Unreadable token or TLS files: retry with backoff like any failed connect.
      // The full delay, without jitter, as this path always retried.
      const delay = backoffDelay(++failures, { ...backoff, jitter: 'none' });
      logger.error({ err: (err as Error).message, retryInMs: delay }, 'cannot open the collector stream');
      reconnectTimer = setTimeout(connect, delay);
      return;
    }
    call = c;
    c.on('data', onMessage);
    c.on('error', (err: grpc.ServiceError) => disconnect(`error ${grpc.status[err.code] ?? err.code}`, err));
    c.on('end', () => disconnect('collector ended the stream'));
    c.write({ hello: { node: options.node, agentVersion: options.version, sources: options.sources, protocol: PROTOCOL_REVISION, runningKeys: runningKeys() } });
  }

  heartbeatTimer = setInterval(() => {
    heartbeat();
    updateSpoolGauges();
  }, options.heartbeatMs);
  heartbeatTimer.unref();
  if (deps.inventory && options.inventoryMs) {
    inventoryTimer = setInterval(sendInventory, options.inventoryMs);
    inventoryTimer.unref();
  }
  connect();

  return {
    get connected() {
      return ready;
    },
    wake: pump,
    synced(timeoutMs) {
      if (synced) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          const i = syncWaiters.indexOf(done);
          if (i !== -1) syncWaiters.splice(i, 1);
          resolve(false);
        }, timeoutMs);
        function done(ok: boolean) {
          clearTimeout(timer);
          resolve(ok);
        }
        syncWaiters.push(done);
      });
    },
    async drain(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (state.spoolCount() === 0 && inflight.size === 0) return true;
        if (Date.now() >= deadline) return false;
        pump();
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      stopped = true;
      if (reconnectTimer) clearTimeout(reconnectTimer);
      if (heartbeatTimer) clearInterval(heartbeatTimer);
      if (inventoryTimer) clearInterval(inventoryTimer);
      if (healthyTimer) clearTimeout(healthyTimer);
      if (call) {
        const c = call;
        call = null;
        if (ready) {
          // Say goodbye and give the collector a moment to read it: a stop is not a silence.
          c.write({ goodbye: { spooled: state.spoolCount() } });
          c.end();
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 1_000);
            const done = () => {
              clearTimeout(timer);
              resolve();
            };
            for (const e of ['end', 'error', 'close', 'status']) c.on(e, done);
          });
        } else c.end();
        c.removeAllListeners();
        c.on('error', () => {});
      }
      metrics.connected.set(0);
      client?.close();
    },
  };
}
