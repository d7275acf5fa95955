/**
 * Which container a process belongs to, from its cgroup: the path shapes that containerd, CRI-O and
 * Docker create under the systemd and cgroupfs drivers, on cgroup v1 and v2. Pure string parsing
 * (plus one bounded /proc read); the container id found here is looked up in the CRI later.
 *
 * Shapes (the leaf names the container, a parent may name the pod):
 *   systemd driver   /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope
 *                    …/crio-<id>.scope, …/docker-<id>.scope, …/libpod-<id>.scope
 *   kind / nested    /system.slice/containerd.service/kubepods-besteffort-pod<uid>.slice:cri-containerd:<id>
 *   cgroupfs driver  /kubepods/burstable/pod<uid>/<id>, /kubepods/pod<uid>/<id>, /docker/<id>
 */
import { readFileSync } from 'node:fs';

/** The runtime whose naming scheme a container cgroup follows ('unknown' for a bare cgroupfs id). */
export type ContainerRuntime = 'containerd' | 'cri-o' | 'docker' | 'podman' | 'unknown';

/** What a cgroup says about its processes. */
export type CgroupOwner =
  /** A container's cgroup: its full id (64 hex), the runtime that named it, and the pod uid when the path carries one. */
  | { kind: 'container'; id: string; runtime: ContainerRuntime; podUid: string }
  /** Not a container: a host process (systemd services, sessions, the root cgroup). */
  | { kind: 'host' }
  /** Inside a Kubernetes pod's cgroup, but no container id could be read: neither host nor attributable. */
  | { kind: 'unknown'; reason: string };

/** Longest cgroup path (or /proc/<pid>/cgroup file) considered; longer input is hostile or broken. */
export const MAX_CGROUP_TEXT = 8192;

const HEX64 = /^[0-9a-f]{64}$/;
const PREFIXES: readonly [string, ContainerRuntime][] = [
  ['cri-containerd-', 'containerd'],
  ['crio-', 'cri-o'],
  ['docker-', 'docker'],
  ['libpod-', 'podman'],
];
const POD_UID = /(?:^|[-/])pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$/;

/** The container id named by one path segment, or null. */
function containerOfSegment(segment: string): { id: string; runtime: ContainerRuntime } | null {
  // `…pod<uid>.slice:cri-containerd:<id>`: the systemd driver's "slice:prefix:name" form.
  const colon = segment.split(':');
  if (colon.length === 3) {
    const runtime: ContainerRuntime = colon[1] === 'cri-containerd' ? 'containerd' : colon[1] === 'crio' ? 'cri-o' : colon[1] === 'docker' ? 'docker' : 'unknown';
    if (HEX64.test(colon[2] as string)) return { id: colon[2] as string, runtime };
  }
  const name = segment.endsWith('.scope') ? segment.slice(0, -'.scope'.length) : segment;
  // CRI-O's conmon (crio-conmon-<id>.scope) is the runtime's monitor, a host process.
  if (name.startsWith('crio-conmon-')) return null;
  for (const [prefix, runtime] of PREFIXES) {
    if (name.startsWith(prefix) && HEX64.test(name.slice(prefix.length))) return { id: name.slice(prefix.length), runtime };
  }
  // cgroupfs driver: the bare id.
  if (HEX64.test(name)) return { id: name, runtime: 'unknown' };
  return null;
}

/** Classify one cgroup path (`/kubepods.slice/…/cri-containerd-<id>.scope`). */
export function ownerOfCgroupPath(path: string): CgroupOwner {
  if (path.length > MAX_CGROUP_TEXT) return { kind: 'unknown', reason: 'cgroup path too long' };
  const segments = path.split('/').filter((s) => s !== '');
  let podUid = '';
  let inPods = false;
  // The innermost container segment wins: a runtime nested in a container (kind, DinD) names the inner one last.
  for (let i = segments.length - 1; i >= 0; i--) {
    const seg = segments[i] as string;
    const c = containerOfSegment(seg);
    if (c) {
      for (let j = i - 1; j >= 0 && podUid === ''; j--) podUid = podUidOf(segments[j] as string);
      if (podUid === '') podUid = podUidOf(seg.split(':')[0] as string);
      return { kind: 'container', id: c.id, runtime: c.runtime, podUid };
    }
  }
  for (const seg of segments) {
    if (seg === 'kubepods' || seg.startsWith('kubepods-') || seg === 'kubepods.slice' || podUidOf(seg) !== '') inPods = true;
  }
  // A pod's own cgroup without a container below it (a process the runtime left there): not the host.
  if (inPods) return { kind: 'unknown', reason: 'pod cgroup without a container id' };
  return { kind: 'host' };
}

/** The pod uid (with dashes) a segment names, or ''. */
function podUidOf(segment: string): string {
  const m = POD_UID.exec(segment);
  return m ? (m[1] as string).replaceAll('_', '-') : '';
}

/**
 * Classify a process from the text of `/proc/<pid>/cgroup` (`hierarchy:controllers:path` lines).
 * A container named on any line wins; v2 (`0::`) and the v1 memory/cpu/pids/systemd lines all carry the
 * same path shape. Host only when no line names a container or a pod.
 */
export function ownerOfProcCgroup(text: string): CgroupOwner {
  if (text.length > MAX_CGROUP_TEXT) return { kind: 'unknown', reason: 'cgroup file too long' };
  let unknown: CgroupOwner | null = null;
  let lines = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    lines++;
    const first = line.indexOf(':');
    const second = first === -1 ? -1 : line.indexOf(':', first + 1);
    if (second === -1) return { kind: 'unknown', reason: 'not a /proc/<pid>/cgroup line' };
    const owner = ownerOfCgroupPath(line.slice(second + 1));
    if (owner.kind === 'container') return owner;
    if (owner.kind === 'unknown') unknown = owner;
  }
  if (lines === 0) return { kind: 'unknown', reason: 'empty cgroup file' };
  return unknown ?? { kind: 'host' };
}

/** Read and classify `/proc/<pid>/cgroup`; null when the process is gone (or unreadable). */
export function readProcCgroup(pid: number, procRoot = '/proc'): CgroupOwner | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    // procfs files are generated on read and small; the bound guards against a hostile mount.
    const text = readFileSync(`${procRoot}/${pid}/cgroup`, 'utf8');
    return ownerOfProcCgroup(text.length > MAX_CGROUP_TEXT ? text.slice(0, MAX_CGROUP_TEXT + 1) : text);
  } catch {
    return null;
  }
}
