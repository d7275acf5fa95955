/**
 * The change feed on PostgreSQL (issue 20): what one replica changed, announced to every replica with
 * LISTEN/NOTIFY. A change is announced inside the transaction that makes it (`notifyIn`): PostgreSQL
 * delivers it at COMMIT, and never for a rolled-back transaction. Each replica listens on one
 * dedicated connection (not from the pool: a pooled client goes back to the pool and stops
 * listening); when that connection is lost it reconnects with backoff, and since what was announced
 * while it was gone is lost, every subscriber is then called with `resync` to read the state afresh.
 *
 * Channels: `dw_baseline` (payload: a baseline key) and `dw_alert` (payload: `type fingerprint`),
 * payloads bounded well under PostgreSQL's 8000-byte limit.
 *
 * The store announces with `announce` (one statement per transaction and channel, each payload once):
 * ingest (the keys its deltas changed for agents, the alerts it created or grew), reviews, accepted
 * alerts and quarantines (the keys whose versions they made), transitions (the alert). A payload past
 * the bound is announced as RESYNC_PAYLOAD instead: listeners read everything again.
 */
import pg from 'pg';
import type { Sql } from './db.js';

/** The channels replicas announce on. */
export const CHANNELS = { baseline: 'dw_baseline', alert: 'dw_alert', exception: 'dw_exception' } as const;
export type Channel = (typeof CHANNELS)[keyof typeof CHANNELS];

/** Longest payload announced (bytes of UTF-8; PostgreSQL refuses 8000 and more). */
export const MAX_PAYLOAD_BYTES = 4096;

/** What a subscriber is told: a payload, or that announcements may have been lost (read everything again). */
export interface FeedHandler {
  change(payload: string): void;
  resync(): void;
}

/** Announce `payload` on `channel` inside the caller's transaction (delivered at its COMMIT); a payload past the bound is refused. */
export async function notifyIn(sql: Sql, channel: Channel, payload: string): Promise<void> {
  if (Buffer.byteLength(payload, 'utf8') > MAX_PAYLOAD_BYTES) throw new RangeError(`a ${channel} announcement is bounded to ${MAX_PAYLOAD_BYTES} bytes`);
  await sql(`SELECT pg_notify($1, $2)`, [channel, payload]);
}

/** The payload announced instead of one past the bound: listeners treat it as a resync. */
export const RESYNC_PAYLOAD = '';

/** What an alert announcement says happened: created, grew (updated), or changed state (reopened, a transition). */
export type AlertChange = 'created' | 'updated' | 'state';
const ALERT_CHANGES: ReadonlySet<string> = new Set<AlertChange>(['created', 'updated', 'state']);

/** The payload of an alert announcement. */
export const alertPayload = (change: AlertChange, fingerprint: string) => `${change} ${fingerprint}`;

/** An alert announcement read back; null when it is not one (a payload is still bytes from the database). */
export function parseAlertPayload(payload: string): { change: AlertChange; fingerprint: string } | null {
  const space = payload.indexOf(' ');
  if (space <= 0) return null;
  const change = payload.slice(0, space);
  const fingerprint = payload.slice(space + 1);
  return ALERT_CHANGES.has(change) && fingerprint !== '' ? { change: change as AlertChange, fingerprint } : null;
}

/**
 * Announce each of `payloads` once on `channel` inside the caller's transaction, in one statement
 * (a group commit touching thousands of alerts costs one round trip, not thousands). A payload past
 * the bound is replaced by RESYNC_PAYLOAD: nothing a hostile key holds can fail the transaction.
 */
export async function announce(sql: Sql, channel: Channel, payloads: Iterable<string>): Promise<void> {
  const unique = new Set<string>();
  for (const p of payloads) unique.add(Buffer.byteLength(p, 'utf8') > MAX_PAYLOAD_BYTES ? RESYNC_PAYLOAD : p);
  if (unique.size === 0) return;
  await sql(`SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, [channel, [...unique]]);
}

/** A replica's listening side. */
export interface ChangeFeed {
  subscribe(channel: Channel, handler: FeedHandler): () => void;
  /** Resolves once the first LISTEN is in place (what is announced from then on is heard). */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/** Listen at `url` on a connection of its own, reconnecting (backoff from 100 ms to 10 s) when it is lost. */
export function openChangeFeed(url: string, options: { onError?: (err: unknown) => void } = {}): ChangeFeed {
  const handlers = new Map<Channel, Set<FeedHandler>>();
  for (const c of Object.values(CHANNELS)) handlers.set(c, new Set());
  let client: pg.Client | null = null;
  let closed = false;
  let failures = 0;
  let retry: NodeJS.Timeout | undefined;
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  let connectedOnce = false;

  const each = (fn: (h: FeedHandler) => void) => {
    for (const set of handlers.values()) for (const h of set) fn(h);
  };

  async function connect(): Promise<void> {
    if (closed) return;
    const c = new pg.Client({ connectionString: url, application_name: 'driftwatch-feed' });
    const lost = (err?: unknown) => {
      if (client !== c) return;
      client = null;
      if (err !== undefined) options.onError?.(err);
      c.end().catch(() => undefined);
      schedule();
    };
    c.on('error', lost);
    c.on('end', () => lost());
    c.on('notification', (n) => {
      const set = handlers.get(n.channel as Channel);
      if (!set || n.payload === undefined) return;
      for (const h of set) h.change(n.payload);
    });
    try {
      await c.connect();
      for (const channel of Object.values(CHANNELS)) await c.query(`LISTEN ${channel}`);
    } catch (err) {
      options.onError?.(err);
      c.end().catch(() => undefined);
      schedule();
      return;
    }
    if (closed) {
      await c.end().catch(() => undefined);
      return;
    }
    client = c;
    failures = 0;
    // Announcements made while no connection listened are lost: every subscriber reads afresh.
    if (connectedOnce) each((h) => h.resync());
    connectedOnce = true;
    markReady();
  }

  function schedule(): void {
    if (closed || retry) return;
    const delay = Math.min(10_000, 100 * 2 ** Math.min(failures++, 7));
    retry = setTimeout(() => {
      retry = undefined;
      void connect();
    }, delay);
    retry.unref();
  }

  void connect();
  return {
    subscribe(channel, handler) {
      handlers.get(channel)!.add(handler);
      return () => void handlers.get(channel)!.delete(handler);
    },
    ready,
    async close() {
      closed = true;
      clearTimeout(retry);
      const c = client;
      client = null;
      await c?.end().catch(() => undefined);
    },
  };
}
