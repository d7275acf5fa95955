/**
 * Deep freezing, for what is parsed once and then shared: configuration, sink settings, severity
 * tables. An object already frozen is taken as frozen all the way down (everything frozen here is).
 */

/** Freeze `value` and everything reachable from it; returns `value`. */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
