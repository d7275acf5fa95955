/**
 * Retention: deviations older than `deviationRetention` and alerts closed longer than
 * `alertRetention` are deleted (open alerts keep their summary). Run on the retention schedule.
 */
import type { Logger } from '../../runtime/logger.js';
import type { Async } from '../store/async.js';
import type { RetentionStore } from '../store/store.js';
import type { AlertingConfig } from './config.js';

/** What retention needs. */
export interface RetentionDeps {
  store: Async<RetentionStore>;
  config: Pick<AlertingConfig, 'deviationRetention' | 'alertRetention'>;
  logger: Logger;
  now: () => number;
}

/** Delete old deviations and closed alerts; the function returns how many of each went. */
export function createRetention(deps: RetentionDeps): () => Promise<{ deviations: number; alerts: number; deliveries: number }> {
  const { store, config, logger, now } = deps;
  return async () => {
    const t = now();
    const out = await store.prune(t - config.deviationRetention, t - config.alertRetention);
    logger.info(out, 'retention: old records deleted');
    return out;
  };
}
