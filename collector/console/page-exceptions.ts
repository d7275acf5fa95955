/** Exceptions (`GET /api/v1/exceptions?status=`): what they match, why, whose, until when; revoke (reviewer). */
import { can, errorText, seg } from './api.js';
import { announce, badge, h, message, replace, show, table, timeEl } from './dom.js';
import { linkWithQuery, type PageContext } from './page.js';

const STATUSES = ['active', 'expired', 'revoked'] as const;
/** Rows shown at once; the API returns every exception, there are few. */
const MAX_ROWS = 500;

interface ExceptionJson {
  id: string;
  status: string;
  match: { key: string | null; entry: string | null; namespace: string | null };
  reason: string;
  owner: string;
  createdBy: string;
  createdAt: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
  revokedBy: string | null;
}

/** The exceptions page. */
export async function exceptionsPage(ctx: PageContext): Promise<void> {
  const raw = ctx.query.get('status') ?? 'active';
  const status = (STATUSES as readonly string[]).includes(raw) ? raw : raw === 'all' ? '' : 'active';
  const heading = ctx.title('Exceptions');
  const filter = h(
    'nav',
    { class: 'actions', 'aria-label': 'Exception status' },
    [['active', 'Active'], ['expired', 'Expired'], ['revoked', 'Revoked'], ['all', 'All']].map(([v, label]) =>
      h('a', { href: linkWithQuery(['exceptions'], { status: v as string }), 'aria-current': (status === '' ? 'all' : status) === v ? 'page' : null }, label as string),
    ),
  );
  const feedback = h('div', { 'aria-live': 'polite' });
  const body = h('div');
  replace(ctx.main, heading, filter, feedback, body);
  const mayRevoke = can(ctx.me, 'revokeException');

  async function load(): Promise<void> {
    const list = await ctx.api.get<{ items: ExceptionJson[] }>('exceptions', { status });
    if (!ctx.alive()) return;
    const items = list.items.slice(0, MAX_ROWS);
    if (items.length === 0) return replace(body, h('p', { class: 'panel' }, 'No exceptions here.'));
    const rows = items.map((e) => {
      const revoke =
        mayRevoke && e.status === 'active'
          ? h('button', {
              type: 'button',
              class: 'danger',
              'aria-label': `Revoke exception ${show(e.id, 64)}`,
              onclick: () => {
                if (!window.confirm(`Revoke exception ${e.id}? Its alerts will fire again.`)) return;
                void (async () => {
                  try {
                    await ctx.api.del(`exceptions/${seg(e.id)}`);
                    replace(feedback, message('ok', `Exception ${e.id} revoked.`));
                    announce(`Exception revoked`);
                    await load();
                  } catch (err) {
                    replace(feedback, message('error', errorText(err)));
                  }
                })();
              },
            }, 'Revoke')
          : null;
      const match = [e.match.key ? `baseline ${show(e.match.key, 300)}` : '', e.match.entry ? `entry ${show(e.match.entry, 500)}` : '', e.match.namespace ? `namespace ${show(e.match.namespace, 63)}` : ''].filter((x) => x !== '');
      return h(
        'tr',
        { 'data-exception-id': show(e.id, 64) },
        h('td', { class: 'mono' }, show(e.id, 64)),
        h('td', null, badge('state', e.status)),
        h('td', { class: 'mono' }, match.join(' · ')),
        h('td', null, show(e.reason, 1000)),
        h('td', null, show(e.owner, 128), h('div', { class: 'muted' }, `by ${show(e.createdBy, 64)}`)),
        h('td', { class: 'time' }, timeEl(e.expiresAt)),
        h('td', null, e.revokedAt ? [`revoked by ${show(e.revokedBy, 64)} `, timeEl(e.revokedAt)] : revoke),
      );
    });
    replace(body, table('Exceptions', ['Id', 'Status', 'Matches', 'Reason', 'Owner', 'Expires', mayRevoke ? 'Action' : 'Revoked'], rows), list.items.length > MAX_ROWS ? h('p', { class: 'muted' }, `Showing ${MAX_ROWS} of ${list.items.length}.`) : null);
  }
  await load();
}
