/**
 * `falco-file:PATH` — follows a file written by Falco's file_output like `tail -F`: from the start
 * on first run (or from the saved position), then appends; a rotated file (new inode at the path) is
 * read to its end before the new one is opened from offset 0; a truncated file is read again from 0.
 *
 * Wake-ups come from fs.watch on the directory (inotify), with polling as the fallback because
 * watches are unreliable on some volume types (hostPath over overlay, NFS).
 */
import { watch, type FSWatcher } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { createFalcoLineDecoder, type LineParser } from './falco-lines.js';
import { SourceSpecError, sleep, type Source, type SourceBatch, type SourceContext, type SourceFactory } from './source.js';

/** Where in which file the next unread line starts. */
export interface FilePosition {
  ino: number;
  offset: number;
}

/** Options for tailing. */
export interface FileTailOptions {
  /** Keep following after EOF (tail -F). When false, stop at the end of the file. */
  follow: boolean;
  /** Longest wait between checks for new data when no watch event arrives. */
  pollMs: number;
  /** Bytes read per chunk. */
  chunkBytes: number;
  /** Parser of one line; Falco JSON unless a source of another format shares this tail. */
  parse?: LineParser;
}

const DEFAULTS: FileTailOptions = { follow: true, pollMs: 250, chunkBytes: 256 * 1024 };

function isPosition(v: unknown): v is FilePosition {
  return typeof v === 'object' && v !== null && Number.isSafeInteger((v as FilePosition).ino) && Number.isSafeInteger((v as FilePosition).offset);
}

/** Wakes a waiting reader when anything happens to `file` in its directory. */
function watchFile(path: string, logger: SourceContext['logger']): { wait(ms: number, signal: AbortSignal): Promise<void>; close(): void } {
  let wake: (() => void) | null = null;
  let watcher: FSWatcher | null = null;
  const name = basename(path);
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, changed) => {
      if (changed === null || changed === name || changed.startsWith(name)) wake?.();
    });
    watcher.on('error', () => {
      watcher?.close();
      watcher = null;
    });
  } catch (err) {
    logger.debug({ err }, 'fs.watch unavailable, polling only');
  }
  return {
    async wait(ms, signal) {
      const ac = new AbortController();
      const onAbort = () => ac.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      wake = () => ac.abort();
      await sleep(ms, ac.signal);
      wake = null;
      signal.removeEventListener('abort', onAbort);
    },
    close() {
      watcher?.close();
    },
  };
}

