/** Talking to a real collector as an agent would: one gRPC stream, deviations built from a small spec. */
import * as grpc from '@grpc/grpc-js';
import { deviationId, type Deviation } from '../../core/deviation.js';
import type { Entry } from '../../core/entry.js';
import type { ActivityEvent } from '../../core/event.js';
import { agentService, deviationToWire, type WireAgentMessage, type WireCollectorMessage } from '../../proto/index.js';

/** Open a stream as `node`, send the messages, and collect what comes back until `acks` acks arrived or the stream ends. */
export async function converse(port: number, node: string, messages: WireAgentMessage[], acks: number): Promise<{ replies: WireCollectorMessage[]; error: grpc.ServiceError | null }> {
  const { Client } = agentService();
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = (client.Connect as () => grpc.ClientDuplexStream<WireAgentMessage, WireCollectorMessage>).call(client);
  const replies: WireCollectorMessage[] = [];
  return new Promise((resolve) => {
    const done = (error: grpc.ServiceError | null) => {
      call.cancel();
      client.close();
      resolve({ replies, error });
    };
    call.on('data', (m: WireCollectorMessage) => {
      replies.push(m);
      if (replies.filter((r) => r.ack).length >= acks) done(null);
    });
    call.on('error', (e: grpc.ServiceError) => done(e));
    // The keys of the deltas it sends are the keys it runs (the collector takes deltas only for those).
    const runningKeys = [...new Set(messages.flatMap((m) => (m.batch?.baselines ?? []).map((b) => b.key)))];
    call.write({ hello: { node, agentVersion: 'test', sources: [], protocol: 1, runningKeys } });
    for (const m of messages) call.write(m);
  });
}

/** What varies between test deviations. */
export interface DeviationSpec {
  node?: string;
  /** Seconds after 2026-11-23T10:00:00Z; also varies the pid, so each i is a distinct event. */
  i?: number;
  image?: string;
  namespace?: string;
  labels?: Record<string, string>;
  /** A process deviation (default: /bin/sh -c id under nginx, as root). */
  exe?: string;
  args?: string;
  user?: string;
  /** A network deviation instead: egress to this peer and port. */
  peer?: string;
  port?: number;
}

/** A deviation as an agent would send it. */
export function deviationOf(spec: DeviationSpec = {}): Deviation {
  const { node = 'node-1', i = 0, image = 'docker.io/library/nginx', namespace = 'shop', labels = {} } = spec;
  const network = spec.peer !== undefined;
  const exe = spec.exe ?? '/bin/sh';
  const event: ActivityEvent = {
    time: Date.UTC(2026, 10, 23, 10, 0, 0) + i * 1000,
    node,
    source: 'test',
    container: { id: 'c1', name: 'web', image: { repository: image, tag: '1', digest: '' } },
    pod: { namespace, name: `web-${i % 3}`, labels, workload: '' },
    kind: network ? 'connect' : 'exec',
    process: { pid: 100 + i, exe, name: exe.slice(exe.lastIndexOf('/') + 1), args: (spec.args ?? '-c id').split(' '), parentExe: '/usr/sbin/nginx', parentName: 'nginx', uid: 0, user: spec.user ?? 'root' },
    network: network ? { protocol: 'tcp', localAddress: '10.0.0.5', localPort: 40000 + i, remoteAddress: spec.peer as string, remotePort: spec.port ?? 443, remoteName: '' } : null,
  };
  const entry: Entry = network
    ? { type: 'network', direction: 'egress', protocol: 'tcp', peer: spec.peer as string, port: spec.port ?? 443 }
    : { type: 'process', exe, parent: 'nginx', user: (spec.user ?? 'root') === 'root' ? 'root' : 'user', args: spec.args ?? '-c id' };
  return {
    id: deviationId(event, image, entry),
    key: image,
    baselineVersion: 3,
    entry,
    reason: network ? 'new-peer' : 'new-executable',
    explanation: network ? `never connected to ${spec.peer}` : `${exe} never ran in ${image}`,
    nearest: [],
    event,
  };
}

/** Send deviations as one batch from `node` and wait for the ack. */
export async function sendDeviations(port: number, deviations: Deviation[], node = deviations[0]?.event.node ?? 'node-1', batchId = 1) {
  const { replies, error } = await converse(port, node, [{ batch: { batchId, deviations: deviations.map(deviationToWire), baselines: [] } }], 1);
  if (error) throw error;
  return replies.find((r) => r.ack)?.ack;
}
