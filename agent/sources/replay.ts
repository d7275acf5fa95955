/**
 * `replay:FILE[?speed=N]` — reads a recorded stream once, start to end, for demos and tests. Each
 * line may be Falco JSON or Tetragon JSON (told apart per line, so a file may mix them). Without
 * speed (or speed=0) it reads as fast as it can; with speed=N it paces events by their own
 * timestamps, N times faster than they happened. It saves no position: a replay always starts over.
 */
import { access } from 'node:fs/promises';
import type { ActivityEvent } from '../../core/event.js';
import { createFileTail } from './falco-file.js';
import { falcoRecordToEvent } from './falco-event.js';
import type { ParseContext, ParseResult } from './record.js';
import { SourceSpecError, sleep, type Source, type SourceBatch, type SourceContext, type SourceFactory } from './source.js';
import { isTetragonRecord, tetragonRecordToEvent } from './tetragon-event.js';

/** Parse one line of either format: Tetragon when it carries a Tetragon event key, else Falco. */
export function parseRecordedLine(line: string, ctx: ParseContext): ParseResult {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return { reject: 'not_json', detail: 'line is not JSON' };
  }
  if (typeof record === 'object' && record !== null && !Array.isArray(record) && isTetragonRecord(record as Record<string, unknown>)) {
    return tetragonRecordToEvent(record, ctx);
  }
  return falcoRecordToEvent(record, ctx);
}

/** Split `FILE[?speed=N]`; throws SourceSpecError for a bad speed. */
export function parseReplayArgument(argument: string): { path: string; speed: number } {
  const q = argument.lastIndexOf('?');
  const path = q === -1 ? argument : argument.slice(0, q);
  if (path === '' || path.includes('\0')) throw new SourceSpecError('replay needs a file: --source replay:/path/events.jsonl[?speed=N]');
  if (q === -1) return { path, speed: 0 };
  const params = new URLSearchParams(argument.slice(q + 1));
  for (const key of params.keys()) if (key !== 'speed') throw new SourceSpecError(`replay: unknown option ${JSON.stringify(key)}; one of: speed`);
  const text = params.get('speed') ?? '0';
  const speed = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !Number.isFinite(speed) || speed > 1e6) throw new SourceSpecError(`replay: speed must be a number from 0 (as fast as possible) to 1000000, not ${JSON.stringify(text)}`);
  return { path, speed };
}

/** Create a replay of `path` at `speed` (0: unpaced). */
export function createReplaySource(name: string, path: string, speed: number, ctx: SourceContext): Source {
  const tail = createFileTail(name, path, { ...ctx, savedPosition: undefined }, { follow: false, parse: parseRecordedLine });
  return {
    name,
    async *batches(signal: AbortSignal): AsyncGenerator<SourceBatch> {
      // A recording that is not there is an error, not an empty replay (the file tail would wait or end quietly).
      await access(path);
      let firstEventTime = NaN;
      let startedAt = 0;
      for await (const batch of tail.batches(signal)) {
        if (speed <= 0) {
          if (batch.events.length > 0) yield { events: batch.events };
          continue;
        }
        let ready: ActivityEvent[] = [];
        for (const event of batch.events) {
          if (Number.isNaN(firstEventTime)) {
            firstEventTime = event.time;
            startedAt = performance.now();
          }
          const wait = startedAt + (event.time - firstEventTime) / speed - performance.now();
          // Events out of order (or on time) go at once; only a future one waits.
          if (wait > 1) {
            if (ready.length > 0) yield { events: ready };
            ready = [];
            await sleep(wait, signal);
            if (signal.aborted) return;
          }
          ready.push(event);
        }
        if (ready.length > 0) yield { events: ready };
      }
    },
  };
}

/** `replay:FILE[?speed=N]`. */
export const replaySource: SourceFactory = {
  scheme: 'replay',
  usage: 'replay:FILE[?speed=N]  read a recorded Falco or Tetragon JSON file once; speed=N paces by event time N× faster (0 or absent: as fast as possible)',
  create(argument, ctx) {
    const { path, speed } = parseReplayArgument(argument);
    return createReplaySource(`replay:${argument}`, path, speed, ctx);
  },
};
