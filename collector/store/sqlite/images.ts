/**
 * The image inventory slice (issue 21): each node's latest container report replaces its previous one
 * (unless older), and every version it lists is recorded as seen, with its places (bounded per
 * version by MAX_IMAGE_PLACES, per node and version by MAX_IMAGE_PLACES_PER_NODE); deviations' images
 * are recorded as seen too. New versions are bounded per write, per node and hour, per repository
 * (the oldest not running is forgotten) and in all (image-view.ts's admitNewVersions). What runs now is read
 * from the fresh reports of nodes neither silent nor quarantined; the view is image-view.ts's.
 */
import type { ImageSighting } from '../../../core/inventory.js';
import {
  addBounds,
  addedByNode,
  admitNewVersions,
  decodeImageCursor,
  hourOf,
  encodeImageCursor,
  groupSightings,
  imageDetail,
  imageSummaries,
  runningSet,
  sightingsOfReport,
  type PlaceRow,
  type RunningRow,
  type SightedVersion,
  type VersionRow,
} from '../image-view.js';
import {
  MAX_IMAGE_PLACES,
  MAX_IMAGE_PLACES_PER_NODE,
  MAX_PLACES_READ,
  MAX_VERSIONS_PER_REPOSITORY,
  MAX_VERSIONS_READ,
  type ImageStore,
  type InventoryBound,
  type NewImageVersion,
  type RecordedReport,
  type RecordedSightings,
} from '../store.js';
import { writeTransaction, type Db } from './db.js';

/** Containers of fresh reports from nodes neither quarantined nor silent (`@fresh`: the oldest report time that counts). */
const RUNNING = `
  FROM image_containers c JOIN image_reports r ON r.node = c.node
  WHERE r.reported_at >= @fresh
    AND c.node NOT IN (SELECT node FROM quarantined_nodes)
    AND c.node NOT IN (SELECT node FROM nodes WHERE silent_since > 0)`;
const RUNNING_PLACES = `SELECT c.repository, c.tag, c.digest, c.node, c.namespace, c.workload, c.pod, count(*) AS n ${RUNNING}`;
const PLACE_GROUP = `GROUP BY c.repository, c.tag, c.digest, c.node, c.namespace, c.workload, c.pod`;

