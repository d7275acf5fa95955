/**
 * The image inventory slice on PostgreSQL (issue 21), as the SQLite one (sqlite/images.ts), with a
 * report's rows written in a few statements over arrays (unnest) instead of one per container. Two
 * replicas writing reports of one node meet on its image_reports row: the older report changes
 * nothing. Places are bounded per version by MAX_IMAGE_PLACES (checked against what was stored before
 * the statement, so two replicas at once may pass the bound by one batch's places), and per node and
 * version by MAX_IMAGE_PLACES_PER_NODE. New versions are bounded per write, per node and hour, per
 * repository (the oldest not running is forgotten) and in all (image-view.ts's admitNewVersions);
 * two replicas at once each check against what was stored before them, so may pass a bound by a write.
 */
import type pg from 'pg';
import type { ContainerReport, ImageSighting } from '../../../core/inventory.js';
import type { Async } from '../async.js';
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
import { snapshot, transaction, type Sql } from './db.js';

/** Containers of fresh reports from nodes neither quarantined nor silent ($1: the oldest report time that counts). */
const RUNNING = `
  FROM image_containers c JOIN image_reports r ON r.node = c.node
  WHERE r.reported_at >= $1
    AND c.node NOT IN (SELECT node FROM quarantined_nodes)
    AND c.node NOT IN (SELECT node FROM nodes WHERE silent_since > 0)`;
const RUNNING_PLACES = `SELECT c.repository, c.tag, c.digest, c.node, c.namespace, c.workload, c.pod, count(*) AS n ${RUNNING}`;
const PLACE_GROUP = `GROUP BY c.repository, c.tag, c.digest, c.node, c.namespace, c.workload, c.pod`;

const col = <T, K extends keyof T>(rows: readonly T[], k: K) => rows.map((r) => r[k]);
const versionKey = (v: { repository: string; tag: string; digest: string }) => `${v.repository}\u0000${v.tag}\u0000${v.digest}`;

/** Of `versions`, those stored and those not (one statement). */
async function splitStored(sql: Sql, versions: readonly SightedVersion[]): Promise<{ known: SightedVersion[]; candidates: SightedVersion[] }> {
  const { rows } = await sql<{ repository: string; tag: string; digest: string }>(
    `SELECT v.repository, v.tag, v.digest FROM image_versions v JOIN unnest($1::text[], $2::text[], $3::text[]) AS n(repository, tag, digest)
       ON v.repository = n.repository AND v.tag = n.tag AND v.digest = n.digest`,
    [col(versions, 'repository'), col(versions, 'tag'), col(versions, 'digest')],
  );
  const stored = new Set(rows.map(versionKey));
  const known: SightedVersion[] = [];
  const candidates: SightedVersion[] = [];
  for (const v of versions) (stored.has(versionKey(v)) ? known : candidates).push(v);
  return { known, candidates };
}

/** The new versions `candidates` a write may add (admitNewVersions, against the node's hour and the table). */
async function admit(sql: Sql, candidates: readonly SightedVersion[], hour: number) {
  if (candidates.length === 0) return { admitted: [], bounded: {} };
  const nodes = [...new Set(candidates.map((v) => v.node))];
  const quota = (await sql<{ node: string; created: number }>(`SELECT node, created FROM image_version_quota WHERE node = ANY($1::text[]) AND hour = $2`, [nodes, hour])).rows;
  const stored = (await sql<{ n: number }>(`SELECT count(*)::int AS n FROM image_versions`)).rows[0]?.n ?? 0;
  return admitNewVersions(candidates, { addedThisHour: new Map(quota.map((q) => [q.node, Number(q.created)])), stored });
}

