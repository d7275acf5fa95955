/** Falco JSON lines → events: the line splitter and the record parser, for any byte stream. */
import type { ActivityEvent } from '../../core/event.js';
import { isRejected, parseFalcoLine } from './falco-event.js';
import { createLineSplitter } from './lines.js';
import type { SourceContext } from './source.js';

/** Decodes chunks of Falco JSON lines into events, counting what it skips. */
export interface FalcoLineDecoder {
  /** Feed a chunk; returns the events of the lines it completed. */
  push(chunk: Buffer): ActivityEvent[];
  /** End of stream: returns the events of a final unterminated line. */
  end(): ActivityEvent[];
  /** Bytes held in an incomplete line. */
  readonly pending: number;
}

/** Create a decoder for the source named `source`. */
export function createFalcoLineDecoder(source: string, ctx: SourceContext): FalcoLineDecoder {
  let out: ActivityEvent[] = [];
  const parseCtx = { node: ctx.node, source };
  const splitter = createLineSplitter(ctx.maxRecordBytes, {
    line(text) {
      const r = parseFalcoLine(text, parseCtx);
      if (isRejected(r)) ctx.rejected(r.reject, r.detail);
      else out.push(r);
    },
    reject(reason) {
      ctx.rejected(reason);
    },
  });
  const take = () => {
    const events = out;
    out = [];
    return events;
  };
  return {
    get pending() {
      return splitter.pending;
    },
    push(chunk) {
      splitter.push(chunk);
      return take();
    },
    end() {
      splitter.end();
      return take();
    },
  };
}