/** The images slice on `db`. */
export function sqliteImages(db: Db): ImageStore {
  const upsertReport = db.prepare(`
    INSERT INTO image_reports (node, reported_at, source, containers, total, truncated) VALUES (@node, @at, @source, @containers, @total, @truncated)
    ON CONFLICT (node) DO UPDATE SET reported_at = excluded.reported_at, source = excluded.source, containers = excluded.containers, total = excluded.total, truncated = excluded.truncated
    WHERE excluded.reported_at >= image_reports.reported_at`);
  const clearContainers = db.prepare(`DELETE FROM image_containers WHERE node = ?`);
  const insertContainer = db.prepare(`
    INSERT OR REPLACE INTO image_containers (node, container_id, repository, tag, digest, image_id, name, namespace, pod, workload)
    VALUES (@node, @id, @repository, @tag, @digest, @imageId, @name, @namespace, @pod, @workload)`);
  const upsertVersion = db.prepare(`
    INSERT INTO image_versions (repository, tag, digest, first_seen, last_seen) VALUES (@repository, @tag, @digest, @first_seen, @last_seen)
    ON CONFLICT (repository, tag, digest) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)`);
  // A place already recorded is updated; a new one only while its version has fewer than
  // MAX_IMAGE_PLACES, of which its node fewer than MAX_IMAGE_PLACES_PER_NODE.
  const upsertPlace = db.prepare(`
    INSERT INTO image_places (repository, tag, digest, node, namespace, pod, workload, first_seen, last_seen)
    SELECT @repository, @tag, @digest, @node, @namespace, @pod, @workload, @first_seen, @last_seen
    WHERE EXISTS (SELECT 1 FROM image_places WHERE repository = @repository AND tag = @tag AND digest = @digest AND node = @node AND namespace = @namespace AND pod = @pod)
       OR ((SELECT count(*) FROM image_places WHERE repository = @repository AND tag = @tag AND digest = @digest) < ${MAX_IMAGE_PLACES}
           AND (SELECT count(*) FROM image_places WHERE repository = @repository AND tag = @tag AND digest = @digest AND node = @node) < ${MAX_IMAGE_PLACES_PER_NODE})
    ON CONFLICT (repository, tag, digest, node, namespace, pod) DO UPDATE SET
      first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen),
      workload = CASE WHEN excluded.workload != '' THEN excluded.workload ELSE workload END`);
  const list = db.prepare(`
    SELECT repository FROM image_versions v
    WHERE repository > @after
      AND (@prefix IS NULL OR substr(repository, 1, length(@prefix)) = @prefix)
      AND (@namespace IS NULL OR EXISTS (SELECT 1 FROM image_places p WHERE p.namespace = @namespace AND p.repository = v.repository)
                              OR EXISTS (SELECT 1 ${RUNNING} AND c.namespace = @namespace AND c.repository = v.repository))
    GROUP BY repository
    HAVING (@seenSince IS NULL OR max(last_seen) >= @seenSince)
       AND (@running IS NULL OR EXISTS (SELECT 1 ${RUNNING} AND c.repository = v.repository) = @running)
    ORDER BY repository LIMIT @limit`);
  // MAX_VERSIONS_READ versions of each repository, those a report lists first (so what runs is never cut), then the last seen; with how many it has and its first seen over all.
  const versionsOf = db.prepare(`
    SELECT repository, tag, digest, first_seen, last_seen, total, repo_first_seen FROM (
      SELECT repository, tag, digest, first_seen, last_seen,
             count(*) OVER (PARTITION BY repository) AS total, min(first_seen) OVER (PARTITION BY repository) AS repo_first_seen,
             row_number() OVER (PARTITION BY repository ORDER BY EXISTS (SELECT 1 FROM image_containers c WHERE c.repository = image_versions.repository AND c.tag = image_versions.tag AND c.digest = image_versions.digest) DESC, last_seen DESC, tag, digest) AS k
      FROM image_versions WHERE repository IN (SELECT value FROM json_each(?)))
    WHERE k <= ${MAX_VERSIONS_READ} ORDER BY repository`);
  const runningOf = db.prepare(`${RUNNING_PLACES} AND c.repository IN (SELECT value FROM json_each(@repositories)) ${PLACE_GROUP} ORDER BY c.node, c.namespace, c.pod`);
  const namespacesOf = db.prepare(`SELECT DISTINCT repository, namespace FROM image_places WHERE repository IN (SELECT value FROM json_each(?)) AND namespace != '' ORDER BY repository, namespace LIMIT ${MAX_PLACES_READ}`);
  const placesOf = db.prepare(`SELECT repository, tag, digest, node, namespace, workload, pod, first_seen, last_seen FROM image_places WHERE repository = ? ORDER BY last_seen DESC, node, namespace, pod LIMIT ${MAX_PLACES_READ}`);
  const reportTimes = db.prepare(`SELECT node, reported_at FROM image_reports`);
  const runningAll = db.prepare(`${RUNNING_PLACES} ${PLACE_GROUP} ORDER BY c.repository, c.tag, c.digest, c.node, c.namespace`);
  const knownDigest = db.prepare(`SELECT 1 FROM image_versions WHERE repository = ? AND digest = ? LIMIT 1`);
  const pruneVersions = db.prepare(`DELETE FROM image_versions WHERE last_seen < ?`);
  const prunePlaces = db.prepare(`DELETE FROM image_places WHERE last_seen < ?`);
  const pruneQuota = db.prepare(`DELETE FROM image_version_quota WHERE hour < ?`);
  const storedVersion = db.prepare(`SELECT 1 FROM image_versions WHERE repository = ? AND tag = ? AND digest = ?`);
  const storedCount = db.prepare(`SELECT count(*) FROM image_versions`).pluck();
  const repositoryCount = db.prepare(`SELECT count(*) FROM image_versions WHERE repository = ?`).pluck();
  const quotaOf = db.prepare(`SELECT created FROM image_version_quota WHERE node = ? AND hour = ?`).pluck();
  const addQuota = db.prepare(`
    INSERT INTO image_version_quota (node, hour, created) VALUES (@node, @hour, @n)
    ON CONFLICT (node) DO UPDATE SET created = CASE WHEN hour = excluded.hour THEN created + excluded.created ELSE excluded.created END, hour = excluded.hour`);
  // The oldest versions of a repository no container of any node's report lists: forgotten for room.
  const oldestIdle = db.prepare(`
    SELECT tag, digest FROM image_versions v WHERE repository = @repository
      AND NOT EXISTS (SELECT 1 FROM image_containers c WHERE c.repository = v.repository AND c.tag = v.tag AND c.digest = v.digest)
    ORDER BY last_seen, tag, digest LIMIT @n`);
  const forgetVersion = db.prepare(`DELETE FROM image_versions WHERE repository = ? AND tag = ? AND digest = ?`);
  const forgetPlaces = db.prepare(`DELETE FROM image_places WHERE repository = ? AND tag = ? AND digest = ?`);

  /** Room in each repository for its admitted new versions, by forgetting its oldest idle ones; the versions that still find none are refused. */
  function makeRoom(admitted: readonly SightedVersion[]): { kept: SightedVersion[]; bounded: Partial<Record<InventoryBound, number>> } {
    const byRepository = new Map<string, SightedVersion[]>();
    for (const v of admitted) byRepository.set(v.repository, [...(byRepository.get(v.repository) ?? []), v]);
    const kept: SightedVersion[] = [];
    const bounded: Partial<Record<InventoryBound, number>> = {};
    for (const [repository, fresh] of byRepository) {
      const excess = (repositoryCount.get(repository) as number) + fresh.length - MAX_VERSIONS_PER_REPOSITORY;
      if (excess > 0) {
        const idle = oldestIdle.all({ repository, n: excess }) as { tag: string; digest: string }[];
        for (const v of idle) {
          forgetPlaces.run(repository, v.tag, v.digest);
          forgetVersion.run(repository, v.tag, v.digest);
        }
        if (idle.length > 0) bounded.repository_evicted = (bounded.repository_evicted ?? 0) + idle.length;
        const refused = excess - idle.length;
        if (refused > 0) bounded.repository_versions = (bounded.repository_versions ?? 0) + refused;
        kept.push(...fresh.slice(0, fresh.length - Math.max(0, refused)));
      } else kept.push(...fresh);
    }
    return { kept, bounded };
  }

  const recordSightings = writeTransaction(db, (sightings: readonly ImageSighting[], at: number): RecordedSightings => {
    const { versions, places } = groupSightings(sightings);
    const known: SightedVersion[] = [];
    const candidates: SightedVersion[] = [];
    for (const v of versions) (storedVersion.get(v.repository, v.tag, v.digest) !== undefined ? known : candidates).push(v);
    const hour = hourOf(at);
    const addedThisHour = new Map([...new Set(candidates.map((v) => v.node))].map((n) => [n, (quotaOf.get(n, hour) as number | undefined) ?? 0]));
    const admission = candidates.length > 0 ? admitNewVersions(candidates, { addedThisHour, stored: storedCount.get() as number }) : { admitted: [], bounded: {} };
    // Known versions first (their last seen moves), then room in their repositories for the new ones.
    for (const v of known) upsertVersion.run(v);
    const room = makeRoom(admission.admitted);
    const fresh = new Map<string, NewImageVersion>();
    for (const v of room.kept) {
      // A digest (not the empty "unknown") that no row of its repository had before this write.
      const key = `${v.repository}@${v.digest}`;
      if (v.digest !== '' && !fresh.has(key) && knownDigest.get(v.repository, v.digest) === undefined) fresh.set(key, { repository: v.repository, digest: v.digest });
    }
    for (const v of room.kept) upsertVersion.run(v);
    for (const [node, n] of addedByNode(room.kept)) addQuota.run({ node, hour, n });
    const recorded = new Set([...known, ...room.kept].map((v) => `${v.repository}\u0000${v.tag}\u0000${v.digest}`));
    for (const p of places) if (recorded.has(`${p.repository}\u0000${p.tag}\u0000${p.digest}`)) upsertPlace.run(p);
    return { newVersions: [...fresh.values()], bounded: addBounds(admission.bounded, room.bounded) };
  });

  const recordReport = writeTransaction(db, (node: string, report: Parameters<ImageStore['recordContainerReport']>[1], at: number): RecordedReport => {
    const changed = upsertReport.run({ node, at, source: report.source, containers: report.containers.length, total: report.total, truncated: report.truncated ? 1 : 0 }).changes > 0;
    if (!changed) return { stored: false, newVersions: [], bounded: {} };
    clearContainers.run(node);
    for (const c of report.containers) insertContainer.run({ node, id: c.id, ...c.image, imageId: c.imageId, name: c.name, namespace: c.namespace, pod: c.pod, workload: c.workload });
    return { stored: true, ...recordSightings(sightingsOfReport(node, report, at), at) };
  });

  const running = (repositories: readonly string[], fresh: number) => runningOf.all({ repositories: JSON.stringify(repositories), fresh }) as RunningRow[];

  return {
    recordContainerReport: (node, report, receivedAt) => recordReport(node, report, receivedAt),
    recordImageSightings: (sightings, receivedAt) => (sightings.length > 0 ? recordSightings(sightings, receivedAt ?? sightings.reduce((t, s) => Math.max(t, s.time), 0)) : { newVersions: [], bounded: {} }),
    listImages(q) {
      const after = decodeImageCursor(q.cursor);
      const fresh = q.now - q.staleAfterMs;
      const repos = (
        list.all({
          after,
          prefix: q.prefix ?? null,
          namespace: q.namespace ?? null,
          seenSince: q.seenSince ?? null,
          running: q.running === undefined ? null : q.running ? 1 : 0,
          fresh,
          limit: q.limit + 1,
        }) as { repository: string }[]
      ).map((r) => r.repository);
      const page = repos.slice(0, q.limit);
      const json = JSON.stringify(page);
      const items = imageSummaries(versionsOf.all(json) as VersionRow[], running(page, fresh), namespacesOf.all(json) as { repository: string; namespace: string }[]);
      return { items, next: repos.length > q.limit ? encodeImageCursor(page[page.length - 1] as string) : null };
    },
    getImage(repository, w) {
      const json = JSON.stringify([repository]);
      const reportedAt = new Map((reportTimes.all() as { node: string; reported_at: number }[]).map((r) => [r.node, r.reported_at]));
      return imageDetail(versionsOf.all(json) as VersionRow[], running([repository], w.now - w.staleAfterMs), placesOf.all(repository) as PlaceRow[], reportedAt);
    },
    runningImages: (w) => runningSet(runningAll.all({ fresh: w.now - w.staleAfterMs }) as RunningRow[], w.limit),
    pruneImages: writeTransaction(db, (before: number) => {
      prunePlaces.run(before);
      pruneQuota.run(hourOf(before));
      return pruneVersions.run(before).changes;
    }),
  };
}
