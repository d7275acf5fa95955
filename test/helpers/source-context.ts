/** A SourceContext for tests that records what was rejected. */
import pino from 'pino';
import type { SourceBatch, SourceContext } from '../../agent/sources/source.js';
import type { ActivityEvent } from '../../core/event.js';

/** A context plus the list of reject reasons it saw. */
export function testSourceContext(overrides: Partial<SourceContext> = {}): SourceContext & { rejects: string[] } {
  const rejects: string[] = [];
  return {
    node: 'node-1',
    logger: pino({ level: 'silent' }),
    maxRecordBytes: 1 << 20,
    follow: true,
    savedPosition: undefined,
    rejected: (reason) => rejects.push(reason),
    rejects,
    ...overrides,
  };
}

/** Pull batches from a source until `into` holds `n` events; fails after 5 s or if the source ends. */
export async function collectEvents(iter: AsyncIterator<SourceBatch>, into: ActivityEvent[], n: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (into.length < n) {
    if (Date.now() > deadline) throw new Error(`timed out with ${into.length}/${n} events`);
    const r = await iter.next();
    if (r.done) throw new Error('source ended');
    into.push(...r.value.events);
  }
}
