/** Open one agent stream to a collector with given credentials and see how far the Hello gets. */
import * as grpc from '@grpc/grpc-js';
import { PROTOCOL_REVISION, agentService, type WireAgentMessage, type WireCollectorMessage } from '../../proto/index.js';

/** What became of a Hello: welcomed, or ended with a gRPC error. */
export type HelloOutcome = { welcomed: true } | { welcomed: false; code: grpc.status; details: string };

/** Connect with `credentials` (TLS names checked as localhost), send a Hello as `node`, resolve with the outcome. */
export function hello(port: number, credentials: grpc.ChannelCredentials, node: string, metadata = new grpc.Metadata()): Promise<HelloOutcome> {
  const { Client } = agentService();
  const client = new Client(`127.0.0.1:${port}`, credentials, { 'grpc.ssl_target_name_override': 'localhost', 'grpc.default_authority': 'localhost' });
  const call = (client.Connect as (md: grpc.Metadata) => grpc.ClientDuplexStream<WireAgentMessage, WireCollectorMessage>).call(client, metadata);
  return new Promise((resolve) => {
    const timer = setTimeout(() => done({ welcomed: false, code: grpc.status.DEADLINE_EXCEEDED, details: 'no answer in 10 s' }), 10_000);
    function done(outcome: HelloOutcome) {
      clearTimeout(timer);
      call.removeAllListeners();
      call.on('error', () => undefined);
      call.cancel();
      client.close();
      resolve(outcome);
    }
    call.on('data', (m: WireCollectorMessage) => {
      if (m.welcome) done({ welcomed: true });
    });
    call.on('error', (e: grpc.ServiceError) => done({ welcomed: false, code: e.code, details: e.details }));
    call.on('end', () => done({ welcomed: false, code: grpc.status.UNKNOWN, details: 'stream ended' }));
    call.write({ hello: { node, agentVersion: 'test', sources: [], protocol: PROTOCOL_REVISION } });
  });
}
