/**
 * `stdin` — Falco JSON lines on standard input, for Falco's program_output
 * (`program: driftwatch agent --source stdin ...`). The source ends when the pipe closes.
 */
import type { Readable } from 'node:stream';
import { createFalcoLineDecoder } from './falco-lines.js';
import { SourceSpecError, type Source, type SourceBatch, type SourceContext, type SourceFactory } from './source.js';

/** Read Falco JSON lines from any readable byte stream until it ends. */
export function createStreamSource(name: string, stream: Readable, ctx: SourceContext): Source {
  return {
    name,
    async *batches(signal: AbortSignal): AsyncGenerator<SourceBatch> {
      const decoder = createFalcoLineDecoder(name, ctx);
      const onAbort = () => stream.destroy();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        for await (const chunk of stream) {
          const events = decoder.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
          if (events.length > 0) yield { events };
        }
        const last = decoder.end();
        if (last.length > 0) yield { events: last };
      } catch (err) {
        if (!signal.aborted) throw err;
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    },
  };
}

/** `stdin`. */
export const stdinSource: SourceFactory = {
  scheme: 'stdin',
  usage: 'stdin  read Falco JSON lines from standard input (Falco program_output)',
  create(argument, ctx) {
    if (argument !== '') throw new SourceSpecError('stdin takes no argument: --source stdin');
    return createStreamSource('stdin', process.stdin, ctx);
  },
};