/** Room in each repository for its admitted new versions, by forgetting its oldest ones no report lists; those that still find none are refused. */
async function makeRoom(sql: Sql, admitted: readonly SightedVersion[]): Promise<{ kept: SightedVersion[]; bounded: Partial<Record<InventoryBound, number>> }> {
  const byRepository = new Map<string, SightedVersion[]>();
  for (const v of admitted) byRepository.set(v.repository, [...(byRepository.get(v.repository) ?? []), v]);
  const kept: SightedVersion[] = [];
  const bounded: Partial<Record<InventoryBound, number>> = {};
  if (byRepository.size === 0) return { kept, bounded };
  const counts = new Map(
    (await sql<{ repository: string; n: number }>(`SELECT repository, count(*)::int AS n FROM image_versions WHERE repository = ANY($1::text[]) GROUP BY repository`, [[...byRepository.keys()]])).rows.map((r) => [r.repository, r.n]),
  );
  for (const [repository, fresh] of byRepository) {
    const excess = (counts.get(repository) ?? 0) + fresh.length - MAX_VERSIONS_PER_REPOSITORY;
    if (excess <= 0) {
      kept.push(...fresh);
      continue;
    }
    const { rows: idle } = await sql<{ tag: string; digest: string }>(
      `DELETE FROM image_versions WHERE (repository, tag, digest) IN (
         SELECT repository, tag, digest FROM image_versions v WHERE repository = $1
           AND NOT EXISTS (SELECT 1 FROM image_containers c WHERE c.repository = v.repository AND c.tag = v.tag AND c.digest = v.digest)
         ORDER BY last_seen, tag, digest LIMIT $2)
       RETURNING tag, digest`,
      [repository, excess],
    );
    if (idle.length > 0) {
      await sql(`DELETE FROM image_places p USING unnest($2::text[], $3::text[]) AS f(tag, digest) WHERE p.repository = $1 AND p.tag = f.tag AND p.digest = f.digest`, [repository, col(idle, 'tag'), col(idle, 'digest')]);
      bounded.repository_evicted = (bounded.repository_evicted ?? 0) + idle.length;
    }
    const refused = excess - idle.length;
    if (refused > 0) bounded.repository_versions = (bounded.repository_versions ?? 0) + refused;
    kept.push(...fresh.slice(0, fresh.length - Math.max(0, refused)));
  }
  return { kept, bounded };
}

async function recordSightings(sql: Sql, sightings: readonly ImageSighting[], at: number): Promise<RecordedSightings> {
  const grouped = groupSightings(sightings);
  if (grouped.versions.length === 0) return { newVersions: [], bounded: {} };
  const hour = hourOf(at);
  const { known, candidates } = await splitStored(sql, grouped.versions);
  const admission = await admit(sql, candidates, hour);
  const room = await makeRoom(sql, admission.admitted);
  const bounded = addBounds(admission.bounded, room.bounded);
  const versions = [...known, ...room.kept];
  if (room.kept.length > 0) {
    const added = [...addedByNode(room.kept)];
    await sql(
      `INSERT INTO image_version_quota (node, hour, created) SELECT n, $3::bigint, c FROM unnest($1::text[], $2::int[]) AS a(n, c) ORDER BY 1
       ON CONFLICT (node) DO UPDATE SET created = CASE WHEN image_version_quota.hour = excluded.hour THEN image_version_quota.created + excluded.created ELSE excluded.created END, hour = excluded.hour`,
      [added.map(([n]) => n), added.map(([, c]) => c), hour],
    );
  }
  const recorded = new Set(versions.map(versionKey));
  const places = grouped.places.filter((p) => recorded.has(versionKey(p)));
  // The rows this statement inserted (xmax = 0: not an update; of two replicas inserting one row at
  // once, one inserts and the other, having waited, updates), known before it under no other tag.
  const { rows: upserted } = await sql<NewImageVersion & { tag: string; inserted: boolean }>(
    `INSERT INTO image_versions (repository, tag, digest, first_seen, last_seen)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) ORDER BY 1, 2, 3
     ON CONFLICT (repository, tag, digest) DO UPDATE SET
       first_seen = LEAST(image_versions.first_seen, excluded.first_seen), last_seen = GREATEST(image_versions.last_seen, excluded.last_seen)
     RETURNING repository, tag, digest, (xmax = 0) AS inserted`,
    [col(versions, 'repository'), col(versions, 'tag'), col(versions, 'digest'), col(versions, 'first_seen'), col(versions, 'last_seen')],
  );
  const inserted = upserted.filter((r) => r.inserted && r.digest !== '');
  const fresh = new Map<string, NewImageVersion>();
  if (inserted.length > 0) {
    // Under another tag before this write: not a new version (rows this write inserted do not count).
    const { rows: older } = await sql<{ repository: string; digest: string }>(
      `SELECT DISTINCT v.repository, v.digest FROM image_versions v JOIN unnest($1::text[], $2::text[], $3::text[]) AS n(repository, tag, digest)
         ON v.repository = n.repository AND v.digest = n.digest AND v.tag <> n.tag
       WHERE NOT EXISTS (SELECT 1 FROM unnest($1::text[], $2::text[], $3::text[]) AS m(repository, tag, digest) WHERE m.repository = v.repository AND m.tag = v.tag AND m.digest = v.digest)`,
      [inserted.map((r) => r.repository), inserted.map((r) => r.tag), inserted.map((r) => r.digest)],
    );
    const known = new Set(older.map((r) => `${r.repository}@${r.digest}`));
    for (const r of inserted) if (!known.has(`${r.repository}@${r.digest}`)) fresh.set(`${r.repository}@${r.digest}`, { repository: r.repository, digest: r.digest });
  }
  // New places fill only the room their version has left (one statement sees the table as it was
  // before it, so the room is counted once and the new rows numbered against it).
  await sql(
    `WITH u AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[])
         AS u(repository, tag, digest, node, namespace, pod, workload, first_seen, last_seen)
     ), n AS (
       SELECT u.*, EXISTS (SELECT 1 FROM image_places p WHERE p.repository = u.repository AND p.tag = u.tag AND p.digest = u.digest AND p.node = u.node AND p.namespace = u.namespace AND p.pod = u.pod) AS known FROM u
     ), r AS (
       SELECT n.*, row_number() OVER (PARTITION BY repository, tag, digest, known ORDER BY node, namespace, pod) AS k,
              row_number() OVER (PARTITION BY repository, tag, digest, node, known ORDER BY namespace, pod) AS kn FROM n
     )
     INSERT INTO image_places (repository, tag, digest, node, namespace, pod, workload, first_seen, last_seen)
     SELECT repository, tag, digest, node, namespace, pod, workload, first_seen, last_seen FROM r
     WHERE known OR (k <= ${MAX_IMAGE_PLACES} - (SELECT count(*) FROM image_places p WHERE p.repository = r.repository AND p.tag = r.tag AND p.digest = r.digest)
                 AND kn <= ${MAX_IMAGE_PLACES_PER_NODE} - (SELECT count(*) FROM image_places p WHERE p.repository = r.repository AND p.tag = r.tag AND p.digest = r.digest AND p.node = r.node))
     ORDER BY 1, 2, 3, 4, 5, 6
     ON CONFLICT (repository, tag, digest, node, namespace, pod) DO UPDATE SET
       first_seen = LEAST(image_places.first_seen, excluded.first_seen), last_seen = GREATEST(image_places.last_seen, excluded.last_seen),
       workload = CASE WHEN excluded.workload <> '' THEN excluded.workload ELSE image_places.workload END`,
    [col(places, 'repository'), col(places, 'tag'), col(places, 'digest'), col(places, 'node'), col(places, 'namespace'), col(places, 'pod'), col(places, 'workload'), col(places, 'first_seen'), col(places, 'last_seen')],
  );
  return { newVersions: [...fresh.values()], bounded };
}

