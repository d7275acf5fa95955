/**
 * Splits a byte stream into bounded lines. Shared by every line-oriented source (file tail, stdin,
 * unix socket): a line over the limit is dropped whole (counted as too_large) without buffering it,
 * and a line that is not valid UTF-8 is dropped (counted as invalid_utf8) instead of being decoded
 * with replacement characters into something it never said.
 */
import { isUtf8 } from 'node:buffer';

/** Receives what the splitter found. */
export interface LineSink {
  line(text: string): void;
  reject(reason: 'too_large' | 'invalid_utf8'): void;
}

/** A stateful splitter: feed chunks, then `end()` for a final unterminated line. */
export interface LineSplitter {
  /** Feed a chunk; returns the number of bytes of it that completed lines (for position tracking). */
  push(chunk: Buffer): void;
  /** Flush a final line without a newline (at end of a finite stream). */
  end(): void;
  /** Bytes buffered in an incomplete line. */
  readonly pending: number;
}

/** Create a splitter that calls `sink` for every line (without its newline; a trailing CR is removed). */
export function createLineSplitter(maxLineBytes: number, sink: LineSink): LineSplitter {
  let carry: Buffer | null = null;
  // While discarding an over-long line we skip bytes until the next newline.
  let discarding = false;

  const emitBuffer = (buf: Buffer) => {
    if (buf.length === 0) return;
    if (buf.length > maxLineBytes) {
      sink.reject('too_large');
      return;
    }
    if (!isUtf8(buf)) {
      sink.reject('invalid_utf8');
      return;
    }
    emitText(buf.toString('utf8'));
  };
  const emitText = (text: string) => {
    const t = text.charCodeAt(text.length - 1) === 13 ? text.slice(0, -1) : text;
    if (t.length > 0) sink.line(t);
  };

  return {
    get pending() {
      return carry ? carry.length : 0;
    },
    push(chunk: Buffer) {
      let start = 0;
      if (discarding) {
        const nl = chunk.indexOf(10);
        if (nl === -1) return;
        discarding = false;
        start = nl + 1;
      }
      const last = chunk.lastIndexOf(10);
      if (last < start) {
        // No complete line in this chunk: keep it, unless the line is already too long.
        const rest = chunk.subarray(start);
        const size = (carry ? carry.length : 0) + rest.length;
        if (size > maxLineBytes) {
          carry = null;
          discarding = true;
          sink.reject('too_large');
        } else {
          carry = carry ? Buffer.concat([carry, rest]) : Buffer.from(rest);
        }
        return;
      }
      let body = chunk.subarray(start, last + 1);
      if (carry) {
        // Join only the carried line with its end, not the whole chunk.
        const nl = body.indexOf(10);
        const joined = Buffer.concat([carry, body.subarray(0, nl)]);
        carry = null;
        body = body.subarray(nl + 1);
        emitBuffer(joined);
      }
      const tail = chunk.subarray(last + 1);
      if (tail.length > maxLineBytes) {
        discarding = true;
        sink.reject('too_large');
      } else if (tail.length > 0) {
        carry = Buffer.from(tail);
      }
      // Fast path: the whole block is valid UTF-8, decode once and split as text.
      if (isUtf8(body)) {
        const text = body.toString('utf8');
        let from = 0;
        for (;;) {
          const nl = text.indexOf('\n', from);
          if (nl === -1) break;
          // String length counts UTF-16 units, never more than bytes: a line within the limit passes,
          // an over-limit one is caught here or by the byte check below.
          if (nl - from > maxLineBytes) sink.reject('too_large');
          else if (nl > from) emitText(text.slice(from, nl));
          from = nl + 1;
        }
        return;
      }
      let from = 0;
      for (;;) {
        const nl = body.indexOf(10, from);
        if (nl === -1) break;
        emitBuffer(body.subarray(from, nl));
        from = nl + 1;
      }
    },
    end() {
      if (carry && !discarding) emitBuffer(carry);
      carry = null;
      discarding = false;
    },
  };
}
