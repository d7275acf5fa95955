/**
 * The endpoints every long-running process serves: /metrics (Prometheus text), /livez (and its
 * alias /healthz) and /readyz. Shared by the agent's small server and the collector's API server;
 * the probes also get a listener of their own (createProbeServer, probeListen) for the kubelet.
 *
 * /metrics is rendered at most FRESH_RENDERS times per interval (1 s unless told), whatever the
 * number of scrapes: concurrent scrapes share the one rendering in flight, and past that many
 * renderings in one interval, scrapes get the last one's text. Rendering walks every metric (and
 * their collect callbacks), so a storm of scrapes rendering each on its own would hold the event
 * loop, and /livez behind it, for seconds; a scraper or two (Prometheus, a person, a test reading
 * twice in a row) always gets fresh numbers.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Counter, type Registry } from 'prom-client';

/** Readiness: null when ready, otherwise the reason it is not. */
export type ReadinessCheck = () => string | null;

/** The interval FRESH_RENDERS counts in, unless told otherwise. */
export const METRICS_INTERVAL_MS = 1_000;

/** Renderings per interval before scrapes get the last one's text. */
export const FRESH_RENDERS = 5;

/** How a scrape was served: `rendered`, `shared` (a rendering in flight), `cached` (a recent one). */
type Served = 'rendered' | 'shared' | 'cached';

interface MetricsCache {
  text(intervalMs: number): Promise<string>;
}

// One cache per registry, so every server of a process that serves the same registry shares it.
const caches = new WeakMap<Registry, MetricsCache>();

function cacheOf(registry: Registry, now: () => number): MetricsCache {
  const known = caches.get(registry);
  if (known) return known;
  const scrapes =
    (registry.getSingleMetric('driftwatch_metrics_scrapes_total') as Counter | undefined) ??
    new Counter({ name: 'driftwatch_metrics_scrapes_total', help: 'Scrapes of /metrics, by how they were served (rendered, shared: a rendering in flight, cached: a recent rendering)', labelNames: ['served'], registers: [registry] });
  let inFlight: Promise<string> | null = null;
  let last: string | null = null;
  let window = { start: -Infinity, renders: 0 };
  const served = (how: Served) => scrapes.inc({ served: how });
  const cache: MetricsCache = {
    text(intervalMs) {
      if (inFlight) {
        served('shared');
        return inFlight;
      }
      const t = now();
      if (t - window.start >= intervalMs) window = { start: t, renders: 0 };
      if (last !== null && window.renders >= FRESH_RENDERS) {
        served('cached');
        return Promise.resolve(last);
      }
      window.renders += 1;
      served('rendered');
      inFlight = registry.metrics().then(
        (text) => {
          last = text;
          inFlight = null;
          return text;
        },
        (err: unknown) => {
          inFlight = null;
          throw err;
        },
      );
      return inFlight;
    },
  };
  caches.set(registry, cache);
  return cache;
}

/** Options of serveHealth. */
export interface HealthOptions {
  /** The interval in which /metrics is rendered at most FRESH_RENDERS times (default METRICS_INTERVAL_MS). */
  metricsIntervalMs?: number | undefined;
  now?: (() => number) | undefined;
}

const PROBE_PATHS: ReadonlySet<string> = new Set(['/livez', '/healthz', '/readyz']);

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function methodAllowed(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return true;
  res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
  return false;
}

/** Serve /livez, /healthz or /readyz, synchronously; returns false when the path is none of them. */
export function serveProbe(req: IncomingMessage, res: ServerResponse, readiness: ReadinessCheck): boolean {
  const path = pathOf(req);
  if (!PROBE_PATHS.has(path)) return false;
  if (!methodAllowed(req, res)) return true;
  if (path === '/readyz') {
    const reason = readiness();
    res.writeHead(reason === null ? 200 : 503, { 'content-type': 'text/plain' }).end(reason === null ? 'ok\n' : `not ready: ${reason}\n`);
    return true;
  }
  res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
  return true;
}

/** Serve a health or metrics path; returns false when the path is not one of them. */
export async function serveHealth(
  req: IncomingMessage,
  res: ServerResponse,
  registry: Registry,
  readiness: ReadinessCheck,
  options: HealthOptions = {},
): Promise<boolean> {
  if (pathOf(req) !== '/metrics') return serveProbe(req, res, readiness);
  if (!methodAllowed(req, res)) return true;
  const body = await cacheOf(registry, options.now ?? Date.now).text(options.metricsIntervalMs ?? METRICS_INTERVAL_MS);
  res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : body);
  return true;
}

/** Connections a probe listener holds at once; more are closed as they are accepted. */
export const PROBE_MAX_CONNECTIONS = 32;

/**
 * A listener for the kubelet's probes alone: /livez (/healthz) and /readyz, nothing else (404).
 * A storm against the API port fills that port's accept queue (the kernel's backlog, 511 in Node)
 * and keeps its event-loop turns busy with parsing; a probe queued behind it waits for the SYN to
 * be retried (1 s, 3 s, 7 s, ...) and a liveness probe with a 3 s timeout fails although the
 * process is well. A port of its own has its own accept queue, is answered from a constant, and
 * sits behind no Service or NetworkPolicy rule, so only the node (the kubelet) reaches it. It
 * holds at most PROBE_MAX_CONNECTIONS connections and gives a slow client 5 s for its request.
 */
export function createProbeServer(readiness: ReadinessCheck, options: { maxConnections?: number; onDrop?: () => void } = {}): Server {
  const server = createServer({ maxHeaderSize: 4 << 10, requestTimeout: 5_000, headersTimeout: 5_000, connectionsCheckingInterval: 1_000 }, (req, res) => {
    if (!serveProbe(req, res, readiness)) res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: this port serves /livez, /healthz and /readyz\n');
  });
  server.maxConnections = options.maxConnections ?? PROBE_MAX_CONNECTIONS;
  if (options.onDrop) server.on('drop', options.onDrop);
  server.maxHeadersCount = 32;
  server.keepAliveTimeout = 5_000;
  return server;
}