async function recordReport(sql: Sql, node: string, report: ContainerReport, at: number): Promise<RecordedReport> {
  const { rows } = await sql(
    `INSERT INTO image_reports (node, reported_at, source, containers, total, truncated) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (node) DO UPDATE SET reported_at = excluded.reported_at, source = excluded.source, containers = excluded.containers, total = excluded.total, truncated = excluded.truncated
     WHERE image_reports.reported_at <= excluded.reported_at
     RETURNING node`,
    [node, at, report.source, report.containers.length, report.total, report.truncated],
  );
  if (rows.length === 0) return { stored: false, newVersions: [], bounded: {} };
  await sql(`DELETE FROM image_containers WHERE node = $1`, [node]);
  const cs = report.containers;
  if (cs.length > 0) {
    await sql(
      `INSERT INTO image_containers (node, container_id, repository, tag, digest, image_id, name, namespace, pod, workload)
       SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
       ON CONFLICT (node, container_id) DO NOTHING`,
      [node, cs.map((c) => c.id), cs.map((c) => c.image.repository), cs.map((c) => c.image.tag), cs.map((c) => c.image.digest), cs.map((c) => c.imageId), cs.map((c) => c.name), cs.map((c) => c.namespace), cs.map((c) => c.pod), cs.map((c) => c.workload)],
    );
  }
  return { stored: true, ...(await recordSightings(sql, sightingsOfReport(node, report, at), at)) };
}

