/**
 * What every source's decoder shares: the result of decoding one record (an event, or a rejection
 * with its reason), the closed sets of reasons (metric labels), the field error a decoder throws
 * while reading a record and the rejection it becomes, the bounds on fields, and the RFC 3339 time
 * reader. Each decoder (falco-event.ts, tetragon-event.ts, ebpf/decode.ts) imports this and nothing of
 * another decoder.
 */
import type { ActivityEvent } from '../../core/event.js';

/** Why a record was not turned into an event. `unsupported` is a valid record of no interest (counted apart). */
export type RejectReason =
  | 'not_json'
  | 'not_object'
  | 'invalid_utf8'
  | 'too_large'
  | 'missing_field'
  | 'wrong_type'
  | 'bad_time'
  | 'bad_address'
  | 'unsupported';

/**
 * Why a valid record of no interest (`unsupported`) was ignored: a metric label, so a closed set.
 * `other_source` another Falco source (k8s_audit, plugins) or internal event; `event_type` a syscall
 * or Tetragon event kind Driftwatch does not learn; `file_event` a stock rule about a file;
 * `no_activity` neither a process start nor a connection; `protocol` / `family` a socket that is
 * not TCP or UDP over IP; `process_exit`, `process_close`, `socket_stats` the end of something
 * already learned from its start; `kprobe_function` a kprobe of another function.
 */
export type IgnoreReason = 'other_source' | 'event_type' | 'file_event' | 'no_activity' | 'protocol' | 'family' | 'process_exit' | 'process_close' | 'socket_stats' | 'kprobe_function';

/** Every ignore reason, in a stable order (metric labels, tests). */
export const IGNORE_REASONS: readonly IgnoreReason[] = ['other_source', 'event_type', 'file_event', 'no_activity', 'protocol', 'family', 'process_exit', 'process_close', 'socket_stats', 'kprobe_function'];

/** A rejected record: the reason (a metric label), a detail for the log, and for `unsupported` why it was ignored. */
export interface Rejected {
  reject: RejectReason;
  detail: string;
  ignore?: IgnoreReason;
}

/** Result of parsing one record. */
export type ParseResult = ActivityEvent | Rejected;

/** True when a parse result is a rejection. */
export function isRejected(r: ParseResult): r is Rejected {
  return (r as Rejected).reject !== undefined;
}

/** Where the event came from, stamped on every event. */
export interface ParseContext {
  node: string;
  source: string;
}

/** Bounds on fields taken from a record (Falco's and Tetragon's alike). */
export const FIELD_LIMITS = Object.freeze({
  path: 4096,
  name: 256,
  cmdline: 16_384,
  args: 256,
  labels: 64,
});

/**
 * Thrown by a decoder's field readers when a record cannot become an event; caught once per record
 * and returned as its rejection (rejectionOf). A class, not an Error: no stack is captured per bad record.
 */
export class FieldError {
  constructor(
    readonly reject: RejectReason,
    readonly detail: string,
    readonly ignore?: IgnoreReason,
  ) {}
}

/** A record of no interest, with why. */
export function ignored(ignore: IgnoreReason, detail: string): FieldError {
  return new FieldError('unsupported', detail, ignore);
}

/** The rejection a field error stands for. */
export function rejectionOf(err: FieldError): Rejected {
  return err.ignore ? { reject: err.reject, detail: err.detail, ignore: err.ignore } : { reject: err.reject, detail: err.detail };
}

// Falco's `time` is always `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`; consecutive events share their
// second, so the second is parsed once and only the milliseconds per event.
let cachedSecond = '';
let cachedSecondMs = NaN;

/** Parse an RFC 3339 time (Falco writes nanoseconds) into ms; NaN when it is not one. */
export function parseTime(v: unknown): number {
  if (typeof v !== 'string' || v.length < 20 || v.length > 40 || v.charCodeAt(4) !== 45 || v.charCodeAt(10) !== 84) return NaN;
  if (v.length === 30 && v.charCodeAt(19) === 46 && v.charCodeAt(29) === 90) {
    const d0 = v.charCodeAt(20) - 48;
    const d1 = v.charCodeAt(21) - 48;
    const d2 = v.charCodeAt(22) - 48;
    let digits = d0 >= 0 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9;
    for (let i = 23; i < 29 && digits; i++) {
      const c = v.charCodeAt(i);
      if (c < 48 || c > 57) digits = false;
    }
    if (digits) {
      if (!v.startsWith(cachedSecond) || cachedSecond === '') {
        cachedSecond = v.slice(0, 19);
        cachedSecondMs = Date.parse(`${cachedSecond}Z`);
      }
      return cachedSecondMs + d0 * 100 + d1 * 10 + d2;
    }
  }
  return Date.parse(v);
}
