/**
 * The collector's in-process feed of alert changes: alerting publishes, the websocket live feed
 * (collector/stream.ts) and anything else that wants to watch subscribes. Synchronous and in
 * memory only: a subscriber that needs durability reads the store instead.
 */
import type { AlertView } from './views.js';

/** What happened to an alert. */
export type FeedEventType =
  /** A new alert (first deviation of its fingerprint). */
  | 'alert.created'
  /** More deviations of an open alert (count, last seen, nodes, pods changed). */
  | 'alert.updated'
  /** A life-cycle change: acknowledged, resolved, accepted, or firing again. */
  | 'alert.state';

/** One feed event: the alert as the API shows it, after the change. */
export interface FeedEvent {
  type: FeedEventType;
  /** When the collector published it (ms since the epoch). */
  at: number;
  alert: AlertView;
}

/** A subscriber. It must not throw (a throw is caught and dropped) and must not block. */
export type FeedListener = (event: FeedEvent) => void;

/** The feed. */
export interface AlertFeed {
  publish(event: FeedEvent): void;
  /**
   * Subscribe; returns the function that unsubscribes. `active` says whether the listener wants
   * events right now (the live feed: while it has clients), so publishers skip building them.
   */
  subscribe(listener: FeedListener, active?: () => boolean): () => void;
  /** Subscribers that want events now. */
  readonly size: number;
}

/** Create a feed. `onListenerError` sees what a listener threw (log it). */
export function createAlertFeed(onListenerError: (err: unknown) => void = () => {}): AlertFeed {
  const listeners = new Map<FeedListener, (() => boolean) | undefined>();
  return {
    publish(event) {
      for (const [listener, active] of listeners) {
        if (active && !active()) continue;
        try {
          listener(event);
        } catch (err) {
          onListenerError(err);
        }
      }
    },
    subscribe(listener, active) {
      listeners.set(listener, active);
      return () => {
        listeners.delete(listener);
      };
    },
    get size() {
      let n = 0;
      for (const active of listeners.values()) if (!active || active()) n++;
      return n;
    },
  };
}
