/**
 * `falco-http:HOST:PORT` — a receiver for Falco's http_output, which POSTs one JSON event per
 * request. The response is sent after the event's deviations are in the spool, so a 200 means the
 * agent has it. Requests arriving close together are handed over as one batch (one transaction).
 *
 * Bounds: a request body over the record limit gets 413; when more requests wait than the queue
 * holds, new ones get 503 (counted as `overflow`) instead of growing memory without end.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { isUtf8 } from 'node:buffer';
import type { ActivityEvent } from '../../core/event.js';
import { parseHostPort, formatHostPort, listenHttp } from '../../runtime/listen.js';
import { parseFalcoLine } from './falco-event.js';
import { isRejected } from './record.js';
import { SourceSpecError, type Source, type SourceBatch, type SourceContext, type SourceFactory } from './source.js';

/** Most requests waiting for their batch to be committed. */
const MAX_WAITING = 10_000;
/** Most events handed over in one batch. */
const MAX_BATCH = 1_000;

interface Waiting {
  events: ActivityEvent[];
  res: ServerResponse;
}

function reply(res: ServerResponse, status: number, text: string): void {
  if (!res.headersSent) res.writeHead(status, { 'content-type': 'text/plain', connection: status >= 400 ? 'close' : 'keep-alive' });
  res.end(`${text}\n`);
}

/** Read a body up to `max` bytes; null when it is larger. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) {
      req.resume();
      resolve(null);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.destroy();
        resolve(null);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Create the receiver. It listens when iteration starts and closes when it ends. */
export function createFalcoHttpReceiver(name: string, listen: string, ctx: SourceContext): Source & { port(): number } {
  const at = parseHostPort(listen);
  let boundPort = at.port;
  return {
    name,
    port: () => boundPort,
    async *batches(signal: AbortSignal): AsyncGenerator<SourceBatch> {
      const queue: Waiting[] = [];
      let wake: (() => void) | null = null;
      const parseCtx = { node: ctx.node, source: name };
      const server = createServer(async (req, res) => {
        if (req.method !== 'POST') return reply(res, 405, 'POST Falco JSON events here');
        if (queue.length >= MAX_WAITING) {
          ctx.rejected('too_large', 'receiver queue full');
          return reply(res, 503, 'busy, retry later');
        }
        let body: Buffer | null;
        try {
          body = await readBody(req, ctx.maxRecordBytes);
        } catch {
          return;
        }
        if (body === null) {
          ctx.rejected('too_large');
          return reply(res, 413, `event larger than ${ctx.maxRecordBytes} bytes`);
        }
        if (!isUtf8(body)) {
          ctx.rejected('invalid_utf8');
          return reply(res, 400, 'body is not valid UTF-8');
        }
        const events: ActivityEvent[] = [];
        let firstError = '';
        // Falco sends one object per request; a batch of lines (NDJSON) is accepted as well.
        for (const line of body.toString('utf8').split('\n')) {
          if (line.trim() === '') continue;
          const r = parseFalcoLine(line, parseCtx);
          if (isRejected(r)) {
            ctx.rejected(r.reject, r.detail, r.ignore);
            if (r.reject !== 'unsupported' && firstError === '') firstError = `${r.reject}: ${r.detail}`;
          } else {
            events.push(r);
          }
        }
        if (events.length === 0) return reply(res, firstError === '' ? 200 : 400, firstError === '' ? 'ignored' : firstError);
        queue.push({ events, res });
        wake?.();
      });
      server.keepAliveTimeout = 30_000;
      server.requestTimeout = 30_000;
      server.headersTimeout = 10_000;
      boundPort = await listenHttp(server, at);
      ctx.logger.info({ listen: formatHostPort(at.host, boundPort) }, 'receiving Falco http_output');
      const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));
      const onAbort = () => {
        // Stop taking new requests at once; those already received are still handed over below.
        server.close();
        server.closeIdleConnections();
        wake?.();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const take = (): SourceBatch => {
        const taken: Waiting[] = [];
        let count = 0;
        while (queue.length > 0 && count < MAX_BATCH) {
          const w = queue.shift() as Waiting;
          taken.push(w);
          count += w.events.length;
        }
        return {
          events: taken.flatMap((w) => w.events),
          ack: () => {
            for (const w of taken) reply(w.res, 200, 'ok');
          },
        };
      };
      try {
        while (!signal.aborted) {
          if (queue.length === 0) {
            await new Promise<void>((resolve) => (wake = resolve));
            wake = null;
            continue;
          }
          yield take();
        }
        // Shutting down: requests whose bodies were already read are handed over, not refused.
        while (queue.length > 0) yield take();
      } finally {
        signal.removeEventListener('abort', onAbort);
        // Only if the consumer stopped early: whatever is left was not taken, so say so.
        for (const w of queue.splice(0)) reply(w.res, 503, 'shutting down');
        server.close();
        server.closeAllConnections();
        await closed;
      }
    },
  };
}

/** `falco-http:HOST:PORT`. */
export const falcoHttpSource: SourceFactory = {
  scheme: 'falco-http',
  usage: 'falco-http:HOST:PORT  receive Falco http_output POSTs (set http_output.url to http://HOST:PORT/)',
  create(argument, ctx) {
    try {
      parseHostPort(argument);
    } catch (err) {
      throw new SourceSpecError(`falco-http needs HOST:PORT: ${(err as Error).message}`);
    }
    return createFalcoHttpReceiver(`falco-http:${argument}`, argument, ctx);
  },
};
