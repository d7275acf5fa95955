/**
 * The agent's composition root: config in, everything wired in order, one AbortController.
 * Shutdown (SIGTERM, or every source ended): stop the sources, process what they handed over,
 * persist baselines and positions, give the uplink time to drain the spool, then close gRPC,
 * SQLite and the HTTP server.
 */
import { createServer } from 'node:http';
import v8 from 'node:v8';
import { createBaselineEngine, type BaselineEngine, type LearningWindow } from '../core/baseline.js';
import type { ActivityEvent } from '../core/event.js';
import { globMatch } from '../core/severity.js';
import { parseCidr } from '../core/ip.js';
import { createProbeServer, serveHealth } from '../runtime/health.js';
import { formatHostPort, limitConnections, listenHttp, parseHostPort } from '../runtime/listen.js';
import { createLogger, type Logger } from '../runtime/logger.js';
import { createReloadingTls } from '../runtime/tls.js';
import { VERSION } from '../runtime/version.js';
import { completeFromRuntime, createAttributor } from './attribution/attributor.js';
import type { AgentConfig } from './config.js';
import { createExecutableResolver } from './attribution/container-path.js';
import { NO_CONTAINER_LOOKUP, createContainerLookup, createCriClient, resolveCriTarget } from './attribution/cri.js';
import { createAgentMetrics, type AgentMetrics } from './metrics.js';
import { createContainerInventory } from './inventory.js';
import { createPipeline } from './pipeline.js';
import { createSource, parseSourceSpec, type Source } from './sources/index.js';
import type { IgnoreReason, RejectReason } from './sources/record.js';
import { openAgentState, type AgentState } from './state/index.js';
import { DEFAULT_UPLINK, startUplink } from './uplink.js';

/**
 * Sources that save a position with the baselines it produced and resume from it after a restart.
 * The others cannot: what Falco posted (http), wrote to the pipe or socket (stdin, unix), streamed
 * (grpc) or the kernel reported (ebpf) while the agent was down is gone, and a replay starts over.
 * Shown per source in driftwatch_agent_source_resumable.
 */
export const RESUMABLE_SOURCES: ReadonlySet<string> = new Set(['falco-file', 'tetragon-file']);

// The agent's settings live in config.ts; what starts an agent needs both.
export { AgentConfigSchema, loadAgentConfig, type AgentConfig } from './config.js';

/** Connections the agent's /metrics listener holds (Prometheus needs one or two). */
const AGENT_HTTP_CONNECTIONS = { max: 64, perAddress: 16 };

/** A running agent. */
export interface AgentHandle {
  readonly httpPort: number;
  /** The probe listener's port (probeListen), null without one. */
  readonly probePort: number | null;
  readonly metrics: AgentMetrics;
  /** Sources that stopped with an error. */
  readonly failedSources: readonly string[];
  /** Resolves when the agent has stopped (by stop() or because every source ended). */
  readonly done: Promise<void>;
  /** Stop gracefully. */
  stop(): Promise<void>;
}

/** Rate-limits log lines about skipped records to one per reason and source per interval. */
function rejectLogger(logger: Logger, metrics: AgentMetrics, source: string) {
  const lastLogged = new Map<string, number>();
  return (reason: RejectReason, detail?: string, ignored?: IgnoreReason) => {
    if (reason === 'unsupported') metrics.ignored.inc({ source, reason: ignored ?? 'event_type' });
    else metrics.rejected.inc({ source, reason });
    const now = Date.now();
    if (now - (lastLogged.get(reason) ?? 0) < 10_000) return;
    lastLogged.set(reason, now);
    logger[reason === 'unsupported' ? 'debug' : 'warn']({ source, reason, detail }, 'skipped a record');
  };
}

/**
 * Restore every persisted baseline into the engine. A restore allocates hundreds of thousands of
 * long-lived objects at once; V8 reads that survival rate as a reason to grow its young generation
 * to the maximum and keeps it while a busy agent never goes idle. Growth is switched off for the
 * restore, so the entries are promoted to the old generation where they belong. (Pinning it for the
 * agent's whole life was measured too: short-lived event objects then reach the old generation and
 * stay there as garbage, which costs as much RSS as it saves. The bound for the running agent is
 * AGENT_NODE_FLAGS, set where the agent is started: the image's entrypoint, the bench.)
 */
