/**
 * The active exceptions, held in memory by the policy (few, and matched for every deviation group):
 * reloaded from the store whenever one is added, revoked or may have expired, and passed on to
 * whoever follows them (the ingest worker's own policy).
 */
import { createSerial } from '../../runtime/serial.js';
import type { Async } from '../store/async.js';
import type { ExceptionStore } from '../store/store.js';
import type { AlertException } from './alert.js';
import { activeExceptions, type AlertPolicyHandle } from './policy.js';

/** What the exception set needs. */
export interface ExceptionsDeps {
  store: Async<ExceptionStore>;
  policy: Pick<AlertPolicyHandle, 'setExceptions'>;
  now: () => number;
}

/** The exception set. */
export interface Exceptions {
  /** Call `listener` with the active exceptions now and whenever they change. */
  onChange(listener: (active: readonly AlertException[]) => void): void;
  /** Read the active exceptions again (some may have expired). */
  reload(): Promise<void>;
  /** Add an exception (validated by the caller); resolves once the policy matches it. */
  add(e: AlertException): Promise<void>;
  /** Revoke an exception as `by`: the revoked exception, or null when there is none or it was revoked already (by another call). */
  revoke(id: string, by: string): Promise<AlertException | null>;
  /** Resolves once every reload asked for so far is done. */
  idle(): Promise<void>;
}

/** Load the active exceptions into `policy` (resolves once loaded) and keep them current. */
export async function createExceptions(deps: ExceptionsDeps): Promise<Exceptions> {
  const { store, policy, now } = deps;
  const listeners: ((active: readonly AlertException[]) => void)[] = [];
  let active: readonly AlertException[] = [];
  // One reload at a time, in order: a slow read finishing after a later one must not put back an
  // older set (an exception just added, or revoked, undone in the policy).
  const reloads = createSerial();
  const reload = () =>
    reloads.run(async () => {
      active = activeExceptions(await store.listExceptions(), now());
      policy.setExceptions(active);
      for (const listen of listeners) listen(active);
    });
  await reload();
  return {
    onChange(listener) {
      listeners.push(listener);
      listener(active);
    },
    reload,
    async add(e) {
      await store.addException(e);
      await reload();
    },
    async revoke(id, by) {
      const at = now();
      const e = await store.revokeException(id, by, at);
      await reload();
      // The store revokes only what is not revoked yet: a row revoked at another time, or by another,
      // was another call's revocation (two at once, each read it unrevoked before revoking).
      return e && e.revokedAt === at && e.revokedBy === by ? e : null;
    },
    idle: reloads.idle,
  };
}
