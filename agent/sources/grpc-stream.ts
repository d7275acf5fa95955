/**
 * The client side shared by the gRPC event sources (falco-grpc, tetragon-grpc): where to connect,
 * a fresh channel per attempt, a bounded queue from the stream to the pipeline, and reconnection
 * with capped exponential backoff and jitter. The tool-specific part is how a call is opened and
 * how one message becomes an event.
 */
import { readFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import type { ActivityEvent } from '../../core/event.js';
import type { LoadedService } from '../../proto/third-party.js';
import { backoffDelay } from '../../runtime/backoff.js';
import { isRejected, type ParseContext, type ParseResult } from './record.js';
import { SourceSpecError, countersOf, sleep, type Source, type SourceBatch, type SourceContext } from './source.js';

/** Where to connect: a gRPC target and, for TCP, the TLS files. */
export interface GrpcEndpoint {
  /** A grpc-js target: `unix:///path` or `host:port`. */
  target: string;
  /** CA, client certificate and key files (mTLS); absent for plaintext (unix sockets). */
  tls: { ca: string; cert: string; key: string } | null;
}

/**
 * Parse a source argument: empty (the default socket), `unix:///path` (or `unix:/path`), or
 * `host:port[?ca=FILE&cert=FILE&key=FILE]`. Throws SourceSpecError naming what is wrong.
 */
export function parseGrpcEndpoint(scheme: string, argument: string, defaultTarget: string): GrpcEndpoint {
  const arg = argument === '' ? defaultTarget : argument;
  if (arg.includes('\0')) throw new SourceSpecError(`${scheme}: NUL in the address`);
  if (arg.startsWith('unix:')) {
    const path = arg.startsWith('unix://') ? arg.slice('unix://'.length) : arg.slice('unix:'.length);
    if (!path.startsWith('/')) throw new SourceSpecError(`${scheme} needs an absolute socket path: --source ${scheme}:unix://${'/run/x.sock'}`);
    return { target: `unix://${path}`, tls: null };
  }
  const q = arg.indexOf('?');
  const hostPort = q === -1 ? arg : arg.slice(0, q);
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(hostPort) || Number(hostPort.slice(hostPort.lastIndexOf(':') + 1)) > 65535) {
    throw new SourceSpecError(`${scheme} needs unix:///PATH or HOST:PORT, not ${JSON.stringify(arg)}`);
  }
  const params = new URLSearchParams(q === -1 ? '' : arg.slice(q + 1));
  for (const key of params.keys()) {
    if (key !== 'ca' && key !== 'cert' && key !== 'key') throw new SourceSpecError(`${scheme}: unknown option ${JSON.stringify(key)}; one of: ca, cert, key`);
  }
  const ca = params.get('ca') ?? '';
  const cert = params.get('cert') ?? '';
  const key = params.get('key') ?? '';
  if (ca === '' && cert === '' && key === '') return { target: hostPort, tls: null };
  if (ca === '' || cert === '' || key === '') throw new SourceSpecError(`${scheme}: mTLS needs all of ca, cert and key (${hostPort}?ca=FILE&cert=FILE&key=FILE)`);
  return { target: hostPort, tls: { ca, cert, key } };
}

/** Reconnection and queue tuning (tests shorten the delays). */
export interface GrpcStreamOptions {
  /** First delay after a failure. */
  initialBackoffMs: number;
  /** Longest delay between attempts. */
  maxBackoffMs: number;
  /** Most events held between the stream and the pipeline before the stream is paused. */
  maxQueued: number;
}

/** Defaults: the same 10 s cap as the agent's uplink. */
export const GRPC_STREAM_DEFAULTS: GrpcStreamOptions = Object.freeze({ initialBackoffMs: 200, maxBackoffMs: 10_000, maxQueued: 10_000 });

/** Most events handed over in one batch. */
const MAX_BATCH = 1_000;

/** How one tool's stream is opened and read. */
export interface GrpcStreamSpec {
  name: string;
  endpoint: GrpcEndpoint;
  service: () => LoadedService;
  /** Open the call on a fresh client. */
  open(client: grpc.Client): grpc.ClientReadableStream<unknown> | grpc.ClientDuplexStream<unknown, unknown>;
  /** Convert one received message. */
  convert(message: unknown, ctx: ParseContext): ParseResult;
}

/** Counters of a gRPC source, for logs and tests. */
export interface GrpcStreamStats {
  /** Streams that delivered their response headers. */
  connects: number;
  /** Attempts after a failed or ended stream. */
  reconnects: number;
}

async function credentials(endpoint: GrpcEndpoint): Promise<grpc.ChannelCredentials> {
  if (!endpoint.tls) return grpc.credentials.createInsecure();
  // Read on every attempt, so rotated certificates are picked up by the next reconnect.
  const [ca, cert, key] = await Promise.all([readFile(endpoint.tls.ca), readFile(endpoint.tls.cert), readFile(endpoint.tls.key)]);
  return grpc.credentials.createSsl(ca, key, cert);
}

