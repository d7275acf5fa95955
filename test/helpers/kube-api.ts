/**
 * A local HTTP server that answers TokenReviews the way the Kubernetes API server does (201 with
 * status.authenticated, audiences, user.extra node-name), for collectors in agentAuth token mode.
 */
import type { ExecutionContext } from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The token the collector presents to the fake API server (its own ServiceAccount's). */
export const COLLECTOR_TOKEN = 'collector-own-sa-token';
/** The agent's ServiceAccount, as the API server names it. */
export const AGENT_SA = 'system:serviceaccount:driftwatch:driftwatch-agent';

/** What the fake API server knows of a token: the audiences it was issued for, its user, its node. */
export interface KnownToken {
  audiences: string[];
  username: string;
  node?: string;
}

/** A running fake API server. */
export interface FakeKubeApi {
  url: string;
  /** TokenReviews asked so far (every request, answered or not). */
  requests: number;
  server: Server;
}

/** Serve POST /apis/authentication.k8s.io/v1/tokenreviews like kube-apiserver; closed after the test. */
export async function fakeKubeApi(t: ExecutionContext, known: Record<string, KnownToken>, options: { status?: number } = {}): Promise<FakeKubeApi> {
  const api: FakeKubeApi = { url: '', requests: 0, server: createServer() };
  api.server.on('request', (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      api.requests++;
      if (req.method !== 'POST' || req.url !== '/apis/authentication.k8s.io/v1/tokenreviews') return res.writeHead(404).end();
      if (req.headers.authorization !== `Bearer ${COLLECTOR_TOKEN}`) return res.writeHead(401).end('{"kind":"Status","code":401}');
      if (options.status) return res.writeHead(options.status).end('{"kind":"Status"}');
      const review = JSON.parse(body) as { spec: { token: string; audiences: string[] } };
      const token = Object.hasOwn(known, review.spec.token) ? known[review.spec.token] : undefined;
      const wanted = review.spec.audiences;
      const audiences = token ? token.audiences.filter((a) => wanted.includes(a)) : [];
      const status =
        token && audiences.length > 0
          ? {
              authenticated: true,
              audiences,
              user: { username: token.username, uid: 'u1', groups: ['system:serviceaccounts'], extra: token.node ? { 'authentication.kubernetes.io/node-name': [token.node], 'authentication.kubernetes.io/pod-name': ['agent-x'] } : {} },
            }
          : { authenticated: false, error: token ? `token audiences ${JSON.stringify(token.audiences)} is invalid for the target audiences ${JSON.stringify(wanted)}` : 'invalid bearer token' };
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', spec: review.spec, status }));
    });
  });
  await new Promise<void>((r) => api.server.listen(0, '127.0.0.1', r));
  api.url = `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`;
  t.teardown(() => new Promise<void>((r) => api.server.close(() => r())));
  return api;
}

/** A file holding the collector's own token (kubeTokenFile); removed after the test. */
export function collectorTokenFile(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'dw-tr-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'token');
  writeFileSync(file, `${COLLECTOR_TOKEN}\n`);
  return file;
}

/**
 * A token shaped like a projected ServiceAccount token (a JWT: header, claims, signature, each
 * base64url), with the claims the API server would sign. Only the fake API server can tell a real
 * one from a forgery, as only kube-apiserver can in a cluster.
 */
export function serviceAccountJwt(claims: { sub: string; aud: string[]; node?: string; exp?: number }, signature = 'c2lnbmF0dXJl'): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const [, ns, name] = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(claims.sub) ?? [];
  const body = {
    aud: claims.aud,
    exp: claims.exp ?? Math.floor(Date.now() / 1000) + 3600,
    iat: Math.floor(Date.now() / 1000),
    iss: 'https://kubernetes.default.svc.cluster.local',
    sub: claims.sub,
    'kubernetes.io': { namespace: ns, serviceaccount: { name, uid: 'sa-uid' }, ...(claims.node ? { node: { name: claims.node, uid: 'node-uid' } } : {}) },
  };
  return `${b64({ alg: 'RS256', kid: 'k1' })}.${b64(body)}.${signature}`;
}
