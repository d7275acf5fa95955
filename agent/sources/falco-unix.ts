/**
 * `falco-unix:PATH` — a unix socket that Falco's program_output writes its JSON lines to, e.g.
 * `program: "socat - UNIX-CONNECT:/run/driftwatch/falco.sock"`. Any number of writers at once,
 * each connection with its own line decoder (lines of two writers never mix). The socket file is
 * mode 0660 (owner and group: Falco's group gets access, nobody else) and is removed on shutdown.
 *
 * Bounds: at most MAX_CONNECTIONS writers; when the pipeline falls behind, reading pauses (the
 * writers block, and Falco's own bounded outputs queue drops and counts) instead of buffering
 * without end.
 */
import { chmod, lstat, unlink } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import type { ActivityEvent } from '../../core/event.js';
import { createFalcoLineDecoder } from './falco-lines.js';
import { SourceSpecError, type Source, type SourceBatch, type SourceContext, type SourceFactory } from './source.js';

/** Most concurrent writers. */
const MAX_CONNECTIONS = 64;
/** Events held before reading pauses. */
const MAX_QUEUED = 10_000;
/** Most events handed over in one batch. */
const MAX_BATCH = 1_000;
/** Mode of the socket file: connecting needs write permission, so this admits owner and group. */
export const SOCKET_MODE = 0o660;

/** True when a process accepts connections on the socket at `path`. */
function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/** Remove a socket file left by an agent that did not shut down cleanly; refuse to remove anything else. */
async function removeStaleSocket(path: string): Promise<void> {
  const st = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (!st) return;
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; not replacing it`);
  if (await isListening(path)) throw new Error(`another process is listening on ${path}`);
  await unlink(path);
}

/** Create the listening source on `path`. */
export function createFalcoUnixListener(name: string, path: string, ctx: SourceContext): Source {
  return {
    name,
    async *batches(signal: AbortSignal): AsyncGenerator<SourceBatch> {
      const log = ctx.logger;
      let queue: ActivityEvent[] = [];
      let wake: (() => void) | null = null;
      let paused = false;
      const sockets = new Set<Socket>();
      const enqueue = (events: ActivityEvent[]) => {
        if (events.length === 0) return;
        for (const e of events) queue.push(e);
        if (queue.length >= MAX_QUEUED && !paused) {
          paused = true;
          for (const s of sockets) s.pause();
        }
        wake?.();
      };
      const server = createServer((socket) => {
        sockets.add(socket);
        if (paused) socket.pause();
        const decoder = createFalcoLineDecoder(name, ctx);
        log.debug({ writers: sockets.size }, 'writer connected');
        socket.on('data', (chunk: Buffer) => enqueue(decoder.push(chunk)));
        socket.on('end', () => enqueue(decoder.end()));
        socket.on('error', (err) => log.warn({ err: err.message }, 'writer connection failed'));
        socket.on('close', () => sockets.delete(socket));
      });
      server.maxConnections = MAX_CONNECTIONS;
      await removeStaleSocket(path);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      });
      // Between listen and chmod the file has the umask's mode (0755 under the usual 022: only the
      // owner can connect), so the window is narrower, never wider, than 0660.
      await chmod(path, SOCKET_MODE);
      log.info({ path, mode: SOCKET_MODE.toString(8) }, 'receiving Falco program_output on a unix socket');
      const onAbort = () => {
        server.close();
        wake?.();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        while (!signal.aborted) {
          if (queue.length === 0) {
            await new Promise<void>((resolve) => (wake = resolve));
            wake = null;
            continue;
          }
          const events = queue.length <= MAX_BATCH ? queue : queue.slice(0, MAX_BATCH);
          queue = queue.length <= MAX_BATCH ? [] : queue.slice(MAX_BATCH);
          if (paused && queue.length < MAX_QUEUED / 2) {
            paused = false;
            for (const s of sockets) s.resume();
          }
          yield { events };
        }
        // Shutting down: what was already received is handed over, not dropped.
        while (queue.length > 0) yield { events: queue.splice(0, MAX_BATCH) };
      } finally {
        signal.removeEventListener('abort', onAbort);
        server.close();
        for (const s of sockets) s.destroy();
        await unlink(path).catch(() => undefined);
      }
    },
  };
}

/** `falco-unix:PATH`. */
export const falcoUnixSource: SourceFactory = {
  scheme: 'falco-unix',
  usage: 'falco-unix:PATH  listen on a unix socket (mode 0660) for Falco program_output JSON lines, e.g. program: "socat - UNIX-CONNECT:PATH"',
  create(argument, ctx) {
    if (!argument.startsWith('/') || argument.includes('\0')) throw new SourceSpecError('falco-unix needs an absolute socket path: --source falco-unix:/run/driftwatch/falco.sock');
    // sun_path holds 107 bytes on Linux; a longer path would fail only at listen time.
    if (Buffer.byteLength(argument) > 107) throw new SourceSpecError(`falco-unix: socket path longer than 107 bytes: ${argument}`);
    return createFalcoUnixListener(`falco-unix:${argument}`, argument, ctx);
  },
};
