/**
 * Real directory trees standing in for a container's root filesystem, and a directory shaped like
 * /proc that points processes at them (`<pid>/cgroup`, `<pid>/mountinfo`, `<pid>/root`), for the
 * executable resolver (agent/attribution/container-path.ts) without a container runtime.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** A file (its content) or a symbolic link (its target, verbatim). */
export type TreeEntry = string | { link: string };

/** Create `entries` (paths inside the root → file content or link) under a new temp dir; returns the root. */
export function makeTree(entries: Record<string, TreeEntry>, under?: string): string {
  const root = mkdtempSync(join(under ?? tmpdir(), 'dw-root-'));
  addToTree(root, entries);
  return root;
}

/** Add entries to an existing tree. */
export function addToTree(root: string, entries: Record<string, TreeEntry>): void {
  for (const [path, entry] of Object.entries(entries)) {
    const at = join(root, path);
    mkdirSync(dirname(at), { recursive: true });
    if (typeof entry === 'string') writeFileSync(at, entry, { mode: 0o755 });
    else symlinkSync(entry.link, at);
  }
}

/** A process in the fake /proc: its pid, its cgroup (`/proc/<pid>/cgroup` text) and its root directory. */
export interface FakeProcess {
  pid: number;
  cgroup: string;
  root: string;
  /** `/proc/<pid>/mountinfo`; default: the root is one overlay mount. */
  mountinfo?: string;
}

/** The cgroup v2 line of a containerd container. */
export const containerdCgroup = (id: string) => `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f1e2d3c_4b5a_4978_8695_a4b3c2d1e0f9.slice/cri-containerd-${id}.scope\n`;

/** A directory shaped like /proc with these processes; `remove(pid)` makes one exit. */
export function makeFakeProc(processes: FakeProcess[]): { procRoot: string; add(p: FakeProcess): void; remove(pid: number): void; cleanup(): void } {
  const procRoot = mkdtempSync(join(tmpdir(), 'dw-proc-'));
  // The kernel's kthreadd: only the host's pid namespace shows it (the agent resolves only there).
  mkdirSync(join(procRoot, '2'));
  writeFileSync(join(procRoot, '2', 'comm'), 'kthreadd\n');
  const add = (p: FakeProcess) => {
    const dir = join(procRoot, String(p.pid));
    mkdirSync(dir);
    writeFileSync(join(dir, 'cgroup'), p.cgroup);
    writeFileSync(join(dir, 'mountinfo'), p.mountinfo ?? '1 0 0:31 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w\n');
    // The kernel's /proc/<pid>/root is a magic link to the process's root; a plain link stands in.
    symlinkSync(p.root, join(dir, 'root'));
  };
  for (const p of processes) add(p);
  return {
    procRoot,
    add,
    remove: (pid) => rmSync(join(procRoot, String(pid)), { recursive: true, force: true }),
    cleanup: () => rmSync(procRoot, { recursive: true, force: true }),
  };
}
