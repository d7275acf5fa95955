/**
 * The image inventory as the API shows it, assembled from rows either store read: versions with
 * their first/last seen, the fresh reports' containers grouped by place, the recorded places. Pure,
 * so SQLite and PostgreSQL answer the same; also the sightings a report or a batch of deviations
 * makes, deduplicated (PostgreSQL refuses to upsert one row twice in a statement).
 */
import type { ContainerReport, ImageSighting } from '../../core/inventory.js';
import {
  CursorError,
  MAX_IMAGE_PLACES,
  MAX_IMAGE_PLACES_PER_NODE,
  MAX_IMAGE_VERSIONS,
  MAX_NEW_VERSIONS_PER_NODE_HOUR,
  MAX_NEW_VERSIONS_PER_WRITE,
  type ImageDetail,
  type ImagePlace,
  type ImageSummary,
  type ImageVersion,
  type InventoryBound,
  type RunningImage,
} from './store.js';

/** A row of image_versions. */
export interface VersionRow {
  repository: string;
  tag: string;
  digest: string;
  first_seen: number;
  last_seen: number;
  /** Versions of its repository in all, when the read was cut (count(*) OVER the repository). */
  total?: number;
  /** The repository's first seen over all its versions, when the read was cut. */
  repo_first_seen?: number;
}

/** A version a write records, with the node of its first sighting (whom a new version counts against). */
export interface SightedVersion extends VersionRow {
  node: string;
}

/** Containers of one version at one place (a sighting's where, without its time), from fresh reports. */
export interface RunningRow extends Omit<ImageSighting, 'time'> {
  n: number;
}

/** A row of image_places. */
export interface PlaceRow extends Omit<RunningRow, 'n'> {
  first_seen: number;
  last_seen: number;
}

/** Most namespaces (and nodes) a summary or an export row lists. */
export const MAX_LISTED = 64;

const versionKey = (r: { repository: string; tag: string; digest: string }) => `${r.repository}\u0000${r.tag}\u0000${r.digest}`;

/** Sightings deduplicated per version (first/last seen) and per place, for one upsert each. */
export function groupSightings(sightings: readonly ImageSighting[]): { versions: SightedVersion[]; places: PlaceRow[] } {
  const versions = new Map<string, SightedVersion>();
  const places = new Map<string, PlaceRow>();
  for (const s of sightings) {
    const vk = versionKey(s);
    const v = versions.get(vk);
    if (v) {
      v.first_seen = Math.min(v.first_seen, s.time);
      v.last_seen = Math.max(v.last_seen, s.time);
    } else versions.set(vk, { repository: s.repository, tag: s.tag, digest: s.digest, first_seen: s.time, last_seen: s.time, node: s.node });
    const pk = `${vk}\u0000${s.node}\u0000${s.namespace}\u0000${s.pod}`;
    const p = places.get(pk);
    if (p) {
      p.first_seen = Math.min(p.first_seen, s.time);
      p.last_seen = Math.max(p.last_seen, s.time);
      if (s.workload !== '') p.workload = s.workload;
    } else places.set(pk, { repository: s.repository, tag: s.tag, digest: s.digest, node: s.node, namespace: s.namespace, workload: s.workload, pod: s.pod, first_seen: s.time, last_seen: s.time });
  }
  // A version gets at most MAX_IMAGE_PLACES new places from one call, and at most
  // MAX_IMAGE_PLACES_PER_NODE from one node, whatever the stores then keep.
  const perVersion = new Map<string, number>();
  const perNode = new Map<string, number>();
  const bounded = [...places.values()].filter((p) => {
    const vk = versionKey(p);
    const nk = `${vk}\u0000${p.node}`;
    if ((perVersion.get(vk) ?? 0) >= MAX_IMAGE_PLACES || (perNode.get(nk) ?? 0) >= MAX_IMAGE_PLACES_PER_NODE) return false;
    perVersion.set(vk, (perVersion.get(vk) ?? 0) + 1);
    perNode.set(nk, (perNode.get(nk) ?? 0) + 1);
    return true;
  });
  return { versions: [...versions.values()], places: bounded };
}

