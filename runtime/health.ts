/**
 * The endpoints every long-running process serves: /metrics (Prometheus text), /livez (and its
 * alias /healthz) and /readyz. Shared by the agent's small server and the collector's API server.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';

/** Readiness: null when ready, otherwise the reason it is not. */
export type ReadinessCheck = () => string | null;

/** Serve a health or metrics path; returns false when the path is not one of them. */
export async function serveHealth(
  req: IncomingMessage,
  res: ServerResponse,
  registry: Registry,
  readiness: ReadinessCheck,
): Promise<boolean> {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== '/metrics' && path !== '/livez' && path !== '/healthz' && path !== '/readyz') return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
    return true;
  }
  if (path === '/metrics') {
    const body = await registry.metrics();
    res.writeHead(200, { 'content-type': registry.contentType }).end(body);
    return true;
  }
  if (path === '/readyz') {
    const reason = readiness();
    res.writeHead(reason === null ? 200 : 503, { 'content-type': 'text/plain' }).end(reason === null ? 'ok\n' : `not ready: ${reason}\n`);
    return true;
  }
  res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
  return true;
}
