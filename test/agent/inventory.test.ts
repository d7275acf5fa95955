/**
 * The node's inventory (agent/inventory.ts) against a fake container runtime on a unix socket that
 * answers as containerd does (ListContainers names the image by id, ContainerStatus by repository:tag):
 * running containers only, tag and digest put together, pods from the kubelet's labels; truncated at
 * its bound; the containers seen in events within the window when there is no runtime, or when it
 * stops answering. And the wire: a collector built before the report existed reads such a heartbeat
 * as a heartbeat (the field is skipped), and the collector's validation refuses what is out of bounds.
 */
import test from 'ava';
import { readFileSync, mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { NO_CONTAINER_LOOKUP, createContainerLookup, createCriClient } from '../../agent/attribution/cri.js';
import { createContainerInventory } from '../../agent/inventory.js';
import type { ActivityEvent } from '../../core/event.js';
import { agentService, containerReportFromWire, containerReportToWire, WireError } from '../../proto/index.js';
import { startFakeCri, type FakeContainer } from '../helpers/cri-server.js';

const logger = { warn: () => undefined, info: () => undefined } as never;
const hex = (n: number) => n.toString(16).padStart(64, '0');
const web = (n: number, state?: FakeContainer['state']): FakeContainer => ({
  id: hex(n),
  sandbox: `sb${n}`,
  name: 'web',
  image: 'nginx:1.25.3',
  imageRef: `docker.io/library/nginx@sha256:${'ab'.repeat(32)}`,
  pod: { name: `web-${n}`, namespace: 'shop', uid: `uid-${n}`, labels: { app: 'web' } },
  ...(state ? { state } : {}),
});

test('from the runtime: running containers only, the tag from ContainerStatus, the digest from the image ref, the pod from the labels', async (t) => {
  const cri = await startFakeCri([web(1), web(2), web(3, 'CONTAINER_EXITED')]);
  t.teardown(() => cri.cleanup());
  const client = createCriClient(cri.target);
  const lookup = createContainerLookup(client);
  t.teardown(() => lookup.close());
  const report = await createContainerInventory(client, lookup, { logger }).report();
  t.like(report, { source: 'cri', truncated: false, total: 2 });
  t.deepEqual(report.containers.map((c) => [c.id, c.image.repository, c.image.tag, c.image.digest, c.namespace, c.pod, c.name]), [
    [hex(1), 'docker.io/library/nginx', '1.25.3', `sha256:${'ab'.repeat(32)}`, 'shop', 'web-1', 'web'],
    [hex(2), 'docker.io/library/nginx', '1.25.3', `sha256:${'ab'.repeat(32)}`, 'shop', 'web-2', 'web'],
  ]);
  const calls = cri.calls.ContainerStatus;
  await createContainerInventory(client, lookup, { logger }).report();
  t.is(cri.calls.ContainerStatus, calls, 'the tag of a known container comes from the cache');
});

test('bounded: past maxContainers the report is cut and says how many ran', async (t) => {
  const cri = await startFakeCri([web(1), web(2), web(3), web(4)]);
  t.teardown(() => cri.cleanup());
  const client = createCriClient(cri.target);
  const report = await createContainerInventory(client, NO_CONTAINER_LOOKUP, { logger }, { maxContainers: 3 }).report();
  t.like(report, { truncated: true, total: 4 });
  t.is(report.containers.length, 3);
  client.close();
});

const event = (id: string, repository: string, time: number): ActivityEvent =>
  ({ time, node: 'n', source: 's', container: { id, name: 'c', image: { repository, tag: 'v1', digest: '' } }, pod: { namespace: 'ns', name: `p-${id}`, labels: {}, workload: 'Deployment/p' }, kind: 'exec', process: {} as never, network: null }) as ActivityEvent;

test('without a runtime, or when it stops answering: the containers seen in events within the window', async (t) => {
  let now = 1_000_000;
  const events = createContainerInventory(null, NO_CONTAINER_LOOKUP, { logger }, { eventWindowMs: 60_000, now: () => now });
  events.observe([event('a', 'docker.io/library/nginx', 0), event('b', 'ghcr.io/acme/shop', 0), { ...event('h', '', 0), container: null } as ActivityEvent]);
  now += 30_000;
  events.observe([event('a', 'docker.io/library/nginx', 0)]);
  t.deepEqual((await events.report()).containers.map((c) => [c.id, c.namespace, c.pod, c.workload]).sort(), [['a', 'ns', 'p-a', 'Deployment/p'], ['b', 'ns', 'p-b', 'Deployment/p']]);
  now += 45_000;
  t.deepEqual((await events.report()).containers.map((c) => c.id), ['a'], 'b was not seen for longer than the window');
  t.is((await events.report()).source, 'events');

  const dir = mkdtempSync(join(tmpdir(), 'dw-inv-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const gone = createCriClient(`unix://${join(dir, 'missing.sock')}`);
  const fallback = createContainerInventory(gone, NO_CONTAINER_LOOKUP, { logger });
  fallback.observe([event('x', 'docker.io/library/redis', 0)]);
  t.like(await fallback.report(), { source: 'events', total: 1 });
  gone.close();
});

test('the wire: a collector that predates the report reads the heartbeat and skips it; the collector refuses out-of-bounds reports', (t) => {
  // The heartbeat as this build writes it, with a report.
  const { service } = agentService();
  const report = { source: 'cri' as const, containers: [{ id: 'c1', name: 'web', image: { repository: 'docker.io/library/nginx', tag: '1', digest: '' }, imageId: '', namespace: 'shop', pod: 'web-1', workload: '' }], truncated: false, total: 1 };
  const bytes = service.Connect!.requestSerialize({ heartbeat: { timeMs: 5, spooled: 7, watermarkMs: 0, containers: containerReportToWire(report) } });
  // The proto as it was before: without Heartbeat.containers (and its messages).
  const dir = mkdtempSync(join(tmpdir(), 'dw-oldproto-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const current = readFileSync(fileURLToPath(new URL('../../../proto/driftwatch/v1/agent.proto', import.meta.url)), 'utf8');
  const old = current.replace(/\n\s*ContainerReport containers = 8;/, '');
  t.not(old, current);
  mkdirSync(join(dir, 'driftwatch/v1'), { recursive: true });
  writeFileSync(join(dir, 'driftwatch/v1/agent.proto'), old);
  const def = protoLoader.loadSync('driftwatch/v1/agent.proto', { includeDirs: [dir], keepCase: false, longs: Number, defaults: true, oneofs: true });
  const oldService = (grpc.loadPackageDefinition(def) as any).driftwatch.v1.AgentService.service;
  const decoded = oldService.Connect.requestDeserialize(bytes);
  t.is(decoded.payload, 'heartbeat');
  t.like(decoded.heartbeat, { timeMs: 5, spooled: 7 });
  t.false('containers' in decoded.heartbeat);

  // The collector's validation: bounds, and rows that cannot be inventoried skipped.
  const wire = containerReportToWire(report);
  t.deepEqual(containerReportFromWire(wire).containers.map((c) => c.id), ['c1']);
  t.throws(() => containerReportFromWire({ ...wire, source: 'kubelet' }), { instanceOf: WireError, message: /source/ });
  t.throws(() => containerReportFromWire({ ...wire, containers: Array.from({ length: 10_001 }, () => wire.containers[0]!) }), { instanceOf: WireError, message: /more than 10000/ });
  t.throws(() => containerReportFromWire({ ...wire, containers: [{ ...wire.containers[0]!, pod: 'p'.repeat(257) }] }), { instanceOf: WireError, message: /pod: longer than 256/ });
  const skipped = containerReportFromWire({ ...wire, containers: [{ ...wire.containers[0]!, image: null }, wire.containers[0]!, wire.containers[0]!, { ...wire.containers[0]!, id: 'c2', namespace: 'sh\u0000op' }] });
  t.deepEqual(skipped.containers.map((c) => [c.id, c.namespace]), [['c1', 'shop'], ['c2', 'shop']], 'no repository: skipped; a repeated id once; control characters stripped');
  t.is(skipped.total, 2, 'the agent said 1; at least what is listed');
});