/** How much room a write has for new versions. */
export interface VersionRoom {
  /** New versions each node already added in the hour of the write. */
  addedThisHour: ReadonlyMap<string, number>;
  /** Versions stored now. */
  stored: number;
}

/**
 * Which of the versions a write did not find stored it may add: in their order, the first
 * MAX_NEW_VERSIONS_PER_WRITE, each node's within what its hour has left, while the table has room.
 * The rest are refused (counted by bound); versions already stored are never refused.
 */
export function admitNewVersions<V extends { node: string }>(candidates: readonly V[], room: VersionRoom): { admitted: V[]; bounded: Partial<Record<InventoryBound, number>> } {
  const bounded: Partial<Record<InventoryBound, number>> = {};
  const refuse = (bound: InventoryBound) => (bounded[bound] = (bounded[bound] ?? 0) + 1);
  const added = new Map(room.addedThisHour);
  const admitted: V[] = [];
  for (const v of candidates) {
    const byNode = added.get(v.node) ?? 0;
    if (admitted.length >= MAX_NEW_VERSIONS_PER_WRITE) refuse('write_versions');
    else if (byNode >= MAX_NEW_VERSIONS_PER_NODE_HOUR) refuse('node_versions');
    else if (room.stored + admitted.length >= MAX_IMAGE_VERSIONS) refuse('total_versions');
    else {
      added.set(v.node, byNode + 1);
      admitted.push(v);
    }
  }
  return { admitted, bounded };
}

/** New versions per node among `admitted`. */
export function addedByNode(admitted: readonly { node: string }[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const v of admitted) out.set(v.node, (out.get(v.node) ?? 0) + 1);
  return out;
}

/** The clock hour of `at` (ms), the window of MAX_NEW_VERSIONS_PER_NODE_HOUR. */
export const hourOf = (at: number): number => Math.floor(at / 3_600_000);

/** Two tallies of bounds met, added. */
export function addBounds(a: Partial<Record<InventoryBound, number>>, b: Partial<Record<InventoryBound, number>>): Partial<Record<InventoryBound, number>> {
  const out = { ...a };
  for (const [k, n] of Object.entries(b) as [InventoryBound, number][]) out[k] = (out[k] ?? 0) + n;
  return out;
}

/** The sightings a report of `node` received at `at` makes: one per container. */
export function sightingsOfReport(node: string, report: ContainerReport, at: number): ImageSighting[] {
  return report.containers.map((c) => ({ repository: c.image.repository, tag: c.image.tag, digest: c.image.digest, node, namespace: c.namespace, workload: c.workload, pod: c.pod, time: at }));
}

/** The cursor of the page after `repository`. */
export function encodeImageCursor(repository: string): string {
  return Buffer.from(`r${repository}`).toString('base64url');
}

/** The repository a cursor continues after ('' without one); CursorError when it is not ours. */
export function decodeImageCursor(cursor: string | undefined): string {
  if (cursor === undefined) return '';
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!text.startsWith('r') || text.length < 2 || encodeImageCursor(text.slice(1)) !== cursor) throw new CursorError();
  return text.slice(1);
}

const place = (r: PlaceRow | RunningRow, firstSeen: number, lastSeen: number): ImagePlace => ({ node: r.node, namespace: r.namespace, workload: r.workload, pod: r.pod, firstSeen, lastSeen });

