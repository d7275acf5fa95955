/**
 * Linking what ran to what the image is: the package that owns a process's executable, according to
 * the image's SBOM, and how those owners change from one image version to the next. Pure.
 *
 * | the SBOM says about the executable            | link            | shown as                                      |
 * | --------------------------------------------- | --------------- | --------------------------------------------- |
 * | a package owns it                             | `package`       | `/usr/bin/curl, package curl 7.88.1-10+deb12u8` |
 * | it lists the file, without an owner           | `listed`        | `in the image's SBOM, no package`             |
 * | it lists files, not this one                  | `not-listed`    | `not in the image's SBOM` (drift evidence)    |
 * | it lists no files at all (only packages)      | `unknown`       | `the SBOM lists no files`                     |
 *
 * Debian 12 and other merged-/usr images list `/bin/bash` in the package database while the running
 * process's resolved executable is `/usr/bin/bash` (and the other way round): a path is looked up
 * as itself, then as its merged-/usr twin.
 */
import type { SbomPackage } from './parse.js';

/** How one executable relates to the image's SBOM. */
export type SbomLinkStatus = 'package' | 'listed' | 'not-listed' | 'unknown';

/** The link of one executable. */
export interface SbomLink {
  exe: string;
  status: SbomLinkStatus;
  /** The owning package when `status` is `package`, else null. */
  package: SbomPackage | null;
}

/** The directories merged-/usr images alias: `/bin` is `/usr/bin`, and so on. */
const MERGED = ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32'];

/** The paths an executable may be listed under: itself, then its merged-/usr twin. */
export function pathCandidates(exe: string): string[] {
  for (const d of MERGED) {
    if (exe.startsWith(`/${d}/`)) return [exe, `/usr${exe}`];
    if (exe.startsWith(`/usr/${d}/`)) return [exe, exe.slice(4)];
  }
  return [exe];
}

/**
 * The link of `exe`, given what the SBOM's store answered for its candidate paths (`found`: path →
 * owner or null for a listed file without one) and whether the SBOM lists files at all.
 */
export function linkExecutable(exe: string, found: ReadonlyMap<string, SbomPackage | null>, filesListed: boolean): SbomLink {
  let listed = false;
  for (const p of pathCandidates(exe)) {
    const owner = found.get(p);
    if (owner) return { exe, status: 'package', package: owner };
    if (owner === null) listed = true;
  }
  if (listed) return { exe, status: 'listed', package: null };
  return { exe, status: filesListed ? 'not-listed' : 'unknown', package: null };
}

/** A link in words, for people: alerts, the CLI, notices. */
export function describeLink(link: SbomLink): string {
  switch (link.status) {
    case 'package':
      return `${link.exe}, package ${packageLabel(link.package as SbomPackage)}`;
    case 'listed':
      return `${link.exe}, in the image's SBOM without a package`;
    case 'not-listed':
      return `${link.exe}, not in the image's SBOM`;
    default:
      return `${link.exe}, the image's SBOM lists no files`;
  }
}

/** `curl 7.88.1-10+deb12u8`. */
export function packageLabel(p: SbomPackage): string {
  return p.version === '' ? p.name : `${p.name} ${p.version}`;
}

/** How the package behind one baseline executable changed between two image versions. */
export interface OwnerChange {
  exe: string;
  /** `added`: a package owns it now and none did; `dropped`: the reverse; `replaced`: another package; `upgraded`: same package, another version. */
  change: 'added' | 'dropped' | 'replaced' | 'upgraded';
  before: SbomPackage | null;
  after: SbomPackage | null;
}

/**
 * What changed for the executables a baseline uses between the previous image version's links and
 * the new one's (same executables, same order). An executable whose owner is the same package at
 * the same version is left out.
 */
export function ownerChanges(before: readonly SbomLink[], after: readonly SbomLink[]): OwnerChange[] {
  const prev = new Map(before.map((l) => [l.exe, l.package]));
  const out: OwnerChange[] = [];
  for (const l of after) {
    const b = prev.get(l.exe) ?? null;
    const a = l.package;
    if (b === null && a === null) continue;
    if (b === null) out.push({ exe: l.exe, change: 'added', before: null, after: a });
    else if (a === null) out.push({ exe: l.exe, change: 'dropped', before: b, after: null });
    else if (b.name !== a.name) out.push({ exe: l.exe, change: 'replaced', before: b, after: a });
    else if (b.version !== a.version) out.push({ exe: l.exe, change: 'upgraded', before: b, after: a });
  }
  return out;
}

/** Whether changes add or drop a package (what a reviewer is told about; upgrades are listed, not flagged). */
export function addsOrDrops(changes: readonly OwnerChange[]): boolean {
  return changes.some((c) => c.change !== 'upgraded');
}
