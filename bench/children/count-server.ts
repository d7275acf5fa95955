/**
 * The bare gRPC floor: a grpc-js server with the same service definition and options as the
 * collector that decodes every message (as the collector does) and only counts deviations before
 * acknowledging the batch. Logs {"msg":"count server started","grpcPort":N} on stdout.
 */
import * as grpc from '@grpc/grpc-js';
import { agentService, type WireAgentMessage, type WireCollectorMessage } from '../../proto/index.js';

let deviations = 0;

const server = new grpc.Server({
  'grpc.max_receive_message_length': 16 << 20,
  'grpc.max_send_message_length': 1 << 20,
  'grpc.keepalive_time_ms': 60_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 10_000,
});
server.addService(agentService().service, {
  connect(call: grpc.ServerDuplexStream<WireAgentMessage, WireCollectorMessage>) {
    call.on('data', (msg: WireAgentMessage) => {
      if (msg.hello) call.write({ welcome: { collectorVersion: 'count-server', maxBatchItems: 2000 } });
      else if (msg.batch) {
        const n = msg.batch.deviations?.length ?? 0;
        deviations += n;
        call.write({ ack: { batchId: msg.batch.batchId, stored: n, duplicates: 0, rejected: 0 } });
      }
    });
    call.on('end', () => call.end());
    call.on('error', () => {});
  },
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  console.log(JSON.stringify({ msg: 'count server started', grpcPort: port }));
});
process.on('SIGTERM', () => {
  console.log(JSON.stringify({ msg: 'count server stopped', deviations }));
  server.forceShutdown();
  process.exit(0);
});
