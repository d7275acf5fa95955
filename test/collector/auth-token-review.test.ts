/**
 * Agent identity by ServiceAccount token: a local HTTP server answers TokenReviews the way the
 * Kubernetes API server does (201 with status.authenticated, audiences, user.extra node-name), and a
 * real collector (TLS) verifies agent streams against it.
 */
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { createTokenReviewer, judgeTokenReview } from '../../collector/ingest/token-review.js';
import { withCollector } from '../helpers/collector.js';
import { hello } from '../helpers/agent-stream.js';
import { AGENT_SA, COLLECTOR_TOKEN, collectorTokenFile, fakeKubeApi, type KnownToken } from '../helpers/kube-api.js';
import { makePki } from '../helpers/pki.js';

/** Tokens the fake API server knows: token → the audiences it was issued for, its user, its node. */
const KNOWN: Record<string, KnownToken> = {
  'agent-node-a': { audiences: ['driftwatch'], username: AGENT_SA, node: 'node-a' },
  'agent-node-b': { audiences: ['driftwatch'], username: AGENT_SA, node: 'node-b' },
  'wrong-audience': { audiences: ['https://kubernetes.default.svc'], username: AGENT_SA, node: 'node-a' },
  'other-sa': { audiences: ['driftwatch'], username: 'system:serviceaccount:default:nosy', node: 'node-a' },
  'not-node-bound': { audiences: ['driftwatch'], username: AGENT_SA },
};

function reviewer(t: ExecutionContext, url: string, logs: string[] = []) {
  const logger = pino({ level: 'info' }, { write: (s: string) => logs.push(s) });
  return createTokenReviewer({ apiServer: url, tokenFile: collectorTokenFile(t), caFile: null, audience: 'driftwatch', serviceAccounts: ['driftwatch:driftwatch-agent'], timeoutMs: 30_000 }, { logger });
}

test('judging a TokenReview status', (t) => {
  const opts = { audience: 'driftwatch', serviceAccounts: ['driftwatch:driftwatch-agent'] };
  const user = { username: AGENT_SA, extra: { 'authentication.kubernetes.io/node-name': ['node-a'] } };
  t.deepEqual(judgeTokenReview({ authenticated: true, audiences: ['driftwatch'], user }, opts), { ok: true, node: 'node-a', username: AGENT_SA });
  t.like(judgeTokenReview({ authenticated: false, error: 'expired' }, opts), { ok: false, code: 'invalid', reason: 'the API server rejected the token: expired' });
  t.like(judgeTokenReview({ authenticated: true, user }, opts), { ok: false, code: 'invalid' }, 'no audiences in the answer');
  t.like(judgeTokenReview({ authenticated: true, audiences: ['api'], user }, opts), { ok: false, code: 'invalid' });
  t.like(judgeTokenReview({ authenticated: true, audiences: ['driftwatch'], user: { username: 'alice', extra: user.extra } }, opts), { ok: false, code: 'invalid' });
  t.like(judgeTokenReview({ authenticated: true, audiences: ['driftwatch'], user: { username: AGENT_SA, extra: { 'authentication.kubernetes.io/node-name': ['a', 'b'] } } }, opts), { ok: false, code: 'invalid' });
  t.like(judgeTokenReview(undefined, opts), { ok: false, code: 'unavailable' });
});

