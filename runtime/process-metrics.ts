/**
 * prom-client's default process and Node.js metrics, minus the ones that break Prometheus naming:
 * `nodejs_active_{handles,requests,resources}_total` are gauges with a counter's `_total` suffix, so
 * `promtool check metrics` refuses them. Each is only the sum of its per-type gauge
 * (`nodejs_active_handles{type}` …), which stays, so dropping them loses nothing.
 */
import { collectDefaultMetrics, type Registry } from 'prom-client';

/** The default metrics that are dropped (without the prefix). */
export const DROPPED_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const;

/** Register the default metrics under `prefix` (`driftwatch_agent_`) in `registry`, without the misnamed ones. */
export function collectProcessMetrics(registry: Registry, prefix: string): void {
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of DROPPED_DEFAULT_METRICS) registry.removeSingleMetric(`${prefix}${name}`);
}
