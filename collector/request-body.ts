/**
 * Reading a JSON request body with a bound: the auth layer already refuses a Content-Length over
 * maxBodyBytes, but a chunked body announces no length, so the reader counts as it goes and stops
 * at the bound. For the API's write routes.
 */
import type { IncomingMessage } from 'node:http';

/** A body that is too large or not JSON; `status` is the HTTP status to answer with. */
export class BodyError extends Error {
  constructor(readonly status: 400 | 413 | 415, readonly code: 'body_too_large' | 'invalid_json' | 'unsupported_media_type', message: string) {
    super(message);
    this.name = 'BodyError';
  }
}

/** Read and parse the body of `req` as JSON, at most `maxBytes`; throws BodyError. */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) throw new BodyError(415, 'unsupported_media_type', 'send the body as application/json');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      req.destroy();
      throw new BodyError(413, 'body_too_large', `request body larger than ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new BodyError(400, 'invalid_json', 'the body is not valid JSON');
  }
}
