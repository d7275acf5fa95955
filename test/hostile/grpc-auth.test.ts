/**
 * Valid agent credentials survive failures from their address, over gRPC with a real collector:
 * many failed authentications from one address (127.0.0.1: the attacker and the agent share it, as
 * pods behind one SNAT address or a compromised neighbour do) are refused, and past the address
 * bound refused cheaply (RESOURCE_EXHAUSTED, no TokenReview); a credential that keeps failing is
 * locked; and a valid agent from the same address, whose credential was never seen before (a new
 * node, a rotated token, a restarted collector), still connects and streams. Lockout is by
 * credential; the address bound limits guessing, never a valid credential.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { loadCollectorConfig, startCollector, type CollectorHandle } from '../../collector/main.js';
import { THROTTLED_REVIEWS } from '../../collector/ingest/node-identity.js';
import { unverifiedAgentClaims } from '../../collector/ingest/token-review.js';
import { AUTH_FAILURE_LIMITS } from '../../collector/http/rate-limit.js';
import { deviationToWire } from '../../proto/index.js';
import { hello, type HelloOutcome } from '../helpers/agent-stream.js';
import { scriptedNode } from '../helpers/hostile-node.js';
import { deviationOf } from '../helpers/ingest.js';
import { AGENT_SA, collectorTokenFile, fakeKubeApi, serviceAccountJwt, type KnownToken } from '../helpers/kube-api.js';
import { makePki, type TestPki } from '../helpers/pki.js';
import { eventually } from '../helpers/processes.js';

const AUDIENCE = 'driftwatch';
const ATTEMPTS = AUTH_FAILURE_LIMITS.perAddress + 15;

async function collector(t: ExecutionContext, extra: Record<string, unknown>): Promise<CollectorHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'dw-grpc-auth-'));
  const c = await startCollector(
    loadCollectorConfig({ db: join(dir, 'c.db'), grpcListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', metricsInterval: '0s', insecure: true, ...extra }, {}),
    { logger: pino({ level: 'silent' }) },
  );
  t.teardown(async () => {
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return c;
}

async function authResults(c: CollectorHandle): Promise<Record<string, number>> {
  const text = await c.metrics.registry.getSingleMetricAsString('driftwatch_collector_agent_auth_total');
  return Object.fromEntries([...text.matchAll(/result="([a-z_]+)"\} (\d+)/g)].map((m) => [m[1] as string, Number(m[2])]));
}

const withToken = (tls: grpc.ChannelCredentials, token: string) =>
  grpc.credentials.combineChannelCredentials(
    tls,
    grpc.credentials.createFromMetadataGenerator((_params, callback) => {
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${token}`);
      callback(null, md);
    }),
  );

/** A node's stream with `credentials`: welcomed, then one deviation acknowledged as stored. */
async function streams(c: CollectorHandle, credentials: grpc.ChannelCredentials, node: string, i: number): Promise<string> {
  const n = scriptedNode(c.grpcPort, credentials, node);
  try {
    await n.welcomed;
    const ack = await n.batch({ batchId: i, deviations: [deviationToWire(deviationOf({ node, image: 'docker.io/acme/shop', exe: '/bin/sh', i }))], baselines: [] });
    return ack.stored === 1 ? 'streams' : `ack ${JSON.stringify(ack)}`;
  } catch (err) {
    return (err as Error).message;
  } finally {
    n.close();
  }
}

const codes = (outcomes: HelloOutcome[]) => outcomes.map((o) => (o.welcomed ? 'OK' : grpc.status[o.code]));

