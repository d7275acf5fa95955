/**
 * The store's slices as every consumer sees them: each method returns a promise. SQLite answers at
 * once (better-sqlite3 is synchronous, and its ingest runs in a worker thread of its own); PostgreSQL
 * answers over the network. One contract for both (issue 20): `Async<AlertStore>` is what a route or
 * a job takes, whichever store is behind it.
 */
import type { Store } from './store.js';

/** `T` with every method returning a promise of what it returned; other members as they are. */
export type Async<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : T[K];
};

/** The whole store, asynchronous. */
export type AsyncStore = Async<Store>;

/**
 * A synchronous implementation seen through the asynchronous contract: each method runs at once and
 * its result (or exception) settles the promise. A method's `this` is not used by the slices (they
 * are closures), so the functions are taken as they are.
 */
export function asAsync<T extends object>(impl: T): Async<T> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(impl)) {
    out[name] = typeof value === 'function' ? (...args: unknown[]) => new Promise((resolve) => resolve((value as (...a: unknown[]) => unknown)(...args))) : value;
  }
  return out as Async<T>;
}
