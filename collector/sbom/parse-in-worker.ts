/**
 * Parsing an SBOM in a worker thread of its own: a 40 MiB document takes seconds of JSON.parse, which
 * on the event loop would stall the API and (on PostgreSQL) ingest, and its memory is capped by the
 * thread's heap limit, so a hostile document that parses into too much ends that thread, not the
 * collector.
 */
import { Worker } from 'node:worker_threads';
import { SbomError, type ParsedSbom } from '../../core/sbom/parse.js';

/** Heap of one parse thread, in MiB: a 64 MiB document parses in well under this. */
const PARSE_HEAP_MB = 1024;

type Answer = { ok: true; sbom: Omit<ParsedSbom, 'files'> & { files: [string, number][] } } | { ok: false; code: SbomError['code']; message: string };

/** Parse `text` in a new worker thread; rejects with SbomError like parseSbom. */
export function parseSbomInWorker(text: string): Promise<ParsedSbom> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./parse-worker.js', import.meta.url), { workerData: text, name: 'driftwatch-sbom-parse', resourceLimits: { maxOldGenerationSizeMb: PARSE_HEAP_MB } });
    let settled = false;
    worker.once('message', (a: Answer) => {
      settled = true;
      if (a.ok) resolve({ ...a.sbom, files: new Map(a.sbom.files) });
      else reject(new SbomError(a.code, a.message));
    });
    worker.once('error', (err) => {
      if (settled) return;
      settled = true;
      // ERR_WORKER_OUT_OF_MEMORY: the document parses into more than a thread may hold.
      reject((err as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY' ? new SbomError('too_large', `the document needs more than ${PARSE_HEAP_MB} MiB to read`) : err);
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`the SBOM parse thread stopped (exit code ${code})`));
    });
  });
}
