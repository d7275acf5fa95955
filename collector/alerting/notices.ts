/**
 * Notices (digests, exception reminders) go to a team: to the receivers its owner entry names, else
 * to the default receivers; only to sinks that take notices. They travel through the outbox.
 */
import type { Notice, Sink } from '../sinks/index.js';
import type { AlertingConfig } from './config.js';
import type { Outbox } from './outbox.js';

/** Sends a notice to its team. */
export interface NoticeSender {
  /** Write `notice` to the outbox for the receivers of `notice.team`, under `subject`; resolves to those receivers once written. */
  send(notice: Notice, subject: string): Promise<string[]>;
}

/** What sending notices needs. */
export interface NoticeSenderDeps {
  owners: AlertingConfig['owners'];
  /** Receivers of teams whose owner entry names none. */
  defaults: readonly string[];
  sinks: readonly Sink[];
  outbox: Pick<Outbox, 'enqueue'>;
}

/** A notice sender over the outbox. */
export function createNoticeSender(deps: NoticeSenderDeps): NoticeSender {
  const { owners, defaults, sinks, outbox } = deps;

  /** Receivers of a team's notices: its own, else the defaults; only sinks that take notices. */
  function receivers(team: string): string[] {
    const owner = owners.find((o) => o.team === team && o.receivers !== undefined);
    return (owner?.receivers ?? defaults).filter((name) => sinks.find((x) => x.name === name)?.notify !== undefined);
  }

  return {
    async send(notice, subject) {
      const to = receivers(notice.team);
      const body = JSON.stringify(notice);
      await outbox.enqueue(to.map((sink) => ({ alert: subject, sink, action: 'notice', body, state: 'pending', lastError: '' })));
      return to;
    },
  };
}
