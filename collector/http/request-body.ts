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

/**
 * Read the body of `req` as strict UTF-8 text, at most `maxBytes`; throws BodyError.
 *
 * A body over the bound is refused without reading it into memory, and without destroying the
 * request: what the client still sends is read and discarded (Node drains it after the response;
 * http.requestTimeout bounds a client that never stops), so the client reads a 413 instead of a
 * connection reset. The refusal asks for `connection: close` (see bodyRefusalHeaders).
 */
export function readBodyText(req: IncomingMessage, maxBytes: number): Promise<string> {
  const tooLarge = () => new BodyError(413, 'body_too_large', `request body larger than ${maxBytes} bytes`);
  if (Number(req.headers['content-length'] ?? '0') > maxBytes) return Promise.reject(tooLarge());
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) {
        chunks.push(chunk);
        return;
      }
      // Not `for await` and throw: leaving an async iterator destroys the request, and with it
      // the socket, which the client sees as a reset before it reads the 413.
      done();
      chunks.length = 0;
      req.resume();
      reject(tooLarge());
    };
    const onEnd = () => {
      done();
      try {
        resolve(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks)));
      } catch {
        reject(new BodyError(400, 'invalid_utf8', 'the request body is not valid UTF-8'));
      }
    };
    const onError = (err: Error) => {
      done();
      reject(err);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/**
 * Headers for an answer to a request whose body was not read to its end (a 413): the connection
 * is not reused, since what is left of the body would be read as the next request's bytes if Node
 * did not drain it, and a client should not queue more requests behind one that was cut.
 */
export function bodyRefusalHeaders(status: number): Record<string, string> {
  return status === 413 ? { connection: 'close' } : {};
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
  return parseJsonBody(await readBodyText(req, maxBytes));
}

/** Largest JSON body of an API write, in bytes. */
export const MAX_JSON_BODY_BYTES = 16 << 10;

/** The media type of a request, lower case, without parameters. */
function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

/**
 * Read an API write's JSON body: at most MAX_JSON_BODY_BYTES, content-type application/json; an
 * empty body (whatever its type) is `{}`. Throws BodyError.
 */
export async function readApiJson(req: IncomingMessage): Promise<unknown> {
  const text = await readBodyText(req, MAX_JSON_BODY_BYTES);
  if (text === '') return {};
  if (mediaType(req) !== 'application/json') throw new BodyError(415, 'unsupported_media_type', 'send the body as application/json');
  return parseJsonBody(text);
}

/** Read a text body of one of `types` (the first is named in the refusal), at most `max` bytes, as strict UTF-8. Throws BodyError. */
export async function readTextBody(req: IncomingMessage, max: number, types: readonly string[]): Promise<string> {
  if (!types.includes(mediaType(req))) throw new BodyError(415, 'unsupported_media_type', `send the body as ${types[0] ?? 'text'}`);
  return readBodyText(req, max);
}
