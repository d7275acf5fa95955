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
import type { Logger } from '../runtime/logger.js';
import type { FailureLimiter } from './rate-limit.js';
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
  | 'rate_limited'
  | 'too_many_streams';

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
  deps: { logger: Logger; registry: Registry; failures: FailureLimiter; reviewer?: TokenReviewer | undefined },
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

  return (_method, call) => {
    const address = call.getConnectionInfo().remoteAddress ?? call.getPeer();
    let identity: { node: string; via: string } | null = null;
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
      if (result !== 'rate_limited' && result !== 'too_many_streams' && result !== 'unavailable') deps.failures.fail(address);
      logger.warn({ peer: address, result, code: grpc.status[code], details, ...extra }, 'refused an agent stream');
      finished = true;
      release();
      call.sendStatus({ code, details });
    };

    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        if (options.mode === 'none') return next(metadata);
        const wait = deps.failures.retryAfterMs(address);
        if (wait > 0) return refuse('rate_limited', grpc.status.RESOURCE_EXHAUSTED, `too many failed authentications from this address; retry in ${Math.ceil(wait / 1000)} s`);
        if (options.mode === 'certificate') {
          const found = nodeFromCertificate(call.getAuthContext().sslPeerCertificate);
          if ('error' in found) return refuse(found.error === 'no client certificate' ? 'no_certificate' : 'bad_certificate', grpc.status.UNAUTHENTICATED, found.error);
          identity = { node: found.node, via: 'certificate' };
          return next(metadata);
        }
        const header = metadata.get('authorization')[0];
        const m = typeof header === 'string' ? /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(header) : null;
        if (!m || (m[1] as string).length > MAX_TOKEN_CHARS) return refuse('no_token', grpc.status.UNAUTHENTICATED, 'send the agent ServiceAccount token as "authorization: Bearer TOKEN" metadata');
        deps.reviewer!.review(m[1] as string).then(
          (verdict) => {
            if (finished) return;
            if (!verdict.ok) {
              return verdict.code === 'unavailable'
                ? refuse('unavailable', grpc.status.UNAVAILABLE, 'the collector cannot verify tokens right now; retry later')
                : refuse('invalid_token', grpc.status.UNAUTHENTICATED, verdict.reason);
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
