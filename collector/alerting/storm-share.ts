/**
 * Storm control across replicas (issue 20): N collectors on one database keep one notification rate.
 * The decision stays inside each ingest transaction, on the replica's own counts (no shared row that
 * every transaction of every replica would queue on); what each replica admitted is exchanged through
 * the store every `everyMs`, and each counts the others' against the same limits. Windows are
 * aligned (policy.ts windowStart), so replicas cut the same ones and name their summaries alike.
 * Overshoot is bounded by what the other replicas admit within one exchange period.
 */
import type { Async } from '../store/async.js';
import type { StormStore } from '../store/store.js';
import type { StormCount } from './alert.js';
import type { AlertPolicyHandle } from './policy.js';

/** How often replicas exchange their counts by default. */
export const STORM_SHARE_MS = 1_000;

/** What the exchange needs. */
export interface StormShareDeps {
  store: Async<StormStore>;
  policy: Pick<AlertPolicyHandle, 'stormCounts' | 'setPeerStorm'>;
  /** This replica's id (its rows in the store). */
  owner: string;
  /** Where a lost (and a regained) exchange is told. */
  logger: { warn(obj: object, msg: string): void };
  now: () => number;
  everyMs: number;
}

/** The running exchange. */
export interface StormShare {
  /** Exchange now (tests; the loop does it every `everyMs`). */
  exchange(): Promise<void>;
  /** Stop the loop; resolves once an exchange under way is done. */
  stop(): Promise<void>;
}

const keyOf = (c: StormCount) => `${c.scope}\n${c.start}`;

/** Start exchanging this replica's storm counts with the others'. */
export function startStormShare(deps: StormShareDeps): StormShare {
  const { store, policy, owner, logger, now, everyMs } = deps;
  /** What this replica last recorded per window: only changes are written again. */
  let sent = new Map<string, string>();
  let failing = false;
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  async function once(): Promise<void> {
    const at = now();
    const mine = policy.stormCounts(at);
    const next = new Map(mine.map((c) => [keyOf(c), `${c.count}/${c.summarized}`]));
    const changed = mine.filter((c) => sent.get(keyOf(c)) !== next.get(keyOf(c)));
    try {
      policy.setPeerStorm(await store.shareStorm(owner, changed, at));
      sent = next;
      if (failing) logger.warn({}, 'storm counts are shared with the other replicas again');
      failing = false;
    } catch (err) {
      // Storm control goes on with this replica's own counts meanwhile (and the others' last known).
      if (!failing) logger.warn({ err }, 'could not share storm counts with the other replicas');
      failing = true;
    }
  }
  const exchange = () => (running = running.then(once));
  const loop = () => {
    if (stopped) return;
    timer = setTimeout(() => void exchange().finally(loop), everyMs);
    timer.unref();
  };
  loop();
  return {
    exchange,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
