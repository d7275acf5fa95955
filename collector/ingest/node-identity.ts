/**
 * Who is on the other end of an agent stream, decided before ingest sees a single record: a gRPC
 * server interceptor that establishes the node's identity from the call (its mTLS client
 * certificate, or its ServiceAccount token checked with a TokenReview) and refuses the stream when
 * its first message, the Hello, names any other node. Ingest already refuses records of other
 * nodes within a stream, so a node speaks only for itself end to end.
 *
 * Node names in certificates: the subject common name (CN) is the node name, and the certificate
 * must carry the clientAuth extended key usage (so a collector's serverAuth certificate from the
 * same CA cannot pose as a node). `driftwatch certs node NAME` mints exactly that.
 */
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../runtime/logger.js';
import { createRateLimiter, credentialDigest, type AuthFailureGate, type AuthFailureLimiter } from '../http/rate-limit.js';
import type { TokenReviewer } from './token-review.js';

/** How agents prove which node they are. `none` only with `insecure`. */
export type AgentAuthMode = 'certificate' | 'token' | 'none';

/** Outcomes counted in driftwatch_collector_agent_auth_total{result}. */
export type AgentAuthResult =
  | 'ok'
  | 'no_certificate'
  | 'bad_certificate'
  | 'no_token'
  | 'invalid_token'
  | 'unavailable'
  | 'node_mismatch'
  | AuthFailureGate
  | 'too_many_streams';

/** Outcomes that are failed attempts of the credential offered (counted by the failure limiter). */
const FAILURES: ReadonlySet<AgentAuthResult> = new Set(['no_certificate', 'bad_certificate', 'no_token', 'invalid_token', 'node_mismatch']);
/** Credentials that authenticated lately, remembered (by digest) so that address bounds never hold them back. */
const MAX_KNOWN_GOOD = 10_000;

/**
 * TokenReviews spent past a failure bound on tokens shaped like an agent's (token mode), per
 * address and claimed node, and per claimed node from everywhere: a valid agent behind a throttled
 * address still gets in, and forged agent-shaped tokens cost at most this many reviews.
 */
export const THROTTLED_REVIEWS = Object.freeze({ perAddressPerSecond: 1, perAddressBurst: 5, overallPerSecond: 10, overallBurst: 20 });

const NODE_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
const MAX_TOKEN_CHARS = 16 << 10;

/** The node a client certificate names, or why it names none. */
export function nodeFromCertificate(cert: PeerCertificate | undefined): { node: string } | { error: string } {
  if (!cert || !cert.subject) return { error: 'no client certificate' };
  const cn = cert.subject.CN as string | string[] | undefined;
  if (typeof cn !== 'string') return { error: 'the client certificate must have exactly one subject CN (the node name)' };
  if (!NODE_RE.test(cn)) return { error: `the client certificate's CN ${JSON.stringify(cn.slice(0, 64))} is not a node name` };
  if (!cert.ext_key_usage?.includes(CLIENT_AUTH_OID)) return { error: 'the client certificate is not for client authentication (extended key usage clientAuth)' };
  return { node: cn };
}

/** Interceptor settings. */
export interface NodeIdentityOptions {
  mode: AgentAuthMode;
  /** Most streams open at once per node (a reconnect may overlap its dying predecessor). */
  maxStreamsPerNode: number;
}

