/**
 * Alerts and their deviations: the list on-call pages through, one alert with its latest deviations
 * and deliveries, and its life cycle (acknowledge, resolve: a responder's; accept into the
 * baseline: a reviewer's, since it changes what the baseline allows).
 */
import { z } from 'zod';
import { describeEntry } from '../../../core/entry.js';
import { EVENT_KINDS } from '../../../core/event.js';
import { SEVERITIES } from '../../../core/severity.js';
import { ALERT_STATES, type Alert, type AlertTransition } from '../../alerting/alert.js';
import type { Role } from '../auth.js';
import { ApiError } from '../errors.js';
import { route, type Route } from '../route.js';
import { query, queryCursor, queryLimit, queryOneOf, queryText } from '../schemas.js';
import { alertView, deliveryView, deviationView } from '../views.js';
import { alertSbom } from '../../sbom/links.js';

const TransitionBody = z.strictObject({ comment: z.string().max(1000).default('') });

/** The life-cycle verbs: the state each leads to and the least role. */
const TRANSITIONS: readonly { verb: string; to: AlertTransition['to']; role: Role }[] = [
  { verb: 'acknowledge', to: 'acknowledged', role: 'responder' },
  { verb: 'ack', to: 'acknowledged', role: 'responder' },
  { verb: 'resolve', to: 'resolved', role: 'responder' },
  // Accepting the risk of an alert adds its entry to the baseline: a reviewer's decision, not a responder's.
  { verb: 'accept', to: 'accepted', role: 'reviewer' },
];

/** The alert routes. */
export const alertRoutes: readonly Route[] = [
  route({
    method: 'GET',
    path: '/api/v1/alerts',
    role: 'viewer',
    query: query({
      limit: queryLimit,
      cursor: queryCursor,
      image: queryText(),
      kind: queryOneOf(EVENT_KINDS),
      state: queryOneOf(ALERT_STATES),
      severity: queryOneOf(SEVERITIES),
      namespace: queryText(63),
    }),
    async handle({ query: q, deps }) {
      const page = await deps.store.listAlerts(q);
      return { json: { items: page.items.map(alertView), next: page.next } };
    },
  }),
  route({
    method: 'GET',
    path: '/api/v1/alerts/{id}',
    role: 'viewer',
    async handle({ params, deps }) {
      const alert = await deps.store.getAlert(params.id as string);
      if (!alert) throw new ApiError(404, 'not_found', 'no alert with this id');
      const [recent, deliveries] = await Promise.all([deps.store.listDeviations({ limit: 20, fingerprint: alert.fingerprint }), deps.store.deliveriesOf(alert.fingerprint)]);
      // The package behind the executable, from the SBOM of the image its latest deviation ran in (issue 22).
      const sbom = await alertSbom(deps.store, alert, recent.items[0]?.deviation.event.container?.image);
      return { json: { ...alertView(alert), sbom, deviations: recent.items.map(deviationView), deliveries: deliveries.map(deliveryView) } };
    },
  }),
  ...TRANSITIONS.map(({ verb, to, role }) =>
    route({
      method: 'POST',
      path: `/api/v1/alerts/{id}/${verb}`,
      role,
      body: TransitionBody,
      async handle(ctx) {
        const { deps } = ctx;
        const change: AlertTransition = { to, by: ctx.actor, at: deps.now(), comment: ctx.body.comment };
        // One call: the read of the alert, its change and its notifications are one transaction.
        const result = await deps.alerting.transition(ctx.params.id as string, change);
        if (!result.ok && result.reason === 'not-found') throw new ApiError(404, 'not_found', 'no alert with this id');
        if (!result.ok) throw new ApiError(409, 'invalid_transition', `the alert is ${result.alert.state}; it cannot become ${to}`);
        const pick = (a: Alert) => ({ state: a.state, stateBy: a.stateBy, stateComment: a.stateComment, summary: describeEntry(a.entry), baselineKey: a.baselineKey });
        await ctx.record(`alert.${verb === 'ack' ? 'acknowledge' : verb}`, result.after.fingerprint, pick(result.before), pick(result.after));
        if (to === 'accepted') deps.onBaselineChanged(result.after.baselineKey);
        return { json: alertView(result.after) };
      },
    }),
  ),
  route({
    method: 'GET',
    path: '/api/v1/deviations',
    role: 'viewer',
    query: query({ limit: queryLimit, cursor: queryCursor, alert: queryText(64), key: queryText(), node: queryText(253) }),
    async handle({ query: q, deps }) {
      const page = await deps.store.listDeviations({ limit: q.limit, cursor: q.cursor, fingerprint: q.alert, baselineKey: q.key, node: q.node });
      return { json: { items: page.items.map(deviationView), next: page.next } };
    },
  }),
];
