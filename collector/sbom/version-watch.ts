/**
 * The version-change notice when an image version first runs (issue 22): the inventory tells which
 * digests it recorded for the first time (once, by the write that inserted them, on whichever
 * replica); for each, when its SBOM adds or drops packages whose binaries a baseline of the
 * repository uses, `sbom.version-change` goes to the audit log, as an SBOM import that causes one
 * does. This runs after the inventory's write, never inside an ingest commit.
 */
import type { Logger } from '../../runtime/logger.js';
import type { AuditLog } from '../audit.js';
import type { Async } from '../store/async.js';
import type { BaselineStore, NewImageVersion, SbomStore } from '../store/store.js';
import { firstRunNotices, versionChangeRecord } from './links.js';

/** New versions with an SBOM compared from one write (each reads the repository's baselines); more are logged and left. */
export const MAX_FIRST_RUNS = 50;

/** What the watch reads and writes. */
export interface VersionWatchDeps {
  store: Async<Pick<SbomStore, 'getSbom' | 'latestSbom' | 'sbomFiles'> & Pick<BaselineStore, 'listBaselines' | 'getBaseline'>>;
  audit: Pick<AuditLog, 'record'>;
  logger: Logger;
}

/** Notice the versions that first ran; resolves to how many audit records it wrote. */
export async function noticeFirstRuns(deps: VersionWatchDeps, versions: readonly NewImageVersion[]): Promise<number> {
  // Most new versions have no SBOM (nothing to compare; an import later notices them): one read each.
  const withSbom: NewImageVersion[] = [];
  for (const v of versions) if (await deps.store.getSbom(v.digest)) withSbom.push(v);
  if (withSbom.length > MAX_FIRST_RUNS) deps.logger.warn({ versions: withSbom.length, checked: MAX_FIRST_RUNS }, 'more new image versions with an SBOM at once than are checked for SBOM changes');
  let written = 0;
  for (const v of withSbom.slice(0, MAX_FIRST_RUNS)) {
    for (const { key, notice } of await firstRunNotices(deps.store, v.repository, v.digest)) {
      if (!notice.addsOrDrops) continue;
      const { before, after } = versionChangeRecord(notice);
      await deps.audit.record({ actor: 'system', role: 'system', action: 'sbom.version-change', target: key, before, after });
      deps.logger.info({ key, digest: v.digest }, notice.text);
      written++;
    }
  }
  return written;
}
