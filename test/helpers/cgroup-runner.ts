/**
 * A child that runs programs on request, for tests that need processes inside a cgroup: the test
 * forks it, moves it into the cgroup (its pid into cgroup.procs), then sends `{ exe, args }` over IPC;
 * every program it starts inherits the cgroup from its first instruction, as a container's processes
 * do (a shell that moves itself in and then execs would show its own exec in the wrong cgroup).
 * Argument vectors only: no shell.
 */
import { spawnSync } from 'node:child_process';

process.on('message', (m: unknown) => {
  const { exe, args } = (m ?? {}) as { exe?: unknown; args?: unknown };
  if (typeof exe !== 'string' || !Array.isArray(args) || !args.every((a) => typeof a === 'string')) {
    process.send?.({ status: null, error: 'bad request' });
    return;
  }
  const r = spawnSync(exe, args as string[], { stdio: 'ignore' });
  process.send?.({ status: r.status, error: r.error?.message ?? null });
});
