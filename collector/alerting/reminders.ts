/**
 * Exception reminders: the owner of an exception is told once, `reminderBefore` ahead, that it
 * expires (what it covers alerts again then). Run on the reminder schedule.
 */
import type { Logger } from '../../runtime/logger.js';
import type { Notice } from '../sinks/index.js';
import type { Async } from '../store/async.js';
import type { ExceptionStore } from '../store/store.js';
import type { NoticeSender } from './notices.js';
import { apiLink } from './policy.js';

/** What the reminders need. */
export interface RemindersDeps {
  store: Async<ExceptionStore>;
  notices: NoticeSender;
  /** Owners are told this long before an exception expires. */
  reminderBefore: number;
  /** Called after each round: the exceptions that expired stop matching. */
  refreshExceptions(): Promise<void>;
  /** Base URL under which exceptions are linked ('' = no link). */
  publicUrl: string;
  logger: Logger;
  now: () => number;
}

/** Tell owners about exceptions expiring within `reminderBefore` (each once); the function returns how many were told. */
export function createReminders(deps: RemindersDeps): () => Promise<number> {
  const { store, notices, reminderBefore, logger, now } = deps;
  return async () => {
    const t = now();
    let told = 0;
    for (const e of await store.listExceptions()) {
      if (e.revokedAt !== 0 || e.remindedAt !== 0 || e.expiresAt <= t || e.expiresAt - t > reminderBefore) continue;
      const expires = new Date(e.expiresAt).toISOString();
      const notice: Notice = {
        kind: 'exception-expiring',
        at: t,
        team: e.owner,
        title: `Exception ${e.id} expires ${expires}`,
        lines: [
          `reason: ${e.reason}`,
          `owner: ${e.owner}; created by ${e.createdBy} at ${new Date(e.createdAt).toISOString()}`,
          `covers: key ${e.key || '*'}, entry ${e.entry || '*'}, namespace ${e.namespace || '*'}`,
          'after it expires, what it covers alerts again: renew it or fix what it covers',
        ],
        url: apiLink(deps.publicUrl, `exceptions/${e.id}`),
      };
      const to = await notices.send(notice, `exception-${e.id}`);
      await store.markReminded(e.id, t);
      logger.info({ exception: e.id, owner: e.owner, expiresAt: expires, receivers: to }, 'exception expires soon: owner told');
      told++;
    }
    await deps.refreshExceptions();
    return told;
  };
}