/** The images slice on `pool`. */
export function postgresImages(pool: pg.Pool): Async<ImageStore> {
  const running = async (sql: Sql, repositories: readonly string[], fresh: number) =>
    (await sql<RunningRow>(`${RUNNING_PLACES} AND c.repository = ANY($2::text[]) ${PLACE_GROUP} ORDER BY c.node, c.namespace, c.pod`, [fresh, repositories])).rows;
  const versionsOf = async (sql: Sql, repositories: readonly string[]) =>
    // MAX_VERSIONS_READ versions of each repository, those a report lists first (so what runs is never cut), then the last seen; with how many it has and its first seen over all.
    (
      await sql<VersionRow>(
        `SELECT repository, tag, digest, first_seen, last_seen, total, repo_first_seen FROM (
           SELECT repository, tag, digest, first_seen, last_seen,
                  count(*) OVER (PARTITION BY repository)::int AS total, min(first_seen) OVER (PARTITION BY repository) AS repo_first_seen,
                  row_number() OVER (PARTITION BY repository ORDER BY EXISTS (SELECT 1 FROM image_containers c WHERE c.repository = image_versions.repository AND c.tag = image_versions.tag AND c.digest = image_versions.digest) DESC, last_seen DESC, tag, digest) AS k
           FROM image_versions WHERE repository = ANY($1::text[])) v
         WHERE k <= ${MAX_VERSIONS_READ} ORDER BY repository`,
        [repositories],
      )
    ).rows;
  return {
    recordContainerReport: (node, report, receivedAt) => transaction(pool, (sql) => recordReport(sql, node, report, receivedAt)),
    recordImageSightings: async (sightings, receivedAt) =>
      sightings.length > 0 ? transaction(pool, (sql) => recordSightings(sql, sightings, receivedAt ?? sightings.reduce((t, s) => Math.max(t, s.time), 0))) : { newVersions: [], bounded: {} },
    listImages: (q) =>
      snapshot(pool, async (sql) => {
        const after = decodeImageCursor(q.cursor);
        const fresh = q.now - q.staleAfterMs;
        const { rows } = await sql<{ repository: string }>(
          `SELECT repository FROM image_versions v
           WHERE repository > $2
             AND ($3::text IS NULL OR substr(repository, 1, length($3::text)) = $3::text)
             AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM image_places p WHERE p.namespace = $4::text AND p.repository = v.repository)
                                   OR EXISTS (SELECT 1 ${RUNNING} AND c.namespace = $4::text AND c.repository = v.repository))
           GROUP BY repository
           HAVING ($5::bigint IS NULL OR max(last_seen) >= $5::bigint)
              AND ($6::boolean IS NULL OR EXISTS (SELECT 1 ${RUNNING} AND c.repository = v.repository) = $6::boolean)
           ORDER BY repository LIMIT $7`,
          [fresh, after, q.prefix ?? null, q.namespace ?? null, q.seenSince ?? null, q.running ?? null, q.limit + 1],
        );
        const repos = rows.map((r) => r.repository);
        const page = repos.slice(0, q.limit);
        const namespaces = (
          await sql<{ repository: string; namespace: string }>(`SELECT DISTINCT repository, namespace FROM image_places WHERE repository = ANY($1::text[]) AND namespace <> '' ORDER BY repository, namespace LIMIT ${MAX_PLACES_READ}`, [page])
        ).rows;
        const items = imageSummaries(await versionsOf(sql, page), await running(sql, page, fresh), namespaces);
        return { items, next: repos.length > q.limit ? encodeImageCursor(page[page.length - 1] as string) : null };
      }),
    getImage: (repository, w) =>
      snapshot(pool, async (sql) => {
        const reportedAt = new Map((await sql<{ node: string; reported_at: number }>(`SELECT node, reported_at FROM image_reports`)).rows.map((r) => [r.node, r.reported_at]));
        const places = (await sql<PlaceRow>(`SELECT repository, tag, digest, node, namespace, workload, pod, first_seen, last_seen FROM image_places WHERE repository = $1 ORDER BY last_seen DESC, node, namespace, pod LIMIT ${MAX_PLACES_READ}`, [repository])).rows;
        return imageDetail(await versionsOf(sql, [repository]), await running(sql, [repository], w.now - w.staleAfterMs), places, reportedAt);
      }),
    runningImages: (w) =>
      snapshot(pool, async (sql) => runningSet((await sql<RunningRow>(`${RUNNING_PLACES} ${PLACE_GROUP} ORDER BY c.repository, c.tag, c.digest, c.node, c.namespace`, [w.now - w.staleAfterMs])).rows, w.limit)),
    pruneImages: (before) =>
      transaction(pool, async (sql) => {
        await sql(`DELETE FROM image_places WHERE last_seen < $1`, [before]);
        await sql(`DELETE FROM image_version_quota WHERE hour < $1`, [hourOf(before)]);
        return (await sql(`DELETE FROM image_versions WHERE last_seen < $1`, [before])).rowCount;
      }),
  };
}
