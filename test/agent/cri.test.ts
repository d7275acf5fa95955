import test from 'ava';
import { completeFromRuntime } from '../../agent/attribution/attributor.js';
import { createContainerLookup, createCriClient, imageOfStatus, resolveCriTarget } from '../../agent/attribution/cri.js';
import type { ActivityEvent } from '../../core/event.js';
import { startFakeCri, type FakeContainer } from '../helpers/cri-server.js';

const hex = (n: number) => n.toString(16).padStart(64, '0');
const nginx: FakeContainer = {
  id: hex(1),
  sandbox: 'sb1',
  name: 'web',
  image: 'docker.io/library/nginx:1.25.3',
  imageRef: 'docker.io/library/nginx@sha256:' + 'ab'.repeat(32),
  pod: { name: 'web-7d9f8-abcde', namespace: 'shop', uid: '11111111-2222-3333-4444-555555555555', labels: { app: 'web', tier: 'front' } },
};
const redis: FakeContainer = { ...nginx, id: hex(2), sandbox: 'sb2', name: 'cache', image: 'redis:7', imageRef: 'docker.io/library/redis@sha256:' + 'cd'.repeat(32), pod: { ...nginx.pod, name: 'cache-0', labels: { app: 'cache' } } };

test('a lookup asks ContainerStatus, ListContainers and PodSandboxStatus, and names image, pod, namespace and labels', async (t) => {
  const cri = await startFakeCri([nginx, redis]);
  t.teardown(() => cri.cleanup());
  const lookup = createContainerLookup(createCriClient(cri.target));
  t.teardown(() => lookup.close());
  const meta = await lookup.lookup(nginx.id);
  t.deepEqual(meta, {
    container: { id: nginx.id, name: 'web', image: { repository: 'docker.io/library/nginx', tag: '1.25.3', digest: 'sha256:' + 'ab'.repeat(32) } },
    pod: { namespace: 'shop', name: 'web-7d9f8-abcde', labels: { app: 'web', tier: 'front' }, workload: '' },
  });
  const other = await lookup.lookup(redis.id);
  t.is(other?.container.image.repository, 'docker.io/library/redis', 'short names are canonicalised');
  t.deepEqual(cri.calls, { ContainerStatus: 2, ListContainers: 2, PodSandboxStatus: 2 });
  await lookup.lookup(nginx.id);
  t.is(cri.calls.ContainerStatus, 2, 'a known container is answered from the cache');
});

test('unknown ids are negative-cached briefly, then asked again (refresh on miss)', async (t) => {
  const cri = await startFakeCri([nginx]);
  t.teardown(() => cri.cleanup());
  let now = 1_000;
  const lookup = createContainerLookup(createCriClient(cri.target), { negativeTtlMs: 5_000, now: () => now });
  t.teardown(() => lookup.close());
  const late: FakeContainer = { ...nginx, id: hex(3), sandbox: 'sb3' };
  t.is(await lookup.lookup(late.id), null);
  t.is(await lookup.lookup(late.id), null);
  t.is(cri.calls.ContainerStatus, 1, 'the second miss within the TTL did not call the runtime');
  cri.containers.set(late.id, late); // the container appears (it was being created)
  now += 5_001;
  t.is((await lookup.lookup(late.id))?.container.name, 'web', 'after the TTL, a miss asks again and finds it');
  t.is(cri.calls.ContainerStatus, 2);
});