export function restoreBaselines(engine: BaselineEngine, state: AgentState): number {
  let restored = 0;
  v8.setFlagsFromString('--semi-space-growth-factor=1');
  try {
    for (const record of state.loadBaselines()) {
      engine.restore(record);
      restored++;
    }
    // Then what the cluster last pushed: its entries (blocks and classes other nodes learned), its removals and state.
    for (const cluster of state.loadClusterBaselines()) engine.applyCluster(cluster);
  } finally {
    v8.setFlagsFromString('--semi-space-growth-factor=2'); // V8's default
  }
  return restored;
}

/**
 * Node flags for an agent process: a young generation of at most 2 × 4 MiB instead of 2 × 16 MiB.
 * A node's agent allocates steadily and never idles, so V8 would grow the young generation to its
 * maximum and keep it; 4 MiB semi-spaces hold a batch's short-lived objects with room to spare.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];

/** The learning window of a key: the first override that matches its namespace or image, else the defaults. */
export function learningWindowsOf(config: Pick<AgentConfig, 'learningWindow' | 'quietPeriod' | 'maxLearningWindow' | 'versionGrace' | 'learningOverrides'>) {
  const defaults: LearningWindow = { windowMs: config.learningWindow, quietMs: config.quietPeriod, maxMs: config.maxLearningWindow, graceMs: config.versionGrace };
  if (config.learningOverrides.length === 0) return undefined;
  return (key: string, event: ActivityEvent | null): LearningWindow => {
    const ns = event?.pod?.namespace;
    for (const o of config.learningOverrides) {
      if (o.namespace && (ns === undefined || !o.namespace.includes(ns))) continue;
      if (o.image && !o.image.some((g) => globMatch(g, key))) continue;
      return {
        windowMs: o.learningWindow ?? defaults.windowMs,
        quietMs: o.quietPeriod ?? defaults.quietMs,
        maxMs: o.maxLearningWindow ?? defaults.maxMs,
        graceMs: o.versionGrace ?? defaults.graceMs,
      };
    }
    return defaults;
  };
}

