/**
 * Recorded events for `driftwatch verify --events FILE`: Falco JSON lines, Tetragon's JSON export,
 * or a recording of the ebpf source's bpftrace output. The format is told from the file's first
 * records (or given); the file is read once, start to end, by the agent's own source for that
 * format (falco-file, tetragon-file, ebpf-file with `follow` off), so every record is decoded,
 * bounded and rejected exactly as on a node.
 *
 * Attribution as on a node: an event whose container's image is not known yet (Falco names it on a
 * container's later events) waits for a later event of the same container; at the end of the file
 * the ones still waiting are handed over as they are (no image: counted, not checked).
 */
import { open } from 'node:fs/promises';
import pino from 'pino';
import { createAttributor } from '../../agent/attribution/attributor.js';
import { ebpfFileSource } from '../../agent/sources/ebpf/file.js';
import { falcoFileSource } from '../../agent/sources/falco-file.js';
import type { IgnoreReason, RejectReason } from '../../agent/sources/record.js';
import type { SourceContext, SourceFactory } from '../../agent/sources/source.js';
import { tetragonFileSource } from '../../agent/sources/tetragon-file.js';
import type { ActivityEvent } from '../../core/event.js';

/** The formats `--format` takes. */
export const EVENT_FORMATS = ['falco', 'tetragon', 'ebpf'] as const;
export type EventFormat = (typeof EVENT_FORMATS)[number];

const FACTORIES: Record<EventFormat, SourceFactory> = { falco: falcoFileSource, tetragon: tetragonFileSource, ebpf: ebpfFileSource };

/** Bytes looked at to tell a file's format, and lines tried. */
const SNIFF_BYTES = 256 * 1024;
const SNIFF_LINES = 200;
/** Events held for their container's image at once; more are handed over without one. */
const MAX_HELD = 100_000;
/** Longest record read (as the agent's default). */
const MAX_RECORD_BYTES = 1024 * 1024;

/** Top-level keys of Tetragon's GetEventsResponse that carry an event (tetragon.proto, `oneof event`). */
const TETRAGON_KEYS = ['process_exec', 'process_exit', 'process_kprobe', 'process_tracepoint', 'process_uprobe', 'process_lsm', 'process_loader', 'process_throttle', 'process_connect', 'process_listen', 'process_close', 'process_accept'];

/** A file that cannot be read as events: a usage or environment error (exit 2). */
export class EventsFileError extends Error {
  readonly code = 'events_file' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EventsFileError';
  }
}

/** The format one parsed record is in, or null when it tells nothing. */
export function formatOfRecord(r: unknown): EventFormat | null {
  if (r === null || typeof r !== 'object' || Array.isArray(r)) return null;
  const o = r as Record<string, unknown>;
  // bpftrace -f json: {"type": "printf" | "attached_probes" | "lost_events", "data": …}
  if (typeof o.type === 'string' && 'data' in o && ['printf', 'attached_probes', 'lost_events'].includes(o.type)) return 'ebpf';
  if (TETRAGON_KEYS.some((k) => k in o)) return 'tetragon';
  // Falco's JSON output: rule, priority, output and (since 0.x) output_fields.
  if ('output_fields' in o || (typeof o.rule === 'string' && typeof o.output === 'string')) return 'falco';
  return null;
}

/** Tell the format of `path` from its first records; throws EventsFileError when none tells. */
export async function detectFormat(path: string): Promise<EventFormat> {
  let text: string;
  try {
    const handle = await open(path, 'r');
    try {
      const buf = Buffer.alloc(SNIFF_BYTES);
      const { bytesRead } = await handle.read(buf, 0, SNIFF_BYTES, 0);
      text = buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw new EventsFileError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  const lines = text.split('\n').slice(0, SNIFF_LINES);
  for (const line of lines) {
    if (line.trim() === '') continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      continue;
    }
    const format = formatOfRecord(record);
    if (format) return format;
  }
  throw new EventsFileError(`cannot tell the format of ${path} from its first ${lines.length} lines (no Falco, Tetragon or bpftrace JSON record); give --format falco|tetragon|ebpf`);
}

/** What reading skipped, by reason. */
export interface ReadCounts {
  /** Records that could not be read (not JSON, a wrong type, too large…), by reason. */
  malformed: Map<RejectReason, number>;
  /** Valid records of no interest (file events, process exits, other Falco sources…), by why. */
  unsupported: Map<IgnoreReason | 'other', number>;
  /** Events the kernel dropped before bpftrace read them (ebpf recordings). */
  lost: number;
}

/** An empty set of counts. */
export function emptyCounts(): ReadCounts {
  return { malformed: new Map(), unsupported: new Map(), lost: 0 };
}

/** A source context that counts instead of logging: verify prints its own summary. */
export function countingContext(counts: ReadCounts, node: string): SourceContext {
  return {
    node,
    logger: pino({ level: 'silent' }),
    maxRecordBytes: MAX_RECORD_BYTES,
    follow: false,
    savedPosition: undefined,
    rejected(reason, _detail, ignore) {
      if (reason === 'unsupported') counts.unsupported.set(ignore ?? 'other', (counts.unsupported.get(ignore ?? 'other') ?? 0) + 1);
      else counts.malformed.set(reason, (counts.malformed.get(reason) ?? 0) + 1);
    },
    counters: {
      lost: (n) => {
        counts.lost += n;
      },
      restarted: () => {},
    },
  };
}

/**
 * Read every event of `path` in `format` and hand each to `onEvent`, attributed as on a node.
 * Resolves when the file is read; throws EventsFileError when it cannot be opened.
 */
export async function readEventsFile(path: string, format: EventFormat, counts: ReadCounts, onEvent: (ev: ActivityEvent) => void): Promise<void> {
  const ctx = countingContext(counts, 'verify');
  let source;
  try {
    source = FACTORIES[format].create(path, ctx);
  } catch (err) {
    throw new EventsFileError(`${path}: ${(err as Error).message}`, { cause: err });
  }
  const attributor = createAttributor();
  const held: ActivityEvent[] = [];
  try {
    for await (const batch of source.batches(new AbortController().signal)) {
      for (const ev of batch.events) {
        if (attributor.attribute(ev) || held.length >= MAX_HELD) onEvent(ev);
        else held.push(ev);
      }
    }
  } catch (err) {
    throw new EventsFileError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  // The end of the recording: what a later event named is attributed now, the rest goes as it is.
  for (const ev of held) {
    attributor.attribute(ev);
    onEvent(ev);
  }
}
