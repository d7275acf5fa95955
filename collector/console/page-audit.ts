/** The audit log (`GET /api/v1/audit`, reviewer): who changed what, when, before and after; paged. */
import type { Page } from './api.js';
import { h, replace, show, table, timeEl, type Child } from './dom.js';
import { link, type PageContext } from './page.js';

const PAGE_SIZE = 50;

interface AuditEntry {
  id: number;
  time: string;
  actor: string;
  role: string;
  action: string;
  target: string;
  before: unknown;
  after: unknown;
}

function change(before: unknown, after: unknown): HTMLElement {
  const details = h('details', null, h('summary', null, 'before / after'), h('pre', { class: 'mono' }, `before: ${show(before, 2000)}\nafter:  ${show(after, 2000)}`));
  const state = (v: unknown) => (typeof v === 'object' && v !== null && typeof (v as { state?: unknown }).state === 'string' ? (v as { state: string }).state : null);
  const s0 = state(before);
  const s1 = state(after);
  return h('div', null, s0 !== null && s1 !== null ? `${s0} → ${s1}` : null, details);
}

/** The target, linked to its page where the console has one. */
function targetLink(action: unknown, target: unknown): Child {
  const a = show(action, 64);
  const text = show(target, 300);
  if (typeof target !== 'string' || target === '') return text;
  if (a.startsWith('alert.')) return h('a', { href: link('alerts', target) }, text);
  if (a.startsWith('baseline.')) return h('a', { href: link('baselines', target) }, text);
  return text;
}

/** The audit page. */
export async function auditPage(ctx: PageContext): Promise<void> {
  const heading = ctx.title('Audit log');
  const body = h('div');
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of the audit log' });
  replace(ctx.main, heading, h('p', { class: 'muted' }, 'Every change made through the API, newest first.'), body, pager);
  const cursors: (string | null)[] = [];
  let cursor: string | null = null;

  async function load(): Promise<void> {
    const page = await ctx.api.get<Page<AuditEntry>>('audit', { limit: PAGE_SIZE, cursor });
    if (!ctx.alive()) return;
    const rows = page.items.map((e) =>
      h(
        'tr',
        null,
        h('td', { class: 'time' }, timeEl(e.time)),
        h('td', null, show(e.actor, 64), h('div', { class: 'muted' }, show(e.role, 16))),
        h('td', { class: 'mono' }, show(e.action, 64)),
        h('td', { class: 'mono' }, targetLink(e.action, e.target)),
        h('td', null, change(e.before, e.after)),
      ),
    );
    replace(body, rows.length === 0 ? h('p', { class: 'panel' }, 'Nothing recorded yet.') : table('Audit log, newest first', ['Time', 'Who', 'Action', 'Target', 'Change'], rows));
    const next = typeof page.next === 'string' ? page.next : null;
    const newer = h('button', { type: 'button', disabled: cursors.length === 0, onclick: () => ((cursor = cursors.pop() ?? null), void load()) }, '← Newer');
    const older = h('button', { type: 'button', disabled: next === null, onclick: () => (cursors.push(cursor), (cursor = next), void load()) }, 'Older →');
    replace(pager, newer, h('span', null, `Page ${cursors.length + 1}`), older);
  }
  await load();
}