test('TokenReview against a local API server: valid, invalid, wrong audience, wrong service account, unbound, cached', async (t) => {
  const api = await fakeKubeApi(t, KNOWN);
  const r = reviewer(t, api.url);
  t.deepEqual(await r.review('agent-node-a'), { ok: true, node: 'node-a', username: AGENT_SA });
  t.like(await r.review('garbage'), { ok: false, code: 'invalid', reason: 'the API server rejected the token: invalid bearer token' });
  t.like(await r.review('wrong-audience'), { ok: false, code: 'invalid' });
  const otherSa = await r.review('other-sa');
  t.like(otherSa, { ok: false, code: 'invalid' });
  t.regex((otherSa as { reason: string }).reason, /default:nosy is not an agent's/);
  const unbound = await r.review('not-node-bound');
  t.like(unbound, { ok: false, code: 'invalid' });
  t.regex((unbound as { reason: string }).reason, /not bound to a node/);
  const before = api.requests;
  await Promise.all([r.review('agent-node-a'), r.review('agent-node-a'), r.review('garbage')]);
  t.is(api.requests, before, 'verdicts are cached');
  const fresh = await Promise.all([r.review('agent-node-b'), r.review('agent-node-b')]);
  t.is(api.requests, before + 1, 'concurrent reviews of one token share one request');
  t.like(fresh[0], { ok: true, node: 'node-b' });
});

test('an API server that is down or refuses the collector fails closed, with a clear log, and is not cached', async (t) => {
  const api = await fakeKubeApi(t, KNOWN);
  const url = api.url;
  await new Promise<void>((r) => api.server.close(() => r()));
  const logs: string[] = [];
  const r = reviewer(t, url, logs);
  const down = await r.review('agent-node-a');
  t.like(down, { ok: false, code: 'unavailable' });
  t.regex((down as { reason: string }).reason, /TokenReview at http:\/\/127\.0\.0\.1:\d+ failed: .*ECONNREFUSED/);
  t.true(logs.some((l) => l.includes('cannot verify an agent token')));
  t.false(logs.some((l) => l.includes('agent-node-a')), 'the token is never logged');

  const forbidden = await fakeKubeApi(t, KNOWN, { status: 403 });
  const refused = await reviewer(t, forbidden.url).review('agent-node-a');
  t.like(refused, { ok: false, code: 'unavailable' });
  t.regex((refused as { reason: string }).reason, /HTTP 403 .*tokenreviews/);
});

test('a collector in token mode: the token decides the node; another node, no token, a bad token or no API server are refused', async (t) => {
  const pki = await makePki(t, []);
  const api = await fakeKubeApi(t, KNOWN);
  const logs: string[] = [];
  const c = await withCollector(
    t,
    {
      // insecure: the API only; the agent stream is TLS
      tlsCert: pki.collectorCert,
      tlsKey: pki.collectorKey,
      agentAuth: 'token',
      agentServiceAccounts: ['driftwatch:driftwatch-agent'],
      kubeApiServer: api.url,
      kubeTokenFile: collectorTokenFile(t),
    },
    { logs },
  );
  const tls = grpc.credentials.createSsl(pki.read(pki.ca));
  const bearer = (token: string) => {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    return md;
  };
  t.deepEqual(await hello(c.grpcPort, tls, 'node-a', bearer('agent-node-a')), { welcomed: true });
  const impostor = await hello(c.grpcPort, tls, 'node-b', bearer('agent-node-a'));
  t.like(impostor, { welcomed: false, code: grpc.status.PERMISSION_DENIED });
  t.regex((impostor as { details: string }).details, /authenticated as node node-a; it may not speak for "node-b"/);
  t.like(await hello(c.grpcPort, tls, 'node-a'), { welcomed: false, code: grpc.status.UNAUTHENTICATED });
  t.like(await hello(c.grpcPort, tls, 'node-a', bearer('wrong-audience')), { welcomed: false, code: grpc.status.UNAUTHENTICATED });
  t.like(await hello(c.grpcPort, grpc.credentials.createInsecure(), 'node-a', bearer('agent-node-a')), { welcomed: false, code: grpc.status.UNAVAILABLE }, 'no plaintext');
  await new Promise<void>((r) => api.server.close(() => r()));
  api.server.closeAllConnections();
  const down = await hello(c.grpcPort, tls, 'node-b', bearer('agent-node-b'));
  t.like(down, { welcomed: false, code: grpc.status.UNAVAILABLE });
  t.regex((down as { details: string }).details, /cannot verify tokens right now/);
  t.true(logs.some((l) => l.includes('cannot verify an agent token') && l.includes('ECONNREFUSED')), 'the log says why');
  const metrics = await (await fetch(`${c.url}/metrics`)).text();
  t.regex(metrics, /driftwatch_collector_agent_auth_total\{result="ok"\} 1/);
  t.regex(metrics, /driftwatch_collector_agent_auth_total\{result="node_mismatch"\} 1/);
  t.regex(metrics, /driftwatch_collector_agent_auth_total\{result="unavailable"\} 1/);
  t.false(logs.some((l) => l.includes('agent-node-a"') || l.includes(COLLECTOR_TOKEN)), 'no token in the logs');
  t.is(await c.store.countDeviations(), 0);
});