type Ended = { error: grpc.ServiceError | Error | null };

/** Read one call until it ends, yielding batches of events; returns how it ended. */
async function* readCall(
  call: grpc.ClientReadableStream<unknown> | grpc.ClientDuplexStream<unknown, unknown>,
  spec: GrpcStreamSpec,
  ctx: SourceContext,
  opts: GrpcStreamOptions,
  stats: GrpcStreamStats,
): AsyncGenerator<ActivityEvent[], Ended> {
  const parseCtx = { node: ctx.node, source: spec.name };
  let queue: ActivityEvent[] = [];
  let ended: Ended | null = null;
  let paused = false;
  let wake: (() => void) | null = null;
  call.on('metadata', () => {
    stats.connects++;
    ctx.logger.info({ target: spec.endpoint.target, connects: stats.connects }, 'stream open');
  });
  call.on('data', (message: unknown) => {
    let r: ParseResult;
    try {
      r = spec.convert(message, parseCtx);
    } catch (err) {
      // A converter bug must not take the source down with it: count the record and go on.
      r = { reject: 'wrong_type', detail: (err as Error).message };
    }
    if (isRejected(r)) ctx.rejected(r.reject, r.detail, r.ignore);
    else queue.push(r);
    // Backpressure instead of dropping: a paused stream stops HTTP/2 flow-control credit, and the
    // sender's own bounded queue (Falco's outputs queue, Tetragon's per-client buffer) takes over.
    if (queue.length >= opts.maxQueued && !paused) {
      paused = true;
      call.pause();
    }
    wake?.();
  });
  call.on('error', (error: Error) => {
    ended ??= { error };
    wake?.();
  });
  call.on('end', () => {
    ended ??= { error: null };
    wake?.();
  });
  for (;;) {
    if (queue.length > 0) {
      const events = queue.length <= MAX_BATCH ? queue : queue.slice(0, MAX_BATCH);
      queue = queue.length <= MAX_BATCH ? [] : queue.slice(MAX_BATCH);
      if (paused && queue.length < opts.maxQueued / 2) {
        paused = false;
        call.resume();
      }
      yield events;
      continue;
    }
    if (ended) return ended;
    await new Promise<void>((resolve) => (wake = resolve));
    wake = null;
  }
}

/** A source reading a gRPC event stream, reconnecting for as long as it runs. */
export function createGrpcStreamSource(spec: GrpcStreamSpec, ctx: SourceContext, options: Partial<GrpcStreamOptions> = {}): Source & { stats: GrpcStreamStats } {
  const opts = { ...GRPC_STREAM_DEFAULTS, ...options };
  const stats: GrpcStreamStats = { connects: 0, reconnects: 0 };
  const log = ctx.logger;
  return {
    name: spec.name,
    stats,
    async *batches(signal: AbortSignal): AsyncGenerator<SourceBatch> {
      let failures = 0;
      while (!signal.aborted) {
        let client: grpc.Client | null = null;
        let call: ReturnType<GrpcStreamSpec['open']> | null = null;
        const onAbort = () => call?.cancel();
        signal.addEventListener('abort', onAbort, { once: true });
        let ended: Ended;
        let delivered = false;
        try {
          const { Client } = spec.service();
          client = new Client(spec.endpoint.target, await credentials(spec.endpoint), {
            'grpc.max_receive_message_length': ctx.maxRecordBytes,
            'grpc.keepalive_time_ms': 30_000,
          });
          call = spec.open(client);
          const reader = readCall(call, spec, ctx, opts, stats);
          for (;;) {
            const r = await reader.next();
            if (r.done) {
              ended = r.value;
              break;
            }
            delivered = true;
            yield { events: r.value };
          }
        } catch (error) {
          // Unreadable TLS files and the like: retried like a refused connection.
          ended = { error: error as Error };
        } finally {
          signal.removeEventListener('abort', onAbort);
          call?.cancel();
          client?.close();
        }
        if (signal.aborted) return;
        const code = (ended.error as grpc.ServiceError | null)?.code;
        if (code === grpc.status.RESOURCE_EXHAUSTED) ctx.rejected('too_large', ended.error?.message);
        // A stream that delivered events was healthy: start the backoff over.
        failures = delivered ? 1 : failures + 1;
        stats.reconnects++;
        countersOf(ctx).restarted();
        const delayMs = backoffDelay(failures, { baseMs: opts.initialBackoffMs, capMs: opts.maxBackoffMs });
        log.warn(
          { target: spec.endpoint.target, code: code === undefined ? undefined : grpc.status[code], err: ended.error?.message, attempt: failures, reconnects: stats.reconnects, delayMs },
          ended.error ? 'stream failed, reconnecting' : 'stream ended, reconnecting',
        );
        await sleep(delayMs, signal);
      }
    },
  };
}