/** Create the interceptor. */
export function createNodeIdentityInterceptor(
  options: NodeIdentityOptions,
  deps: { logger: Logger; registry: Registry; failures: AuthFailureLimiter; reviewer?: TokenReviewer | undefined },
): grpc.ServerInterceptor {
  const { logger } = deps;
  if (options.mode === 'token' && !deps.reviewer) throw new Error('token authentication needs a TokenReview client');
  const results = new Counter({
    name: 'driftwatch_collector_agent_auth_total',
    help: 'Agent streams by authentication outcome',
    labelNames: ['result'],
    registers: [deps.registry],
  });
  const openPerNode = new Map<string, number>();
  const knownGood = new Set<string>();
  const reviewsByAddress = createRateLimiter({ ratePerSecond: THROTTLED_REVIEWS.perAddressPerSecond, burst: THROTTLED_REVIEWS.perAddressBurst });
  const reviewsOverall = createRateLimiter({ ratePerSecond: THROTTLED_REVIEWS.overallPerSecond, burst: THROTTLED_REVIEWS.overallBurst });

  return (_method, call) => {
    const address = call.getConnectionInfo().remoteAddress ?? call.getPeer();
    let identity: { node: string; via: string } | null = null;
    // The digest of what this call offered (certificate or token); its failures are counted under it.
    let credential: string | null = null;
    let helloChecked = false;
    let counted: string | null = null;
    let finished = false;

    const release = () => {
      if (counted === null) return;
      const n = (openPerNode.get(counted) ?? 1) - 1;
      if (n <= 0) openPerNode.delete(counted);
      else openPerNode.set(counted, n);
      counted = null;
    };
    const refuse = (result: AgentAuthResult, code: grpc.status, details: string, extra: Record<string, unknown> = {}) => {
      results.inc({ result });
      if (FAILURES.has(result)) deps.failures.fail(address, credential);
      // Past a failure bound, refusals are counted only: a log line per attempt is what a flood wants.
      if (result === 'credential_locked' || result === 'address_throttled' || result === 'overall_throttled') logger.debug({ peer: address, result }, 'refused an agent stream');
      else logger.warn({ peer: address, result, code: grpc.status[code], details, ...extra }, 'refused an agent stream');
      finished = true;
      release();
      call.sendStatus({ code, details });
    };

    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        if (options.mode === 'none') return next(metadata);
        // Failure bounds, by credential first: a locked one costs nothing more (no TokenReview);
        // past the address or overall bound, a credential that was good lately is looked at, and
        // one that `mayLook` lets through (a token shaped like an agent's, within its budget).
        const gate = (mayLook?: () => boolean): boolean => {
          const locked = credential === null ? 0 : deps.failures.lockedFor(credential);
          if (locked > 0) {
            refuse('credential_locked', grpc.status.RESOURCE_EXHAUSTED, `too many failed authentications with this credential; retry in ${Math.ceil(locked / 1000)} s`);
            return true;
          }
          const throttled = credential !== null && knownGood.has(credential) ? null : deps.failures.throttled(address);
          if (throttled === null || mayLook?.()) return false;
          const from = throttled.gate === 'address_throttled' ? 'from this address' : 'from all agents';
          refuse(throttled.gate, grpc.status.RESOURCE_EXHAUSTED, `too many failed authentications ${from}; retry in ${Math.ceil(throttled.retryAfterMs / 1000)} s`);
          return true;
        };
        // A failed attempt: counted under its credential, and answered by the bound it is past, if any.
        const failed = (result: AgentAuthResult, details: string) => {
          const locked = credential !== null && deps.failures.lockedFor(credential) > 0;
          if (!locked && (credential !== null && knownGood.has(credential) ? null : deps.failures.throttled(address)) === null) return refuse(result, grpc.status.UNAUTHENTICATED, details);
          deps.failures.fail(address, credential);
          gate();
        };
        if (options.mode === 'certificate') {
          const cert = call.getAuthContext().sslPeerCertificate;
          credential = cert?.fingerprint256 ? credentialDigest(cert.fingerprint256) : null;
          if (credential !== null && deps.failures.lockedFor(credential) > 0) return gate();
          const found = nodeFromCertificate(cert);
          if ('error' in found) return failed(found.error === 'no client certificate' ? 'no_certificate' : 'bad_certificate', found.error);
          identity = { node: found.node, via: 'certificate' };
          return next(metadata);
        }
        const header = metadata.get('authorization')[0];
        const m = typeof header === 'string' ? /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(header) : null;
        if (!m || (m[1] as string).length > MAX_TOKEN_CHARS) {
          credential = typeof header === 'string' && header !== '' ? credentialDigest(header.slice(0, MAX_TOKEN_CHARS + 16)) : null;
          return failed('no_token', 'send the agent ServiceAccount token as "authorization: Bearer TOKEN" metadata');
        }
        const token = m[1] as string;
        credential = credentialDigest(token);
        // Gate before the TokenReview: a flood of bad tokens must not become a flood of reviews.
        // Past a bound, a token that could be an agent's is still reviewed, within a budget per
        // address and claimed node (and per claimed node overall): lockout is by credential, and
        // an agent never seen before (a new node, a rotated token, a restarted collector) behind
        // an address others fail from still gets in. Garbage and other service accounts' tokens
        // never get that far.
        const mayLook = () => {
          const claims = deps.reviewer!.claims(token);
          return claims !== null && reviewsByAddress.take(`${address}|${claims.node}`) === 0 && reviewsOverall.take(claims.node) === 0;
        };
        if (gate(mayLook)) return;
        deps.reviewer!.review(m[1] as string).then(
          (verdict) => {
            if (finished) return;
            if (!verdict.ok) {
              return verdict.code === 'unavailable'
                ? refuse('unavailable', grpc.status.UNAVAILABLE, 'the collector cannot verify tokens right now; retry later')
                : failed('invalid_token', verdict.reason);
            }
            identity = { node: verdict.node, via: verdict.username };
            next(metadata);
          },
          (err: unknown) => {
            logger.error({ err }, 'token review failed');
            refuse('unavailable', grpc.status.UNAVAILABLE, 'the collector cannot verify tokens right now; retry later');
          },
        );
      })
      .withOnReceiveMessage((message: { hello?: { node?: unknown } | null }, next) => {
        if (finished) return;
        if (helloChecked || identity === null) return next(message);
        helloChecked = true;
        const claimed = message?.hello?.node;
        // A first message that is not a Hello is ingest's to refuse; only a claim is checked here.
        if (typeof claimed === 'string' && claimed !== identity.node) {
          return refuse('node_mismatch', grpc.status.PERMISSION_DENIED, `this stream is authenticated as node ${identity.node}; it may not speak for ${JSON.stringify(claimed.slice(0, 253))}`, {
            node: identity.node,
            claimed: claimed.slice(0, 253),
          });
        }
        const open = openPerNode.get(identity.node) ?? 0;
        if (open >= options.maxStreamsPerNode) {
          return refuse('too_many_streams', grpc.status.RESOURCE_EXHAUSTED, `node ${identity.node} already has ${open} open streams`);
        }
        openPerNode.set(identity.node, open + 1);
        counted = identity.node;
        if (credential !== null) {
          knownGood.delete(credential);
          if (knownGood.size >= MAX_KNOWN_GOOD) knownGood.delete(knownGood.values().next().value as string);
          knownGood.add(credential);
        }
        results.inc({ result: 'ok' });
        logger.debug({ node: identity.node, via: identity.via, peer: address }, 'agent authenticated');
        next(message);
      })
      .withOnCancel(() => {
        finished = true;
        release();
      })
      .build();

    const responder = new grpc.ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendStatus((status, next) => {
        finished = true;
        release();
        next(status);
      })
      .build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}