/** Summaries of the repositories of `versions`, in repository order. */
export function imageSummaries(versions: readonly VersionRow[], running: readonly RunningRow[], namespaces: readonly { repository: string; namespace: string }[]): ImageSummary[] {
  const count = new Map<string, number>();
  for (const r of running) count.set(versionKey(r), (count.get(versionKey(r)) ?? 0) + r.n);
  const out = new Map<string, ImageSummary>();
  for (const v of versions) {
    let s = out.get(v.repository);
    if (!s) out.set(v.repository, (s = { repository: v.repository, firstSeen: v.first_seen, lastSeen: v.last_seen, running: false, containers: 0, namespaces: [], versions: [], versionCount: 0, versionsTruncated: false }));
    const n = count.get(versionKey(v)) ?? 0;
    s.firstSeen = Math.min(s.firstSeen, v.first_seen, Number(v.repo_first_seen ?? v.first_seen));
    s.lastSeen = Math.max(s.lastSeen, v.last_seen);
    s.containers += n;
    s.running ||= n > 0;
    s.versions.push({ tag: v.tag, digest: v.digest, firstSeen: v.first_seen, lastSeen: v.last_seen, running: n > 0, containers: n });
    s.versionCount = Math.max(s.versions.length, Number(v.total ?? 0));
    s.versionsTruncated = s.versionCount > s.versions.length;
  }
  for (const { repository, namespace } of namespaces) {
    const s = out.get(repository);
    if (s && namespace !== '' && s.namespaces.length < MAX_LISTED && !s.namespaces.includes(namespace)) s.namespaces.push(namespace);
  }
  for (const s of out.values()) {
    s.namespaces.sort();
    // Newest first: what a reader looks for.
    s.versions.sort((a, b) => b.lastSeen - a.lastSeen || a.tag.localeCompare(b.tag) || a.digest.localeCompare(b.digest));
  }
  return [...out.values()].sort((a, b) => (a.repository < b.repository ? -1 : a.repository > b.repository ? 1 : 0));
}

/** One repository with its versions' places, or null when it has no version. */
export function imageDetail(versions: readonly VersionRow[], running: readonly RunningRow[], places: readonly PlaceRow[], reportedAt: ReadonlyMap<string, number>): ImageDetail | null {
  const [summary] = imageSummaries(versions, running, places);
  if (!summary) return null;
  const runningIn = new Map<string, ImagePlace[]>();
  for (const r of running) {
    const list = runningIn.get(versionKey(r)) ?? [];
    const at = reportedAt.get(r.node) ?? 0;
    if (list.length < MAX_IMAGE_PLACES) list.push(place(r, at, at));
    runningIn.set(versionKey(r), list);
  }
  const seenIn = new Map<string, ImagePlace[]>();
  for (const p of places) {
    const list = seenIn.get(versionKey(p)) ?? [];
    if (list.length < MAX_IMAGE_PLACES) list.push(place(p, p.first_seen, p.last_seen));
    seenIn.set(versionKey(p), list);
  }
  const versionsOut: ImageVersion[] = summary.versions.map((v) => {
    const k = versionKey({ repository: summary.repository, ...v });
    return { ...v, runningIn: runningIn.get(k) ?? [], seenIn: (seenIn.get(k) ?? []).sort((a, b) => b.lastSeen - a.lastSeen) };
  });
  return { ...summary, versions: versionsOut };
}

/** The running set per version, from fresh reports' rows (ordered by repository, tag, digest), bounded to `limit` versions. */
export function runningSet(rows: readonly RunningRow[], limit: number): RunningImage[] {
  const out = new Map<string, RunningImage>();
  for (const r of rows) {
    const k = versionKey(r);
    let v = out.get(k);
    if (!v) {
      if (out.size >= limit) continue;
      out.set(k, (v = { repository: r.repository, tag: r.tag, digest: r.digest, containers: 0, namespaces: [], nodes: [] }));
    }
    v.containers += r.n;
    if (r.namespace !== '' && !v.namespaces.includes(r.namespace) && v.namespaces.length < MAX_LISTED) v.namespaces.push(r.namespace);
    if (!v.nodes.includes(r.node) && v.nodes.length < MAX_LISTED) v.nodes.push(r.node);
  }
  for (const v of out.values()) {
    v.namespaces.sort();
    v.nodes.sort();
  }
  return [...out.values()];
}
