/**
 * One-at-a-time: asynchronous steps that must not interleave (a read of the store and the write it
 * decides; pushes whose order agents see), run in the order they were asked for. Synchronous code got
 * this for free; code that awaits a store between its read and its write does not.
 */

/** A queue of steps run one at a time, in order. */
export interface Serial {
  /** Run `step` after every step asked for before it; settles as it does. A step that fails does not stop the next. */
  run<T>(step: () => T | Promise<T>): Promise<T>;
  /** Resolves once every step asked for so far has settled (at shutdown, before the store closes). */
  idle(): Promise<void>;
}

/** An empty queue. */
export function createSerial(): Serial {
  let tail: Promise<unknown> = Promise.resolve();
  return {
    run(step) {
      const result = tail.then(step);
      // The next step waits for this one to settle, whether it failed or not.
      tail = result.then(
        () => undefined,
        () => undefined,
      );
      return result;
    },
    idle: () => tail.then(() => undefined),
  };
}
