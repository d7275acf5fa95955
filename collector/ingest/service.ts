/**
 * Ingest: the collector's side of AgentService.Connect. Validates everything (the wire is hostile),
 * prepares each deviation's row, commits each batch through the writer (in its own savepoint, sharing
 * the transaction and its fsync with the batches that arrived while the previous commit ran: group
 * commit), and only then acknowledges it. Invalid records are counted, logged and acknowledged as
 * rejected (resending them would never help); a protocol violation ends the stream with a gRPC status
 * saying what was wrong.
 */
import * as grpc from '@grpc/grpc-js';
import type { BaselineSnapshot } from '../../core/baseline.js';
import {
  PROTOCOL_REVISION,
  WireError,
  agentService,
  clusterBaselineToParts,
  containerReportFromWire,
  deviationFromWire,
  runningKeysFromWire,
  snapshotFromWire,
  type WireAgentMessage,
  type WireCollectorMessage,
} from '../../proto/index.js';
import type { Logger } from '../../runtime/logger.js';
import { createSerial } from '../../runtime/serial.js';
import type { CollectorMetrics } from '../metrics.js';
import type { NodeTracker } from './node-tracker.js';
import type { IngestWriter } from './writer.js';
import { createDeviationPreparer } from '../store/prepare.js';
import type { Alert } from '../alerting/alert.js';
import type { Async } from '../store/async.js';
import type { BaselineStore, ImageStore, IngestResult, InventoryBound, NewImageVersion, PreparedBatch, PreparedDeviation } from '../store/store.js';
import type { ImageSighting } from '../../core/inventory.js';
import type { Deviation } from '../../core/deviation.js';

/** Ingest settings. */
export interface IngestOptions {
  version: string;
  /** Most records (deviations + snapshots) in one batch. */
  maxBatchItems: number;
  /**
   * Push the keys a commit changed to this collector's agents after the commit (default true).
   * False where the change feed does it (PostgreSQL: every replica hears every commit, its own too).
   */
  pushOnCommit?: boolean | undefined;
  /** Least time between two container reports of one node taken (default 10 s); earlier ones are dropped and counted. */
  minReportIntervalMs?: number | undefined;
}

/** Collaborators. */
export interface IngestDeps {
  /** Reads (cluster baselines for agents); commits go through `writer`. */
  store: Async<BaselineStore>;
  writer: IngestWriter;
  metrics: CollectorMetrics;
  logger: Logger;
  /** Called for every alert a committed batch created. */
  onNewAlert: (alert: Alert) => void;
  /** Called after each commit with what it did (notifications, live feed). */
  afterCommit?: ((result: IngestResult) => void) | undefined;
  /** Told of every hello, message, heartbeat, goodbye and ended stream (last contact, lag, silence). */
  nodes?: NodeTracker | undefined;
  /** Where nodes' container reports and the images of deviations go (the image inventory); without it they are ignored. */
  images?: Async<Pick<ImageStore, 'recordContainerReport' | 'recordImageSightings'>> | undefined;
  /** Told of the image digests the inventory recorded for the first time (after their write, outside any ingest commit). */
  onNewImageVersions?: ((versions: NewImageVersion[]) => void) | undefined;
  now: () => number;
}

const NODE_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** A running ingest service: the gRPC implementation plus bookkeeping of open streams. */
export interface Ingest {
  readonly implementation: grpc.UntypedServiceImplementation;
  readonly service: grpc.ServiceDefinition;
  /**
   * Stop taking batches and end every open stream (at shutdown, after the server stopped accepting new
   * ones). Batches already taken are committed and acknowledged first; a batch that arrives later is
   * refused with UNAVAILABLE, unacknowledged, so its agent resends it. Resolves when the streams ended.
   */
  closeAll(): Promise<void>;
  /**
   * Send the cluster baselines of `keys` to every connected agent (after a review or a change of
   * state); resolves once sent (a failed read is logged, never rejected).
   */
  pushBaselines(keys: readonly string[]): Promise<void>;
}

