/** The collector's Prometheus metrics, in a registry of its own. */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '../runtime/process-metrics.js';

/** Create the collector's metrics. */
export function createCollectorMetrics() {
  const registry = new Registry();
  collectProcessMetrics(registry, 'driftwatch_collector_');
  const r = [registry];
  return {
    registry,
    streams: new Gauge({ name: 'driftwatch_collector_agent_streams', help: 'Open agent streams', registers: r }),
    batches: new Counter({ name: 'driftwatch_collector_batches_total', help: 'Batches committed and acknowledged', registers: r }),
    deviations: new Counter({ name: 'driftwatch_collector_deviations_total', help: 'Deviations received, by outcome', labelNames: ['outcome'], registers: r }),
    rejected: new Counter({ name: 'driftwatch_collector_records_rejected_total', help: 'Records refused as invalid, by field', labelNames: ['field'], registers: r }),
    snapshots: new Counter({ name: 'driftwatch_collector_baseline_snapshots_total', help: 'Baseline snapshots received', registers: r }),
    baselinesPushed: new Counter({ name: 'driftwatch_collector_cluster_baselines_pushed_total', help: 'Cluster baselines sent to agents (at connect, after reviews and state changes)', registers: r }),
    alerts: new Counter({ name: 'driftwatch_collector_alerts_created_total', help: 'Alerts created (first deviation of a fingerprint)', labelNames: ['kind'], registers: r }),
    commitSeconds: new Histogram({ name: 'driftwatch_collector_batch_commit_seconds', help: 'Time from a batch\'s arrival to its commit (validation, waiting for the group, the commit)', buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: r }),
    transactionRetries: new Counter({ name: 'driftwatch_collector_db_transaction_retries_total', help: 'PostgreSQL transactions run again after a deadlock (40P01) or serialization failure (40001), by SQLSTATE', labelNames: ['code'], registers: r }),
    commitGroup: new Histogram({ name: 'driftwatch_collector_commit_group_batches', help: 'Batches committed together in one transaction (group commit)', buckets: [1, 2, 4, 8, 16, 32], registers: r }),
    lastContact: new Gauge({ name: 'driftwatch_collector_agent_last_contact_timestamp_seconds', help: 'Unix time (seconds) of the last message from each node', labelNames: ['node'], registers: r }),
    refused: new Counter({
      name: 'driftwatch_collector_agent_records_refused_total',
      help: 'Baseline entries and deltas refused from a node, by node and reason (id_mismatch, id_invalid, invalid, foreign_key, locked, key_full, quarantined, time_skew)',
      labelNames: ['node', 'reason'],
      registers: r,
    }),
    bounds: new Counter({
      name: 'driftwatch_collector_bounds_hit_total',
      help: 'Values cut or replaced at a documented bound, by bound (arg_length, args_count, event_time_skew, entry_time_skew, hello_field, running_keys, push_parts, image_sightings, inventory_write_versions, inventory_node_versions, inventory_repository_versions, inventory_repository_evicted, inventory_total_versions)',
      labelNames: ['bound'],
      registers: r,
    }),
    inventoryReports: new Counter({
      name: 'driftwatch_collector_inventory_reports_total',
      help: 'Container reports from agents (the image inventory), by outcome (stored, older: a newer report of the node was stored, too_soon: within imageReportInterval of the previous one, invalid, failed)',
      labelNames: ['outcome'],
      registers: r,
    }),
    agentSpool: new Gauge({ name: 'driftwatch_collector_agent_spooled_records', help: 'Records waiting in each agent spool, from its heartbeats', labelNames: ['node'], registers: r }),
  };
}

/** The collector's metrics. */
export type CollectorMetrics = ReturnType<typeof createCollectorMetrics>;
