import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { learningWindowsOf, loadAgentConfig } from '../../agent/main.js';
import { loadCollectorConfig } from '../../collector/main.js';

const example = (name: string) => fileURLToPath(new URL(`../../../config/${name}`, import.meta.url));

test('the example agent config parses with the agent loader and documents every key', (t) => {
  const config = loadAgentConfig({}, {}, example('agent.example.yaml'));
  t.is(config.learningWindow, 3_600_000);
  t.deepEqual(config.sources, ['falco-http:127.0.0.1:2801']);
  t.true(Object.isFrozen(config));
  // Learning windows per namespace or image: the first matching override, else the defaults.
  const windowOf = learningWindowsOf(config)!;
  const pod = (namespace: string) => ({ pod: { namespace, name: 'p', labels: {}, workload: '' } }) as unknown as Parameters<typeof windowOf>[1];
  t.deepEqual(windowOf('ghcr.io/acme/etl', pod('batch-jobs')), { windowMs: 86_400_000, quietMs: 7_200_000, maxMs: 259_200_000, graceMs: 0 });
  t.deepEqual(windowOf('docker.io/library/nginx', pod('shop')), { windowMs: 3_600_000, quietMs: 300_000, maxMs: 86_400_000, graceMs: 1_800_000 });
  t.deepEqual(windowOf('ghcr.io/acme/api', pod('shop')), { windowMs: 3_600_000, quietMs: 600_000, maxMs: 86_400_000, graceMs: 0 });
});

test('the example collector config parses with the collector loader', (t) => {
  const config = loadCollectorConfig({}, {}, example('collector.example.yaml'));
  t.is(config.grpcListen, '0.0.0.0:7070');
});

test('flags win over the environment, the environment over the file', (t) => {
  const file = example('agent.example.yaml');
  t.is(loadAgentConfig({}, { DRIFTWATCH_LEARNING_WINDOW: '2h' }, file).learningWindow, 7_200_000);
  t.is(loadAgentConfig({ learningWindow: '30m' }, { DRIFTWATCH_LEARNING_WINDOW: '2h' }, file).learningWindow, 1_800_000);
  t.deepEqual(loadAgentConfig({}, { DRIFTWATCH_SOURCES: 'stdin, falco-file:/var/log/falco.json' }, file).sources, ['stdin', 'falco-file:/var/log/falco.json']);
});

test('an unknown key in a config file stops startup naming it', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'agent.yaml');
  writeFileSync(file, 'sources: [stdin]\ncollector: 127.0.0.1:7070\nstateDir: /tmp/x\nnode: n1\nlearningWindw: 2h\n');
  t.throws(() => loadAgentConfig({}, {}, file), { message: /learningWindw: unknown setting/ });
});

test('a cluster sync timeout of 0 (flag, variable or file) is accepted and means "do not wait"', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = example('agent.example.yaml');
  // `--cluster-sync-timeout 0` reaches the loader as the string "0", as parseArgs gives it.
  t.is(loadAgentConfig({ clusterSyncTimeout: '0' }, {}, file).clusterSyncTimeout, 0);
  t.is(loadAgentConfig({}, { DRIFTWATCH_CLUSTER_SYNC_TIMEOUT: '0' }, file).clusterSyncTimeout, 0);
  const own = join(dir, 'agent.yaml');
  writeFileSync(own, 'sources: [stdin]\ncollector: 127.0.0.1:7070\nstateDir: /tmp/x\nnode: n1\ninsecure: true\nclusterSyncTimeout: 0s\n');
  t.is(loadAgentConfig({}, {}, own).clusterSyncTimeout, 0);
  writeFileSync(own, 'sources: [stdin]\ncollector: 127.0.0.1:7070\nstateDir: /tmp/x\nnode: n1\ninsecure: true\nclusterSyncTimeout: 0\n');
  t.is(loadAgentConfig({}, {}, own).clusterSyncTimeout, 0);
  // A number without a unit other than 0 stays ambiguous and is refused, naming the key.
  t.throws(() => loadAgentConfig({ clusterSyncTimeout: '10' }, {}, file), { message: /clusterSyncTimeout/ });
});
