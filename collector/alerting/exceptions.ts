/**
 * The active exceptions, held in memory by the policy (few, and matched for every deviation group):
 * reloaded from the store whenever one is added, revoked or may have expired, and passed on to
 * whoever follows them (the ingest worker's own policy).
 */
import type { ExceptionStore } from '../store/store.js';
import type { AlertException } from './alert.js';
import { activeExceptions, type AlertPolicyHandle } from './policy.js';

/** What the exception set needs. */
export interface ExceptionsDeps {
  store: ExceptionStore;
  policy: Pick<AlertPolicyHandle, 'setExceptions'>;
  now: () => number;
}

/** The exception set. */
export interface Exceptions {
  /** Call `listener` with the active exceptions now and whenever they change. */
  onChange(listener: (active: readonly AlertException[]) => void): void;
  /** Read the active exceptions again (some may have expired). */
  reload(): void;
  /** Add an exception (validated by the caller). */
  add(e: AlertException): void;
  revoke(id: string, by: string): AlertException | null;
}

/** Load the active exceptions into `policy` and keep them current. */
export function createExceptions(deps: ExceptionsDeps): Exceptions {
  const { store, policy, now } = deps;
  const listeners: ((active: readonly AlertException[]) => void)[] = [];
  let active: readonly AlertException[] = [];
  const reload = () => {
    active = activeExceptions(store.listExceptions(), now());
    policy.setExceptions(active);
    for (const listen of listeners) listen(active);
  };
  reload();
  return {
    onChange(listener) {
      listeners.push(listener);
      listener(active);
    },
    reload,
    add(e) {
      store.addException(e);
      reload();
    },
    revoke(id, by) {
      const e = store.revokeException(id, by, now());
      reload();
      return e;
    },
  };
}
