/**
 * The image inventory's model: what an agent reports running on its node (a container report),
 * and the bounds both sides hold it to. Pure: the agent builds reports (agent/inventory.ts), the
 * wire carries them (proto/index.ts), the collector stores them (collector/store/ ImageStore).
 */
import type { ImageRef } from './event.js';

/** One container running on a node, as its agent reports it. */
export interface RunningContainer {
  /** Runtime container id. */
  id: string;
  /** Container name in its pod. */
  name: string;
  /** Canonical repository, tag and digest ('' when unknown). */
  image: ImageRef;
  /** The runtime's image id (sha256:…), or ''. */
  imageId: string;
  /** Pod namespace and name, '' when not a pod's. */
  namespace: string;
  pod: string;
  /** Owning workload (`Deployment/web`), or ''. */
  workload: string;
}

/** Where a report's list came from: the container runtime, or the events the agent saw lately. */
export type ReportSource = 'cri' | 'events';

/** What runs on one node, replacing that node's previous report. */
export interface ContainerReport {
  source: ReportSource;
  containers: RunningContainer[];
  /** More containers ran than a report holds; `total` says how many. */
  truncated: boolean;
  total: number;
}

/** Bounds on a report, on both sides (the collector refuses more). */
export const INVENTORY_LIMITS = Object.freeze({
  /** Containers per report; the rest are counted in `total` and the report marked truncated. */
  containers: 10_000,
  /** Repository, pod, workload, name (a repository is at most 255 characters in the distribution spec). */
  text: 256,
  /** Digest and image id (`sha256:` + 64 hex; room for sha512). */
  digest: 160,
  /** Tag (128 in the distribution spec). */
  tag: 128,
});

/** A sighting of an image version somewhere: from a report or from a deviation's event. */
export interface ImageSighting {
  repository: string;
  tag: string;
  digest: string;
  node: string;
  namespace: string;
  workload: string;
  pod: string;
  /** When (ms). */
  time: number;
}
