/**
 * One alert (`GET /api/v1/alerts/{id}`): what ran or whom it talked to, where, why it is new, the
 * nearest known entries, recent deviations and deliveries; and what the signed-in role may do with
 * it: acknowledge, resolve (responder), accept into the baseline, create an exception (reviewer).
 * Buttons for what the role may not do are not rendered at all.
 */
import { can, errorText, seg, type Alert, type AlertDetail } from './api.js';
import { announce, badge, facts, h, message, replace, show, table, timeEl, type Child } from './dom.js';
import { openLiveFeed } from './live.js';
import { link, type PageContext } from './page.js';

/** Which states each action may leave (as ALLOWED_FROM in collector/store/sqlite/alerts.ts). */
const ALLOWED_FROM: Record<'acknowledge' | 'resolve' | 'accept', readonly string[]> = {
  acknowledge: ['firing'],
  resolve: ['firing', 'acknowledged'],
  accept: ['firing', 'acknowledged', 'resolved'],
};

const EXPIRY_CHOICES: readonly [string, string][] = [
  ['1d', '1 day'],
  ['7d', '7 days'],
  ['30d', '30 days'],
  ['90d', '90 days'],
];

/** The package behind the executable, or that the image's SBOM does not list it (drift evidence). */
function packageText(a: Alert | AlertDetail): Child {
  const link = (a as AlertDetail).sbom;
  if (!link) return null;
  const note = link.note ? h('div', { class: 'muted' }, show(link.note, 500)) : null;
  if (link.notInSbom) return h('span', { id: 'alert-package', class: 'flag' }, "Not in the image's SBOM: the image did not ship this executable", note);
  return h('span', { id: 'alert-package' }, show(link.text, 500), note);
}

function what(a: Alert): HTMLElement {
  if (a.process) {
    return facts([
      ['Executable', h('code', null, show(a.process.exe))],
      ['Package', packageText(a)],
      ['Arguments', h('code', null, show(a.process.args))],
      ['Parent', h('code', null, show(a.process.parent))],
      ['User', show(a.process.user)],
      ['Example', a.example ? h('code', null, show(a.example)) : null],
    ]);
  }
  if (a.network) {
    return facts([
      ['Direction', show(a.network.direction)],
      ['Protocol', show(a.network.protocol)],
      ['Peer', h('code', null, show(a.network.peer))],
      ['Port', show(a.network.port)],
      ['Example', a.example ? h('code', null, show(a.example)) : null],
    ]);
  }
  return h('p', { class: 'muted' }, 'No details.');
}

function nearestList(nearest: unknown[]): HTMLElement {
  if (!Array.isArray(nearest) || nearest.length === 0) return h('p', { class: 'muted' }, 'No known entry is close to this one.');
  return h(
    'ul',
    null,
    nearest.slice(0, 20).map((n) => {
      if (typeof n === 'string') return h('li', null, h('code', null, show(n, 500)));
      const o = n as Record<string, unknown>;
      const text = typeof o.summary === 'string' ? o.summary : show(o, 500);
      return h('li', null, h('code', null, show(text, 500)), typeof o.difference === 'string' ? h('span', { class: 'muted' }, ` — ${show(o.difference, 200)}`) : null);
    }),
  );
}

function deviationsTable(ds: Record<string, unknown>[]): HTMLElement {
  if (!Array.isArray(ds) || ds.length === 0) return h('p', { class: 'muted' }, 'No deviations stored (they may have been pruned).');
  const rows = ds.slice(0, 20).map((d) => {
    const pod = d.pod as { namespace?: unknown; name?: unknown } | null;
    const p = d.process as { pid?: unknown; exe?: unknown; args?: unknown; parentExe?: unknown; user?: unknown } | null;
    const n = d.network as { remoteAddress?: unknown; remotePort?: unknown; remoteName?: unknown } | null;
    const cmd = p ? `${show(p.exe, 300)} ${Array.isArray(p.args) ? p.args.map((x) => show(x, 200)).join(' ') : ''}` : '';
    const tree = p ? `${show(p.parentExe, 200)} → ${show(p.exe, 200)}` : '';
    return h(
      'tr',
      null,
      h('td', { class: 'time' }, timeEl(d.time)),
      h('td', null, show(d.node, 253)),
      h('td', null, pod ? `${show(pod.namespace, 63)}/${show(pod.name, 253)}` : h('span', { class: 'muted' }, 'host')),
      h('td', { class: 'mono' }, n ? `${show(n.remoteName, 253) || show(n.remoteAddress, 64)}:${show(n.remotePort)}` : [h('div', null, show(cmd, 600)), h('div', { class: 'muted' }, tree)]),
      h('td', null, p ? `${show(p.user, 64)} (pid ${show(p.pid)})` : ''),
    );
  });
  return table('Recent deviations, newest first', ['Time', 'Node', 'Pod', 'Process or peer', 'User'], rows);
}

