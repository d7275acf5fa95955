/**
 * JSON lines → events: the line splitter and a record parser, for any byte stream. Falco JSON is the
 * default; the Tetragon and replay sources pass their own parser.
 */
import type { ActivityEvent } from '../../core/event.js';
import { parseFalcoLine } from './falco-event.js';
import { isRejected, type ParseContext, type ParseResult } from './record.js';
import { createLineSplitter } from './lines.js';
import type { SourceContext } from './source.js';

/** Turns one line of text into an event or a rejection. */
export type LineParser = (line: string, ctx: ParseContext) => ParseResult;

/** Decodes chunks of JSON lines into events, counting what it skips. */
export interface FalcoLineDecoder {
  /** Feed a chunk; returns the events of the lines it completed. */
  push(chunk: Buffer): ActivityEvent[];
  /** End of stream: returns the events of a final unterminated line. */
  end(): ActivityEvent[];
  /** Bytes held in an incomplete line. */
  readonly pending: number;
}

/** Create a decoder for the source named `source`; `parse` defaults to Falco JSON. */
export function createFalcoLineDecoder(source: string, ctx: SourceContext, parse: LineParser = parseFalcoLine): FalcoLineDecoder {
  let out: ActivityEvent[] = [];
  const parseCtx = { node: ctx.node, source };
  const splitter = createLineSplitter(ctx.maxRecordBytes, {
    line(text) {
      const r = parse(text, parseCtx);
      if (isRejected(r)) ctx.rejected(r.reject, r.detail, r.ignore);
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
