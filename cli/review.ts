/**
 * The review commands: `driftwatch alerts ...` and `driftwatch exceptions ...`, thin clients of a
 * collector's HTTP API. Tables for people, `--json` for scripts. Exit codes: 0 done, 1 the collector
 * refused or failed, 2 bad usage.
 */
import { parseArgs } from 'node:util';
import { CLIENT_OPTIONS as COMMON, UsageError, clip, createApiClient as client, printable, query, table, type ApiClient as Client } from './api-client.js';

export const REVIEW_HELP: Record<'alerts' | 'exceptions', string> = {
  alerts: `driftwatch alerts — review alerts on a collector
  driftwatch alerts list [--state firing|acknowledged|resolved|accepted] [--severity LEVEL]
                         [--image KEY] [--namespace NS] [--limit N]
  driftwatch alerts show ID
  driftwatch alerts ack ID [--comment TEXT]        someone is on it
  driftwatch alerts resolve ID [--comment TEXT]    it is over (fires again if it comes back)
  driftwatch alerts accept ID [--comment TEXT]     it is fine: its entry joins the baseline
Common flags:
  --url URL          the collector's API (also --server); default $DRIFTWATCH_URL or http://127.0.0.1:8080
  --token-file FILE  bearer token; default $DRIFTWATCH_TOKEN_FILE, or $DRIFTWATCH_TOKEN itself
  --json             print the API's JSON instead of a table`,
  exceptions: `driftwatch exceptions — risks accepted by security (stored and shown, not notified)
  driftwatch exceptions list [--status active|expired|revoked]
  driftwatch exceptions add --reason TEXT --owner TEAM (--expires-in 30d | --expires-at RFC3339)
                            (--alert ID | [--key GLOB] [--entry GLOB] [--namespace NS])
  driftwatch exceptions remove ID
Common flags: --url, --token-file, --json (see driftwatch alerts --help)`,
};

const ALERT_VERBS: Record<string, string> = { ack: 'acknowledge', acknowledge: 'acknowledge', resolve: 'resolve', accept: 'accept' };

