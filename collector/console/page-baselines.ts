/**
 * Baselines, read-only for now: every key with its state and entry counts
 * (`GET /api/v1/baselines`), and one baseline's process and network entries
 * (`GET /api/v1/baselines/{key}`, the key percent-encoded).
 *
 * Review actions drop in at two places: `baselineActions` (lock, unlock, relearn, export, versions)
 * renders into the page's toolbar, `entryActions` (approve, remove) into a column of each entry
 * row; both return nothing yet, and the column appears only when some row has an action.
 */
import { seg } from './api.js';
import { badge, duration, facts, h, replace, show, table, timeEl, type Child } from './dom.js';
import { link, type PageContext } from './page.js';

/** A baseline as the list shows it. */
interface BaselineSummary {
  key: string;
  state: string;
  windowStart: string | null;
  learnUntil: string | null;
  enforcingSince: string | null;
  events: number;
  overflow: boolean;
  images: string[];
  nodes: string[];
  processEntries: number;
  networkEntries: number;
}

/** One entry of a baseline. */
interface EntryJson {
  id: string;
  type: string;
  summary: string;
  exe?: string;
  parent?: string;
  user?: string;
  args?: string;
  direction?: string;
  protocol?: string;
  peer?: string;
  port?: number;
  firstSeen: string | null;
  lastSeen: string | null;
  count: number;
  nodes: string[];
  examples: string[];
}

type Baseline = Omit<BaselineSummary, 'processEntries' | 'networkEntries'> & { entries: EntryJson[] };

/** Entries shown per table page: a baseline holds up to 2,000. */
const ENTRY_PAGE = 100;

function stateText(b: { state: string; learnUntil: string | null }): Child {
  if (b.state === 'learning' && b.learnUntil) {
    const left = Date.parse(b.learnUntil) - Date.now();
    // The window runs on the events' own clock: "left" is against wall time, a hint only.
    return [badge('state', b.state), h('span', { class: 'muted' }, left > 0 ? ` until ${new Date(b.learnUntil).toLocaleString()} (${duration(left)})` : ' window closed; enforcing at the next event')];
  }
  return badge('state', b.state);
}

/** Review actions on a whole baseline (phase 2: lock, unlock, relearn, versions, export). */
function baselineActions(_b: Baseline, _ctx: PageContext): Child[] {
  return [];
}

/** Review actions on one entry (phase 2: approve, remove). */
function entryActions(_b: Baseline, _e: EntryJson, _ctx: PageContext): Child {
  return null;
}

/** The baselines list. */
export async function baselinesPage(ctx: PageContext): Promise<void> {
  const heading = ctx.title('Baselines');
  replace(ctx.main, heading, h('p', { class: 'muted' }, 'Loading…'));
  const list = await ctx.api.get<{ items: BaselineSummary[] }>('baselines');
  if (!ctx.alive()) return;
  const filter = h('input', { id: 'b-filter', type: 'search', maxlength: 200, placeholder: 'nginx' });
  const body = h('div');
  const render = () => {
    const q = filter.value.trim().toLowerCase();
    const items = list.items.filter((b) => q === '' || show(b.key).toLowerCase().includes(q)).slice(0, 1000);
    const rows = items.map((b) =>
      h(
        'tr',
        { 'data-key': show(b.key, 512) },
        h('td', { class: 'mono' }, h('a', { href: link('baselines', String(b.key)) }, show(b.key, 512))),
        h('td', null, stateText(b)),
        h('td', { class: 'num' }, show(b.processEntries)),
        h('td', { class: 'num' }, show(b.networkEntries)),
        h('td', { class: 'num' }, show(b.events)),
        h('td', null, show((b.nodes ?? []).length)),
      ),
    );
    replace(body, rows.length === 0 ? h('p', { class: 'panel' }, list.items.length === 0 ? 'No baselines yet: agents report them as they learn.' : 'No baseline matches.') : table('Baselines', ['Key', 'State', ['Processes', 'num'], ['Network', 'num'], ['Events learned', 'num'], 'Nodes'], rows), items.length === 1000 ? h('p', { class: 'muted' }, 'Showing the first 1,000; filter to narrow.') : null);
  };
  filter.addEventListener('input', render);
  replace(ctx.main, heading, h('div', { class: 'filters' }, h('label', { for: 'b-filter' }, 'Filter by key', filter)), body);
  render();
}

