/**
 * Nodes: each agent's last contact, lag and silence; forgetting a decommissioned one (resolves its
 * silence alert); quarantining one found compromised (its deltas refused, its teaching dropped, its
 * deviations kept and marked), an admin's decision.
 */
import type { NodeStatus } from '../../ingest/node-tracker.js';
import { ApiError } from '../errors.js';
import { route, type Route, type RouteDeps } from '../route.js';
import { ReasonBody } from '../schemas.js';
import { iso, nodeView } from '../views.js';

function trackerOf(deps: RouteDeps): NonNullable<RouteDeps['nodes']> {
  if (!deps.nodes) throw new ApiError(404, 'not_found', 'no such API resource');
  return deps.nodes;
}

function nodeName(name: string): string {
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) throw new ApiError(400, 'invalid_parameter', 'not a Kubernetes node name');
  return name;
}

async function withQuarantine(deps: RouteDeps) {
  const quarantined = new Set((await deps.store.listQuarantined()).map((q) => q.node));
  return (n: NodeStatus) => ({ ...nodeView(n), quarantined: quarantined.has(n.node) });
}

/** The node routes. */
export const nodeRoutes: readonly Route[] = [
  route({
    method: 'GET',
    path: '/api/v1/nodes',
    role: 'viewer',
    async handle({ deps }) {
      const nodes = trackerOf(deps);
      const view = await withQuarantine(deps);
      return { json: { items: nodes.list().map(view), next: null } };
    },
  }),
  route({
    method: 'GET',
    path: '/api/v1/nodes/quarantined',
    role: 'viewer',
    async handle({ deps }) {
      return { json: { items: (await deps.store.listQuarantined()).map((q) => ({ node: q.node, by: q.by, at: iso(q.at), reason: q.reason })), next: null } };
    },
  }),
  route({
    method: 'GET',
    path: '/api/v1/nodes/{node}',
    role: 'viewer',
    async handle({ params, deps }) {
      const n = trackerOf(deps).get(params.node as string);
      if (!n) throw new ApiError(404, 'not_found', 'no node with this name');
      return { json: (await withQuarantine(deps))(n) };
    },
  }),
  route({
    method: 'DELETE',
    path: '/api/v1/nodes/{node}',
    // Forgetting a node resolves its silence alert: on-call's to do.
    role: 'responder',
    async handle(ctx) {
      const nodes = trackerOf(ctx.deps);
      const name = ctx.params.node as string;
      const before = nodes.get(name);
      if (!before || !nodes.forget(name)) throw new ApiError(404, 'not_found', 'no node with this name');
      await ctx.record('node.forget', name, nodeView(before), null);
      return { json: nodeView(before) };
    },
  }),
  route({
    method: 'POST',
    path: '/api/v1/nodes/{node}/quarantine',
    role: 'admin',
    body: ReasonBody,
    async handle(ctx) {
      const { deps } = ctx;
      const name = nodeName(ctx.params.node as string);
      const result = await deps.store.quarantineNode(name, ctx.actor, ctx.body.reason, deps.now());
      if (!result) throw new ApiError(409, 'conflict', 'the node is already quarantined');
      const { keys, ...counts } = result;
      await ctx.record('node.quarantine', name, { quarantined: false }, { quarantined: true, keys: keys.length, ...counts });
      for (const key of keys) deps.onBaselineChanged(key);
      return { json: { node: name, quarantined: true, keys, ...counts } };
    },
  }),
  route({
    method: 'DELETE',
    path: '/api/v1/nodes/{node}/quarantine',
    role: 'admin',
    async handle(ctx) {
      const name = nodeName(ctx.params.node as string);
      if (!(await ctx.deps.store.releaseNode(name))) throw new ApiError(404, 'not_found', 'the node is not quarantined');
      await ctx.record('node.release', name, { quarantined: true }, { quarantined: false });
      return { json: { node: name, quarantined: false } };
    },
  }),
];
