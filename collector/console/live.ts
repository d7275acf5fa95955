/**
 * The live feed (`/api/v1/stream`) in the browser. A browser cannot set Authorization on a
 * websocket, so the token travels as the subprotocol `driftwatch.bearer.<base64url(token)>` next to
 * `driftwatch.v1`, which is what the collector answers with (collector/auth.ts). Reconnects with
 * capped backoff; after a reconnect or a `dropped` frame the page is told to re-read its list.
 */
import type { Alert } from './api.js';

/** One change of an alert. */
export interface LiveChange {
  type: 'alert.created' | 'alert.updated' | 'alert.state';
  alert: Alert;
}

/** What the page hears from the feed. */
export interface LiveHandlers {
  change(c: LiveChange): void;
  /** Changes may have been missed (dropped by a slow client, or a reconnect): re-read the list. */
  resync(): void;
  /** Connection state for the page's indicator. */
  status(s: 'connecting' | 'live' | 'offline', detail?: string): void;
}

/** A running live feed. */
export interface LiveFeed {
  close(): void;
}

function base64url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Largest frame the page parses; alerts are far smaller. */
const MAX_FRAME = 1 << 20;

/** Open the feed with `filters` (the stream's query parameters) until close(). */
export function openLiveFeed(token: string, filters: Record<string, string>, on: LiveHandlers): LiveFeed {
  let ws: WebSocket | null = null;
  let closed = false;
  let attempt = 0;
  let timer: number | undefined;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v !== '') params.set(k, v);
  const qs = params.toString();
  const target = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/api/v1/stream${qs === '' ? '' : `?${qs}`}`;

  function connect(): void {
    if (closed) return;
    on.status('connecting');
    const protocols = ['driftwatch.v1'];
    if (token !== '') protocols.push(`driftwatch.bearer.${base64url(token)}`);
    let opened = false;
    const socket = new WebSocket(target, protocols);
    ws = socket;
    socket.onopen = () => {
      opened = true;
      // Anything that happened while we were away is only in the list: re-read it once.
      if (attempt > 0) on.resync();
      attempt = 0;
      on.status('live');
    };
    socket.onmessage = (ev) => {
      if (typeof ev.data !== 'string' || ev.data.length > MAX_FRAME) return;
      let m: unknown;
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (typeof m !== 'object' || m === null) return;
      const type = (m as { type?: unknown }).type;
      if (type === 'dropped') on.resync();
      else if ((type === 'alert.created' || type === 'alert.updated' || type === 'alert.state') && typeof (m as { alert?: { id?: unknown } }).alert?.id === 'string') {
        on.change({ type, alert: (m as { alert: Alert }).alert });
      }
    };
    socket.onclose = (ev) => {
      ws = null;
      if (closed) return;
      // 1008 after opening is the server closing a slow client; before opening, a refusal
      // (bad token, bad filter): retrying fast would not help.
      attempt += 1;
      const wait = Math.min(30_000, 500 * 2 ** Math.min(attempt, 6)) * (0.75 + Math.random() / 2);
      on.status('offline', opened ? `connection closed (${ev.code}); retrying` : 'live updates unavailable; retrying');
      timer = window.setTimeout(connect, wait);
    };
  }

  connect();
  return {
    close() {
      closed = true;
      if (timer !== undefined) window.clearTimeout(timer);
      ws?.close(1000, 'page left');
    },
  };
}
