/**
 * Live alerts: one page of `GET /api/v1/alerts` (newest first, PAGE_SIZE rows, cursor paging) with
 * filters kept in the URL, updated in place by the live feed. Only one page is ever in the DOM,
 * so 10,000 alerts cost what 50 do.
 */
import type { Alert, Page as ApiPage } from './api.js';
import { announce, badge, h, message, replace, show, table, timeEl } from './dom.js';
import { openLiveFeed, type LiveChange } from './live.js';
import { link, linkWithQuery, type PageContext } from './page.js';

/** Rows per page. */
export const PAGE_SIZE = 50;

const SEVERITIES = ['critical', 'high', 'medium', 'low'] as const;
const STATES = ['firing', 'acknowledged', 'resolved', 'accepted'] as const;
// What the live feed accepts (collector/stream.ts); anything else is filtered by the list only.
const NAMESPACE_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const IMAGE_RE = /^[A-Za-z0-9._\-/:@+]{1,512}$/;

interface Filters {
  severity: string;
  namespace: string;
  image: string;
  state: string;
}

function filtersOf(q: URLSearchParams): Filters {
  const pick = (name: string, allowed?: readonly string[]) => {
    const v = (q.get(name) ?? '').trim().slice(0, 512);
    return allowed === undefined || allowed.includes(v) ? v : '';
  };
  return { severity: pick('severity', SEVERITIES), namespace: pick('namespace'), image: pick('image'), state: pick('state', STATES) };
}

function select(id: string, label: string, value: string, options: readonly string[], anyLabel: string): HTMLElement {
  return h(
    'label',
    { for: id },
    label,
    h('select', { id, name: id }, h('option', { value: '' }, anyLabel), options.map((o) => h('option', { value: o, selected: o === value }, o))),
  );
}

/** One alert as a table row. */
export function alertRow(a: Alert): HTMLTableRowElement {
  const what = h('a', { href: link('alerts', String(a.id)) }, show(a.summary, 300) || '(no summary)');
  return h(
    'tr',
    { 'data-alert-id': show(a.id, 64) },
    h('td', null, badge('sev', a.severity)),
    h('td', { class: 'alert-state' }, badge('state', a.state)),
    h('td', null, what, h('div', { class: 'muted' }, show(a.reason, 64), a.explanation ? ` — ${show(a.explanation, 300)}` : '')),
    h('td', { class: 'mono' }, show(a.image, 200)),
    h('td', null, show(a.namespace, 63)),
    h('td', { class: 'num' }, show(a.count)),
    h('td', { class: 'time' }, timeEl(a.lastSeen)),
  );
}

const HEADERS: (string | [string, string])[] = ['Severity', 'State', 'What', 'Image', 'Namespace', ['Count', 'num'], 'Last seen'];

