/**
 * A local HTTP server on an ephemeral port that records every request (method, path, headers, raw
 * body, arrival time) and answers with what the test scripts, so sink tests see exactly what a
 * destination would receive.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExecutionContext } from 'ava';

/** One received request. */
export interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** performance.now() when the body was complete. */
  at: number;
}

/** What to answer. */
export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Wait this long before answering (timeouts). */
  delayMs?: number;
}

/** A running recorder. */
export interface Recorder {
  /** `http://127.0.0.1:PORT` */
  url: string;
  received: Received[];
}

/** Start a recorder that answers request number `i` (0-based) with `reply(req, i)`; closed when the test ends. */
export async function startRecorder(t: ExecutionContext, reply: (req: Received, i: number) => Reply = () => ({ status: 200 })): Promise<Recorder> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: performance.now() };
      const i = received.length;
      received.push(r);
      const out = reply(r, i);
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(out.status, { 'content-type': 'application/json', ...out.headers });
        res.end(out.body ?? '');
      };
      if (out.delayMs) setTimeout(send, out.delayMs);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}
