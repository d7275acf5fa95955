/**
 * Images (`GET /api/v1/images`): every image repository the agents reported running or that showed
 * up in deviations, with its versions (tag and digest; the running ones marked with their container
 * count), the owning team (alerting.owners), the open alerts and the state of its baselines, and
 * when it was last seen. Filters (namespace, repository prefix, running or not) are kept in the
 * address. Everything from the API is read defensively: a field of the wrong type shows as text.
 */
import { ApiError } from './api.js';
import { h, message, replace, show, table, timeEl, type Child } from './dom.js';
import { link, linkWithQuery, type PageContext } from './page.js';

/** Most repositories one page shows. */
const PAGE_SIZE = 200;

const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const record = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

/** `tag@sha256:abcdef012345` with the running ones marked. */
function versionsCell(versions: unknown): Child {
  return h(
    'ul',
    { class: 'versions' },
    list(versions)
      .slice(0, 20)
      .map(record)
      .map((v) =>
        h(
          'li',
          { 'data-tag': show(v.tag, 128), 'data-running': v.running === true ? 'true' : 'false' },
          h('code', null, `${show(v.tag, 128) || '—'}${show(v.digest) !== '' ? `@${show(v.digest).slice(0, 19)}` : ''}`),
          ' ',
          v.running === true ? h('span', { class: 'badge state-enforcing', title: 'containers running now' }, `running ×${show(v.containers, 12)}`) : h('span', { class: 'muted' }, 'not running'),
        ),
      ),
  );
}

/** Each baseline of the image with its state (learning, enforcing, locked, relearn). */
function baselinesCell(baselines: unknown): Child {
  const items = list(baselines).map(record);
  if (items.length === 0) return h('span', { class: 'muted' }, 'none');
  return items.slice(0, 10).map((b) => h('div', null, h('a', { href: link('baselines', show(b.key, 512)) }, h('span', { class: `badge state-${show(b.state, 16).replace(/[^a-z]/g, '')}` }, show(b.state, 16))), items.length > 1 ? h('span', { class: 'muted' }, ` ${show(b.key, 256)}`) : null));
}

/** The images page. */
export async function imagesPage(ctx: PageContext): Promise<void> {
  const heading = ctx.title('Images');
  const namespace = h('input', { id: 'i-namespace', name: 'namespace', value: ctx.query.get('namespace') ?? '', maxlength: 63, autocomplete: 'off' });
  const prefix = h('input', { id: 'i-prefix', name: 'prefix', value: ctx.query.get('prefix') ?? '', maxlength: 256, autocomplete: 'off' });
  const running = h('select', { id: 'i-running', name: 'running' }, h('option', { value: '' }, 'any'), h('option', { value: 'true' }, 'running now'), h('option', { value: 'false' }, 'not running'));
  running.value = ctx.query.get('running') ?? '';
  const form = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter images' },
    h('label', { for: 'i-namespace' }, 'Namespace', namespace),
    h('label', { for: 'i-prefix' }, 'Repository starts with', prefix),
    h('label', { for: 'i-running' }, 'Running', running),
    h('button', { type: 'submit' }, 'Filter'),
  );
  const body = h('div');
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    history.replaceState(null, '', linkWithQuery(['images'], { namespace: namespace.value.trim(), prefix: prefix.value.trim(), running: running.value }));
    void load();
  });
  replace(ctx.main, heading, form, body);

  async function load(): Promise<void> {
    const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (namespace.value.trim() !== '') q.set('namespace', namespace.value.trim());
    if (prefix.value.trim() !== '') q.set('prefix', prefix.value.trim());
    if (running.value !== '') q.set('running', running.value);
    let page: { items?: unknown; next?: unknown };
    try {
      page = await ctx.api.get<{ items?: unknown; next?: unknown }>(`images?${q.toString()}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return replace(body, message('notice', 'This collector has no image inventory yet (no /api/v1/images).'));
      if (err instanceof ApiError && err.status === 400) return replace(body, message('error', err.message));
      throw err;
    }
    if (!ctx.alive()) return;
    const items = list(page.items).map(record);
    if (items.length === 0) return replace(body, h('p', { class: 'panel' }, 'No image matches. Agents report what runs on their nodes every minute.'));
    const rows = items.map((i) => {
      const repository = show(i.repository, 256);
      const open = Number(i.openAlerts) || 0;
      return h(
        'tr',
        { 'data-repository': repository, class: i.running === true ? null : 'muted' },
        h('th', { scope: 'row' }, h('code', null, repository)),
        h('td', null, versionsCell(i.versions)),
        h('td', { class: 'num' }, i.running === true ? show(i.containers, 12) : '0'),
        h('td', null, list(i.namespaces).slice(0, 10).map((n) => show(n, 63)).join(', ')),
        h('td', { class: 'owner' }, show(i.owner, 64) || h('span', { class: 'muted' }, '—')),
        h('td', { class: 'num open-alerts' }, open > 0 ? h('a', { href: linkWithQuery(['alerts'], { image: repository }) }, String(open)) : '0'),
        h('td', { class: 'baseline-state' }, baselinesCell(i.baselines)),
        h('td', { class: 'time' }, timeEl(i.lastSeen)),
      );
    });
    replace(
      body,
      table('Images', ['Repository', 'Versions', ['Containers', 'num'], 'Namespaces', 'Owner', ['Open alerts', 'num'], 'Baseline', 'Last seen'], rows),
      page.next ? h('p', { class: 'muted' }, `The first ${PAGE_SIZE} repositories; narrow the filters to see others.`) : null,
    );
  }
  await load();
}
