/**
 * Serves the review console: `/` redirects to `/console/`, which is one HTML page, one stylesheet
 * and the browser ES modules compiled from collector/console/ (collector/console/tsconfig.json).
 *
 * Nothing here joins a request path onto a directory: the files are read once at startup into a
 * manifest (URL path → bytes, content type, ETag) and a request is a lookup in that map, so no
 * path (`..`, `%2e%2e`, `%00`, symlinks) can reach anything else. Every response carries a strict
 * Content-Security-Policy (`default-src 'self'`, no inline script or style) and is revalidated by
 * ETag (`no-cache`): module URLs are not content-hashed, so a cached copy must be checked.
 * The files hold no data; the console reads everything from the API with the user's token.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../../runtime/logger.js';
import { CONSOLE_HTML, CONSOLE_CSS, CONSOLE_ICON } from './assets.js';

/** Where the console lives. */
export const CONSOLE_PATH = '/console/';
/** The icon browsers ask for at the root on their own (open: see CONSOLE_ICON). */
export const FAVICON_PATH = '/favicon.ico';

/** The policy every console response carries. `'self'` also covers the same-origin websocket. */
export const CONSOLE_CSP = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'";

/** One file of the console. */
interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** The console's files. */
export interface ConsoleServer {
  /** Answer `req` if it is the console's (`/`, `/console`, `/console/...`, `/favicon.ico`); false otherwise. */
  serve(req: IncomingMessage, res: ServerResponse): boolean;
  /** URL paths served, for tests and logs. */
  readonly paths: readonly string[];
}

/** Largest module read into the manifest; the console's own files are far smaller. */
const MAX_MODULE_BYTES = 1 << 20;
const MODULE_NAME = /^[a-z][a-z0-9-]{0,63}\.js$/;

function asset(body: string | Buffer, type: string): Asset {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return { body: bytes, type, etag: `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 27)}"` };
}

const SECURITY_HEADERS = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

/**
 * Build the manifest. `modulesDir` defaults to the compiled browser modules (dist/collector/console/,
 * from collector/console/); a missing directory leaves a console that says it was not built.
 */
export function createConsoleServer(deps: { logger: Logger; modulesDir?: string }): ConsoleServer {
  const dir = deps.modulesDir ?? fileURLToPath(new URL('../../console/', import.meta.url));
  const files = new Map<string, Asset>();
  files.set(CONSOLE_PATH, asset(CONSOLE_HTML, 'text/html; charset=utf-8'));
  files.set(`${CONSOLE_PATH}style.css`, asset(CONSOLE_CSS, 'text/css; charset=utf-8'));
  files.set(`${CONSOLE_PATH}favicon.svg`, asset(CONSOLE_ICON, 'image/svg+xml'));
  files.set(FAVICON_PATH, asset(CONSOLE_ICON, 'image/svg+xml'));
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => MODULE_NAME.test(n)).sort();
  } catch (err) {
    deps.logger.warn({ dir, err: (err as Error).message }, 'console modules not found; was collector/console/tsconfig.json compiled?');
  }
  for (const name of names) {
    const file = `${dir}/${name}`;
    const stat = statSync(file);
    if (!stat.isFile() || stat.size > MAX_MODULE_BYTES) continue;
    files.set(`${CONSOLE_PATH}${name}`, asset(readFileSync(file), 'text/javascript; charset=utf-8'));
  }

  function send(req: IncomingMessage, res: ServerResponse, status: number, headers: Record<string, string>, body: Buffer | string): void {
    res.writeHead(status, { ...SECURITY_HEADERS, ...headers });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  return {
    paths: [...files.keys()],
    serve(req, res) {
      const rawUrl = req.url ?? '/';
      const q = rawUrl.indexOf('?');
      const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
      if (path !== '/' && path !== '/console' && path !== FAVICON_PATH && !path.startsWith(CONSOLE_PATH)) return false;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        send(req, res, 405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }, 'method not allowed\n');
        return true;
      }
      if (path === '/' || path === '/console') {
        send(req, res, 302, { location: CONSOLE_PATH, 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }, `see ${CONSOLE_PATH}\n`);
        return true;
      }
      const file = files.get(path);
      if (file === undefined) {
        send(req, res, 404, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }, 'not found\n');
        return true;
      }
      const common = { 'content-type': file.type, 'cache-control': 'no-cache', etag: file.etag };
      const match = req.headers['if-none-match'];
      if (match !== undefined && match.split(',').some((t) => t.trim() === file.etag)) {
        send(req, res, 304, common, '');
        return true;
      }
      send(req, res, 200, { ...common, 'content-length': String(file.body.length) }, file.body);
      return true;
    },
  };
}
