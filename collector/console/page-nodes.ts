/**
 * Nodes (`GET /api/v1/nodes`): every agent with its version, sources, connection, last contact,
 * lag and spool; silent ones first and highlighted. The endpoint may not exist on an older
 * collector: the page says so instead of failing, and reads every field defensively.
 */
import { ApiError } from './api.js';
import { h, message, replace, show, table, timeEl } from './dom.js';
import type { PageContext } from './page.js';

const MAX_ROWS = 2000;

function lagText(v: unknown): string {
  if (typeof v === 'number' && Number.isFinite(v)) return v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`;
  return show(v, 32);
}

function sourcesText(v: unknown): string {
  if (!Array.isArray(v)) return show(v, 300);
  return v.slice(0, 20).map((s) => (typeof s === 'string' ? s : typeof s === 'object' && s !== null && typeof (s as { name?: unknown }).name === 'string' ? (s as { name: string }).name : show(s, 100))).join(', ');
}

/** The nodes page. */
export async function nodesPage(ctx: PageContext): Promise<void> {
  const heading = ctx.title('Nodes');
  const body = h('div');
  replace(ctx.main, heading, body);
  let list: { items?: unknown };
  try {
    list = await ctx.api.get<{ items?: unknown }>('nodes');
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return replace(body, message('notice', 'This collector does not report its agents yet (no /api/v1/nodes).'));
    throw err;
  }
  if (!ctx.alive()) return;
  const items = (Array.isArray(list.items) ? list.items : []).filter((n): n is Record<string, unknown> => typeof n === 'object' && n !== null);
  if (items.length === 0) return replace(body, h('p', { class: 'panel' }, 'No agent has connected yet.'));
  // Silent agents first: they are what this page is for.
  const sorted = [...items].sort((a, b) => Number(b.silent === true) - Number(a.silent === true) || show(a.node).localeCompare(show(b.node)));
  const rows = sorted.slice(0, MAX_ROWS).map((n) =>
    h(
      'tr',
      { class: n.silent === true ? 'silent' : null, 'data-node': show(n.node, 253) },
      h('td', null, show(n.node, 253), n.silent === true ? h('span', { class: 'badge sev-critical' }, ' silent') : null),
      h('td', null, show(n.agentVersion, 64)),
      h('td', null, sourcesText(n.sources)),
      h('td', null, n.connected === true ? 'yes' : n.connected === false ? 'no' : show(n.connected, 16)),
      h('td', { class: 'time' }, timeEl(n.lastContact)),
      h('td', { class: 'num' }, lagText(n.lag)),
      h('td', { class: 'num' }, show(n.spooled, 32)),
    ),
  );
  replace(body, table('Agents', ['Node', 'Agent version', 'Sources', 'Connected', 'Last contact', ['Lag', 'num'], ['Spooled', 'num']], rows));
}