/** Start an agent. */
export async function startAgent(config: AgentConfig, options: { logger?: Logger } = {}): Promise<AgentHandle> {
  const logger = options.logger ?? createLogger('driftwatch-agent', config.logLevel);
  const metrics = createAgentMetrics();
  const state = openAgentState(config.stateDir, config.maxSpoolBytes);
  for (const spec of config.sources) metrics.sourceResumable.set({ source: spec }, RESUMABLE_SOURCES.has(parseSourceSpec(spec).factory.scheme) ? 1 : 0);
  const engine = createBaselineEngine({
    learningWindowMs: config.learningWindow,
    quietPeriodMs: config.quietPeriod,
    maxLearningMs: config.maxLearningWindow,
    versionGraceMs: config.versionGrace,
    generalize: config.peerGeneralization,
    windowFor: learningWindowsOf(config),
    keyMode: config.baselineKey,
  });
  const restored = restoreBaselines(engine, state);
  if (restored > 0) logger.info({ baselines: restored }, 'restored baselines from the state dir');

  const uplinkRef: { wake(): void } = { wake: () => {} };
  // A replay's processes ran on another node, or long ago: its paths stay as recorded.
  const replays = new Set<string>();
  const executables = createExecutableResolver(
    { isReplay: (source) => replays.has(source) },
    { now: Date.now, count: (source, outcome, n) => metrics.exeResolutions.inc({ source, outcome }, n) },
  );
  const pipeline = createPipeline(
    { entryOptions: { clusterRanges: config.clusterCidrs.map(parseCidr) }, statsIntervalMs: config.statsInterval, attributionWaitMs: 60_000 },
    { engine, state, attributor: createAttributor(), executables, metrics, logger: logger.child({ component: 'pipeline' }), now: Date.now, onSpooled: () => uplinkRef.wake() },
  );
  const criTarget = resolveCriTarget(config.criSocket);
  const cri = criTarget === null ? null : createCriClient(criTarget);
  const containers = cri === null ? NO_CONTAINER_LOOKUP : createContainerLookup(cri);
  const inventory = createContainerInventory(cri, containers, { logger: logger.child({ component: 'inventory' }) });
  if (criTarget !== null) logger.info({ cri: criTarget }, 'asking the container runtime for image and pod of containers named only by id');
  if (config.tlsCa === undefined) logger.warn('insecure: the collector stream is plaintext and carries no proof of this node\'s identity');
  // Re-checked on every connect: a rotated certificate is used from the next connection on.
  const tls = config.tlsCa === undefined ? null : createReloadingTls({ ca: config.tlsCa, cert: config.tlsCert, key: config.tlsKey }, { intervalMs: 0, logger: logger.child({ component: 'tls' }) });
  const uplink = startUplink(
    {
      ...DEFAULT_UPLINK,
      inventoryMs: config.inventoryInterval,
      target: config.collector,
      node: config.node,
      version: VERSION,
      sources: [...config.sources],
      security: tls ? { insecure: false, tls, serverName: config.tlsServerName, tokenFile: config.tokenFile } : { insecure: true },
    },
    {
      state,
      metrics,
      logger: logger.child({ component: 'uplink' }),
      watermark: () => pipeline.watermark,
      dropped: () => pipeline.dropped,
      onBaseline: (cluster) => pipeline.applyCluster(cluster),
      inventory,
    },
  );
  uplinkRef.wake = () => uplink.wake();

  const controller = new AbortController();
  const sources: Source[] = config.sources.map((spec) =>
    createSource(spec, {
      node: config.node,
      logger: logger.child({ component: `source.${parseSourceSpec(spec).factory.scheme}` }),
      maxRecordBytes: config.maxRecordBytes,
      follow: !config.exitWhenDone,
      savedPosition: state.loadPosition(spec),
      rejected: rejectLogger(logger, metrics, spec),
      counters: { lost: (n) => metrics.sourceLost.inc({ source: spec }, n), restarted: () => metrics.sourceRestarts.inc({ source: spec }), dns: (outcome) => metrics.dnsAnswers.inc({ source: spec, outcome }) },
    }),
  );
  sources.forEach((source, i) => {
    if (parseSourceSpec(config.sources[i] as string).factory.scheme === 'replay') replays.add(source.name);
  });
  let sourcesRunning = sources.length;
  const failedSources: string[] = [];
  const flushTimer = setInterval(() => pipeline.flush(false), 1_000);
  const readiness = () => (sourcesRunning > 0 || config.exitWhenDone ? null : 'no source is running');
  const http = createServer({ connectionsCheckingInterval: 2_000 }, (req, res) => {
    serveHealth(req, res, metrics.registry, readiness).then((handled) => {
      if (!handled) res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }, () => res.writeHead(500).end());
  });
  http.requestTimeout = 30_000;
  http.headersTimeout = 10_000;
  limitConnections(http, AGENT_HTTP_CONNECTIONS, (reason) => metrics.httpDropped.inc({ listener: 'metrics', reason }));
  const at = parseHostPort(config.httpListen);
  const httpPort = await listenHttp(http, at);
  const probeAt = config.probeListen === '' ? null : parseHostPort(config.probeListen);
  const probes = probeAt ? createProbeServer(readiness, { onDrop: () => metrics.httpDropped.inc({ listener: 'probes', reason: 'max_connections' }) }) : null;
  const probePort = probes && probeAt ? await listenHttp(probes, probeAt) : null;

  // A new node waits (briefly) for what the cluster learned: learning a key from zero that the
  // cluster already enforces would let this node teach the cluster whatever runs here first.
  if (config.clusterSyncTimeout > 0) {
    const synced = await uplink.synced(config.clusterSyncTimeout);
    if (synced) logger.info({ baselines: engine.size }, 'cluster baselines received');
    else logger.warn({ waitedMs: config.clusterSyncTimeout }, 'the collector did not answer in time: reading events with the local baselines only');
  }
  const runs = sources.map(async (source) => {
    try {
      for await (const batch of source.batches(controller.signal)) {
        await completeFromRuntime(batch.events, containers);
        inventory.observe(batch.events);
        pipeline.process(batch, source.name);
      }
      if (!controller.signal.aborted) {
        // What is still waiting for its image will not get it from this source any more.
        pipeline.endOfInput(source.name);
        logger.info({ source: source.name }, 'source ended');
      }
    } catch (err) {
      failedSources.push(source.name);
      logger.error({ err, source: source.name }, 'source failed');
    } finally {
      sourcesRunning--;
    }
  });
  logger.info({ node: config.node, sources: config.sources, collector: config.collector, http: formatHostPort(at.host, httpPort), ...(probeAt && probePort !== null ? { probes: formatHostPort(probeAt.host, probePort) } : {}), learningWindowMs: config.learningWindow }, 'agent started');

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      controller.abort();
      await Promise.all(runs);
      clearInterval(flushTimer);
      pipeline.flush(true);
      const drained = await uplink.drain(config.drainTimeout);
      if (!drained) logger.warn({ spooled: state.spoolCount() }, 'stopping with records still in the spool; they are sent on the next start');
      await uplink.stop();
      containers.close();
      state.close();
      for (const server of probes ? [http, probes] : [http]) {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
      }
      logger.info('agent stopped');
    })();
    return stopping;
  };
  const done = Promise.all(runs).then(() => stop());
  return { httpPort, probePort, metrics, failedSources, done, stop };
}
