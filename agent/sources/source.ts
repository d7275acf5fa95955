/**
 * The source interface: a named producer of batches of ActivityEvents. A batch is handed over when
 * the pipeline calls its `ack` (after its deviations are in the spool); a source that answers a
 * sender (Falco's http_output) answers then, and not before.
 */
import type { ActivityEvent } from '../../core/event.js';
import type { Logger } from '../../runtime/logger.js';
import type { IgnoreReason, RejectReason } from './record.js';
import type { DnsOutcome } from './ebpf/dns.js';

/** Events read together, with the source's position after them. */
export interface SourceBatch {
  events: ActivityEvent[];
  /** JSON-serializable position after this batch, saved with the baselines it produced. */
  position?: unknown;
  /** Called once the batch's deviations are durable in the spool. */
  ack?: () => void;
}

/** A producer of events. */
export interface Source {
  /** `scheme:argument`, unique per agent; names metrics and saved positions. */
  readonly name: string;
  /** Yield batches until the stream ends or `signal` aborts. */
  batches(signal: AbortSignal): AsyncIterable<SourceBatch>;
}

/** What a source gets from the agent. */
export interface SourceContext {
  node: string;
  logger: Logger;
  /** Longest record accepted, in bytes. */
  maxRecordBytes: number;
  /** Keep following live input (tail -F). False for finite runs (demo, replays): stop at the end. */
  follow: boolean;
  /** The position this source saved last time, if any. */
  savedPosition: unknown;
  /** Count (and rate-limited log) a record that was skipped; an `unsupported` one by why it was ignored. */
  rejected(reason: RejectReason, detail?: string, ignored?: IgnoreReason): void;
  /** Counters of the source's own machinery (absent in tests and benches that do not read them: see countersOf). */
  counters?: SourceCounters;
}

/** What a source counts about its transport, beyond records. */
export interface SourceCounters {
  /** Events the producer says it dropped before we could read them (bpftrace's lost perf events). */
  lost(n: number): void;
  /** The source reopened its stream (gRPC reconnect) or restarted its child process. */
  restarted(): void;
  /** A DNS answer traced by the ebpf source was learned, dropped, or evicted a name (ebpf/dns.ts). */
  dns?(outcome: DnsOutcome): void;
}

const NO_COUNTERS: SourceCounters = Object.freeze({ lost: () => {}, restarted: () => {} });

/** The context's counters, or ones that count nothing. */
export function countersOf(ctx: SourceContext): SourceCounters {
  return ctx.counters ?? NO_COUNTERS;
}

/** Builds a source from the argument after `scheme:` in `--source`. */
export interface SourceFactory {
  readonly scheme: string;
  /** One line for --help: the argument it takes and what it reads. */
  readonly usage: string;
  create(argument: string, ctx: SourceContext): Source;
}

/** Raised for a bad `--source` value; names the value and what is accepted. */
export class SourceSpecError extends Error {
  readonly code = 'invalid_source' as const;
  constructor(message: string) {
    super(message);
    this.name = 'SourceSpecError';
  }
}

/** Resolve after `ms`, or at once when `signal` aborts (runtime/sleep.ts; re-exported for the sources). */
export { sleep } from '../../runtime/sleep.js';
