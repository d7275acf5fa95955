/**
 * `driftwatch nodes ...`: the agents a collector hears from, and what to do with one found
 * compromised. Thin client of the collector's HTTP API; tables for people, `--json` for scripts.
 * Exit codes: 0 done, 1 the collector refused or failed, 2 bad usage.
 */
import { parseArgs } from 'node:util';
import { CLIENT_OPTIONS as COMMON, UsageError, clip, createApiClient, printable, table } from './api-client.js';

/** Help of `driftwatch nodes`. */
export const NODES_HELP = `driftwatch nodes — the nodes' agents, and what each taught the baselines
  driftwatch nodes list                           every node: connected, lag, silent, quarantined
  driftwatch nodes quarantine NODE --reason TEXT  a node found compromised: its further baseline
                                                  deltas are refused, the entries only it taught are
                                                  removed from every key (a new version each), the
                                                  stats of entries others taught too are recomputed
                                                  without its share, its deviations are kept and marked
  driftwatch nodes release NODE                   lift a quarantine (what was removed stays removed)
  driftwatch nodes taught KEY [NODE]              which nodes taught each entry of a baseline, and
                                                  whose share of it was dropped (only NODE's entries
                                                  when given, dropped ones included)
  driftwatch nodes drop KEY NODE --reason TEXT    drop one node's share of one baseline
Common flags: --url, --token-file, --json (see driftwatch alerts --help)`;

const s = (v: unknown) => printable(String(v ?? ''));
const keyPath = (key: string) => `/api/v1/baselines/${encodeURIComponent(key)}`;

async function nodes(args: string[], env: NodeJS.ProcessEnv, out: (t: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { ...COMMON, reason: { type: 'string' } }, allowPositionals: true, strict: true });
  if (values.help) return out(NODES_HELP), 0;
  const [verb, a, b, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected ${extra.join(' ')}`);
  const api = createApiClient(values, env);
  const json = (v: unknown) => (out(JSON.stringify(v, null, 2)), 0);
  const reason = () => {
    if (values.reason === undefined || values.reason.trim() === '') throw new UsageError(`${verb} needs --reason TEXT`);
    return values.reason;
  };
  if (verb === 'list' || verb === undefined) {
    const list = await api.call('GET', '/api/v1/nodes');
    if (values.json) return json(list);
    if (list.items.length === 0) return out('no nodes'), 0;
    const rows = [['NODE', 'CONNECTED', 'LAG', 'STATE', 'LAST CONTACT', 'AGENT']];
    for (const n of list.items) {
      const state = n.quarantined ? 'QUARANTINED' : n.silent ? 'silent' : n.stopped ? 'stopped' : 'ok';
      rows.push([s(n.node), n.connected ? 'yes' : 'no', `${Number(n.lagSeconds) || 0}s`, state, s(n.lastContact ?? '-'), clip(s(n.agentVersion), 30)]);
    }
    return out(table(rows)), 0;
  }
  if (verb === 'quarantine') {
    if (a === undefined || b !== undefined) throw new UsageError('quarantine takes one NODE');
    const r = await api.call('POST', `/api/v1/nodes/${encodeURIComponent(a)}/quarantine`, { reason: reason() });
    if (values.json) return json(r);
    out(`${s(r.node)} is quarantined: its deltas are refused; ${r.entriesRemoved} entries only it taught removed from ${r.keys.length} baselines${r.keys.length > 0 ? ` (${r.keys.slice(0, 10).map(s).join(', ')}${r.keys.length > 10 ? ', …' : ''})` : ''}; ${Number(r.entriesRecomputed) || 0} entries others taught too (or security kept) recomputed without its share; its deviations are kept, marked`);
    if (Number(r.entriesNarrowed) > 0) out(`${Number(r.entriesNarrowed)} of them could not be told apart from security's own exactly (first/last seen or examples): narrowed to what provably remains, see the collector's log`);
    return 0;
  }
  if (verb === 'release') {
    if (a === undefined || b !== undefined) throw new UsageError('release takes one NODE');
    const r = await api.call('DELETE', `/api/v1/nodes/${encodeURIComponent(a)}/quarantine`);
    return values.json ? json(r) : (out(`${s(r.node)} is no longer quarantined`), 0);
  }
  if (verb === 'taught') {
    if (a === undefined) throw new UsageError('taught needs a baseline KEY');
    const v = await api.call('GET', keyPath(a));
    const list = (x: unknown): string[] => (Array.isArray(x) ? x.map(s) : []);
    const entries = (Array.isArray(v.entries) ? v.entries : []).filter((e: any) => b === undefined || list(e.nodes).includes(b) || list(e.droppedNodes).includes(b));
    if (values.json) return json(entries.map((e: any) => ({ id: e.id, status: e.status, nodes: e.nodes, droppedNodes: e.droppedNodes ?? [] })));
    if (entries.length === 0) return out(b === undefined ? 'no entries' : `${s(b)} taught this baseline nothing`), 0;
    const rows = [['STATUS', 'NODES', 'DROPPED', 'ENTRY']];
    for (const e of entries) rows.push([s(e.status), list(e.nodes).length > 0 ? list(e.nodes).join(',') : '(security)', list(e.droppedNodes).join(',') || '-', clip(s(e.id), 100)]);
    return out(table(rows)), 0;
  }
  if (verb === 'drop') {
    if (a === undefined || b === undefined) throw new UsageError('drop needs a baseline KEY and a NODE');
    const v = await api.call('POST', `${keyPath(a)}/nodes/${encodeURIComponent(b)}/drop`, { reason: reason() });
    return values.json ? json(v) : (out(`dropped what ${s(b)} taught ${s(v.key)}: version ${v.version}, ${Array.isArray(v.entries) ? v.entries.length : 0} entries left`), 0);
  }
  throw new UsageError(`unknown nodes command ${JSON.stringify(verb.slice(0, 40))}; one of: list, quarantine, release, taught, drop`);
}

/** Run `driftwatch nodes ARGS`. */
export async function runNodes(args: string[], env: NodeJS.ProcessEnv = process.env, io = { out: (t: string) => console.log(t), err: (t: string) => console.error(t) }): Promise<number> {
  try {
    return await nodes(args, env, io.out);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`driftwatch nodes: ${(err as Error).message}\n\n${NODES_HELP}`);
      return 2;
    }
    io.err(`driftwatch nodes: ${(err as Error).message}`);
    return 1;
  }
}
