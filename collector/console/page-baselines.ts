/**
 * Baselines: every key with its state (and time left while learning), partial mark, entry counts
 * and open alerts (`GET /api/v1/baselines?state=`); and one baseline's page
 * (`GET /api/v1/baselines/{key}`, the key percent-encoded): its process and network entries with
 * their review status, the reviewer's changes (baseline-review.ts), its versions and diff
 * (baseline-versions.ts) and the exports (baseline-export.ts).
 */
import { BASELINE_STATES, can, errorText, quarantinedNodes, seg, type Baseline, type BaselineEntry, type BaselineSbom, type SbomLink, type BaselineSummary, type QuarantinedNode } from './api.js';
import { entryControls, entryStatus, stateControls, type ReviewDeps } from './baseline-review.js';
import { exportPanel } from './baseline-export.js';
import { versionsPanel } from './baseline-versions.js';
import { badge, duration, facts, h, message, replace, show, table, timeEl, type Child } from './dom.js';
import { link, linkWithQuery, type PageContext } from './page.js';

/** Entries shown per table page: a baseline holds up to 2,000. */
const ENTRY_PAGE = 100;

/** `35 min`, `2h 5m`: time left as people say it. */
function timeLeft(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  if (minutes < 1) return 'under a minute';
  if (minutes < 60) return `${minutes} min`;
  return duration(ms);
}

/** The state, and while learning the time left of the window ("learning, 35 min left"). */
function stateText(b: { state: string; learnUntil: string | null }): Child {
  if (b.state === 'learning' && b.learnUntil) {
    const until = Date.parse(b.learnUntil);
    if (Number.isNaN(until)) return badge('state', b.state);
    const left = until - Date.now();
    // The window runs on the events' own clock: "left" is against wall time, a hint only.
    return h('span', { title: `learning until ${new Date(until).toLocaleString()}` }, badge('state', b.state), left > 0 ? `, ${timeLeft(left)} left` : ', window over: enforcing from the next event');
  }
  if (b.state === 'relearn') return [badge('state', b.state), h('span', { class: 'muted' }, ' — waiting for the agents’ new window')];
  return badge('state', b.state);
}

function partialBadge(b: { partial?: boolean }): Child {
  return b.partial === true ? h('span', { class: 'badge state-partial', title: 'Began learning while its containers were running: start-up behaviour may be missing. Relearn it while its pods restart.' }, 'partial') : null;
}

function imagesText(images: unknown): string {
  if (!Array.isArray(images)) return '';
  return images
    .slice(0, 20)
    .map((i: { repository?: unknown; tag?: unknown; digest?: unknown }) => `${show(i?.repository, 300)}${i?.tag ? `:${show(i.tag, 128)}` : ''}${i?.digest ? `@${show(i.digest, 80)}` : ''}`)
    .join(', ');
}

/** The baselines list. */
export async function baselinesPage(ctx: PageContext): Promise<void> {
  const heading = ctx.title('Baselines');
  const initialState = ctx.query.get('state') ?? '';
  const stateFilter = h('select', { id: 'b-state', name: 'state' }, h('option', { value: '' }, 'any'), BASELINE_STATES.map((s) => h('option', { value: s, selected: s === initialState }, s)));
  const filter = h('input', { id: 'b-filter', type: 'search', maxlength: 200, placeholder: 'nginx' });
  const body = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  let items: BaselineSummary[] = [];
  let loading = 0;

  const render = () => {
    const q = filter.value.trim().toLowerCase();
    const shown = items.filter((b) => q === '' || show(b.key).toLowerCase().includes(q)).slice(0, 1000);
    const rows = shown.map((b) =>
      h(
        'tr',
        { 'data-key': show(b.key, 512) },
        h('td', { class: 'mono' }, h('a', { href: link('baselines', String(b.key)) }, show(b.key, 512)), ' ', partialBadge(b)),
        h('td', { class: 'b-state' }, stateText(b)),
        h('td', { class: 'num' }, show(b.version)),
        h('td', { class: 'num' }, show(b.processEntries)),
        h('td', { class: 'num' }, show(b.networkEntries)),
        h('td', { class: 'num' }, Number(b.openAlerts) > 0 ? h('a', { href: linkWithQuery(['alerts'], { image: String(b.key) }), 'aria-label': `${show(b.openAlerts)} open alerts of ${show(b.key, 512)}` }, show(b.openAlerts)) : show(b.openAlerts)),
        h('td', null, show((b.namespaces ?? []).slice(0, 5).join(', '))),
        h('td', { class: 'num' }, show((b.nodes ?? []).length)),
      ),
    );
    replace(
      body,
      rows.length === 0 ? h('p', { class: 'panel', id: 'no-baselines' }, items.length === 0 && stateFilter.value === '' ? 'No baselines yet: agents report them as they learn.' : 'No baseline matches.') : table('Baselines', ['Key', 'State', ['Version', 'num'], ['Processes', 'num'], ['Network', 'num'], ['Open alerts', 'num'], 'Namespaces', ['Nodes', 'num']], rows),
      shown.length === 1000 ? h('p', { class: 'muted' }, 'Showing the first 1,000; filter to narrow.') : null,
    );
  };

  const load = async () => {
    const mine = ++loading;
    const state = stateFilter.value;
    try {
      const list = await ctx.api.get<{ items: BaselineSummary[] }>('baselines', { state });
      if (!ctx.alive() || mine !== loading) return;
      items = Array.isArray(list.items) ? list.items : [];
      render();
    } catch (err) {
      if (ctx.alive() && mine === loading) replace(body, message('error', errorText(err)));
    }
  };

  filter.addEventListener('input', render);
  stateFilter.addEventListener('change', () => {
    // Keep the filter in the address (shareable) without a route change, which would take the focus away.
    history.replaceState(null, '', linkWithQuery(['baselines'], { state: stateFilter.value }));
    void load();
  });
  replace(
    ctx.main,
    heading,
    h('div', { class: 'filters', role: 'search', 'aria-label': 'Filter baselines' }, h('label', { for: 'b-state' }, 'State', stateFilter), h('label', { for: 'b-filter' }, 'Filter by key', filter)),
    body,
  );
  await load();
}