test('token mode: 35 failures from one address (garbage, another service account’s token, forged agent tokens), then never-seen valid agent tokens from it connect and stream', async (t) => {
  const agentToken = (node: string, sig: string) => serviceAccountJwt({ sub: AGENT_SA, aud: [AUDIENCE], node }, sig);
  const nosy = serviceAccountJwt({ sub: 'system:serviceaccount:default:nosy', aud: [AUDIENCE], node: 'node-a' });
  // Shaped like an agent's token, claiming a node, signed by nobody: only a TokenReview tells.
  const forged = (node: string, i: number) => agentToken(node, `forged-${i}`);
  const valid = { a1: agentToken('node-a', 'a1'), a2: agentToken('node-a', 'a2-rotated'), a3: agentToken('node-a', 'a3-rotated'), b: agentToken('node-b', 'b1') };
  const known: Record<string, KnownToken> = {
    [valid.a1]: { audiences: [AUDIENCE], username: AGENT_SA, node: 'node-a' },
    [valid.a2]: { audiences: [AUDIENCE], username: AGENT_SA, node: 'node-a' },
    [valid.a3]: { audiences: [AUDIENCE], username: AGENT_SA, node: 'node-a' },
    [valid.b]: { audiences: [AUDIENCE], username: AGENT_SA, node: 'node-b' },
    // A real token of another service account (any pod can ask for one with any audience): a bad role.
    [nosy]: { audiences: [AUDIENCE], username: 'system:serviceaccount:default:nosy', node: 'node-a' },
  };
  const pki = await makePki(t, []);
  const api = await fakeKubeApi(t, known);
  const c = await collector(t, {
    tlsCert: pki.collectorCert,
    tlsKey: pki.collectorKey,
    agentAuth: 'token',
    agentServiceAccounts: ['driftwatch:driftwatch-agent'],
    tokenAudience: AUDIENCE,
    kubeApiServer: api.url,
    kubeTokenFile: collectorTokenFile(t),
  });
  const tls = grpc.credentials.createSsl(pki.read(pki.ca));

  // The wrong service account's token, again and again (locked after its 10th failure), then
  // garbage and forged agent-shaped tokens, each new, past the address bound.
  const outcomes: HelloOutcome[] = [];
  for (let i = 0; i < ATTEMPTS; i++) {
    const token = i < 12 ? nosy : i % 2 === 0 ? `guess-${i}-0123456789` : forged('node-z', i);
    outcomes.push(await hello(c.grpcPort, withToken(tls, token), 'node-a'));
  }
  const got = codes(outcomes);
  t.false(got.includes('OK'), got.join(' '));
  const perCredential = AUTH_FAILURE_LIMITS.perCredential;
  t.deepEqual(got.slice(0, perCredential), Array(perCredential).fill('UNAUTHENTICATED'), 'the wrong service account: refused');
  t.deepEqual(got.slice(perCredential, 12), ['RESOURCE_EXHAUSTED', 'RESOURCE_EXHAUSTED'], 'then locked');
  t.deepEqual(got.slice(-10), Array(10).fill('RESOURCE_EXHAUSTED'), `past the address bound, every guess: ${got.join(' ')}`);
  const before = await authResults(c);
  t.true((before.credential_locked ?? 0) >= 2, JSON.stringify(before));
  t.true((before.address_throttled ?? 0) >= 10, JSON.stringify(before));
  const reviews = api.requests;
  // Reviews: the failures within the bound, then forged agent-shaped tokens within their budget.
  t.true(reviews <= AUTH_FAILURE_LIMITS.perAddress + THROTTLED_REVIEWS.perAddressBurst, `the guesses cost ${reviews} TokenReviews`);

  // Valid agents from the same, throttled address, with tokens the collector never saw.
  t.is(await streams(c, withToken(tls, valid.a1), 'node-a', 1), 'streams', 'a valid agent token from the throttled address');
  t.is(await streams(c, withToken(tls, valid.b), 'node-b', 2), 'streams', 'another node’s, never seen either');
  t.is(await streams(c, withToken(tls, valid.a2), 'node-a', 3), 'streams', 'node-a’s rotated token');
  t.is(await c.store.countDeviations(), 3);

  // Guessing from the address is still refused, cheaply, after the valid agents got in.
  const after = codes([await hello(c.grpcPort, withToken(tls, 'guess-after-0123456789'), 'node-a'), await hello(c.grpcPort, withToken(tls, nosy), 'node-a')]);
  t.deepEqual(after, ['RESOURCE_EXHAUSTED', 'RESOURCE_EXHAUSTED']);
  t.is(api.requests, reviews + 3, 'only the three valid tokens were reviewed after the bound');

  // Forgeries claiming node-a itself spend node-a's review budget at this address: at most
  // THROTTLED_REVIEWS.perAddressBurst reviews, and node-a's next new token waits about a second
  // per review spent, not the failure window.
  const forging = Date.now();
  for (let i = 0; i < 10; i++) t.like(await hello(c.grpcPort, withToken(tls, forged('node-a', 100 + i)), 'node-a'), { welcomed: false, code: grpc.status.RESOURCE_EXHAUSTED });
  // The budget refills while the forgeries go on (a loaded machine makes them slower): a full burst, plus a refill per second they took.
  const budget = THROTTLED_REVIEWS.perAddressBurst + Math.floor(((Date.now() - forging) / 1000) * THROTTLED_REVIEWS.perAddressPerSecond);
  t.true(api.requests - reviews - 3 <= budget, `${api.requests - reviews - 3} reviews for 10 forgeries (budget ${budget})`);
  const started = Date.now();
  const a3 = await eventually(async () => ((await streams(c, withToken(tls, valid.a3), 'node-a', 4)) === 'streams' ? true : undefined), 20_000, 'node-a with a new token');
  t.true(a3);
  t.log(`node-a's new token got in after ${Date.now() - started} ms`);
  t.is(await c.store.countDeviations(), 4);
});

