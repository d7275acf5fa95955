/**
 * `tetragon-grpc:[unix:///var/run/tetragon/tetragon.sock | HOST:PORT[?ca=&cert=&key=]]` — Tetragon's
 * `tetragon.FineGuidanceSensors/GetEvents` stream, asking only for process_exec and process_kprobe
 * events. Messages are decoded with snake_case names, so the converter is the one the JSON export
 * uses. Reconnects with backoff whenever the stream fails or ends (Tetragon restarting).
 */
import type * as grpc from '@grpc/grpc-js';
import { tetragonSensorsService } from '../../proto/third-party.js';
import { createGrpcStreamSource, parseGrpcEndpoint, type GrpcStreamOptions, type GrpcStreamStats } from './grpc-stream.js';
import type { Source, SourceContext, SourceFactory } from './source.js';
import { tetragonRecordToEvent } from './tetragon-event.js';

/** Tetragon's default gRPC address on a node. */
export const TETRAGON_GRPC_DEFAULT = 'unix:///var/run/tetragon/tetragon.sock';

/** The request: exec and kprobe events only (exits and other kinds would be dropped anyway). */
const REQUEST = { allow_list: [{ event_set: ['PROCESS_EXEC', 'PROCESS_KPROBE'] }] };

/** Create the client source for `argument`. */
export function createTetragonGrpcSource(argument: string, ctx: SourceContext, options: Partial<GrpcStreamOptions> = {}): Source & { stats: GrpcStreamStats } {
  const endpoint = parseGrpcEndpoint('tetragon-grpc', argument, TETRAGON_GRPC_DEFAULT);
  return createGrpcStreamSource(
    {
      name: `tetragon-grpc:${argument === '' ? TETRAGON_GRPC_DEFAULT : argument}`,
      endpoint,
      service: tetragonSensorsService,
      open: (client) => (client as unknown as { GetEvents(req: object): grpc.ClientReadableStream<unknown> }).GetEvents(REQUEST),
      convert: tetragonRecordToEvent,
    },
    ctx,
    options,
  );
}

/** `tetragon-grpc:[ADDRESS]`. */
export const tetragonGrpcSource: SourceFactory = {
  scheme: 'tetragon-grpc',
  usage: 'tetragon-grpc:[unix:///var/run/tetragon/tetragon.sock | HOST:PORT[?ca=FILE&cert=FILE&key=FILE]]  stream Tetragon\'s GetEvents, reconnecting with backoff',
  create(argument, ctx) {
    return createTetragonGrpcSource(argument, ctx);
  },
};
