/** Pre-seeding an agent's state dir with learned baselines, as a restarted agent would find it. */
import type { BaselineSnapshot } from '../../core/baseline.js';
import { openAgentState } from '../../agent/state/index.js';

/**
 * Write `snapshots` into the state dir through the agent's own state store, then acknowledge the
 * snapshot records it queued for the collector (as if they had been sent long ago).
 */
export function seedAgentState(dir: string, snapshots: Iterable<BaselineSnapshot>): number {
  const state = openAgentState(dir, 1 << 30);
  let chunk: BaselineSnapshot[] = [];
  let n = 0;
  for (const s of snapshots) {
    chunk.push(s);
    n++;
    if (chunk.length === 200) {
      state.commit({ deltas: chunk });
      chunk = [];
    }
  }
  if (chunk.length > 0) state.commit({ deltas: chunk });
  for (;;) {
    const rows = state.peek(0, 10_000, Number.MAX_SAFE_INTEGER);
    if (rows.length === 0) break;
    state.remove(rows.map((r) => r.seq));
  }
  state.close();
  return n;
}
