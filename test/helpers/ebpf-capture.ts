/** The built-in eBPF source run for real in a test, its events gathered until stopped. */
import { spawnSync } from 'node:child_process';
import type { ExecutionContext } from 'ava';
import { createEbpfSource } from '../../agent/sources/ebpf/source.js';
import type { ActivityEvent } from '../../core/event.js';
import type { testSourceContext } from './source-context.js';

/** A running capture: what the source reported so far, and how to stop it (resolves once it ended). */
export interface EbpfCapture {
  events: ActivityEvent[];
  stop(): Promise<void>;
}

/**
 * Start the eBPF source on `ctx` and resolve once it reported an exec of `/bin/true MARKER`: bpftrace
 * says "attached" as it starts attaching, so execs before that may go unseen. Fails after `deadlineMs`.
 */
export async function captureEbpf(t: ExecutionContext, ctx: ReturnType<typeof testSourceContext>, marker: string, deadlineMs: number): Promise<EbpfCapture> {
  const source = createEbpfSource('', ctx);
  const controller = new AbortController();
  const events: ActivityEvent[] = [];
  const reading = (async () => {
    for await (const b of source.batches(controller.signal)) events.push(...b.events);
  })();
  t.teardown(() => controller.abort());
  const started = Date.now();
  while (!events.some((e) => e.kind === 'exec' && e.process.args.includes(marker))) {
    if (Date.now() - started > deadlineMs) throw new Error(`bpftrace did not report an exec within ${deadlineMs / 1000} s; rejects: ${ctx.rejects.join(',')}`);
    spawnSync('/bin/true', [marker]);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    events,
    async stop() {
      controller.abort();
      await reading;
    },
  };
}