/** A node's name, marked when it is quarantined. */
function nodeName(node: unknown, quarantined: ReadonlyMap<string, QuarantinedNode>): Child {
  const name = show(node, 253);
  return quarantined.has(name) ? h('span', { class: 'node-quarantined', title: `quarantined: ${show(quarantined.get(name)?.reason, 300)}` }, name, ' ', h('span', { class: 'badge sev-critical' }, 'quarantined')) : name;
}

/** Names, comma-separated, each marked when quarantined; at most `max`, then `+N`. */
function nodeList(nodes: readonly unknown[], quarantined: ReadonlyMap<string, QuarantinedNode>, max: number): Child[] {
  const out: Child[] = [];
  nodes.slice(0, max).forEach((n, i) => out.push(i > 0 ? ', ' : null, nodeName(n, quarantined)));
  if (nodes.length > max) out.push(` +${nodes.length - max}`);
  return out;
}

/**
 * Who taught an entry: its nodes, and the nodes whose share was dropped (quarantined, or dropped
 * by a reviewer) — such an entry stays only through the others or security: worth a second look.
 */
function taughtBy(e: BaselineEntry, quarantined: ReadonlyMap<string, QuarantinedNode>): Child {
  const nodes = Array.isArray(e.nodes) ? e.nodes : [];
  const dropped = Array.isArray(e.droppedNodes) ? e.droppedNodes : [];
  return [
    nodes.length > 0 ? nodeList(nodes, quarantined, 10) : h('span', { class: 'muted' }, e.status === 'added' || e.status === 'approved' ? 'no node (security)' : 'no node'),
    dropped.length > 0 ? h('div', { class: 'flag dropped' }, 'dropped: ', nodeList(dropped, quarantined, 10)) : null,
  ];
}

/** Whether an entry was taught by a node now quarantined, or kept after a node's share was dropped. */
function fromSuspectNode(e: BaselineEntry, quarantined: ReadonlyMap<string, QuarantinedNode>): boolean {
  return (Array.isArray(e.droppedNodes) && e.droppedNodes.length > 0) || (Array.isArray(e.nodes) && e.nodes.some((n) => quarantined.has(n)));
}

/** A table of entries with its own filter and pager; `update` keeps both. */
interface EntriesSection {
  element: HTMLElement;
  update(b: Baseline, entries: BaselineEntry[]): void;
}

/** The package cell of a process entry: its package, or that the image's SBOM does not list it. */
function packageCell(link: SbomLink | undefined): HTMLTableCellElement {
  if (!link) return h('td', { class: 'package muted' }, '—');
  if (link.notInSbom) return h('td', { class: 'package flag', 'data-not-in-sbom': 'true' }, "not in the image's SBOM");
  if (link.status === 'package' && link.package) return h('td', { class: 'package mono' }, `${show(link.package.name, 200)} ${show(link.package.version, 100)}`.trim());
  return h('td', { class: 'package muted' }, link.status === 'listed' ? 'in the SBOM, no package' : 'SBOM lists no files');
}

