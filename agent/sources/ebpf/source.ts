/**
 * `ebpf[:BPFTRACE]` — the built-in eBPF source for nodes without Falco or Tetragon. The agent runs
 * bpftrace (the Debian package; or the binary named after the colon) with its own tracepoint program
 * (program.ts) and reads its JSON lines: exec with the full argv and parent, TCP connect, accept
 * and listen, UDP sends to new peers, DNS answers (dns.ts: a connect to an address the container
 * resolved carries the name as network.remoteName). bpftrace is spawned with an argument vector, never a shell,
 * and restarted with capped backoff if it dies.
 *
 * The kernel's prerequisites are checked before anything starts (prerequisites.ts: tracefs, BTF,
 * CAP_BPF+CAP_PERFMON or CAP_SYS_ADMIN, the bpftrace binary); the error names every one that is
 * missing. Its output is decoded by decode.ts; events the kernel dropped (bpftrace's lost_events
 * records) are counted in driftwatch_agent_source_lost_events_total.
 *
 * Attribution: the container is named from the process's cgroup, and /proc where that does not tell
 * (proc.ts); the image and pod come later from the CRI (agent/attribution/).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { backoffDelay } from '../../../runtime/backoff.js';
import { createLineSplitter } from '../lines.js';
import { SourceSpecError, countersOf, sleep, type Source, type SourceBatch, type SourceContext, type SourceFactory } from '../source.js';
import { EBPF_LIMITS, createEbpfDecoder, monotonicToEpoch, type ProcessResolver } from './decode.js';
import { REAL_HOST, findBpftrace, memoryControllerIndex, missingPrerequisites, type HostProbe } from './prerequisites.js';
import { createProcResolver } from './proc.js';
import { ebpfProgram } from './program.js';

/** Errors of the ebpf source, with a stable code. */
export class EbpfError extends Error {
  constructor(readonly code: 'prerequisites_missing' | 'bpftrace_failed', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EbpfError';
  }
}

/** Tuning of the runner (tests shorten it). */
export interface EbpfOptions {
  initialBackoffMs: number;
  maxBackoffMs: number;
  /**
   * Most events queued between bpftrace and the pipeline. Beyond it bpftrace's output is paused: bpftrace
   * then stops draining the kernel's perf buffers, and what the kernel drops comes back as lost_events.
   */
  maxQueued: number;
  host: HostProbe;
  resolver: ProcessResolver;
}

const EBPF_DEFAULTS = { initialBackoffMs: 500, maxBackoffMs: 30_000, maxQueued: 20_000 };

/** Split `[/path/to/bpftrace][?dns=on|off]`; throws SourceSpecError for anything else. */
export function parseEbpfArgument(argument: string): { bpftracePath: string; dns: boolean } {
  const q = argument.indexOf('?');
  const path = q === -1 ? argument : argument.slice(0, q);
  if (path.includes('\0')) throw new SourceSpecError('ebpf: NUL in the bpftrace path');
  if (path !== '' && !path.startsWith('/')) throw new SourceSpecError('ebpf takes an absolute path to bpftrace: --source ebpf:/usr/bin/bpftrace');
  let dns = true;
  if (q !== -1) {
    const query = argument.slice(q + 1);
    if (query === 'dns=off') dns = false;
    else if (query !== 'dns=on') throw new SourceSpecError(`ebpf: unknown option ${JSON.stringify(query.slice(0, 64))}; the one option is dns=on|off (--source ebpf:?dns=off)`);
  }
  return { bpftracePath: path, dns };
}

/**
 * How bpftrace is run with the agent's program: line-buffered JSON, the program, the memory
 * controller's index as `$1`. Shared with `driftwatch verify -- COMMAND`, which runs it once.
 */
export function bpftraceInvocation(options: { dns: boolean; memoryIndex: number }): { args: string[]; env: NodeJS.ProcessEnv } {
  return {
    args: ['-B', 'line', '-f', 'json', '-e', ebpfProgram({ dns: options.dns }), String(options.memoryIndex)],
    // bpftrace 0.17 caps strings at 200 bytes (the argv chunks use all of it); map bounds keep UDP deduplication finite.
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', BPFTRACE_STRLEN: '200', BPFTRACE_MAP_KEYS_MAX: '16384' },
  };
}

