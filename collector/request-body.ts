/**
 * Reading a request body with a bound: the auth layer already refuses a Content-Length over
 * maxBodyBytes, but a chunked body announces no length, so the reader counts as it goes and stops
 * at the bound. Bodies are strict UTF-8: bytes that are not are refused, never replaced with U+FFFD.
 * For the API's write routes.
 */
import type { IncomingMessage } from 'node:http';

/** A body that is too large, not UTF-8, not JSON or of the wrong type; `status` is the HTTP status to answer with. */
export class BodyError extends Error {
  constructor(
    readonly status: 400 | 413 | 415,
    readonly code: 'body_too_large' | 'invalid_utf8' | 'invalid_json' | 'unsupported_media_type',
    message: string,
  ) {
    super(message);
    this.name = 'BodyError';
  }
}

/** Read the body of `req` as strict UTF-8 text, at most `maxBytes`; throws BodyError. */
export async function readBodyText(req: IncomingMessage, maxBytes: number): Promise<string> {
  const tooLarge = () => new BodyError(413, 'body_too_large', `request body larger than ${maxBytes} bytes`);
  if (Number(req.headers['content-length'] ?? '0') > maxBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw tooLarge();
    chunks.push(chunk);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new BodyError(400, 'invalid_utf8', 'the request body is not valid UTF-8');
  }
}

/** Parse JSON text from a body; throws BodyError. */
export function parseJsonBody(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new BodyError(400, 'invalid_json', 'the request body is not valid JSON');
  }
}

/** Read and parse the body of `req` as JSON, at most `maxBytes`; throws BodyError. */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) throw new BodyError(415, 'unsupported_media_type', 'send the body as application/json');
  let text: string;
  try {
    text = await readBodyText(req, maxBytes);
  } catch (err) {
    if (err instanceof BodyError && err.status === 413) req.destroy();
    throw err;
  }
  return parseJsonBody(text);
}