/** The alerts list page. */
export async function alertsPage(ctx: PageContext): Promise<void> {
  const filters = filtersOf(ctx.query);
  const heading = ctx.title('Alerts');

  const form = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter alerts' },
    select('f-severity', 'Severity (at least)', filters.severity, SEVERITIES, 'any'),
    h('label', { for: 'f-namespace' }, 'Namespace', h('input', { id: 'f-namespace', name: 'namespace', value: filters.namespace, maxlength: 63, size: 14 })),
    h('label', { for: 'f-image' }, 'Image', h('input', { id: 'f-image', name: 'image', value: filters.image, maxlength: 512, size: 28, placeholder: 'docker.io/library/nginx' })),
    select('f-state', 'State', filters.state, STATES, 'any'),
    h('button', { type: 'submit', class: 'primary' }, 'Apply filters'),
    h('a', { href: link('alerts') }, 'Clear'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = (id: string) => (form.querySelector(`#${id}`) as HTMLInputElement | HTMLSelectElement).value.trim();
    location.hash = linkWithQuery(['alerts'], { severity: value('f-severity'), namespace: value('f-namespace'), image: value('f-image'), state: value('f-state') });
  });

  const liveStatus = h('p', { class: 'live muted', id: 'live-status', role: 'status' }, 'Live updates: connecting…');
  const banner = h('div', { 'aria-live': 'polite' });
  const body = h('div');
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of alerts' });
  replace(ctx.main, heading, form, liveStatus, banner, body, pager);

  // Cursors of the pages before the one shown: Newer pops, Older pushes.
  const cursors: (string | null)[] = [];
  let cursor: string | null = null;
  let next: string | null = null;
  let rows = new Map<string, HTMLTableRowElement>();
  let tbody: HTMLTableSectionElement | null = null;
  let liveAdded = 0;
  let loading: Promise<void> | null = null;

  async function load(): Promise<void> {
    const page = await ctx.api.get<ApiPage<Alert>>('alerts', { limit: PAGE_SIZE, cursor, ...filters });
    if (!ctx.alive()) return;
    next = typeof page.next === 'string' ? page.next : null;
    liveAdded = 0;
    renderTable(page.items);
    banner.replaceChildren();
    renderPager(page.items.length);
  }

  function renderTable(items: Alert[]): void {
    rows = new Map();
    const trs = items.map((a) => {
      const tr = alertRow(a);
      rows.set(String(a.id), tr);
      return tr;
    });
    const t = table('Alerts, newest first', HEADERS, trs);
    tbody = items.length === 0 ? null : (t.tBodies[0] ?? null);
    replace(body, items.length === 0 ? h('p', { class: 'panel', id: 'no-alerts' }, cursor === null ? 'No alerts match. New ones appear here as they happen.' : 'No more alerts.') : t);
  }

  let again = false;
  function reload(): Promise<void> {
    if (loading !== null) {
      // A change arrived while a page was being read: read it once more afterwards.
      again = true;
      return loading;
    }
    loading = load().finally(() => {
      loading = null;
      if (again && ctx.alive()) {
        again = false;
        void reload();
      }
    });
    return loading;
  }

  function renderPager(count: number): void {
    const pageNo = cursors.length + 1;
    const newer = h('button', { type: 'button', disabled: cursors.length === 0 }, '← Newer');
    const older = h('button', { type: 'button', disabled: next === null }, 'Older →');
    newer.addEventListener('click', () => {
      cursor = cursors.pop() ?? null;
      void reload().then(() => heading.focus());
    });
    older.addEventListener('click', () => {
      if (next === null) return;
      cursors.push(cursor);
      cursor = next;
      void reload().then(() => heading.focus());
    });
    replace(pager, newer, h('span', { id: 'page-info' }, `Page ${pageNo} · ${count} shown`), older);
  }

  function matchesState(a: Alert): boolean {
    return filters.state === '' || a.state === filters.state;
  }

  function onChange(c: LiveChange): void {
    const id = String(c.alert.id);
    const existing = rows.get(id);
    if (existing) {
      const tr = alertRow(c.alert);
      if (!matchesState(c.alert)) {
        tr.classList.add('stale');
        tr.title = 'No longer matches the filter';
      }
      existing.replaceWith(tr);
      rows.set(id, tr);
      return;
    }
    if (c.type !== 'alert.created' || !matchesState(c.alert)) return;
    if (cursor !== null) {
      liveAdded += 1;
      replace(banner, message('notice', `${liveAdded} new alert${liveAdded === 1 ? '' : 's'} since this page was loaded.`), h('button', { type: 'button', onclick: () => ((cursors.length = 0), (cursor = null), void reload()) }, 'Show newest'));
      return;
    }
    if (loading !== null) {
      void reload();
      return;
    }
    if (tbody === null) {
      renderTable([c.alert]);
      rows.get(id)?.classList.add('fresh');
      liveAdded = 1;
      renderPager(1);
      announce(`New alert: ${show(c.alert.summary, 120)}`);
      return;
    }
    // Newest first: a new alert goes on top. The page grows by what arrives live, until a page's
    // worth has arrived: then it is re-read, so that it never holds more than two pages.
    liveAdded += 1;
    if (liveAdded > PAGE_SIZE) {
      void reload();
      return;
    }
    const tr = alertRow(c.alert);
    tr.classList.add('fresh');
    tbody.prepend(tr);
    rows.set(id, tr);
    announce(`New alert: ${show(c.alert.summary, 120)}`);
  }

  const liveFilters: Record<string, string> = {};
  if (filters.severity !== '') liveFilters.severity = filters.severity;
  if (filters.namespace !== '' && NAMESPACE_RE.test(filters.namespace)) liveFilters.namespace = filters.namespace;
  if (filters.image !== '' && IMAGE_RE.test(filters.image)) liveFilters.image = filters.image;
  const liveUsable = (filters.namespace === '' || NAMESPACE_RE.test(filters.namespace)) && (filters.image === '' || IMAGE_RE.test(filters.image));
  if (liveUsable) {
    const feed = openLiveFeed(ctx.api.bearer, liveFilters, {
      change: onChange,
      resync: () => {
        if (cursor === null) void reload();
        else replace(banner, message('notice', 'Alerts changed while the live feed was interrupted.'), h('button', { type: 'button', onclick: () => void reload() }, 'Refresh'));
      },
      status: (s, detail) => {
        liveStatus.textContent = s === 'live' ? 'Live updates: on' : s === 'connecting' ? 'Live updates: connecting…' : `Live updates: off (${detail ?? 'disconnected'})`;
        liveStatus.dataset.state = s;
      },
    });
    ctx.onLeave(() => feed.close());
  } else {
    liveStatus.textContent = 'Live updates: off for this filter (not a valid namespace or image name)';
  }

  await reload();
}