/** Create the source; throws EbpfError naming every missing prerequisite. */
export function createEbpfSource(argument: string, ctx: SourceContext, options: Partial<EbpfOptions> = {}): Source & { stats: { starts: number } } {
  const { bpftracePath, dns } = parseEbpfArgument(argument);
  const host = options.host ?? REAL_HOST;
  const bpftrace = findBpftrace(bpftracePath, host) ?? '';
  const missing = missingPrerequisites(bpftrace, host);
  if (missing.length > 0) throw new EbpfError('prerequisites_missing', `the ebpf source cannot start: ${missing.join('; ')}`);
  const opts = { ...EBPF_DEFAULTS, ...options };
  const resolver = options.resolver ?? createProcResolver();
  let memoryIndex = 0;
  try {
    memoryIndex = memoryControllerIndex(host.readFile('/proc/cgroups'));
  } catch {
    // No v1 controllers: index 0 reads the same v2 cgroup as the default hierarchy.
  }
  const name = (bpftracePath === '' ? 'ebpf' : `ebpf:${bpftracePath}`) + (dns ? '' : '?dns=off');
  const log = ctx.logger;
  const counters = countersOf(ctx);
  const stats = { starts: 0 };
  const clock = monotonicToEpoch();

  return {
    name,
    stats,
    async *batches(signal: AbortSignal): AsyncGenerator<SourceBatch> {
      let failures = 0;
      while (!signal.aborted) {
        const decoder = createEbpfDecoder({ ctx, source: name, clock, resolver, now: Date.now });
        let child: ChildProcess;
        const startedAt = Date.now();
        try {
          const run = bpftraceInvocation({ dns, memoryIndex });
          child = spawn(bpftrace, run.args, { stdio: ['ignore', 'pipe', 'pipe'], env: run.env });
        } catch (err) {
          throw new EbpfError('bpftrace_failed', `cannot run ${bpftrace}: ${(err as Error).message}`, { cause: err });
        }
        stats.starts++;
        if (stats.starts > 1) counters.restarted();
        let exited: { code: number | null; signal: string | null } | null = null;
        let spawnError: Error | null = null;
        let stderrTail = '';
        let wake: (() => void) | null = null;
        let paused = false;
        const poke = () => wake?.();
        const splitter = createLineSplitter(EBPF_LIMITS.line, {
          line: (text) => decoder.line(text),
          reject: (reason) => ctx.rejected(reason, 'bpftrace line'),
        });
        child.stdout!.on('data', (chunk: Buffer) => {
          splitter.push(chunk);
          if (decoder.ready >= opts.maxQueued && !paused) {
            paused = true;
            child.stdout!.pause();
          }
          poke();
        });
        child.stderr!.setEncoding('utf8');
        child.stderr!.on('data', (s: string) => {
          // Kept for the exit log only, bounded; the memlock warning of bpftrace is expected and harmless.
          stderrTail = (stderrTail + s).slice(-4096);
        });
        child.on('error', (err) => {
          spawnError = err;
          poke();
        });
        child.on('close', (code, sig) => {
          exited = { code, signal: sig };
          poke();
        });
        const onAbort = () => child.kill('SIGTERM');
        signal.addEventListener('abort', onAbort, { once: true });
        const timer = setInterval(poke, EBPF_LIMITS.assembleMs);
        try {
          for (;;) {
            decoder.expire(Date.now(), exited !== null || spawnError !== null);
            const events = decoder.take();
            if (events.length > 0) {
              failures = 0;
              yield { events };
              if (paused) {
                paused = false;
                child.stdout!.resume();
              }
              continue;
            }
            if (exited || spawnError || signal.aborted) break;
            await new Promise<void>((resolve) => (wake = resolve));
            wake = null;
          }
        } finally {
          clearInterval(timer);
          signal.removeEventListener('abort', onAbort);
          if (!exited) child.kill('SIGTERM');
        }
        if (signal.aborted) return;
        failures++;
        const delayMs = backoffDelay(failures, { baseMs: opts.initialBackoffMs, capMs: opts.maxBackoffMs });
        const x = exited as { code: number | null; signal: string | null } | null;
        log.error(
          {
            bpftrace,
            code: x?.code,
            signal: x?.signal,
            err: (spawnError as Error | null)?.message,
            ranMs: Date.now() - startedAt,
            stderr: stderrTail.split('\n').filter((l) => l !== '' && !l.includes('RLIMIT_MEMLOCK')).slice(-5).join('\n'),
            delayMs,
          },
          'bpftrace stopped, restarting',
        );
        await sleep(delayMs, signal);
      }
    },
  };
}

/** `ebpf[:/path/to/bpftrace][?dns=off]`. */
export const ebpfSource: SourceFactory = {
  scheme: 'ebpf',
  usage: 'ebpf[:/path/to/bpftrace][?dns=off]  run bpftrace with Driftwatch\'s own program: exec, TCP connect/accept/listen, UDP to new peers, DNS answers naming them (dns=off leaves out the receive probes) (needs root or CAP_BPF+CAP_PERFMON, tracefs, BTF)',
  create(argument, ctx) {
    return createEbpfSource(argument, ctx);
  },
};