async function alerts(args: string[], env: NodeJS.ProcessEnv, out: (s: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...COMMON, state: { type: 'string' }, severity: { type: 'string' }, image: { type: 'string' }, namespace: { type: 'string' }, limit: { type: 'string' }, comment: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return out(REVIEW_HELP.alerts), 0;
  const [verb, id, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected ${extra.join(' ')}`);
  const api = client(values, env);
  if (verb === 'list' || verb === undefined) {
    const page = await api.call('GET', `/api/v1/alerts${query(values, ['state', 'severity', 'image', 'namespace', 'limit'])}`);
    if (values.json) return out(JSON.stringify(page, null, 2)), 0;
    if (page.items.length === 0) return out('no alerts'), 0;
    const rows = [['ID', 'SEVERITY', 'STATE', 'COUNT', 'LAST SEEN', 'IMAGE', 'WHAT']];
    for (const a of page.items) rows.push([a.id.slice(0, 12), a.severity, a.suppressedBy ? `${a.state} (exception)` : a.state, String(a.count), a.lastSeen ?? '', clip(a.image, 40), clip(a.summary, 70)]);
    out(table(rows));
    if (page.next) out(`(more: add --limit, or use the API with cursor=${page.next})`);
    return 0;
  }
  if (id === undefined) throw new UsageError(`${verb} needs an alert id`);
  if (verb === 'show') {
    const a = await api.call('GET', `/api/v1/alerts/${encodeURIComponent(await resolveId(api, id))}`);
    if (values.json) return out(JSON.stringify(a, null, 2)), 0;
    const lines = [
      `${a.severity.toUpperCase()}  ${a.summary}`,
      `  alert      ${a.id}  (${a.state}${a.stateChange ? ` by ${a.stateChange.by || '?'} at ${a.stateChange.at}${a.stateChange.comment ? `: ${a.stateChange.comment}` : ''}` : ''})`,
      `  why        ${a.rule.id}: ${a.rule.reason}`,
      `  deviation  ${a.reason}: ${a.explanation}`,
      `  image      ${a.image}${a.team ? `  (team ${a.team})` : ''}`,
      `  seen       ${a.count}× from ${a.firstSeen} to ${a.lastSeen} on ${a.nodes.join(', ')}`,
      `  pods       ${a.pods.join(', ') || '-'}`,
      `  example    ${a.example}`,
      // The package behind the executable, from the image's SBOM (issue 22).
      ...(a.sbom ? [printable(`  package    ${a.sbom.text}${a.sbom.notInSbom ? '  <- drift evidence' : ''}${a.sbom.note ? ` (${a.sbom.note})` : ''}`)] : []),
      ...(a.nearest.length > 0 ? [`  nearest    ${a.nearest.join('\n             ')}`] : []),
      ...(a.suppressedBy ? [`  exception  ${a.suppressedBy} (not notified)`] : []),
      `  delivered  ${a.deliveries.map((d: any) => `${d.sink} ${d.action} ${d.state}${d.lastError ? ` (${d.lastError})` : ''}`).join('; ') || '-'}`,
    ];
    return out(lines.join('\n')), 0;
  }
  const action = ALERT_VERBS[verb];
  if (!action) throw new UsageError(`unknown alerts command ${JSON.stringify(verb)}; one of: list, show, ack, resolve, accept`);
  const a = await api.call('POST', `/api/v1/alerts/${encodeURIComponent(await resolveId(api, id))}/${action}`, { comment: values.comment ?? '' });
  if (values.json) return out(JSON.stringify(a, null, 2)), 0;
  out(`${a.id.slice(0, 12)} is now ${a.state}: ${a.summary}`);
  return 0;
}

/** Accept the 12-character prefix the list prints: look it up among recent alerts. */
async function resolveId(api: Client, id: string): Promise<string> {
  if (!/^[0-9a-f]{6,64}$/.test(id)) throw new UsageError(`${JSON.stringify(id.slice(0, 80))} is not an alert id`);
  if (id.length >= 32) return id;
  const matches: string[] = [];
  let cursor = '';
  for (let page = 0; page < 10 && matches.length < 2; page++) {
    const p = await api.call('GET', `/api/v1/alerts?limit=1000${cursor}`);
    for (const a of p.items) if (a.id.startsWith(id)) matches.push(a.id);
    if (!p.next) break;
    cursor = `&cursor=${encodeURIComponent(p.next)}`;
  }
  if (matches.length === 1) return matches[0]!;
  throw new Error(matches.length === 0 ? `no alert id starts with ${id}` : `${id} is ambiguous; give more of the id`);
}

async function exceptions(args: string[], env: NodeJS.ProcessEnv, out: (s: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      ...COMMON,
      status: { type: 'string' },
      alert: { type: 'string' },
      key: { type: 'string' },
      entry: { type: 'string' },
      namespace: { type: 'string' },
      reason: { type: 'string' },
      owner: { type: 'string' },
      'expires-in': { type: 'string' },
      'expires-at': { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return out(REVIEW_HELP.exceptions), 0;
  const [verb, id, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected ${extra.join(' ')}`);
  const api = client(values, env);
  const show = (e: any) =>
    `${e.id}  ${e.status}  owner ${e.owner}  expires ${e.expiresAt}\n  matches key=${e.match.key ?? '*'} entry=${e.match.entry ?? '*'} namespace=${e.match.namespace ?? '*'}\n  reason  ${e.reason}  (by ${e.createdBy} at ${e.createdAt})`;
  if (verb === 'list' || verb === undefined) {
    const list = await api.call('GET', `/api/v1/exceptions${query(values, ['status'])}`);
    if (values.json) return out(JSON.stringify(list, null, 2)), 0;
    return out(list.items.length === 0 ? 'no exceptions' : list.items.map(show).join('\n')), 0;
  }
  if (verb === 'add') {
    if (id !== undefined) throw new UsageError(`unexpected ${id}`);
    const body: Record<string, unknown> = {};
    for (const [flag, field] of [['alert', 'alert'], ['key', 'key'], ['entry', 'entry'], ['namespace', 'namespace'], ['reason', 'reason'], ['owner', 'owner'], ['expires-in', 'expiresIn'], ['expires-at', 'expiresAt']] as const) {
      if (values[flag] !== undefined) body[field] = values[flag];
    }
    if (typeof body.alert === 'string') body.alert = await resolveId(api, body.alert);
    const e = await api.call('POST', '/api/v1/exceptions', body);
    return out(values.json ? JSON.stringify(e, null, 2) : `added ${show(e)}`), 0;
  }
  if (verb === 'remove' || verb === 'revoke') {
    if (id === undefined) throw new UsageError('remove needs an exception id');
    const e = await api.call('DELETE', `/api/v1/exceptions/${encodeURIComponent(id)}`);
    return out(values.json ? JSON.stringify(e, null, 2) : `revoked ${e.id}`), 0;
  }
  throw new UsageError(`unknown exceptions command ${JSON.stringify(verb)}; one of: list, add, remove`);
}

/** Run `driftwatch alerts|exceptions ARGS`. */
export async function runReview(command: 'alerts' | 'exceptions', args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const out = (s: string) => console.log(s);
  try {
    return command === 'alerts' ? await alerts(args, env, out) : await exceptions(args, env, out);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`driftwatch ${command}: ${(err as Error).message}\n\n${REVIEW_HELP[command]}`);
      return 2;
    }
    console.error(`driftwatch ${command}: ${(err as Error).message}`);
    return 1;
  }
}
