/**
 * The endpoints every long-running process serves: /metrics (Prometheus text), /livez (and its
 * alias /healthz) and /readyz. Shared by the agent's small server and the collector's API server.
 *
 * /metrics is rendered at most FRESH_RENDERS times per interval (1 s unless told), whatever the
 * number of scrapes: concurrent scrapes share the one rendering in flight, and past that many
 * renderings in one interval, scrapes get the last one's text. Rendering walks every metric (and
 * their collect callbacks), so a storm of scrapes rendering each on its own would hold the event
 * loop, and /livez behind it, for seconds; a scraper or two (Prometheus, a person, a test reading
 * twice in a row) always gets fresh numbers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
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

/** Serve a health or metrics path; returns false when the path is not one of them. */
export async function serveHealth(
  req: IncomingMessage,
  res: ServerResponse,
  registry: Registry,
  readiness: ReadinessCheck,
  options: HealthOptions = {},
): Promise<boolean> {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== '/metrics' && path !== '/livez' && path !== '/healthz' && path !== '/readyz') return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
    return true;
  }
  if (path === '/metrics') {
    const body = await cacheOf(registry, options.now ?? Date.now).text(options.metricsIntervalMs ?? METRICS_INTERVAL_MS);
    res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : body);
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
