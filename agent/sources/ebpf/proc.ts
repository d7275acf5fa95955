/**
 * Whose a traced process is, from the host. The program prints each process's cgroup name (v2, or v1
 * memory where v2 is unused); a container id in it names the container, else /proc/<pid>/cgroup is
 * read (nested cgroups, v1 paths). The image and pod come later from the CRI (agent/attribution/).
 * Processes outside any container are host events.
 */
import { readlinkSync } from 'node:fs';
import { ownerOfCgroupPath, readProcCgroup, type CgroupOwner } from '../../attribution/cgroup.js';
import { EBPF_LIMITS, type ProcessResolver } from './decode.js';

/** What the cgroup leaf names alone say: a container, a pod cgroup without one (unknown), or the host. */
export function ownerOfLeaves(leaves: readonly string[]): CgroupOwner {
  let owner: CgroupOwner = { kind: 'host' };
  for (const leaf of leaves) {
    if (leaf === '') continue;
    const o = ownerOfCgroupPath(`/${leaf}`);
    if (o.kind === 'container') return o;
    if (o.kind === 'unknown') owner = o;
  }
  return owner;
}

/** Resolves from /proc, with a bounded cache of cgroups whose owner /proc revealed. */
export function createProcResolver(procRoot = '/proc'): ProcessResolver {
  const byCgroup = new Map<string, CgroupOwner>();
  return {
    owner(pid, cgroupId, leaves) {
      const fromLeaves = ownerOfLeaves(leaves);
      if (fromLeaves.kind === 'container') return fromLeaves;
      // The leaf of a sub-cgroup inside a container (init.scope, a nested runtime) does not say whose
      // it is; the full path does, as long as the process lives. Remembered per cgroup for later ones.
      const known = cgroupId !== '1' ? byCgroup.get(cgroupId) : undefined;
      if (known) return known;
      const read = readProcCgroup(pid, procRoot);
      if (read && read.kind === 'container' && cgroupId !== '1') {
        if (byCgroup.size >= EBPF_LIMITS.cgroups) byCgroup.delete(byCgroup.keys().next().value as string);
        byCgroup.set(cgroupId, read);
      }
      return read ?? fromLeaves;
    },
    exe(pid) {
      try {
        return readlinkSync(`${procRoot}/${pid}/exe`).slice(0, 4096);
      } catch {
        return '';
      }
    },
  };
}