/** Image sightings of deviations waiting to be recorded; more are dropped (counted in bounds_hit_total{bound="image_sightings"}). */
const MAX_PENDING_SIGHTINGS = 20_000;
/** How often they are recorded. */
const SIGHTINGS_FLUSH_MS = 1_000;

/** Most records (deviations + deltas) committed in one group; the rest wait for the next. */
const MAX_GROUP_ITEMS = 2_000;

/** Most cluster baselines sent to an agent when it connects. */
const MAX_BASELINES_ON_CONNECT = 20_000;

/** Cluster baselines read from the store at once (a welcome's, a push's). */
const PARALLEL_READS = 64;

/**
 * How far ahead of the collector's clock an event time may be. A deviation beyond it is kept with
 * the receive time as its time and what the node said as `reportedTime`; a baseline entry's times
 * are clamped to the receive time; a delta whose window starts beyond it is refused (`time_skew`):
 * a node's clock never moves a learning window. (Times in the past are allowed: replays.)
 */
export const MAX_FUTURE_SKEW_MS = 3_600_000;

/** Longest Hello field (agent version, each source) written to the log; longer ones are cut. */
const MAX_LOGGED_CHARS = 256;

/** `s` cut for a log line. */
function forLog(s: unknown): string {
  const t = typeof s === 'string' ? s : '';
  return t.length > MAX_LOGGED_CHARS ? `${t.slice(0, MAX_LOGGED_CHARS)}…[+${t.length - MAX_LOGGED_CHARS} chars]` : t;
}

/** Where a deviation's image version ran, for the image inventory (null for host events). */
function sightingOf(d: Deviation, node: string): ImageSighting | null {
  const image = d.event.container?.image;
  if (!image || image.repository === '') return null;
  const pod = d.event.pod;
  return { repository: image.repository, tag: image.tag, digest: image.digest, node, namespace: pod?.namespace ?? '', workload: pod?.workload ?? '', pod: pod?.name ?? '', time: d.event.time };
}

