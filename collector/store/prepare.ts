/**
 * Preparing deviations for the ingest slice (see PreparedDeviation): the gRPC thread works out each
 * row's columns and serializes its body once, so that the thread that commits does only SQL. No SQL
 * here: any store takes prepared deviations.
 */
import { deviationFingerprint, type Deviation } from '../../core/deviation.js';
import { entryId } from '../../core/entry.js';
import type { PreparedDeviation } from './store.js';

/**
 * Prepares deviations for the store. Fingerprints are cached by (key, entry):
 * a storm repeats a few fingerprints, each a sha256. Bounded. `keep` attaches the deviation itself
 * (same thread: the store then never parses the body back).
 */
export function createDeviationPreparer(): (d: Deviation, keep?: boolean) => PreparedDeviation {
  const cache = new Map<string, { fingerprint: string; entryId: string }>();
  return (d, keep = false) => {
    const id = entryId(d.entry);
    const text = `${d.reason === 'drift' ? 'drift|' : ''}${d.key}\n${id}`;
    let fp = cache.get(text);
    if (fp === undefined) {
      fp = { fingerprint: deviationFingerprint(d), entryId: id };
      if (cache.size >= 50_000) cache.clear();
      cache.set(text, fp);
    }
    const ev = d.event;
    const pod = ev.pod ? `${ev.pod.namespace}/${ev.pod.name}` : '';
    return { id: d.id, fingerprint: fp.fingerprint, entryId: id, key: d.key, kind: ev.kind, time: ev.time, node: ev.node, pod, body: JSON.stringify(d), deviation: keep ? d : undefined, ...(d.reason === 'drift' ? { drift: true } : {}) };
  };
}

/**
 * Whether `d` is no news because the cluster baseline already knows its entry (`known`): dropped
 * before it is stored. Never for drift — a binary not from the image alerts whatever the baseline
 * knows of its path. Both stores decide with this, on every ingest path.
 */
export function knownToCluster(d: PreparedDeviation, known: boolean): boolean {
  return known && d.drift !== true;
}
