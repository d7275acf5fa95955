/**
 * Small DOM helpers. Every piece of data reaches the page as a text node or an attribute value set
 * through the DOM API, never as markup: no HTML-parsing setter is used anywhere in the console (a
 * test scans the compiled modules), so whatever an alert carries (a command line, a pod name) is
 * shown, not run.
 */

/** What `h` accepts as a child: a node, text (shown as text), or nothing. */
export type Child = Node | string | number | null | undefined | false | readonly Child[];

/** Attributes and properties `h` sets. `on*` take functions; everything else is an attribute. */
export type Props = Record<string, string | number | boolean | null | undefined | ((ev: never) => void)>;

/** Longest text shown in one place; the rest is cut with an ellipsis (the API bounds it too). */
export const MAX_TEXT = 4000;

/** Cut `s` to `max` characters. */
export function clip(s: string, max = MAX_TEXT): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/** Any value as display text: strings clipped, numbers as they are, everything else as JSON. */
export function show(v: unknown, max = MAX_TEXT): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return clip(v, max);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  try {
    return clip(JSON.stringify(v), max);
  } catch {
    return '';
  }
}

function append(parent: Node, child: Child): void {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child as readonly Child[]) append(parent, c);
    return;
  }
  if (typeof child === 'string' || typeof child === 'number') parent.appendChild(document.createTextNode(clip(String(child))));
  else parent.appendChild(child as Node);
}

/** Create an element. `h('a', { href: '#/x' }, 'text')`; event handlers as `onclick`. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props | null = null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (props) {
    for (const [name, value] of Object.entries(props)) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith('on') && typeof value === 'function') e.addEventListener(name.slice(2), value as EventListener);
      else if (typeof value === 'function') continue;
      else if (name === 'href' && typeof value === 'string' && !/^(#|\/|https?:)/.test(value)) continue; // no javascript: URLs
      else e.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const c of children) append(e, c);
  return e;
}

/** Replace the children of `parent`. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  for (const c of children) append(parent, c);
}

/** An RFC 3339 time as local date and time (seconds), or '' when absent. */
export function time(iso: unknown): string {
  if (typeof iso !== 'string' || iso === '') return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A <time> element with the full timestamp as its datetime and title. */
export function timeEl(iso: unknown): HTMLElement {
  const text = time(iso);
  if (text === '') return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: iso as string, title: iso as string }, text);
}

/** A duration in ms as `3d 4h`, `12m`, `40s`. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours}h ${m % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/** A badge for a severity or state; the word is always shown (colour is never the only signal). */
export function badge(kind: 'sev' | 'state', value: unknown): HTMLElement {
  const v = typeof value === 'string' && /^[a-z-]{1,32}$/.test(value) ? value : 'unknown';
  return h('span', { class: `badge ${kind}-${v}` }, v);
}

/**
 * Save `blob` as a file named `name`: a temporary object URL on an <a download>. A download, not a
 * navigation: the file is never rendered, so what it holds cannot run in the console's origin.
 */
export function saveFile(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url; // set directly: h() keeps only #, / and http(s) links
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  // The click has handed the bytes to the download; revoke a little later, not in the same task.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Announce `text` to screen readers (the page's live region). */
export function announce(text: string): void {
  const region = document.getElementById('announce');
  if (region) region.textContent = clip(text, 300);
}

/** A message box: `error` (role alert), `ok` or `notice`. */
export function message(kind: 'error' | 'ok' | 'notice', text: string): HTMLElement {
  return h('p', { class: kind, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** A definition list of label → value pairs, skipping empty values. */
export function facts(rows: readonly [string, Child][]): HTMLElement {
  const dl = h('dl', { class: 'facts' });
  for (const [k, v] of rows) {
    if (v === null || v === undefined || v === '' || (Array.isArray(v) && v.length === 0)) continue;
    dl.append(h('dt', null, k), h('dd', null, v));
  }
  return dl;
}

/** A table with a caption (for screen readers), a header row and body rows. */
export function table(caption: string, headers: readonly (string | [string, string])[], rows: readonly HTMLTableRowElement[]): HTMLTableElement {
  return h(
    'table',
    null,
    h('caption', { class: 'sr-only' }, caption),
    h('thead', null, h('tr', null, headers.map((c) => (Array.isArray(c) ? h('th', { scope: 'col', class: c[1] }, c[0]) : h('th', { scope: 'col' }, c))))),
    h('tbody', null, rows),
  );
}
