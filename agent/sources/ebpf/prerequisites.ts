/**
 * What the host must offer before the ebpf source starts bpftrace: tracefs, the kernel's BTF,
 * CAP_BPF+CAP_PERFMON or CAP_SYS_ADMIN, and the bpftrace binary. missingPrerequisites names every one
 * that is missing, each with how to fix it, so one error says all of it. Also where the program reads
 * cgroup names from on cgroup v1 (the memory controller's index).
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** What the prerequisite check reads (injectable for tests). */
export interface HostProbe {
  exists(path: string): boolean;
  readFile(path: string): string;
  executable(path: string): boolean;
  env: NodeJS.ProcessEnv;
}

/** The real host. */
export const REAL_HOST: HostProbe = {
  exists: existsSync,
  readFile: (p) => readFileSync(p, 'utf8'),
  executable(p) {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  },
  env: process.env,
};

const CAP_SYS_ADMIN = 21n;
const CAP_PERFMON = 38n;
const CAP_BPF = 39n;

/** The effective capability set from the text of /proc/self/status, or null. */
export function capEffOf(status: string): bigint | null {
  const m = /^CapEff:\s*([0-9a-f]{1,16})$/m.exec(status);
  return m ? BigInt(`0x${m[1] as string}`) : null;
}

/** Find bpftrace: the path given, or the first `bpftrace` on PATH (and the usual sbin folders). */
export function findBpftrace(given: string, host: HostProbe): string | null {
  if (given !== '') return host.executable(given) ? given : null;
  const dirs = [...(host.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/bin', '/sbin', '/bin'].filter((d) => d.startsWith('/'));
  for (const d of dirs) if (host.executable(join(d, 'bpftrace'))) return join(d, 'bpftrace');
  return null;
}

/** Every missing prerequisite, each a sentence saying what and how to fix it; empty when all are met. */
export function missingPrerequisites(bpftrace: string, host: HostProbe): string[] {
  const missing: string[] = [];
  if (!host.exists('/sys/kernel/tracing/events') && !host.exists('/sys/kernel/debug/tracing/events')) {
    missing.push('tracefs is not mounted at /sys/kernel/tracing (mount -t tracefs tracefs /sys/kernel/tracing, or mount /sys/kernel/tracing into the agent pod)');
  }
  if (!host.exists('/sys/kernel/btf/vmlinux')) missing.push('the kernel has no BTF at /sys/kernel/btf/vmlinux (needs CONFIG_DEBUG_INFO_BTF=y, Linux 5.4+)');
  let status = '';
  try {
    status = host.readFile('/proc/self/status');
  } catch {
    // Reported below as unknown capabilities.
  }
  const caps = capEffOf(status);
  const has = (bit: bigint) => caps !== null && ((caps >> bit) & 1n) === 1n;
  if (caps === null) missing.push('cannot read the effective capabilities (CapEff in /proc/self/status)');
  else if (!has(CAP_SYS_ADMIN) && !(has(CAP_BPF) && has(CAP_PERFMON))) {
    const lacking = [has(CAP_BPF) ? '' : 'CAP_BPF', has(CAP_PERFMON) ? '' : 'CAP_PERFMON'].filter((c) => c !== '').join(' and ');
    missing.push(`not privileged: needs root with CAP_SYS_ADMIN, or CAP_BPF and CAP_PERFMON (missing ${lacking})`);
  }
  if (bpftrace === '') missing.push('bpftrace is not installed (apt-get install -y bpftrace), or give its path: --source ebpf:/path/to/bpftrace');
  return missing;
}

/** Index of the memory controller in the kernel's cgroup subsystems (the order of /proc/cgroups), or 0. */
export function memoryControllerIndex(procCgroups: string): number {
  const names = procCgroups
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split(/\s+/)[0]);
  const i = names.indexOf('memory');
  return i === -1 ? 0 : i;
}
