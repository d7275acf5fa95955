/** A SourceContext for tests that records what was rejected. */
import pino from 'pino';
import type { SourceContext } from '../../agent/sources/source.js';

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