function entriesSection(title: string, id: string, b: Baseline, entries: EntryJson[], ctx: PageContext): HTMLElement {
  const section = h('section', { 'aria-labelledby': id });
  const heading = h('h2', { id }, `${title} (${entries.length})`);
  if (entries.length === 0) {
    replace(section, heading, h('p', { class: 'muted' }, 'None.'));
    return section;
  }
  const filter = h('input', { id: `${id}-filter`, type: 'search', maxlength: 200 });
  const body = h('div');
  const pager = h('div', { class: 'pager' });
  let offset = 0;
  const render = () => {
    const q = filter.value.trim().toLowerCase();
    const matching = entries.filter((e) => q === '' || show(e.summary).toLowerCase().includes(q) || (e.examples ?? []).some((x) => show(x).toLowerCase().includes(q)));
    if (offset >= matching.length) offset = 0;
    const shown = matching.slice(offset, offset + ENTRY_PAGE);
    const actions = shown.map((e) => entryActions(b, e, ctx));
    const withActions = actions.some((a) => a !== null);
    const rows = shown.map((e, i) =>
      h(
        'tr',
        { 'data-entry-id': show(e.id, 128) },
        h('td', { class: 'mono' }, show(e.summary, 1000)),
        h('td', { class: 'mono' }, (e.examples ?? []).slice(0, 3).map((x) => h('div', null, show(x, 500)))),
        h('td', { class: 'time' }, timeEl(e.firstSeen)),
        h('td', { class: 'time' }, timeEl(e.lastSeen)),
        h('td', null, show((e.nodes ?? []).slice(0, 10).join(', ')), (e.nodes ?? []).length > 10 ? ` +${(e.nodes ?? []).length - 10}` : ''),
        h('td', { class: 'num' }, show(e.count)),
        withActions ? h('td', null, actions[i]) : null,
      ),
    );
    const headers: (string | [string, string])[] = ['Entry', 'Examples', 'First seen', 'Last seen', 'Nodes', ['Count', 'num']];
    if (withActions) headers.push('Review');
    replace(body, table(title, headers, rows));
    const prev = h('button', { type: 'button', disabled: offset === 0, onclick: () => ((offset = Math.max(0, offset - ENTRY_PAGE)), render()) }, '← Previous');
    const next = h('button', { type: 'button', disabled: offset + ENTRY_PAGE >= matching.length, onclick: () => ((offset += ENTRY_PAGE), render()) }, 'Next →');
    replace(pager, matching.length > ENTRY_PAGE ? [prev, h('span', null, `${offset + 1}–${offset + shown.length} of ${matching.length}`), next] : null);
  };
  filter.addEventListener('input', () => ((offset = 0), render()));
  replace(section, heading, h('div', { class: 'filters' }, h('label', { for: `${id}-filter` }, `Filter ${title.toLowerCase()}`, filter)), body, pager);
  render();
  return section;
}

/** One baseline. */
export async function baselinePage(ctx: PageContext): Promise<void> {
  const key = ctx.path.slice(1).join('/');
  const heading = ctx.title(`Baseline ${key}`);
  replace(ctx.main, heading, h('p', { class: 'muted' }, 'Loading…'));
  const b = await ctx.api.get<Baseline>(`baselines/${seg(key)}`);
  if (!ctx.alive()) return;
  const entries = Array.isArray(b.entries) ? b.entries : [];
  const toolbar = h('div', { class: 'actions', id: 'baseline-actions', role: 'toolbar', 'aria-label': 'Baseline actions' }, baselineActions(b, ctx));
  replace(
    ctx.main,
    h('p', null, h('a', { href: link('baselines') }, '← All baselines')),
    heading,
    toolbar,
    h(
      'section',
      { class: 'panel', 'aria-label': 'Summary' },
      facts([
        ['State', stateText(b)],
        ['Learning since', timeEl(b.windowStart)],
        ['Enforcing since', b.enforcingSince ? timeEl(b.enforcingSince) : null],
        ['Events learned', show(b.events)],
        ['Images', show((b.images ?? []).slice(0, 20).join(', '))],
        ['Nodes', show((b.nodes ?? []).slice(0, 50).join(', '))],
        ['Full', b.overflow ? 'yes — new entries are no longer added' : null],
        ['Alerts', h('a', { href: `${link('alerts')}?image=${encodeURIComponent(b.key)}` }, 'Alerts of this baseline')],
      ]),
    ),
    entriesSection('Processes', 'proc', b, entries.filter((e) => e.type === 'process'), ctx),
    entriesSection('Network', 'net', b, entries.filter((e) => e.type === 'network'), ctx),
  );
}