test('the cache is bounded: the least recently used container is forgotten and asked again', async (t) => {
  const fakes = [1, 2, 3, 4].map((i) => ({ ...nginx, id: hex(10 + i), sandbox: `sb${i}` }));
  const cri = await startFakeCri(fakes);
  t.teardown(() => cri.cleanup());
  const lookup = createContainerLookup(createCriClient(cri.target), { maxEntries: 3 });
  t.teardown(() => lookup.close());
  for (const f of fakes.slice(0, 3)) await lookup.lookup(f.id);
  await lookup.lookup(fakes[0]!.id); // touch the first: the second is now the oldest
  await lookup.lookup(fakes[3]!.id); // evicts the second
  t.is(lookup.stats.size, 3);
  const calls = cri.calls.ContainerStatus;
  await lookup.lookup(fakes[0]!.id);
  t.is(cri.calls.ContainerStatus, calls, 'recently used: still cached');
  await lookup.lookup(fakes[1]!.id);
  t.is(cri.calls.ContainerStatus, calls + 1, 'evicted: asked again');
});

test('concurrent lookups of one id make one call', async (t) => {
  const cri = await startFakeCri([nginx]);
  t.teardown(() => cri.cleanup());
  const lookup = createContainerLookup(createCriClient(cri.target));
  t.teardown(() => lookup.close());
  const all = await Promise.all([1, 2, 3, 4, 5].map(() => lookup.lookup(nginx.id)));
  t.true(all.every((m) => m?.container.name === 'web'));
  t.is(cri.calls.ContainerStatus, 1);
});

test('a runtime that is down answers unknown (no throw), counted as an error', async (t) => {
  const lookup = createContainerLookup(createCriClient('unix:///nonexistent/dir/containerd.sock', { deadlineMs: 500 }));
  t.teardown(() => lookup.close());
  t.is(await lookup.lookup(nginx.id), null);
  t.is(lookup.stats.errors, 1);
});

test('completeFromRuntime fills image and pod of id-only events and leaves host and known events alone', async (t) => {
  const cri = await startFakeCri([nginx]);
  t.teardown(() => cri.cleanup());
  const lookup = createContainerLookup(createCriClient(cri.target));
  t.teardown(() => lookup.close());
  const base = { time: 1, node: 'n', source: 'ebpf', pod: null, kind: 'exec' as const, network: null, process: { pid: 1, exe: '/bin/sh', name: 'sh', args: [], parentExe: '', parentName: '', uid: 0, user: '' } };
  const events: ActivityEvent[] = [
    { ...base, container: { id: nginx.id, name: '', image: { repository: '', tag: '', digest: '' } } },
    { ...base, container: null },
    { ...base, container: { id: hex(99), name: '', image: { repository: '', tag: '', digest: '' } } },
  ];
  await completeFromRuntime(events, lookup);
  t.is(events[0]!.container?.image.repository, 'docker.io/library/nginx');
  t.is(events[0]!.pod?.name, 'web-7d9f8-abcde');
  t.is(events[1]!.container, null, 'host events stay host events');
  t.is(events[2]!.container?.image.repository, '', 'unknown to the runtime: left for the pipeline to hold and count');
});

test('image of a status: user_specified_image, then image.image unless an id, then image_ref', (t) => {
  t.is(imageOfStatus({ image: { image: 'sha256:' + '1'.repeat(64), user_specified_image: 'ghcr.io/acme/api:v2' } }).repository, 'ghcr.io/acme/api');
  t.deepEqual(imageOfStatus({ image: { image: 'sha256:' + '1'.repeat(64) }, image_ref: 'quay.io/x/y@sha256:' + 'e'.repeat(64) }), { repository: 'quay.io/x/y', tag: '', digest: 'sha256:' + 'e'.repeat(64) });
  t.is(imageOfStatus({ image: { image: '1'.repeat(64) }, image_ref: 'sha256:' + '1'.repeat(64) }).repository, '', 'only ids: unknown');
});

test('criSocket setting: auto probes the defaults, none disables, a path is used as given', (t) => {
  t.is(resolveCriTarget('auto', (p) => p === '/run/crio/crio.sock'), 'unix:///run/crio/crio.sock');
  t.is(resolveCriTarget('auto', () => false), null);
  t.is(resolveCriTarget('none'), null);
  t.is(resolveCriTarget('/tmp/x.sock'), 'unix:///tmp/x.sock');
});
