/**
 * `ebpf-file:FILE[?boot=TIME]` — reads a recording of the ebpf source's bpftrace output once, start
 * to end: the lines `bpftrace -f json` prints for the agent's program (program.ts), decoded by
 * the live source's decoder (decode.ts). For replaying a node's capture into a collector, for tests,
 * and for the detection-quality bench.
 *
 * What a recording cannot carry, and what is done instead:
 * - Wall-clock time. bpftrace prints CLOCK_MONOTONIC nanoseconds; `boot` is the wall-clock time at
 *   which that clock read 0 on the node that recorded (its boot time, RFC 3339). Without it, this
 *   host's own offset is used, which is right for a capture made on this host since its last boot.
 * - The processes. Their pids are not this host's, so nothing is read from /proc: the container comes
 *   from the cgroup leaf alone (a leaf that names no container, as a nested cgroup inside one, is a
 *   host event), and a process's executable is the one its exec line in the recording gave ('' when
 *   the recording does not hold that exec).
 * The exec assembly window, the UDP deduplication and DNS names' TTLs run on the recording's own
 * clock (the newest time read), so a recording gives the same events however fast it is read. No
 * position is saved: a replay always starts over.
 */
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import type { CgroupOwner } from '../../attribution/cgroup.js';
import { createLineSplitter } from '../lines.js';
import { SourceSpecError, type Source, type SourceBatch, type SourceContext, type SourceFactory } from '../source.js';
import { EBPF_LIMITS, createEbpfDecoder, monotonicToEpoch, type EbpfDecoder, type ProcessResolver } from './decode.js';
import { ownerOfLeaves } from './proc.js';

/** Bytes read from the recording at a time. */
const CHUNK_BYTES = 256 * 1024;

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** Split `FILE[?boot=TIME]`; throws SourceSpecError for anything else. `bootMs` is null when not given. */
export function parseEbpfFileArgument(argument: string): { path: string; bootMs: number | null } {
  const q = argument.lastIndexOf('?');
  const path = q === -1 ? argument : argument.slice(0, q);
  if (path === '' || path.includes('\0')) throw new SourceSpecError('ebpf-file needs a file: --source ebpf-file:/path/capture.jsonl[?boot=2026-11-20T06:00:00Z]');
  if (q === -1) return { path, bootMs: null };
  // Not URLSearchParams: it would read the `+` of a time zone offset as a space.
  const query = argument.slice(q + 1);
  const eq = query.indexOf('=');
  const key = eq === -1 ? query : query.slice(0, eq);
  if (key !== 'boot') throw new SourceSpecError(`ebpf-file: unknown option ${JSON.stringify(key.slice(0, 64))}; the one option is boot=TIME`);
  const text = query.slice(eq + 1);
  // Milliseconds are what events carry: a longer fraction is cut to them.
  const bootMs = RFC3339.test(text) ? Date.parse(text.replace(/(\.\d{3})\d+/, '$1')) : NaN;
  if (!Number.isFinite(bootMs)) {
    throw new SourceSpecError(`ebpf-file: boot must be an RFC 3339 time (the recording node's boot, when its monotonic clock read 0), as 2026-11-20T06:00:00Z, not ${JSON.stringify(text.slice(0, 64))}`);
  }
  return { path, bootMs };
}

/** The owner of a recorded process from its cgroup leaf alone, and no executables: the recording's processes are not this host's. */
export const CAPTURE_RESOLVER: ProcessResolver = Object.freeze({
  owner: (_pid: number, _cgroupId: string, leaves: readonly string[]): CgroupOwner => ownerOfLeaves(leaves),
  exe: () => '',
});

/** A decoder of recorded lines whose clock starts at `bootMs` and whose `now` is the newest time read. */
export function createCaptureDecoder(ctx: SourceContext, source: string, bootMs: number): { decoder: EbpfDecoder; now(): number } {
  const clock = (ns: number) => Math.floor(ns / 1e6) + bootMs;
  const now = () => clock(decoder.newestNs);
  const decoder: EbpfDecoder = createEbpfDecoder({ ctx, source, clock, resolver: CAPTURE_RESOLVER, now });
  return { decoder, now };
}

/** Create the source for `path`; `bootMs` null takes this host's boot. */
export function createEbpfFileSource(name: string, path: string, bootMs: number | null, ctx: SourceContext): Source {
  return {
    name,
    async *batches(signal: AbortSignal): AsyncGenerator<SourceBatch> {
      // A recording that is not there is an error, not an empty replay.
      await access(path);
      const { decoder, now } = createCaptureDecoder(ctx, name, bootMs ?? monotonicToEpoch()(0));
      const splitter = createLineSplitter(EBPF_LIMITS.line, {
        line: (text) => decoder.line(text),
        reject: (reason) => ctx.rejected(reason, 'bpftrace line'),
      });
      const stream = createReadStream(path, { highWaterMark: CHUNK_BYTES });
      const onAbort = () => stream.destroy();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        for await (const chunk of stream) {
          splitter.push(chunk as Buffer);
          decoder.expire(now(), false);
          const events = decoder.take();
          if (events.length > 0) yield { events };
        }
        splitter.end();
        // The end of the recording: an exec still missing lines is emitted with what arrived.
        decoder.expire(now(), true);
        const last = decoder.take();
        if (last.length > 0) yield { events: last };
      } catch (err) {
        if (!signal.aborted) throw err;
      } finally {
        signal.removeEventListener('abort', onAbort);
        stream.destroy();
      }
    },
  };
}

/** `ebpf-file:FILE[?boot=TIME]`. */
export const ebpfFileSource: SourceFactory = {
  scheme: 'ebpf-file',
  usage: 'ebpf-file:FILE[?boot=TIME]  read a recording of the ebpf source\'s bpftrace output (bpftrace -f json) once; boot: when the recording node\'s monotonic clock read 0 (RFC 3339; default this host\'s boot)',
  create(argument, ctx) {
    const { path, bootMs } = parseEbpfFileArgument(argument);
    return createEbpfFileSource(`ebpf-file:${argument}`, path, bootMs, ctx);
  },
};