function entriesSection(
  title: string,
  id: string,
  ctx: PageContext,
  review: ReviewDeps | null,
  quarantined: ReadonlyMap<string, QuarantinedNode>,
  /** Process entries: the package of an entry by its id, from the image's SBOM (null: no Package column). */
  packageOf: ((entryId: string) => SbomLink | undefined) | null = null,
): EntriesSection {
  const section = h('section', { 'aria-labelledby': id });
  const heading = h('h2', { id });
  const filter = h('input', { id: `${id}-filter`, type: 'search', maxlength: 200 });
  const body = h('div');
  const pager = h('div', { class: 'pager' });
  let offset = 0;
  let b: Baseline | null = null;
  let entries: BaselineEntry[] = [];

  const render = () => {
    if (b === null) return;
    const current = b;
    const q = filter.value.trim().toLowerCase();
    const matching = entries.filter(
      (e) =>
        q === '' ||
        show(e.summary).toLowerCase().includes(q) ||
        show(e.status).includes(q) ||
        (e.examples ?? []).some((x) => show(x).toLowerCase().includes(q)) ||
        [...(e.nodes ?? []), ...(e.droppedNodes ?? [])].some((n) => show(n).toLowerCase().includes(q)),
    );
    if (offset >= matching.length) offset = 0;
    const shown = matching.slice(offset, offset + ENTRY_PAGE);
    const rows = shown.map((e) =>
      h(
        'tr',
        {
          'data-entry-id': show(e.id, 4000),
          'data-status': show(e.status, 32),
          'data-suspect': fromSuspectNode(e, quarantined) ? 'true' : null,
          class: [e.status === 'flagged' || e.status === 'removed' ? e.status : '', fromSuspectNode(e, quarantined) ? 'suspect' : ''].filter((c) => c !== '').join(' ') || null,
        },
        h('td', { class: 'mono entry' }, show(e.summary, 1000)),
        packageOf === null ? null : packageCell(packageOf(e.id)),
        h('td', { class: 'status', tabindex: -1 }, entryStatus(e)),
        h('td', { class: 'mono' }, (e.examples ?? []).slice(0, 3).map((x) => h('div', null, show(x, 500)))),
        h('td', { class: 'time' }, timeEl(e.firstSeen)),
        h('td', { class: 'time' }, timeEl(e.lastSeen)),
        h('td', { class: 'taught-by' }, taughtBy(e, quarantined)),
        h('td', { class: 'num' }, show(e.count)),
        review === null ? null : h('td', null, entryControls(current, e, review)),
      ),
    );
    const headers: (string | [string, string])[] = ['Entry', ...(packageOf === null ? [] : ['Package']), 'Status', 'Examples', 'First seen', 'Last seen', 'Taught by', ['Count', 'num']];
    if (review !== null) headers.push('Review');
    replace(body, matching.length === 0 ? h('p', { class: 'muted' }, entries.length === 0 ? 'None.' : 'No entry matches.') : table(title, headers, rows));
    const prev = h('button', { type: 'button', disabled: offset === 0, onclick: () => ((offset = Math.max(0, offset - ENTRY_PAGE)), render()) }, '← Previous');
    const next = h('button', { type: 'button', disabled: offset + ENTRY_PAGE >= matching.length, onclick: () => ((offset += ENTRY_PAGE), render()) }, 'Next →');
    replace(pager, matching.length > ENTRY_PAGE ? [prev, h('span', null, `${offset + 1}–${offset + shown.length} of ${matching.length}`), next] : null);
  };

  filter.addEventListener('input', () => ((offset = 0), render()));
  replace(section, heading, h('div', { class: 'filters' }, h('label', { for: `${id}-filter` }, `Filter ${title.toLowerCase()}`, filter)), body, pager);
  return {
    element: section,
    update(next, list) {
      b = next;
      entries = list;
      const flagged = list.filter((e) => e.status === 'flagged').length;
      heading.textContent = `${title} (${list.length})${flagged > 0 ? ` — ${flagged} to review` : ''}`;
      render();
    },
  };
}

