/** Parsing and binding of HOST:PORT listen addresses. */
import type { Server } from 'node:http';

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
