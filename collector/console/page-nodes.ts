/**
 * Nodes (`GET /api/v1/nodes`, `GET /api/v1/nodes/quarantined`): every agent with its state —
 * quarantined (since when, by whom, why), silent, stopped or ok — version, sources, connection,
 * last contact, lag and spool; quarantined and silent ones first and highlighted. A quarantined node
 * the collector no longer tracks is listed too. An admin quarantines a node (with a reason) or
 * releases it (`POST` / `DELETE /api/v1/nodes/{node}/quarantine`). The endpoints may not exist on an
 * older collector: the page says so instead of failing, and reads every field defensively.
 */
import { ApiError, can, errorText, quarantinedNodes, seg, type QuarantinedNode } from './api.js';
import { announce, h, message, replace, show, table, timeEl, type Child } from './dom.js';
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

/** The state cell: quarantined with when, by whom and why; else silent, stopped or ok. */
function stateCell(n: Record<string, unknown>, q: QuarantinedNode | undefined): Child {
  if (q) {
    return [
      h('span', { class: 'badge sev-critical' }, 'quarantined'),
      h('div', { class: 'why' }, 'since ', timeEl(q.at), ` by ${show(q.by, 64)}`),
      show(q.reason) !== '' ? h('div', { class: 'muted why' }, show(q.reason, 1000)) : null,
    ];
  }
  if (n.silent === true) return h('span', { class: 'badge sev-critical' }, 'silent');
  if (n.stopped === true) return h('span', { class: 'badge state-learned' }, 'stopped');
  return h('span', { class: 'badge state-enforcing' }, 'ok');
}

/** The nodes page. */
export async function nodesPage(ctx: PageContext): Promise<void> {
  const heading = ctx.title('Nodes');
  const feedback = h('div', { id: 'nodes-feedback', 'aria-live': 'polite' });
  const body = h('div');
  replace(ctx.main, heading, feedback, body);
  const mayQuarantine = can(ctx.me, 'quarantine');

  /** Quarantine (a small form asking why) or release one node, then reload. */
  function controls(node: string, quarantined: boolean): HTMLElement {
    const cell = h('div', { class: 'entry-review' });
    const closed = () =>
      replace(
        cell,
        quarantined
          ? h('button', { type: 'button', 'aria-label': `Release ${node}`, onclick: () => void release() }, 'Release')
          : h('button', { type: 'button', class: 'danger', 'aria-label': `Quarantine ${node}`, onclick: open }, 'Quarantine…'),
      );
    const release = async () => {
      if (!window.confirm(`Release ${node}? Its baseline deltas are taken again; what its quarantine removed stays removed.`)) return;
      try {
        await ctx.api.del(`nodes/${seg(node)}/quarantine`);
        replace(feedback, message('ok', `${node} is no longer quarantined.`));
        announce(`${node} released`);
        await load();
      } catch (err) {
        replace(feedback, message('error', errorText(err)));
      }
    };
    function open(): void {
      const id = `q-reason-${Math.random().toString(36).slice(2, 10)}`;
      const input = h('input', { id, name: 'reason', maxlength: 1000, autocomplete: 'off', required: true });
      const submit = h('button', { type: 'submit', class: 'danger' }, 'Confirm quarantine');
      const form = h(
        'form',
        { class: 'entry-form' },
        h('label', { for: id }, h('span', null, 'Why', h('span', { class: 'sr-only' }, ` ${node} is quarantined`)), input),
        h('p', { class: 'muted why' }, 'Its deltas are refused from now on, what it taught is taken out of every baseline, its deviations are kept.'),
        h('div', { class: 'actions' }, submit, h('button', { type: 'button', onclick: closed }, 'Cancel')),
      );
      form.addEventListener('keydown', (ev) => {
        if (ev.key === 'Escape') closed();
      });
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        const reason = input.value.trim().slice(0, 1000);
        if (reason === '') return;
        submit.disabled = true;
        void (async () => {
          try {
            const r = await ctx.api.post<{ keys?: unknown; entriesRemoved?: unknown; entriesRecomputed?: unknown; entriesNarrowed?: unknown }>(`nodes/${seg(node)}/quarantine`, { reason });
            const keys = Array.isArray(r.keys) ? r.keys.length : 0;
            const narrowed = Number(r.entriesNarrowed) > 0 ? ` ${show(r.entriesNarrowed)} could not be told from security's own exactly and were narrowed.` : '';
            replace(feedback, message('ok', `${node} is quarantined: ${show(r.entriesRemoved)} entries only it taught removed from ${keys} baselines, ${show(r.entriesRecomputed)} recomputed without its share.${narrowed}`));
            announce(`${node} quarantined`);
            await load();
          } catch (err) {
            replace(feedback, message('error', errorText(err)));
            submit.disabled = false;
          }
        })();
      });
      replace(cell, form);
      input.focus();
    }
    closed();
    return cell;
  }

  async function load(): Promise<void> {
    let list: { items?: unknown };
    let quarantined: Map<string, QuarantinedNode>;
    try {
      [list, quarantined] = await Promise.all([ctx.api.get<{ items?: unknown }>('nodes'), quarantinedNodes(ctx.api)]);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return replace(body, message('notice', 'This collector does not report its agents yet (no /api/v1/nodes).'));
      throw err;
    }
    if (!ctx.alive()) return;
    const items = (Array.isArray(list.items) ? list.items : []).filter((n): n is Record<string, unknown> => typeof n === 'object' && n !== null);
    // A quarantined node the collector no longer tracks (forgotten, or never connected) is listed too.
    const tracked = new Set(items.map((n) => show(n.node)));
    for (const q of quarantined.values()) if (!tracked.has(q.node)) items.push({ node: q.node });
    if (items.length === 0) return replace(body, h('p', { class: 'panel' }, 'No agent has connected yet.'));
    // Quarantined, then silent agents first: they are what this page is for.
    const rank = (n: Record<string, unknown>) => (quarantined.has(show(n.node)) ? 2 : n.silent === true ? 1 : 0);
    const sorted = [...items].sort((a, b) => rank(b) - rank(a) || show(a.node).localeCompare(show(b.node)));
    const rows = sorted.slice(0, MAX_ROWS).map((n) => {
      const name = show(n.node, 253);
      const q = quarantined.get(name);
      return h(
        'tr',
        { class: q ? 'quarantined' : n.silent === true ? 'silent' : null, 'data-node': name, 'data-state': q ? 'quarantined' : n.silent === true ? 'silent' : n.stopped === true ? 'stopped' : 'ok' },
        h('td', null, name),
        h('td', { class: 'node-state' }, stateCell(n, q)),
        h('td', null, show(n.agentVersion, 64)),
        h('td', null, sourcesText(n.sources)),
        h('td', null, n.connected === true ? 'yes' : n.connected === false ? 'no' : show(n.connected, 16)),
        h('td', { class: 'time' }, timeEl(n.lastContact)),
        h('td', { class: 'num' }, lagText(n.lag)),
        h('td', { class: 'num' }, show(n.spooled, 32)),
        mayQuarantine ? h('td', null, controls(name, q !== undefined)) : null,
      );
    });
    const headers: (string | [string, string])[] = ['Node', 'State', 'Agent version', 'Sources', 'Connected', 'Last contact', ['Lag', 'num'], ['Spooled', 'num']];
    if (mayQuarantine) headers.push('Quarantine');
    replace(body, table('Agents', headers, rows));
  }
  await load();
}
