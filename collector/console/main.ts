/**
 * The console's entry point: sign-in with an API token (kept in sessionStorage), the navigation,
 * and a hash router (`#/alerts`, `#/alerts/<id>`, `#/baselines/<key>`, ...) so that every page
 * has a link and the server needs to serve one HTML file only.
 */
import { Api, ApiError, can, errorText, storeToken, storedToken, type Me } from './api.js';
import { h, message, replace } from './dom.js';
import { link, type Page, type PageContext } from './page.js';
import { alertsPage } from './page-alerts.js';
import { alertPage } from './page-alert.js';
import { auditPage } from './page-audit.js';
import { baselinePage, baselinesPage } from './page-baselines.js';
import { exceptionsPage } from './page-exceptions.js';
import { imagesPage } from './page-images.js';
import { nodesPage } from './page-nodes.js';

interface NavItem {
  route: string;
  label: string;
  show(me: Me): boolean;
}

const NAV: readonly NavItem[] = [
  { route: 'alerts', label: 'Alerts', show: () => true },
  { route: 'baselines', label: 'Baselines', show: () => true },
  { route: 'exceptions', label: 'Exceptions', show: () => true },
  { route: 'images', label: 'Images', show: () => true },
  { route: 'nodes', label: 'Nodes', show: () => true },
  { route: 'audit', label: 'Audit', show: (me) => can(me, 'audit') },
];

function pageFor(path: string[]): Page | null {
  const [first = 'alerts', second] = path;
  if (first === 'alerts') return second === undefined ? alertsPage : alertPage;
  if (first === 'baselines') return second === undefined ? baselinesPage : baselinePage;
  if (first === 'exceptions' && second === undefined) return exceptionsPage;
  if (first === 'nodes' && second === undefined) return nodesPage;
  if (first === 'images' && second === undefined) return imagesPage;
  if (first === 'audit' && second === undefined) return auditPage;
  return null;
}

function parseHash(): { path: string[]; query: URLSearchParams } {
  const raw = location.hash.startsWith('#/') ? location.hash.slice(2) : '';
  const q = raw.indexOf('?');
  const pathText = q === -1 ? raw : raw.slice(0, q);
  const path: string[] = [];
  for (const s of pathText.split('/')) {
    if (s === '') continue;
    try {
      path.push(decodeURIComponent(s));
    } catch {
      path.push(s);
    }
  }
  return { path, query: new URLSearchParams(q === -1 ? '' : raw.slice(q + 1)) };
}

const main = document.getElementById('main') as HTMLElement;
const nav = document.getElementById('nav') as HTMLElement;
const who = document.getElementById('who') as HTMLElement;

let session: { api: Api; me: Me } | null = null;
let leaving: (() => void)[] = [];
let generation = 0;

function leave(): void {
  for (const fn of leaving) {
    try {
      fn();
    } catch {
      // A page's cleanup failing must not keep the next page from showing.
    }
  }
  leaving = [];
}

function renderNav(active: string): void {
  if (!session) {
    nav.replaceChildren();
    who.replaceChildren();
    return;
  }
  const me = session.me;
  replace(
    nav,
    h(
      'ul',
      null,
      NAV.filter((n) => n.show(me)).map((n) => h('li', null, h('a', { href: link(n.route), 'aria-current': n.route === active ? 'page' : null }, n.label))),
    ),
  );
  replace(who, h('span', null, `${me.name} · ${me.role}`), h('button', { type: 'button', id: 'sign-out', onclick: signOut }, 'Sign out'));
}

function signOut(): void {
  storeToken(null);
  session = null;
  leave();
  location.hash = '#/alerts';
  showSignIn(null);
}

function showSignIn(problem: string | null): void {
  generation += 1;
  renderNav('');
  document.title = 'Sign in · Driftwatch';
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false', 'aria-describedby': 'token-help' });
  const status = h('div', { 'aria-live': 'polite' }, problem === null ? null : message('error', problem));
  const form = h(
    'form',
    { class: 'panel signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in'),
    h('label', { for: 'token' }, 'API token', input),
    h('p', { id: 'token-help', class: 'muted' }, 'A token from the collector’s API tokens file. It is kept in this tab only and forgotten when the tab closes.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')),
    status,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    void (async () => {
      try {
        const api = new Api(token);
        const me = await api.whoami();
        storeToken(token);
        session = { api, me };
        route();
        // The form is gone: put the focus where the content is, not on the page's start.
        main.focus();
      } catch (err) {
        replace(status, message('error', err instanceof ApiError && err.status === 401 ? 'That token is not valid.' : errorText(err)));
        input.focus();
      }
    })();
  });
  replace(main, form);
  input.focus();
}

function route(): void {
  if (!session) return;
  leave();
  const mine = ++generation;
  const { path, query } = parseHash();
  const page = pageFor(path);
  renderNav(path[0] ?? 'alerts');
  main.replaceChildren();
  const ctx: PageContext = {
    api: session.api,
    me: session.me,
    main,
    path,
    query,
    alive: () => mine === generation,
    onLeave: (fn) => leaving.push(fn),
    title(text) {
      document.title = `${text} · Driftwatch`;
      const heading = h('h1', { tabindex: '-1' }, text);
      return heading;
    },
  };
  if (page === null) {
    replace(main, h('h1', null, 'Not found'), h('p', null, 'There is no such page. ', h('a', { href: link('alerts') }, 'Go to the alerts.')));
    return;
  }
  Promise.resolve(page(ctx)).catch((err: unknown) => {
    if (!ctx.alive()) return;
    if (err instanceof ApiError && err.status === 401) return showSignIn('Your token is not valid any more. Sign in again.');
    main.append(message('error', errorText(err)));
  });
}

function skipLink(): void {
  // A button, not `href="#main"`: the hash is the router's.
  const skip = h('button', { type: 'button', class: 'skip', onclick: () => main.focus() }, 'Skip to content');
  document.body.prepend(skip);
}

async function start(): Promise<void> {
  skipLink();
  window.addEventListener('hashchange', () => {
    route();
    main.focus();
  });
  const token = storedToken();
  // No probe without a token: every failed authentication counts against this address.
  if (token === null) return showSignIn(null);
  const api = new Api(token);
  try {
    session = { api, me: await api.whoami() };
    route();
  } catch (err) {
    storeToken(null);
    showSignIn(errorText(err));
  }
}

void start();
