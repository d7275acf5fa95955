/**
 * The collector's re-check of a deviation against the cluster baseline: an address inside a block
 * or the public class that another node learned is not news; anything else still is.
 */
import test from 'ava';
import { snapshotToWire } from '../../proto/index.js';
import { withCollector } from '../helpers/collector.js';
import { deltaOf, statsOf, T0 } from '../helpers/baseline-delta.js';
import { converse, deviationOf, sendDeviations } from '../helpers/ingest.js';

const KEY = 'docker.io/library/nginx';
const net = (peer: string, port: number) => ({ type: 'network' as const, direction: 'egress' as const, protocol: 'tcp' as const, peer, port });

test('a deviation inside a block or the class node 1 generalized is known; outside, on another port, or private, it alerts', async (t) => {
  const c = await withCollector(t);
  const seen = { firstSeen: T0, lastSeen: T0 + 60_000, count: 3 };
  const delta = deltaOf(KEY, [
    statsOf(net('52.216.0.0/16', 443), 'node-1', { ...seen, examples: ['generalized (wide block): 8 addresses, 8 /24s, 1 /16s, e.g. 52.216.1.5'] }),
    statsOf(net('@public', 8443), 'node-1', { ...seen, examples: ['generalized (class): 16 addresses, 16 /24s, 16 /16s, e.g. 23.1.2.3'] }),
  ]);
  const { error } = await converse(c.grpcPort, 'node-1', [{ batch: { batchId: 1, deviations: [], baselines: [snapshotToWire(delta)] } }], 1);
  t.is(error, null);
  const ack = await sendDeviations(c.grpcPort, [
    deviationOf({ node: 'node-2', i: 1, peer: '52.216.99.1', port: 443 }),
    deviationOf({ node: 'node-2', i: 2, peer: '151.101.1.1', port: 8443 }),
    deviationOf({ node: 'node-2', i: 3, peer: '52.217.0.1', port: 443 }),
    deviationOf({ node: 'node-2', i: 4, peer: '52.216.99.1', port: 22 }),
    deviationOf({ node: 'node-2', i: 5, peer: '172.31.2.2', port: 8443 }),
  ]);
  t.like(ack, { stored: 3 });
  const alerts = (await (await fetch(`${c.url}/api/v1/alerts`)).json()) as { items: { summary: string }[] };
  t.deepEqual(alerts.items.map((a) => a.summary).sort(), ['egress tcp 172.31.2.2:8443', 'egress tcp 52.216.99.1:22', 'egress tcp 52.217.0.1:443']);
  const view = (await (await fetch(`${c.url}/api/v1/baselines/${encodeURIComponent(KEY)}`)).json()) as { entries: { peer: string; status: string; statusReason: string }[] };
  t.deepEqual(view.entries.map((e) => [e.peer, e.status, e.statusReason.slice(0, 22)]).sort(), [['52.216.0.0/16', 'flagged', 'generalized (wide bloc'], ['@public', 'flagged', 'generalized (class): 1']]);
});