/** One baseline. */
export async function baselinePage(ctx: PageContext): Promise<void> {
  const key = ctx.path.slice(1).join('/');
  const heading = ctx.title(`Baseline ${key}`);
  replace(ctx.main, heading, h('p', { class: 'muted' }, 'Loading…'));
  const [first, quarantined] = await Promise.all([ctx.api.get<Baseline>(`baselines/${seg(key)}`), quarantinedNodes(ctx.api)]);
  if (!ctx.alive()) return;
  // The image's SBOM joined in (issue 22); a collector without it, or a failure, leaves the page as it was.
  let sbom: BaselineSbom | null = await ctx.api.get<BaselineSbom>(`baselines/${seg(key)}/sbom`).catch(() => null);
  if (!ctx.alive()) return;
  const links = () => new Map((sbom?.entries ?? []).map((l) => [l.id, l]));
  let linkById = links();
  const sbomNotice = h('div', { id: 'sbom-notice' });

  const feedback = h('div', { id: 'baseline-feedback', 'aria-live': 'polite' });
  const summary = h('section', { class: 'panel', 'aria-label': 'Summary' });
  const reviewBox = h('div');
  const versions = versionsPanel(ctx.api, key, ctx.alive);
  const reviewer = can(ctx.me, 'changeBaseline');
  const review: ReviewDeps | null = reviewer
    ? {
        post: (path, body) => ctx.api.post<Baseline>(path, body),
        feedback,
        onChanged(next) {
          if (!ctx.alive()) return;
          void ctx.api.get<BaselineSbom>(`baselines/${seg(key)}/sbom`).then((j) => ((sbom = j), (linkById = links()))).catch(() => undefined);
          // A re-render replaces the row whose button had the focus: put it on that row's status.
          const row = document.activeElement?.closest('tr[data-entry-id]')?.getAttribute('data-entry-id') ?? null;
          renderBaseline(next);
          if (row !== null) (ctx.main.querySelector(`tr[data-entry-id="${CSS.escape(row)}"] td.status`) as HTMLElement | null)?.focus();
          void versions.reload();
        },
      }
    : null;
  const processes = entriesSection('Processes', 'proc', ctx, review, quarantined, sbom?.sbom ? (entryId) => linkById.get(entryId) : null);
  const network = entriesSection('Network', 'net', ctx, review, quarantined);

  function renderBaseline(b: Baseline): void {
    const entries = Array.isArray(b.entries) ? b.entries : [];
    const suspect = entries.filter((e) => e.status !== 'removed' && fromSuspectNode(e, quarantined)).length;
    replace(
      summary,
      facts([
        ['State', [stateText(b), ' ', partialBadge(b)]],
        ['Version', `${show(b.version)}${b.version === 0 ? ' (never reviewed)' : ''}`],
        ['Learning since', timeEl(b.windowStart)],
        ['Enforcing since', b.enforcingSince ? timeEl(b.enforcingSince) : null],
        ['Events learned', show(b.events)],
        ['Namespaces', show((b.namespaces ?? []).slice(0, 20).join(', '))],
        ['Images', imagesText(b.images)],
        ['SBOM', sbom?.sbom ? [h('code', null, show(sbom.sbom.digest, 80)), ` (${show(sbom.sbom.tool, 80)})`, sbom.sbom.note ? h('div', { class: 'muted' }, show(sbom.sbom.note, 500)) : null] : null],
        ['Nodes', (b.nodes ?? []).length > 0 ? nodeList(b.nodes, quarantined, 50) : null],
        ['Suspect entries', suspect > 0 ? h('span', { class: 'flag' }, `${suspect} taught by a quarantined node or kept after a node's share was dropped — marked below`) : null],
        ['Full', b.overflow ? 'yes — new entries are no longer added' : null],
        ['Alerts', h('a', { href: linkWithQuery(['alerts'], { image: String(b.key) }) }, 'Alerts of this baseline')],
      ]),
    );
    if (review !== null) replace(reviewBox, stateControls(b, review));
    replace(sbomNotice, noticePanel(sbom));
    processes.update(b, entries.filter((e) => e.type === 'process'));
    network.update(b, entries.filter((e) => e.type === 'network'));
  }

  renderBaseline(first);
  replace(
    ctx.main,
    h('p', null, h('a', { href: link('baselines') }, '← All baselines')),
    heading,
    feedback,
    sbomNotice,
    h('div', { class: 'cols' }, h('div', null, summary), h('div', null, reviewBox, exportPanel(ctx.api, key))),
    processes.element,
    network.element,
    versions.element,
  );
  await versions.reload();
}

/** The notice a reviewer gets when the newest image version changed the packages of executables this baseline uses. */
function noticePanel(sbom: BaselineSbom | null): HTMLElement | null {
  const n = sbom?.notice;
  if (!n) return null;
  const p = (x: { name: string; version: string } | null) => (x ? `${show(x.name, 200)} ${show(x.version, 100)}` : '—');
  return h(
    'section',
    { class: n.addsOrDrops ? 'panel notice' : 'panel', 'aria-labelledby': 'sbom-notice-title' },
    h('h2', { id: 'sbom-notice-title' }, 'New image version changes packages'),
    h('p', null, show(n.text, 1000)),
    table(
      'Package changes',
      ['Executable', 'Change', 'Before', 'After'],
      n.changes.slice(0, 200).map((c) => h('tr', { 'data-change': show(c.change, 16) }, h('td', { class: 'mono' }, show(c.exe, 500)), h('td', null, show(c.change, 16)), h('td', { class: 'mono' }, p(c.before)), h('td', { class: 'mono' }, p(c.after)))),
    ),
  );
}
