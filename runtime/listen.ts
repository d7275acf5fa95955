/** Parsing and binding of HOST:PORT listen addresses, and bounds on what a listener holds. */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** A parsed `HOST:PORT` (IPv6 hosts in brackets). */
export interface HostPort {
  host: string;
  port: number;
}

/** Parse `HOST:PORT`, `[::1]:PORT` or `:PORT` (all interfaces); throws a RangeError naming the value. */
export function parseHostPort(text: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new RangeError(`not HOST:PORT: ${JSON.stringify(text)} (e.g. 127.0.0.1:7070, [::1]:7070, :7070)`);
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

/** Format a host and port for display and for URLs. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Listen and resolve with the bound port (useful with port 0). */
export function listenHttp(server: Server, at: HostPort): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : at.port);
    });
  });
}

/** Bounds on a listener's open connections. */
export interface ConnectionLimits {
  /** Connections open at once; more are accepted and closed at once (Node's maxConnections). */
  max: number;
  /** Connections open at once from one peer address; more are closed as they are accepted. */
  perAddress: number;
}

/** Why a connection was closed as it was accepted (a label of the drop counters). */
export type ConnectionDrop = 'max_connections' | 'per_address';

/**
 * Bound the connections `server` holds, overall and per peer address (the socket's, never a
 * header's). A connection past a bound costs an accept and a close: the kernel's accept queue keeps
 * draining, memory and descriptors stay bounded whatever a flood or a slow-client attack opens,
 * and one address cannot take every connection. Each drop calls `onDrop` (to count it; logging
 * each would be what a flood wants).
 */
export function limitConnections(server: Server, limits: ConnectionLimits, onDrop: (reason: ConnectionDrop) => void): void {
  server.maxConnections = limits.max;
  server.on('drop', () => onDrop('max_connections'));
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '';
    const n = open.get(address) ?? 0;
    if (n >= limits.perAddress) {
      onDrop('per_address');
      socket.destroy();
      return;
    }
    open.set(address, n + 1);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left <= 0) open.delete(address);
      else open.set(address, left);
    });
  });
}