test('certificate mode: failures from one address (no certificate, a server certificate, three nodes claiming another), then never-seen valid node certificates from it connect and stream', async (t) => {
  const evil = ['node-evil-1', 'node-evil-2', 'node-evil-3'];
  const pki: TestPki = await makePki(t, [...evil, 'node-good', 'node-new']);
  const c = await collector(t, { tlsCert: pki.collectorCert, tlsKey: pki.collectorKey, tlsCa: pki.ca });
  const node = (name: string) => grpc.credentials.createSsl(pki.read(pki.ca), pki.read(pki.nodeKey(name)), pki.read(pki.nodeCert(name)));
  // Refused by the TLS handshake (UNAVAILABLE), before any stream: no certificate, and the
  // collector's own certificate (serverAuth, not clientAuth: a certificate of the wrong role).
  const server = grpc.credentials.createSsl(pki.read(pki.ca), pki.read(pki.collectorKey), pki.read(pki.collectorCert));
  const handshakes = codes([await hello(c.grpcPort, server, 'node-good'), await hello(c.grpcPort, grpc.credentials.createSsl(pki.read(pki.ca)), 'node-good')]);
  t.deepEqual(handshakes, ['UNAVAILABLE', 'UNAVAILABLE']);
  // Three owned nodes claim node-good, 12 times each: 36 failures from the address, each certificate locked after 10.
  const claims: string[] = [];
  for (const name of evil) for (let i = 0; i < 12; i++) claims.push(...codes([await hello(c.grpcPort, node(name), 'node-good')]));
  const perCredential = AUTH_FAILURE_LIMITS.perCredential;
  const expected = [...Array(perCredential).fill('PERMISSION_DENIED'), 'RESOURCE_EXHAUSTED', 'RESOURCE_EXHAUSTED'];
  t.deepEqual(claims, [...expected, ...expected, ...expected]);
  const results = await authResults(c);
  t.is(results.node_mismatch, 3 * perCredential);
  t.true(3 * perCredential > AUTH_FAILURE_LIMITS.perAddress, 'the address is past its failure bound');
  t.is(results.credential_locked, 6);

  t.is(await streams(c, node('node-good'), 'node-good', 1), 'streams', 'the node whose name was claimed');
  t.is(await streams(c, node('node-new'), 'node-new', 2), 'streams', 'a node never seen before');
  t.like(await hello(c.grpcPort, node('node-evil-1'), 'node-evil-1'), { welcomed: false, code: grpc.status.RESOURCE_EXHAUSTED }, 'a locked certificate stays locked, even for its own node');
  t.is(await c.store.countDeviations(), 2);
});

test('which tokens could be an agent’s, from their unverified claims', (t) => {
  const options = { audience: AUDIENCE, serviceAccounts: ['driftwatch:driftwatch-agent'] };
  const now = Date.now();
  const claims = (token: string) => unverifiedAgentClaims(token, options, now);
  t.deepEqual(claims(serviceAccountJwt({ sub: AGENT_SA, aud: [AUDIENCE], node: 'node-a' })), { node: 'node-a' });
  t.deepEqual(claims(serviceAccountJwt({ sub: AGENT_SA, aud: ['other', AUDIENCE] })), { node: '' }, 'no node claim: the review decides');
  t.is(claims(serviceAccountJwt({ sub: 'system:serviceaccount:default:nosy', aud: [AUDIENCE], node: 'node-a' })), null, 'another service account');
  t.is(claims(serviceAccountJwt({ sub: AGENT_SA, aud: ['https://kubernetes.default.svc'], node: 'node-a' })), null, 'another audience');
  t.is(claims(serviceAccountJwt({ sub: AGENT_SA, aud: [AUDIENCE], node: 'node-a', exp: Math.floor(now / 1000) - 10 })), null, 'expired');
  for (const garbage of ['guess-0123456789', 'a.b.c', `x.${Buffer.from('[1]').toString('base64url')}.y`, `x.${'A'.repeat(9000)}.y`, '..']) t.is(claims(garbage), null, garbage.slice(0, 20));
});
