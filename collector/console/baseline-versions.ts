/**
 * A baseline's version history (`GET /api/v1/baselines/{key}/versions`: who changed it, when, how
 * and why) and the diff between any two versions (`.../diff?from=&to=`, each a version number,
 * `0` for empty or `current` for now): the entries added and removed between them.
 */
import { errorText, seg, type Api, type BaselineDiff, type BaselineVersion } from './api.js';
import { badge, h, message, replace, show, table, timeEl } from './dom.js';

/** The Versions panel; `reload()` after a change made a new version. */
export interface VersionsPanel {
  element: HTMLElement;
  reload(): Promise<void>;
}

function entryList(id: string, title: string, items: BaselineDiff['added']): HTMLElement {
  return h(
    'section',
    { 'aria-labelledby': id, class: 'diff-part' },
    h('h3', { id }, `${title} (${items.length})`),
    items.length === 0 ? h('p', { class: 'muted' }, 'None.') : h('ul', { class: 'mono' }, items.slice(0, 2000).map((e) => h('li', { 'data-entry-id': show(e.id, 4000) }, show(e.summary, 1000)))),
  );
}

/** The versions table and the diff form of baseline `key`. */
export function versionsPanel(api: Api, key: string, alive: () => boolean): VersionsPanel {
  const list = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const from = h('select', { id: 'diff-from', name: 'from' });
  const to = h('select', { id: 'diff-to', name: 'to' });
  const result = h('div', { id: 'diff-result', 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'filters', 'aria-label': 'Compare two versions' },
    h('label', { for: 'diff-from' }, 'From version', from),
    h('label', { for: 'diff-to' }, 'To version', to),
    h('button', { type: 'submit', class: 'primary' }, 'Show differences'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void (async () => {
      replace(result, h('p', { class: 'muted' }, 'Comparing…'));
      try {
        const d = await api.get<BaselineDiff>(`baselines/${seg(key)}/diff`, { from: from.value, to: to.value });
        if (!alive()) return;
        const name = (v: number | null) => (v === null ? 'now' : `version ${v}`);
        replace(
          result,
          h('p', null, `From ${name(d.from)} to ${name(d.to)}:`, d.added.length + d.removed.length === 0 ? ' no difference.' : ''),
          h('div', { class: 'cols' }, entryList('diff-added', 'Added', d.added ?? []), entryList('diff-removed', 'Removed', d.removed ?? [])),
        );
      } catch (err) {
        replace(result, message('error', errorText(err)));
      }
    })();
  });

  // A choice the user made survives a reload; untouched selects follow the defaults.
  let touched = false;
  from.addEventListener('change', () => (touched = true));
  to.addEventListener('change', () => (touched = true));

  function options(versions: BaselineVersion[]): void {
    const keep = touched ? [from.value, to.value] : ['', ''];
    const choices: [string, string][] = [['current', 'now (current)'], ...versions.map((v): [string, string] => [String(v.version), `${v.version} — ${show(v.action, 32)} by ${show(v.by, 64)}`]), ['0', '0 — empty']];
    const values = choices.map(([v]) => v);
    // Defaults: what changed since the version before the newest (or everything, never reviewed).
    const defaults = [versions[1] ? String(versions[1].version) : '0', 'current'];
    for (const [i, select] of [from, to].entries()) {
      const want = values.includes(keep[i] as string) && keep[i] !== '' ? (keep[i] as string) : (defaults[i] as string);
      replace(select, choices.map(([v, label]) => h('option', { value: v, selected: v === want }, label)));
      select.value = want;
    }
  }

  async function reload(): Promise<void> {
    try {
      const { items } = await api.get<{ items: BaselineVersion[] }>(`baselines/${seg(key)}/versions`);
      if (!alive()) return;
      const versions = Array.isArray(items) ? items : [];
      const rows = versions.slice(0, 500).map((v) =>
        h(
          'tr',
          { 'data-version': show(v.version) },
          h('td', { class: 'num' }, show(v.version)),
          h('td', { class: 'time' }, timeEl(v.at)),
          h('td', null, show(v.by, 128)),
          h('td', null, show(v.action, 32)),
          h('td', null, show(v.reason, 1000)),
          h('td', null, badge('state', v.state)),
          h('td', { class: 'num' }, show(v.entries)),
          h('td', { class: 'num' }, show(v.removed)),
        ),
      );
      replace(list, rows.length === 0 ? h('p', { class: 'muted' }, 'Never changed by a reviewer: version 0 is what the agents learned.') : table('Versions, newest first', [['Version', 'num'], 'When', 'By', 'Action', 'Reason', 'State', ['Entries', 'num'], ['Removed', 'num']], rows));
      options(versions);
    } catch (err) {
      replace(list, message('error', errorText(err)));
    }
  }

  const element = h('section', { 'aria-labelledby': 'versions-title', id: 'versions' }, h('h2', { id: 'versions-title' }, 'Versions'), list, h('h3', null, 'Compare two versions'), form, result);
  return { element, reload };
}
