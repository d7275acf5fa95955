/** The agent's Prometheus metrics, in a registry of its own (so several agents can share a process in tests). */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '../runtime/process-metrics.js';

/** Create the agent's metrics. */
export function createAgentMetrics() {
  const registry = new Registry();
  collectProcessMetrics(registry, 'driftwatch_agent_');
  const r = [registry];
  return {
    registry,
    events: new Counter({ name: 'driftwatch_agent_events_total', help: 'Events read, by source and kind', labelNames: ['source', 'kind'], registers: r }),
    rejected: new Counter({ name: 'driftwatch_agent_events_rejected_total', help: 'Records skipped as malformed, by source and reason', labelNames: ['source', 'reason'], registers: r }),
    ignored: new Counter({ name: 'driftwatch_agent_events_ignored_total', help: 'Valid records of no interest, by source and why (other_source, event_type, file_event, no_activity, protocol, family, process_exit, process_close, socket_stats, kprobe_function)', labelNames: ['source', 'reason'], registers: r }),
    unattributed: new Counter({ name: 'driftwatch_agent_events_unattributed_total', help: 'Container events skipped because their image stayed unknown, by source and reason (expired: waited the attribution wait; overflow: too many held; end_of_input / shutdown: still held then; no_image)', labelNames: ['source', 'reason'], registers: r }),
    held: new Gauge({ name: 'driftwatch_agent_events_held', help: 'Events held now, waiting for their container image', registers: r }),
    timeClamped: new Counter({ name: 'driftwatch_agent_events_time_clamped_total', help: 'Events whose time was out of bounds and moved, by source and reason (future: ahead of the wall clock; past: behind the source watermark; before_window: before the key learning window)', labelNames: ['source', 'reason'], registers: r }),
    dropped: new Counter({ name: 'driftwatch_agent_events_dropped_total', help: 'Events not learned or checked, by source and reason', labelNames: ['source', 'reason'], registers: r }),
    verdicts: new Counter({ name: 'driftwatch_agent_events_observed_total', help: 'Events learned into or checked against a baseline, by source and verdict (learned, matched, deviation)', labelNames: ['source', 'verdict'], registers: r }),
    learned: new Counter({ name: 'driftwatch_agent_entries_learned_total', help: 'New baseline entries learned, by source', labelNames: ['source'], registers: r }),
    deviations: new Counter({ name: 'driftwatch_agent_deviations_total', help: 'Deviations found, by source and kind', labelNames: ['source', 'kind'], registers: r }),
    spoolRecords: new Gauge({ name: 'driftwatch_agent_spool_records', help: 'Records waiting in the spool for the collector', registers: r }),
    spoolBytes: new Gauge({ name: 'driftwatch_agent_spool_bytes', help: 'Bytes waiting in the spool', registers: r }),
    httpDropped: new Counter({ name: 'driftwatch_agent_http_connections_dropped_total', help: 'HTTP connections (/metrics, probes) closed as they were accepted, by listener (metrics, probes) and bound (max_connections, per_address)', labelNames: ['listener', 'reason'], registers: r }),
    spoolEvicted: new Counter({ name: 'driftwatch_agent_spool_evicted_total', help: 'Deviations dropped from a full spool, by the severity the agent gave them (lowest severity first, then oldest)', labelNames: ['severity'], registers: r }),
    spoolOldestAge: new Gauge({ name: 'driftwatch_agent_spool_oldest_age_seconds', help: 'Age of the oldest record in the spool not yet acknowledged by the collector (0 when empty): the delivery lag', registers: r }),
    sourceResumable: new Gauge({ name: 'driftwatch_agent_source_resumable', help: '1 when a source resumes from a saved position after a restart (file tails), 0 when what it was handed while the agent was down is gone', labelNames: ['source'], registers: r }),
    baselines: new Gauge({ name: 'driftwatch_agent_baselines', help: 'Baselines held, by state', labelNames: ['state'], registers: r }),
    connected: new Gauge({ name: 'driftwatch_agent_uplink_connected', help: '1 while the stream to the collector is open', registers: r }),
    batchesSent: new Counter({ name: 'driftwatch_agent_uplink_batches_sent_total', help: 'Batches sent to the collector (resends included)', registers: r }),
    batchesAcked: new Counter({ name: 'driftwatch_agent_uplink_batches_acked_total', help: 'Batches acknowledged by the collector', registers: r }),
    clusterBaselines: new Counter({ name: 'driftwatch_agent_cluster_baselines_applied_total', help: 'Cluster baselines from the collector that changed a local baseline (entries, removals, state)', registers: r }),
    inventoryReports: new Counter({ name: 'driftwatch_agent_inventory_reports_total', help: 'Reports of the containers running on the node sent to the collector, by source (cri, events)', labelNames: ['source'], registers: r }),
    reconnects: new Counter({ name: 'driftwatch_agent_uplink_reconnects_total', help: 'Stream (re)connect attempts', registers: r }),
    sourceLost: new Counter({ name: 'driftwatch_agent_source_lost_events_total', help: 'Events the producer dropped before the agent read them (kernel perf buffer overruns for ebpf)', labelNames: ['source'], registers: r }),
    exeResolutions: new Counter({ name: 'driftwatch_agent_exe_resolutions_total', help: 'Executable paths (exe, parentExe) resolved in their container\'s root, by source and outcome (resolved, unchanged, changed, not_found, refused, denied, gone, replay); all but resolved keep the path as the source gave it', labelNames: ['source', 'outcome'], registers: r }),
    dnsAnswers: new Counter({ name: 'driftwatch_agent_dns_total', help: 'DNS answers traced by the ebpf source by outcome (learned, malformed, incomplete, truncated) and names evicted from its bounded cache (evicted_container_full, evicted_cache_full)', labelNames: ['source', 'outcome'], registers: r }),
    sourceRestarts: new Counter({ name: 'driftwatch_agent_source_restarts_total', help: 'Times a source reconnected its stream (falco-grpc, tetragon-grpc) or restarted its child process (ebpf)', labelNames: ['source'], registers: r }),
    batchSeconds: new Histogram({ name: 'driftwatch_agent_batch_duration_seconds', help: 'Time to process and commit one source batch', buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1], registers: r }),
    watermark: new Gauge({ name: 'driftwatch_agent_event_time_watermark_timestamp_seconds', help: 'Event time (Unix seconds) of the newest event processed', registers: r }),
  };
}

/** The agent's metrics. */
export type AgentMetrics = ReturnType<typeof createAgentMetrics>;