/** Create a tailing source for `path`. */
export function createFileTail(name: string, path: string, ctx: SourceContext, options: Partial<FileTailOptions> = {}): Source {
  const opts = { ...DEFAULTS, ...options };
  return {
    name,
    async *batches(signal: AbortSignal): AsyncGenerator<SourceBatch> {
      const log = ctx.logger;
      const waiter = watchFile(path, log);
      let saved = isPosition(ctx.savedPosition) ? ctx.savedPosition : undefined;
      let handle: FileHandle | null = null;
      // Two buffers: while one chunk is parsed, the next is already being read (the read runs on
      // libuv's thread pool; without this the source idles for a round trip per chunk).
      const bufs: [Buffer, Buffer] = [Buffer.allocUnsafe(opts.chunkBytes), Buffer.allocUnsafe(opts.chunkBytes)];
      let cur: 0 | 1 = 0;
      let prefetch: Promise<{ bytesRead: number }> | null = null;
      try {
        while (!signal.aborted) {
          // Open the file, waiting for it to appear.
          let ino: number;
          try {
            handle = await open(path, 'r');
            ino = (await handle.stat()).ino;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
            if (!opts.follow) return;
            await waiter.wait(opts.pollMs, signal);
            continue;
          }
          let offset = 0;
          if (saved && saved.ino === ino) {
            const size = (await handle.stat()).size;
            offset = saved.offset <= size ? saved.offset : 0;
            if (offset > 0) log.info({ path, offset }, 'resuming from saved position');
          }
          saved = undefined;
          const decoder = createFalcoLineDecoder(name, ctx, opts.parse);
          // mtime at the last end-of-file check after which nothing was read: a later mtime with no
          // growth means the file was truncated and refilled (possibly to the same size) in between.
          let quietMtime = -1;
          // A newer mtime without growth seen at the previous check (-1: none): see below.
          let suspectMtime = -1;
          // Read this inode until it is rotated away (or the stream ends).
          for (;;) {
            if (signal.aborted) return;
            const reading = prefetch ?? handle.read(bufs[cur], 0, opts.chunkBytes, offset);
            prefetch = null;
            const { bytesRead } = await reading;
            const buf = bufs[cur];
            if (bytesRead > 0) {
              offset += bytesRead;
              // Caught up (a short read): remember the mtime, to notice a same-size rewrite later.
              // A full buffer means more is waiting; no stat then (one thread-pool trip less per chunk).
              suspectMtime = -1;
              if (bytesRead < buf.length) {
                const after = await handle.stat();
                quietMtime = after.size === offset ? after.mtimeMs : -1;
              } else {
                quietMtime = -1;
                // The decoder copies what it keeps, so the other buffer is free: read ahead into it.
                cur = cur === 0 ? 1 : 0;
                prefetch = handle.read(bufs[cur], 0, opts.chunkBytes, offset);
              }
              const events = decoder.push(buf.subarray(0, bytesRead));
              // The saved position is always a line boundary: the bytes of an incomplete line are read again.
              yield { events, position: { ino, offset: offset - decoder.pending } satisfies FilePosition };
              continue;
            }
            if (!opts.follow) {
              const events = decoder.end();
              if (events.length > 0) yield { events, position: { ino, offset } satisfies FilePosition };
              return;
            }
            const now = await stat(path).catch(() => null);
            // A same-size rewrite shows as a newer mtime with no growth. A write in progress can look the
            // same for a moment (the kernel updates mtime before size), so it counts only when a
            // second look, one poll later, still sees that mtime and that size.
            const stillSized = now !== null && now.ino === ino && now.size === offset && quietMtime !== -1 && now.mtimeMs !== quietMtime;
            const rewritten = stillSized && suspectMtime === now.mtimeMs;
            suspectMtime = stillSized ? now.mtimeMs : -1;
            if (now && now.ino === ino && (now.size < offset || rewritten)) {
              log.warn({ path, offset, size: now.size }, 'file truncated, reading from the start');
              offset = 0;
              quietMtime = -1;
              suspectMtime = -1;
              decoder.end();
              continue;
            }
            if (now && now.ino === ino && now.size === offset && !stillSized) quietMtime = now.mtimeMs;
            if (!now || now.ino !== ino) {
              // Rotated: this inode is fully read (we just hit its end); move to the new file.
              const events = decoder.end();
              if (events.length > 0) yield { events, position: { ino, offset } satisfies FilePosition };
              log.info({ path }, 'file rotated, following the new file');
              break;
            }
            await waiter.wait(opts.pollMs, signal);
          }
          await handle.close();
          handle = null;
        }
      } finally {
        waiter.close();
        // Never close the file under a read still in flight.
        await prefetch?.catch(() => undefined);
        await handle?.close();
      }
    },
  };
}

/** `falco-file:PATH`. */
export const falcoFileSource: SourceFactory = {
  scheme: 'falco-file',
  usage: 'falco-file:PATH  follow a Falco file_output JSON file like tail -F (resumes from its saved position)',
  create(argument, ctx) {
    if (argument === '' || argument.includes('\0')) throw new SourceSpecError('falco-file needs a path: --source falco-file:/var/log/falco/events.json');
    return createFileTail(`falco-file:${argument}`, argument, ctx, { follow: ctx.follow });
  },
};
