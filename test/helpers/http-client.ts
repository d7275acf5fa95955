/** Plain HTTP requests and websocket upgrades from a chosen local address, one fresh connection each. */
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';

/** An HTTP answer. */
export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** What to send. */
export interface SendOptions {
  token?: string;
  /** The local address to send from (a 127.0.0.N address stands for another host). */
  from?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Send the body in 4 KiB chunks without a Content-Length. */
  chunked?: boolean;
}

/** One request to `baseUrl` + `path` over a fresh connection. */
export function send(baseUrl: string, path: string, options: SendOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    const req = request(`${baseUrl}${path}`, { method: options.method ?? 'GET', headers, localAddress: options.from ?? '127.0.0.1', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    if (options.body === undefined) req.end();
    else if (options.chunked) {
      const bytes = Buffer.from(options.body);
      for (let i = 0; i < bytes.length; i += 4096) req.write(bytes.subarray(i, i + 4096));
      req.end();
    } else req.end(options.body);
  });
}

/** Open a live-feed websocket on `port` with `token`; resolves with the status line and the socket (the caller closes it). */
export function upgrade(port: number, token: string): Promise<{ status: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      text += d;
      if (text.includes('\r\n')) resolve({ status: text.slice(0, text.indexOf('\r\n')), socket: s });
    });
    s.on('error', reject);
    s.write(`GET /api/v1/stream HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nauthorization: Bearer ${token}\r\n\r\n`);
  });
}