function deliveriesTable(ds: Record<string, unknown>[]): HTMLElement {
  if (!Array.isArray(ds) || ds.length === 0) return h('p', { class: 'muted' }, 'Not sent anywhere (no sink routes it).');
  const rows = ds.slice(0, 50).map((d) =>
    h(
      'tr',
      null,
      h('td', null, show(d.sink, 64)),
      h('td', null, show(d.action, 32)),
      h('td', null, show(d.state, 32)),
      h('td', { class: 'num' }, show(d.attempts)),
      h('td', null, d.lastError ? show(d.lastError, 300) : ''),
      h('td', { class: 'time' }, timeEl(d.doneAt ?? d.createdAt)),
    ),
  );
  return table('Deliveries', ['Sink', 'Action', 'State', ['Attempts', 'num'], 'Last error', 'When'], rows);
}

/** The alert page. */
export async function alertPage(ctx: PageContext): Promise<void> {
  const id = ctx.path[1] as string;
  const heading = ctx.title('Alert');
  replace(ctx.main, heading, h('p', { class: 'muted' }, 'Loading…'));
  let a = await ctx.api.get<AlertDetail>(`alerts/${seg(id)}`);
  if (!ctx.alive()) return;
  heading.textContent = show(a.summary, 300) || 'Alert';
  document.title = `${show(a.summary, 80)} · Driftwatch`;

  const stateBox = h('div', { id: 'alert-state' });
  const actionsBox = h('div');
  const feedback = h('div', { 'aria-live': 'polite' });

  function renderState(): void {
    const change = a.stateChange;
    replace(
      stateBox,
      h('p', null, 'State: ', badge('state', a.state), ' · severity ', badge('sev', a.severity), a.rule?.reason ? h('span', { class: 'muted' }, ` — ${show(a.rule.reason, 300)}`) : null),
      change ? h('p', { class: 'muted' }, `${show(a.state)} by ${show(change.by, 64)} at `, timeEl(change.at), change.comment ? ` — “${show(change.comment, 1000)}”` : '') : null,
      a.suppressedBy ? h('p', { class: 'notice' }, 'Suppressed by exception ', h('code', null, show(a.suppressedBy, 64))) : null,
    );
  }

  function transitionControls(): HTMLElement | null {
    const verbs = (['acknowledge', 'resolve', 'accept'] as const).filter((v) => can(ctx.me, v));
    if (verbs.length === 0) return null;
    const comment = h('textarea', { id: 'comment', name: 'comment', maxlength: 1000, rows: 2 });
    const labels = { acknowledge: 'Acknowledge', resolve: 'Resolve', accept: 'Accept into baseline' } as const;
    const buttons = verbs.map((v) => {
      const allowed = ALLOWED_FROM[v].includes(a.state);
      const b = h('button', { type: 'button', class: v === 'accept' ? 'danger' : 'primary', disabled: !allowed, title: allowed ? null : `Not possible while the alert is ${a.state}` }, labels[v]);
      b.addEventListener('click', () => {
        if (v === 'accept' && !window.confirm('Accept this behaviour into the baseline? It will not alert again.')) return;
        for (const x of buttons) x.disabled = true;
        void (async () => {
          try {
            const after = await ctx.api.post<Alert>(`alerts/${seg(id)}/${v}`, { comment: comment.value.trim().slice(0, 1000) });
            if (!ctx.alive()) return;
            a = { ...a, ...after };
            renderState();
            renderActions();
            replace(feedback, message('ok', `Alert ${show(after.state)}.`));
            announce(`Alert ${show(after.state)}`);
          } catch (err) {
            replace(feedback, message('error', errorText(err)));
            renderActions();
          }
        })();
      });
      return b;
    });
    return h('section', { class: 'panel', 'aria-labelledby': 'act-title' }, h('h2', { id: 'act-title' }, 'Respond'), h('label', { for: 'comment' }, 'Comment (optional, recorded in the audit log)', comment), h('div', { class: 'actions' }, buttons));
  }

  function exceptionForm(): HTMLElement | null {
    if (!can(ctx.me, 'createException')) return null;
    const reason = h('input', { id: 'ex-reason', name: 'reason', required: true, maxlength: 1000 });
    const owner = h('input', { id: 'ex-owner', name: 'owner', required: true, maxlength: 128, value: ctx.me.name });
    const expiry = h('select', { id: 'ex-expiry', name: 'expiry' }, EXPIRY_CHOICES.map(([v, label]) => h('option', { value: v, selected: v === '30d' }, label)), h('option', { value: 'date' }, 'until a date…'));
    const until = h('input', { id: 'ex-until', name: 'until', type: 'date', disabled: true });
    expiry.addEventListener('change', () => (until.disabled = expiry.value !== 'date'));
    const scoped = h('input', { id: 'ex-namespace', type: 'checkbox' });
    const form = h(
      'form',
      { class: 'panel', 'aria-labelledby': 'ex-title' },
      h('h2', { id: 'ex-title' }, 'Create an exception'),
      h('p', { class: 'muted' }, 'Risk accepted for a while: this entry in this baseline stops alerting until the exception expires or is revoked.'),
      h('label', { for: 'ex-reason' }, 'Reason', reason),
      h('label', { for: 'ex-owner' }, 'Owner', owner),
      h('div', { class: 'actions' }, h('label', { for: 'ex-expiry' }, 'Expires in', expiry), h('label', { for: 'ex-until' }, 'Expires on', until)),
      a.namespace ? h('label', { class: 'inline', for: 'ex-namespace' }, scoped, `Only in namespace ${show(a.namespace, 63)}`) : null,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create exception')),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const body: Record<string, string> = { alert: id, reason: reason.value.trim(), owner: owner.value.trim() };
      if (expiry.value === 'date') {
        const t = until.valueAsDate;
        if (t === null) return replace(feedback, message('error', 'Pick the date the exception ends.'));
        body.expiresAt = new Date(t.getTime() + 86_399_000).toISOString();
      } else body.expiresIn = expiry.value;
      if (scoped.checked && a.namespace) body.namespace = a.namespace;
      void (async () => {
        try {
          const e = await ctx.api.post<{ id: string; expiresAt: string }>('exceptions', body);
          if (!ctx.alive()) return;
          replace(feedback, h('p', { class: 'ok', role: 'status' }, `Exception ${show(e.id, 64)} created, until `, timeEl(e.expiresAt), '. ', h('a', { href: link('exceptions') }, 'See the exceptions.')));
          form.reset();
          owner.value = ctx.me.name;
        } catch (err) {
          replace(feedback, message('error', errorText(err)));
        }
      })();
    });
    return form;
  }

  function renderActions(): void {
    replace(actionsBox, transitionControls(), exceptionForm());
  }

  const where: [string, Child][] = [
    ['Image', h('code', null, show(a.image))],
    ['Baseline', h('a', { href: link('baselines', String(a.baselineKey)) }, show(a.baselineKey))],
    ['Namespace', show(a.namespace, 63)],
    ['Pods', show((a.pods ?? []).slice(0, 20).join(', '))],
    ['Nodes', show((a.nodes ?? []).slice(0, 20).join(', '))],
    ['Team', show(a.team, 128)],
    ['Count', show(a.count)],
    ['First seen', timeEl(a.firstSeen)],
    ['Last seen', timeEl(a.lastSeen)],
  ];

  renderState();
  renderActions();
  replace(
    ctx.main,
    h('p', null, h('a', { href: link('alerts') }, '← All alerts')),
    heading,
    stateBox,
    feedback,
    h(
      'div',
      { class: 'cols' },
      h(
        'div',
        null,
        h('section', { class: 'panel', 'aria-labelledby': 'why-title' }, h('h2', { id: 'why-title' }, a.drift === true ? 'Binary not from the image' : 'Why it is new'), h('p', null, h('strong', null, show(a.reason, 64)), ' — ', show(a.explanation)), what(a)),
        h('section', { class: 'panel', 'aria-labelledby': 'near-title' }, h('h2', { id: 'near-title' }, 'Nearest known entries'), nearestList(a.nearest)),
        h('section', { 'aria-labelledby': 'dev-title' }, h('h2', { id: 'dev-title' }, 'Recent deviations'), deviationsTable(a.deviations)),
        h('section', { 'aria-labelledby': 'del-title' }, h('h2', { id: 'del-title' }, 'Deliveries'), deliveriesTable(a.deliveries)),
      ),
      h('div', null, h('section', { class: 'panel', 'aria-labelledby': 'where-title' }, h('h2', { id: 'where-title' }, 'Where'), facts(where)), actionsBox),
    ),
  );

  // Someone else acknowledging or resolving it shows here too.
  const feed = openLiveFeed(ctx.api.bearer, {}, {
    change(c) {
      if (String(c.alert.id) !== id || !ctx.alive()) return;
      a = { ...a, ...c.alert };
      renderState();
    },
    resync() {},
    status() {},
  });
  ctx.onLeave(() => feed.close());
}
