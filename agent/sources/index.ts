/** Every source the agent can read, registered in one list. */
import { ebpfSource } from './ebpf/source.js';
import { ebpfFileSource } from './ebpf/file.js';
import { falcoFileSource } from './falco-file.js';
import { falcoGrpcSource } from './falco-grpc.js';
import { falcoHttpSource } from './falco-http.js';
import { falcoUnixSource } from './falco-unix.js';
import { replaySource } from './replay.js';
import { stdinSource } from './stdin.js';
import { tetragonFileSource } from './tetragon-file.js';
import { tetragonGrpcSource } from './tetragon-grpc.js';
import { SourceSpecError, type Source, type SourceContext, type SourceFactory } from './source.js';

/** The registered sources. Add a source by adding its factory here. */
export const SOURCES: readonly SourceFactory[] = [falcoFileSource, falcoHttpSource, stdinSource, falcoGrpcSource, tetragonFileSource, tetragonGrpcSource, falcoUnixSource, replaySource, ebpfSource, ebpfFileSource];

/** Split `scheme:argument` and check the scheme exists; throws SourceSpecError naming the choices. */
export function parseSourceSpec(spec: string): { factory: SourceFactory; argument: string } {
  const colon = spec.indexOf(':');
  const scheme = colon === -1 ? spec : spec.slice(0, colon);
  const argument = colon === -1 ? '' : spec.slice(colon + 1);
  const factory = SOURCES.find((s) => s.scheme === scheme);
  if (!factory) {
    throw new SourceSpecError(`unknown source ${JSON.stringify(scheme)} in --source ${JSON.stringify(spec)}; one of: ${SOURCES.map((s) => s.scheme).join(', ')}`);
  }
  return { factory, argument };
}

/** Build a source from a `--source` value. */
export function createSource(spec: string, ctx: SourceContext): Source {
  const { factory, argument } = parseSourceSpec(spec);
  return factory.create(argument, ctx);
}

export type { Source, SourceBatch, SourceContext } from './source.js';
