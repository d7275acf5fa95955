/**
 * What another node generalized (a block, the public class), pushed by the collector as a
 * ClusterBaseline, is matched by this agent: through the real pipeline and state store, and still
 * after the agent restarts without reaching the collector.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createAttributor } from '../../agent/attribution/attributor.js';
import { restoreBaselines } from '../../agent/main.js';
import { createAgentMetrics } from '../../agent/metrics.js';
import { createPipeline } from '../../agent/pipeline.js';
import { openAgentState, type AgentState } from '../../agent/state/index.js';
import { createBaselineEngine, type ClusterBaseline } from '../../core/baseline.js';
import type { Deviation } from '../../core/deviation.js';
import { entryId, PUBLIC_PEER } from '../../core/entry.js';
import type { ActivityEvent } from '../../core/event.js';
import { parseCidr } from '../../core/ip.js';

const T0 = Date.UTC(2026, 10, 23, 8, 0, 0);
const MIN = 60_000;
const KEY = 'registry.example/batch/exporter';

function connect(minute: number, remote: string, port = 443): ActivityEvent {
  return {
    time: T0 + minute * MIN,
    node: 'node-2',
    source: 'test',
    container: { id: 'c2', name: 'exporter', image: { repository: KEY, tag: '2.1', digest: '' } },
    pod: { namespace: 'batch', name: 'exporter-7', labels: {}, workload: '' },
    kind: 'connect',
    process: { pid: 4242, exe: '/usr/local/bin/exporter', name: 'exporter', args: [], parentExe: '', parentName: 'containerd-shim', uid: 1000, user: '' },
    network: { protocol: 'tcp', localAddress: '10.244.2.9', localPort: 40000 + minute, remoteAddress: remote, remotePort: port, remoteName: '' },
  };
}

const net = (peer: string, port: number) => entryId({ type: 'network', direction: 'egress', protocol: 'tcp', peer, port });

/** What node 1 learned and the collector pushes: a /16 block on 443 and the public class on 8443. */
const cluster: ClusterBaseline = {
  key: KEY,
  state: 'enforcing',
  relearn: false,
  version: 4,
  windowStart: T0 - 120 * MIN,
  learnUntil: T0 - 60 * MIN,
  entryIds: [net('52.216.0.0/16', 443), net(PUBLIC_PEER, 8443), net('52.216.4.7', 443)],
  removedIds: [],
};

function agent(dir: string) {
  const state = openAgentState(dir, 64 << 20);
  const engine = createBaselineEngine({ learningWindowMs: 60 * MIN });
  restoreBaselines(engine, state);
  const pipeline = createPipeline(
    { entryOptions: { clusterRanges: ['10.0.0.0/8'].map(parseCidr) }, statsIntervalMs: 30_000, attributionWaitMs: 60_000 },
    { engine, state, attributor: createAttributor(), metrics: createAgentMetrics(), logger: pino({ level: 'silent' }), now: Date.now, onSpooled: () => {} },
  );
  return { state, engine, pipeline };
}

const deviations = (state: AgentState) =>
  state
    .peek(0, 10_000, Number.MAX_SAFE_INTEGER)
    .filter((r) => r.kind === 'deviation')
    .map((r) => (JSON.parse(r.body) as Deviation).event.network?.remoteAddress);

test('a pushed block and class match here, and still after a restart without the collector', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-push-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = agent(dir);
  t.true(first.pipeline.applyCluster(cluster));
  first.pipeline.process({ events: [connect(1, '52.216.200.3'), connect(3, '52.217.0.9')] }, 'test');
  t.deepEqual(deviations(first.state), ['52.217.0.9'], 'inside the block: known; outside the block: news');
  first.pipeline.flush(true);
  first.state.close();

  // Restarted, the collector not reachable yet: what the cluster pushed is still enforced.
  const second = agent(dir);
  t.teardown(() => second.state.close());
  second.pipeline.process({ events: [connect(10, '52.216.99.1'), connect(11, '104.16.5.5', 8443), connect(12, '172.31.9.9', 8443), connect(13, '52.216.99.1', 22)] }, 'test');
  t.deepEqual(deviations(second.state), ['52.217.0.9', '172.31.9.9', '52.216.99.1'], 'the class (never matched before the restart) holds; a private address, another port: still news');
  t.is(second.engine.get(KEY)?.state, 'enforcing');
});
