/**
 * One SBOM document parsed off the collector's event loop (see parse-in-worker.ts): the text comes
 * in as workerData, the result or the refusal goes back as one message, then the thread ends.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { parseSbom, SbomError } from '../../core/sbom/parse.js';

if (!parentPort) throw new Error('sbom/parse-worker.js runs as a worker thread of the collector');
try {
  const s = parseSbom(workerData as string);
  parentPort.postMessage({ ok: true, sbom: { ...s, files: [...s.files] } });
} catch (err) {
  parentPort.postMessage(err instanceof SbomError ? { ok: false, code: err.code, message: err.message } : { ok: false, code: 'invalid_document', message: 'the document could not be read' });
}
