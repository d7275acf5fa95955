/**
 * The package behind a notification's executable (issue 22), added when the outbox worker delivers
 * it: the notification itself is written inside the ingest transaction, where an SBOM lookup would
 * slow every batch, so the lookup happens here, off the hot path. It is the alert view's lookup
 * (links.ts alertSbom: the SBOM of the digest its latest deviation ran in, else the repository's
 * latest), remembered per alert for a short while (a trigger goes to several sinks, and its
 * acknowledge and resolve follow). A page never waits on the SBOM: a failed or slow lookup sends the
 * notification without the package.
 */
import type { Logger } from '../../runtime/logger.js';
import type { Notification, NotificationPackage } from '../sinks/sink.js';
import type { Async } from '../store/async.js';
import type { DeviationStore, SbomStore } from '../store/store.js';
import { alertSbom } from './links.js';

/**
 * How long one alert's package is remembered: past the default Alertmanager re-send interval (1 min),
 * so each round finds the previous round's lookups; an SBOM imported meanwhile shows within 5 minutes.
 */
export const PACKAGE_CACHE_MS = 300_000;
/**
 * Alerts remembered at once, the least recently used forgotten first: more than a re-send round
 * (up to 2,000 alerts, alerting/resend.ts) plus the triggers delivered meanwhile; a smaller cache
 * forgets each alert before the next round asks for it again.
 */
export const PACKAGE_CACHE_SIZE = 4_096;
/** The longest a delivery waits for the lookup before it goes without the package. */
export const PACKAGE_LOOKUP_TIMEOUT_MS = 5_000;

/** What the lookup reads. */
export interface PackageLookupDeps {
  store: Async<Pick<SbomStore, 'getSbom' | 'latestSbom' | 'sbomFiles'> & Pick<DeviationStore, 'listDeviations'>>;
  logger: Logger;
  now: () => number;
}

/** `n` with its `package`, when a process alert's image has an SBOM; `n` as it was otherwise. */
export type AddPackage = (n: Notification) => Promise<Notification>;

/** The lookup, with its cache. */
export function createPackageLookup(deps: PackageLookupDeps): AddPackage {
  const cache = new Map<string, { at: number; pkg: NotificationPackage | null }>();

  async function lookUp(n: Notification): Promise<NotificationPackage | null> {
    if (n.entry?.type !== 'process') return null;
    const latest = await deps.store.listDeviations({ limit: 1, fingerprint: n.fingerprint });
    const link = await alertSbom(deps.store, { entry: n.entry, image: n.image }, latest.items[0]?.deviation.event.container?.image);
    if (!link) return null;
    const p = link.package;
    return { text: link.text, status: link.status, name: p?.name ?? '', version: p?.version ?? '', purl: p?.purl ?? '', notInSbom: link.notInSbom, sbom: link.digest, note: link.note };
  }

  function remember(fingerprint: string, pkg: NotificationPackage | null): void {
    cache.delete(fingerprint);
    cache.set(fingerprint, { at: deps.now(), pkg });
    if (cache.size > PACKAGE_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
  }

  return async (n) => {
    if (n.entry?.type !== 'process') return n;
    const hit = cache.get(n.fingerprint);
    let pkg: NotificationPackage | null;
    if (hit && deps.now() - hit.at < PACKAGE_CACHE_MS) {
      pkg = hit.pkg;
      // Used again: to the back of the eviction order (its time stays: it still expires).
      cache.delete(n.fingerprint);
      cache.set(n.fingerprint, hit);
    } else {
      try {
        pkg = await withTimeout(lookUp(n), PACKAGE_LOOKUP_TIMEOUT_MS);
      } catch (err) {
        deps.logger.warn({ err, alert: n.fingerprint }, 'could not look up the package of an alert: notifying without it');
        return n;
      }
      remember(n.fingerprint, pkg);
    }
    return pkg ? { ...n, package: pkg } : n;
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the SBOM lookup took over ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
