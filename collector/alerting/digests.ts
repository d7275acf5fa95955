/**
 * Daily digests: each team of the ownership map gets its open alerts (most severe first, at most 20
 * lines) and how many are new in the last day, also when nothing is open. Run on the digest schedule.
 */
import { describeEntry } from '../../core/entry.js';
import type { Notice } from '../sinks/index.js';
import type { Async } from '../store/async.js';
import type { AlertStore } from '../store/store.js';
import type { Alert } from './alert.js';
import type { AlertingConfig } from './config.js';
import type { NoticeSender } from './notices.js';
import { apiLink } from './policy.js';
import { newestAlerts } from './queries.js';

/** What the digests need. */
export interface DigestsDeps {
  store: Async<AlertStore>;
  /** The ownership map: its teams get a digest. */
  owners: AlertingConfig['owners'];
  notices: NoticeSender;
  /** Base URL under which alerts are linked ('' = no link). */
  publicUrl: string;
  now: () => number;
}

/** Most alerts listed in one digest. */
const MAX_LINES = 20;

const SEVERITY_ORDER = ['critical', 'high', 'medium', 'low'];

/** Send each team of the ownership map its digest; the function returns how many were sent. */
export function createDigests(deps: DigestsDeps): () => Promise<number> {
  const { store, owners, notices, now } = deps;
  return async () => {
    const t = now();
    const since = t - 86_400_000;
    const teams = [...new Set(owners.map((o) => o.team))];
    const byTeam = new Map<string, Alert[]>(teams.map((team) => [team, []]));
    for (const a of await newestAlerts(store, ['firing', 'acknowledged'], 5_000)) byTeam.get(a.team)?.push(a);
    let sent = 0;
    for (const [team, open] of byTeam) {
      const fresh = open.filter((a) => a.createdAt >= since);
      const rank = (a: Alert) => SEVERITY_ORDER.indexOf(a.severity);
      open.sort((a, b) => rank(a) - rank(b) || b.lastSeen - a.lastSeen);
      const notice: Notice = {
        kind: 'digest',
        at: t,
        team,
        title: `Driftwatch daily digest for ${team}: ${open.length} open alert${open.length === 1 ? '' : 's'}, ${fresh.length} new`,
        lines: open.slice(0, MAX_LINES).map((a) => `[${a.severity.toUpperCase()}] ${a.state === 'acknowledged' ? '(ack) ' : ''}${a.baselineKey}: ${describeEntry(a.entry)} — ${a.count}×, last ${new Date(a.lastSeen).toISOString()}`),
        url: apiLink(deps.publicUrl, 'alerts'),
      };
      if (open.length > MAX_LINES) notice.lines.push(`… and ${open.length - MAX_LINES} more`);
      if (open.length === 0) notice.lines.push('nothing open');
      await notices.send(notice, `digest-${team}`);
      sent++;
    }
    return sent;
  };
}