/** Create the ingest service. */
export function createIngest(options: IngestOptions, deps: IngestDeps): Ingest {
  const { store, writer, metrics, logger } = deps;
  const prepare = createDeviationPreparer();
  const open = new Set<grpc.ServerDuplexStream<WireAgentMessage, WireCollectorMessage>>();
  /** Streams past their hello. */
  const connected = new Set<grpc.ServerDuplexStream<WireAgentMessage, WireCollectorMessage>>();

  /** The messages that carry the cluster baseline of `key` (several when it is larger than one message may be), or null. */
  async function partsOf(key: string): Promise<WireCollectorMessage[] | null> {
    const c = await store.clusterBaseline(key);
    if (!c) return null;
    const parts = clusterBaselineToParts(c);
    if (parts.length > 1) metrics.bounds.inc({ bound: 'push_parts' }, parts.length - 1);
    return parts.map((baseline) => ({ baseline }));
  }

  /** partsOf each of `keys`, in their order, PARALLEL_READS at a time. */
  async function partsOfEach(keys: readonly string[]): Promise<(WireCollectorMessage[] | null)[]> {
    const out: (WireCollectorMessage[] | null)[] = [];
    for (let i = 0; i < keys.length; i += PARALLEL_READS) out.push(...(await Promise.all(keys.slice(i, i + PARALLEL_READS).map(partsOf))));
    return out;
  }

  /**
   * Pushes and welcomes, one at a time in the order asked: an agent must not get an older version of
   * a baseline after a newer one, and an agent connecting while a key changes gets either the new
   * version in its welcome or the push of it (it joins `connected` in the same step as its welcome).
   */
  const turns = createSerial();
  /** Welcomes asked for and not yet written: a push meanwhile waits its turn, their streams may be among its receivers. */
  let welcoming = 0;

  function pushBaselines(keys: readonly string[]): Promise<void> {
    if (connected.size === 0 && welcoming === 0) return Promise.resolve();
    return turns
      .run(async () => {
        if (connected.size === 0) return;
        const all = await partsOfEach(keys);
        for (const msgs of all) {
          if (!msgs) continue;
          for (const call of connected) for (const msg of msgs) call.write(msg);
          metrics.baselinesPushed.inc(connected.size);
        }
      })
      .catch((err: unknown) => logger.error({ err, keys: keys.length }, 'pushing cluster baselines failed'));
  }

  /** Send the welcome and the cluster baselines to a stream past its hello, then take it among the connected ones. */
  function welcome(call: grpc.ServerDuplexStream<WireAgentMessage, WireCollectorMessage>): Promise<void> {
    welcoming++;
    return turns.run(async () => {
      if (!open.has(call)) return;
      // A new (or returning) node enforces what the cluster learned instead of learning from zero:
      // the Welcome says how many baseline messages follow, so the agent can wait for them.
      const msgs: WireCollectorMessage[] = [];
      let clusters = 0;
      for (const parts of await partsOfEach((await store.clusterKeys()).slice(0, MAX_BASELINES_ON_CONNECT))) {
        if (!parts) continue;
        clusters++;
        msgs.push(...parts);
      }
      if (!open.has(call)) return;
      call.write({ welcome: { collectorVersion: options.version, maxBatchItems: options.maxBatchItems, baselines: msgs.length } });
      for (const m of msgs) call.write(m);
      if (clusters > 0) metrics.baselinesPushed.inc(clusters);
      connected.add(call);
    }).finally(() => welcoming--);
  }

  /**
   * Keys each node reported running containers of (Hello, then each heartbeat replaces the list).
   * A node's baseline deltas are taken only for these: it teaches the keys it runs and no others.
   */
  const running = new Map<string, ReadonlySet<string>>();
  const streamsOf = new Map<string, number>();
  const refuse = (node: string, reason: string, n = 1) => metrics.refused.inc({ node, reason }, n);

  /** When each node's last container report was taken (this replica's clock): one per minReportIntervalMs. */
  const lastReport = new Map<string, number>();
  const minReportIntervalMs = options.minReportIntervalMs ?? 10_000;

  /**
   * A node's container report (a heartbeat's): validated, at most one per minReportIntervalMs, stored
   * as that node's (the stream's node: a report speaks for no other). Never ends the stream: the
   * inventory is a nicety next to the deviations the stream carries.
   */
  function takeReport(node: string, wire: NonNullable<NonNullable<WireAgentMessage['heartbeat']>['containers']>): void {
    const images = deps.images;
    if (!images) return;
    const at = deps.now();
    if (at - (lastReport.get(node) ?? -Infinity) < minReportIntervalMs) return void metrics.inventoryReports.inc({ outcome: 'too_soon' });
    let report;
    try {
      report = containerReportFromWire(wire);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      metrics.inventoryReports.inc({ outcome: 'invalid' });
      logger.warn({ node, field: err.field, error: err.message }, 'refused a container report');
      return;
    }
    lastReport.set(node, at);
    const stored = images.recordContainerReport(node, report, at).then(
      (recorded) => {
        metrics.inventoryReports.inc({ outcome: recorded.stored ? 'stored' : 'older' });
        countInventoryBounds(node, recorded.bounded);
        if (recorded.newVersions.length > 0) deps.onNewImageVersions?.(recorded.newVersions);
      },
      (err: unknown) => {
        metrics.inventoryReports.inc({ outcome: 'failed' });
        logger.error({ err, node }, 'storing a container report failed');
      },
    );
    // Awaited by closeAll: no write reaches a closed store.
    reportsInFlight.add(stored);
    void stored.finally(() => reportsInFlight.delete(stored));
  }
  const reportsInFlight = new Set<Promise<void>>();

  /** Versions a write refused or forgot at an inventory bound: counted, and a warning naming the node (a node past its bounds reports names no cluster runs). */
  function countInventoryBounds(node: string, bounded: Partial<Record<InventoryBound, number>>): void {
    const hit = Object.entries(bounded).filter(([, n]) => n > 0) as [InventoryBound, number][];
    for (const [bound, n] of hit) metrics.bounds.inc({ bound: `inventory_${bound}` }, n);
    if (hit.some(([bound]) => bound !== 'repository_evicted')) logger.warn({ node: node || undefined, bounded: Object.fromEntries(hit) }, 'image versions refused at an inventory bound');
  }

  /**
   * The images of committed deviations, recorded as seen: gathered (at most MAX_PENDING_SIGHTINGS,
   * further ones dropped and counted) and written once a second, outside the ingest commit, so the
   * inventory costs the hot path one small write a second, and a failure there loses no deviation.
   */
  let sightings: ImageSighting[] = [];
  let sightingsTimer: NodeJS.Timeout | null = null;
  function recordSightings(_node: string, seen: ImageSighting[]): void {
    if (!deps.images) return;
    const room = MAX_PENDING_SIGHTINGS - sightings.length;
    if (seen.length > room) metrics.bounds.inc({ bound: 'image_sightings' }, seen.length - Math.max(0, room));
    if (room > 0) sightings.push(...seen.slice(0, room));
    sightingsTimer ??= setTimeout(flushSightings, SIGHTINGS_FLUSH_MS);
    sightingsTimer.unref();
  }
  function flushSightings(): Promise<void> {
    sightingsTimer = null;
    const taken = sightings;
    sightings = [];
    if (taken.length === 0 || !deps.images) return Promise.resolve();
    return deps.images.recordImageSightings(taken, deps.now()).then(
      (recorded) => {
        countInventoryBounds('', recorded.bounded);
        if (recorded.newVersions.length > 0) deps.onNewImageVersions?.(recorded.newVersions);
      },
      (err: unknown) => logger.error({ err, sightings: taken.length }, 'recording the images of deviations failed'),
    );
  }
  let closing = false;

  /** Batches decoded and waiting for the next group commit, in arrival order. */
  interface Queued {
    /** What the writer commits (plain data: it may cross to the worker thread). */
    batch: PreparedBatch;
    call: grpc.ServerDuplexStream<WireAgentMessage, WireCollectorMessage>;
    batchId: number;
    rejected: number;
    endTimer: () => void;
    /** The image versions its deviations ran, recorded once it committed. */
    sightings: ImageSighting[];
  }
  const itemsOf = (q: Queued) => q.batch.deviations.length + q.batch.deltas.length;
  let queue: Queued[] = [];
  let scheduled = false;
  /**
   * Groups handed to the writer and not yet settled: at most writer.pipeline (one for SQLite; two for
   * PostgreSQL, whose worker starts the next transaction as soon as one commits instead of waiting for
   * the event loop to hand it over), committed in order; what arrives meanwhile makes the next group.
   */
  let inFlight = 0;
  /** The settling of the last group handed over: groups are acknowledged in the order they were committed. */
  let lastSettled: Promise<void> = Promise.resolve();

  /**
   * Commit the queued batches (up to MAX_GROUP_ITEMS records) in one transaction, then acknowledge
   * each. Batches that arrive together or during the previous commit (several agents, a storm) share
   * one commit and one fsync instead of paying one each; a lone batch is committed at once.
   */
  function commitQueued(): void {
    scheduled = false;
    while (inFlight < writer.pipeline && queue.length > 0) {
      let take = 0;
      for (let items = 0; take < queue.length && (take === 0 || items + itemsOf(queue[take] as Queued) <= MAX_GROUP_ITEMS); take++) items += itemsOf(queue[take] as Queued);
      const group = queue.slice(0, take);
      queue = queue.slice(take);
      inFlight++;
      const results = writer.commit(group.map((q) => q.batch), deps.now()).catch((err: unknown) => group.map(() => (err instanceof Error ? err : new Error(String(err)))));
      lastSettled = lastSettled
        .then(() => results)
        .then((r) => settle(group, r))
        .catch((err: unknown) => logger.error({ err }, 'acknowledging a commit failed'))
        .finally(() => {
          inFlight--;
          commitQueued();
        });
    }
  }

  /** Acknowledge each committed batch; fail the stream of a batch that was not. */
  function settle(group: readonly Queued[], results: readonly (IngestResult | Error)[]): void {
    metrics.commitGroup.observe(group.length);
    const changed = new Set<string>();
    const failed = new Set<Queued['call']>();
    group.forEach((q, i) => {
      const result = results[i] ?? new Error('no result for the batch');
      q.endTimer();
      if (result instanceof Error) {
        logger.error({ err: result, node: q.batch.node }, 'ingest failed');
        if (!failed.has(q.call)) failStream(q.call, q.batch.node, grpc.status.INTERNAL, 'the collector could not commit the batch; it will be resent');
        failed.add(q.call);
        return;
      }
      // Acknowledge only now: the batch is committed. (A stream that ended meanwhile, or failed on an
      // earlier batch of this group, gets no ack; its agent resends the batch, stored once.)
      if (open.has(q.call) && !failed.has(q.call)) q.call.write({ ack: { batchId: q.batchId, stored: result.stored, duplicates: result.duplicates, rejected: q.rejected } });
      metrics.batches.inc();
      if (result.stored) metrics.deviations.inc({ outcome: 'stored' }, result.stored);
      if (result.duplicates) metrics.deviations.inc({ outcome: 'duplicate' }, result.duplicates);
      if (result.known) metrics.deviations.inc({ outcome: 'known' }, result.known);
      if (result.snapshots) metrics.snapshots.inc(result.snapshots);
      for (const [reason, n] of Object.entries(result.refused ?? {})) {
        if (!n) continue;
        refuse(q.batch.node, reason, n);
        logger.warn({ node: q.batch.node, reason, count: n }, 'refused baseline deltas or entries');
      }
      for (const alert of result.newAlerts) {
        metrics.alerts.inc({ kind: alert.kind });
        deps.onNewAlert(alert);
      }
      deps.afterCommit?.(result);
      if (q.sightings.length > 0) recordSightings(q.batch.node, q.sightings);
      for (const key of result.clusterChanged) changed.add(key);
    });
    if (changed.size > 0 && options.pushOnCommit !== false) pushBaselines([...changed]);
  }

  /** Resolves when nothing is queued or being committed. */
  async function drained(): Promise<void> {
    while (inFlight > 0 || queue.length > 0) {
      if (inFlight === 0) commitQueued();
      await lastSettled;
    }
  }

  function failStream(call: grpc.ServerDuplexStream<WireAgentMessage, WireCollectorMessage>, node: string | null, code: grpc.status, details: string): void {
    logger.warn({ peer: call.getPeer(), node, code: grpc.status[code], details }, 'closing agent stream');
    call.emit('error', { code, details });
    call.end();
  }

  function connect(call: grpc.ServerDuplexStream<WireAgentMessage, WireCollectorMessage>): void {
    let node: string | null = null;
    const peer = call.getPeer();
    open.add(call);
    metrics.streams.inc();
    const fail = (code: grpc.status, details: string) => failStream(call, node, code, details);
    call.on('data', (msg: WireAgentMessage) => {
      try {
        if (msg.hello) {
          if (node !== null) return fail(grpc.status.FAILED_PRECONDITION, 'hello sent twice');
          const n = msg.hello.node;
          if (typeof n !== 'string' || !NODE_RE.test(n)) return fail(grpc.status.INVALID_ARGUMENT, 'hello.node must be a Kubernetes node name');
          if (msg.hello.protocol !== PROTOCOL_REVISION) return fail(grpc.status.FAILED_PRECONDITION, `protocol revision ${msg.hello.protocol} is not ${PROTOCOL_REVISION}`);
          let keys: string[];
          try {
            keys = runningKeysFromWire(msg.hello.runningKeys, () => metrics.bounds.inc({ bound: 'running_keys' }));
          } catch (err) {
            if (err instanceof WireError) return fail(grpc.status.INVALID_ARGUMENT, `hello.${err.message}`);
            throw err;
          }
          node = n;
          running.set(n, new Set(keys));
          streamsOf.set(n, (streamsOf.get(n) ?? 0) + 1);
          metrics.lastContact.set({ node }, deps.now() / 1000);
          const sources = Array.isArray(msg.hello.sources) ? msg.hello.sources.slice(0, 32).map(forLog) : [];
          const agentVersion = forLog(msg.hello.agentVersion);
          if (agentVersion !== msg.hello.agentVersion || (Array.isArray(msg.hello.sources) && sources.some((v, i) => v !== msg.hello?.sources[i]))) metrics.bounds.inc({ bound: 'hello_field' });
          deps.nodes?.hello(n, { agentVersion, sources });
          logger.info({ node, peer, agentVersion, sources, runningKeys: keys.length }, 'agent connected');
          // Nothing more is read from the stream until its welcome is written: what the agent sends
          // next (it waits for the welcome; a hostile one may not) is handled after, as before.
          call.pause();
          welcome(call)
            .catch((err: unknown) => {
              logger.error({ err, node }, 'ingest failed');
              fail(grpc.status.INTERNAL, 'the collector could not commit the batch; it will be resent');
            })
            .finally(() => call.resume());
          return;
        }
        if (node === null) return fail(grpc.status.FAILED_PRECONDITION, 'the first message must be a hello');
        metrics.lastContact.set({ node }, deps.now() / 1000);
        if (msg.heartbeat) {
          const hb = msg.heartbeat;
          metrics.agentSpool.set({ node }, Number(hb.spooled) || 0);
          try {
            if (Array.isArray(hb.runningKeys)) running.set(node, new Set(runningKeysFromWire(hb.runningKeys, () => metrics.bounds.inc({ bound: 'running_keys' }))));
          } catch (err) {
            if (err instanceof WireError) return fail(grpc.status.INVALID_ARGUMENT, `heartbeat.${err.message}`);
            throw err;
          }
          if (hb.containers) takeReport(node, hb.containers);
          if (deps.nodes) deps.nodes.heartbeat(node, { spooled: Number(hb.spooled), spoolBytes: Number(hb.spoolBytes), lagMs: Number(hb.oldestSpooledAgeMs), spoolDropped: Number(hb.spoolDropped), watermark: Number(hb.watermarkMs) });
          return;
        }
        if (msg.goodbye) {
          deps.nodes?.goodbye(node);
          call.end();
          return;
        }
        deps.nodes?.contact(node);
        if (msg.batch) {
          if (closing) return fail(grpc.status.UNAVAILABLE, 'the collector is stopping; resend to another or later');
          const b = msg.batch;
          const items = (b.deviations?.length ?? 0) + (b.baselines?.length ?? 0);
          if (items > options.maxBatchItems) return fail(grpc.status.RESOURCE_EXHAUSTED, `batch of ${items} records; at most ${options.maxBatchItems}`);
          const endTimer = metrics.commitSeconds.startTimer();
          const deviations: PreparedDeviation[] = [];
          const sightings: ImageSighting[] = [];
          const snapshots: BaselineSnapshot[] = [];
          const receivedAt = deps.now();
          const latest = receivedAt + MAX_FUTURE_SKEW_MS;
          const stream = node;
          // `event.process.args` itself: too many arguments; any other field: one value too long.
          const onCut = (field: string) => metrics.bounds.inc({ bound: field === 'event.process.args' ? 'args_count' : 'arg_length' });
          let rejected = 0;
          const reject = (err: unknown, what: string) => {
            if (!(err instanceof WireError)) throw err;
            rejected++;
            metrics.rejected.inc({ field: err.field.replace(/\[\d+\]/g, '[]') });
            logger.warn({ node, what, field: err.field, error: err.message }, 'rejected an invalid record');
          };
          for (const w of b.deviations ?? []) {
            try {
              const d = deviationFromWire(w, onCut);
              // An agent speaks only for its own node.
              if (d.event.node !== node) throw new WireError('event.node', `is ${JSON.stringify(d.event.node.slice(0, 64))}, not the stream's node`);
              if (d.event.time > latest) {
                // Kept and visible, at the time it arrived; the node's clock moves nothing.
                d.reportedTime = d.event.time;
                d.event.time = receivedAt;
                metrics.bounds.inc({ bound: 'event_time_skew' });
              }
              deviations.push(prepare(d, writer.sameThread));
              const seen = sightingOf(d, node);
              if (seen) sightings.push(seen);
            } catch (err) {
              reject(err, 'deviation');
            }
          }
          const keys = running.get(node);
          for (const w of b.baselines ?? []) {
            try {
              let refusedEntries = 0;
              const s = snapshotFromWire(w, (reason, err) => {
                refusedEntries++;
                refuse(stream, reason);
                if (refusedEntries <= 3) logger.warn({ node: stream, key: forLog(w.key), reason, field: err.field, error: err.message }, 'refused a baseline entry');
              });
              if (refusedEntries > 0) rejected += refusedEntries;
              if (!keys?.has(s.key)) {
                // Provenance: a node teaches only keys it reported running containers of.
                refuse(stream, 'foreign_key');
                rejected++;
                logger.warn({ node: stream, key: forLog(s.key) }, 'refused a baseline delta for a key this node did not report running');
                continue;
              }
              if (s.windowStart > latest || s.enforcingSince > latest) {
                refuse(stream, 'time_skew');
                rejected++;
                logger.warn({ node: stream, key: forLog(s.key), windowStart: s.windowStart, enforcingSince: s.enforcingSince }, 'refused a baseline delta whose window is ahead of the collector clock');
                continue;
              }
              for (const e of s.entries) {
                if (e.firstSeen <= latest && e.lastSeen <= latest) continue;
                metrics.bounds.inc({ bound: 'entry_time_skew' });
                e.firstSeen = Math.min(e.firstSeen, receivedAt);
                e.lastSeen = Math.min(e.lastSeen, receivedAt);
              }
              snapshots.push(s);
            } catch (err) {
              reject(err, 'baseline');
            }
          }
          // Committed with whatever other batches arrived meanwhile (group commit), acknowledged after.
          // The next turn of the event loop: batches read in this one join the same commit.
          queue.push({ batch: { node, deviations, deltas: snapshots }, call, batchId: b.batchId, rejected, endTimer, sightings });
          if (!scheduled && inFlight < writer.pipeline) {
            scheduled = true;
            setImmediate(commitQueued);
          }
          return;
        }
        return fail(grpc.status.INVALID_ARGUMENT, 'empty message');
      } catch (err) {
        logger.error({ err, node }, 'ingest failed');
        fail(grpc.status.INTERNAL, 'the collector could not commit the batch; it will be resent');
      }
    });
    const done = () => {
      connected.delete(call);
      if (!open.delete(call)) return;
      metrics.streams.dec();
      if (node) {
        const left = (streamsOf.get(node) ?? 1) - 1;
        if (left > 0) streamsOf.set(node, left);
        else {
          streamsOf.delete(node);
          running.delete(node);
        }
        deps.nodes?.disconnected(node);
        logger.info({ node }, 'agent disconnected');
      }
    };
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('error', done);
    call.on('close', done);
    call.on('cancelled', done);
  }

  return {
    implementation: { connect },
    service: agentService().service,
    async closeAll() {
      closing = true;
      // What was accepted is committed and acknowledged before the streams end; welcomes and pushes
      // under way finish their reads before the store closes.
      await drained();
      await turns.idle();
      if (sightingsTimer) clearTimeout(sightingsTimer);
      await flushSightings();
      await Promise.all(reportsInFlight);
      for (const call of open) call.end();
    },
    pushBaselines,
  };
}
