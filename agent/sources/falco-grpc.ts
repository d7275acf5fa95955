/**
 * `falco-grpc:[unix:///run/falco/falco.sock | HOST:PORT?ca=&cert=&key=]` — a client of Falco's
 * gRPC outputs API (`falco.outputs.service`, Falco 0.33–0.43; needs `grpc.enabled` and
 * `grpc_output.enabled` in falco.yaml). Over the unix socket without authentication, over TCP
 * only with mutual TLS, as Falco serves it.
 *
 * `sub` is a bidirectional stream on which Falco answers each request with the outputs queued
 * since the previous one and then waits for the next request, so the client polls with empty
 * requests. Each response is turned back into the record Falco's JSON output would have written
 * and converted by the same function as every other Falco transport.
 */
import type * as grpc from '@grpc/grpc-js';
import { falcoOutputsService } from '../../proto/third-party.js';
import { falcoRecordToEvent } from './falco-event.js';
import type { ParseContext, ParseResult } from './record.js';
import { createGrpcStreamSource, parseGrpcEndpoint, type GrpcStreamOptions } from './grpc-stream.js';
import { SourceSpecError, type Source, type SourceContext, type SourceFactory } from './source.js';
import type { GrpcStreamStats } from './grpc-stream.js';

/** Falco's default gRPC bind address. */
export const FALCO_GRPC_DEFAULT = 'unix:///run/falco/falco.sock';

/** How often an empty request asks Falco for the outputs queued since the last one. */
const DEFAULT_POLL_MS = 100;

/** Latest second a Timestamp may name (9999-12-31T23:59:59Z), as protobuf defines the type. */
const MAX_TIMESTAMP_SECONDS = 253_402_300_799;

/** A google.protobuf.Timestamp (seconds as a string or number) → RFC 3339 with nanoseconds, or undefined. */
function rfc3339(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const t = v as { seconds?: unknown; nanos?: unknown };
  const seconds = typeof t.seconds === 'string' && /^\d{1,12}$/.test(t.seconds) ? Number(t.seconds) : t.seconds ?? 0;
  const nanos = t.nanos ?? 0;
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds <= 0 || seconds > MAX_TIMESTAMP_SECONDS) return undefined;
  if (typeof nanos !== 'number' || !Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) return undefined;
  return `${new Date(seconds * 1000).toISOString().slice(0, 19)}.${String(nanos).padStart(9, '0')}Z`;
}

/**
 * A Falco gRPC `response` → the record Falco's JSON output writes. output_fields values are
 * strings on the wire: Falco sends non-string JSON values as their JSON text, so `"null"` is a
 * missing value and numbers are digit strings, which the JSON converter accepts.
 */
export function falcoResponseToRecord(response: unknown): unknown {
  if (typeof response !== 'object' || response === null) return response;
  const r = response as Record<string, unknown>;
  const fields = r.output_fields;
  let outputFields: Record<string, unknown> | undefined;
  if (typeof fields === 'object' && fields !== null) {
    outputFields = {};
    for (const [k, v] of Object.entries(fields as Record<string, unknown>)) outputFields[k] = v === 'null' ? null : v;
  }
  // `source` (string) since Falco 0.33; before, only the enum that became source_deprecated.
  const source = typeof r.source === 'string' && r.source !== '' ? r.source : typeof r.source_deprecated === 'string' ? r.source_deprecated.toLowerCase() : undefined;
  // An empty map is not on the wire at all: that is an event without fields, not a wrong type.
  return { time: rfc3339(r.time), source, rule: r.rule, output_fields: outputFields ?? {} };
}

/** Convert one Falco gRPC response into an event, or say why not. */
export function falcoResponseToEvent(response: unknown, ctx: ParseContext): ParseResult {
  return falcoRecordToEvent(falcoResponseToRecord(response), ctx);
}

/** Options of the Falco gRPC client (tests shorten them). */
export interface FalcoGrpcOptions extends Partial<GrpcStreamOptions> {
  pollMs?: number;
}

/** Create the client source for `argument` (see the file comment for its forms). */
export function createFalcoGrpcSource(argument: string, ctx: SourceContext, options: FalcoGrpcOptions = {}): Source & { stats: GrpcStreamStats } {
  const endpoint = parseGrpcEndpoint('falco-grpc', argument, FALCO_GRPC_DEFAULT);
  if (!endpoint.target.startsWith('unix:') && !endpoint.tls) {
    throw new SourceSpecError('falco-grpc over TCP needs mTLS, as Falco serves it: --source falco-grpc:HOST:PORT?ca=FILE&cert=FILE&key=FILE');
  }
  const pollMs = options.pollMs ?? DEFAULT_POLL_MS;
  return createGrpcStreamSource(
    {
      name: `falco-grpc:${argument === '' ? FALCO_GRPC_DEFAULT : argument}`,
      endpoint,
      service: falcoOutputsService,
      open(client) {
        const call = (client as unknown as { sub(): grpc.ClientDuplexStream<object, unknown> }).sub();
        let writing = false;
        const poll = () => {
          // One request in flight at most: Falco reads the next only after draining its queue.
          if (writing) return;
          writing = true;
          call.write({}, () => (writing = false));
        };
        poll();
        const timer = setInterval(poll, pollMs);
        const stop = () => clearInterval(timer);
        call.on('error', stop);
        call.on('end', stop);
        call.on('close', stop);
        return call;
      },
      convert: falcoResponseToEvent,
    },
    ctx,
    options,
  );
}

/** `falco-grpc:[ADDRESS]`. */
export const falcoGrpcSource: SourceFactory = {
  scheme: 'falco-grpc',
  usage: 'falco-grpc:[unix:///run/falco/falco.sock | HOST:PORT?ca=FILE&cert=FILE&key=FILE]  subscribe to Falco\'s gRPC outputs API (Falco ≤ 0.43), reconnecting with backoff',
  create(argument, ctx) {
    return createFalcoGrpcSource(argument, ctx);
  },
};
