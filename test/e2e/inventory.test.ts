/**
 * The image inventory end to end, as ops run it: a collector process and an agent process over
 * loopback gRPC, the agent asking a fake container runtime (CRI on a unix socket, answering as
 * containerd does: ListContainers with the image id, ContainerStatus with repository:tag) what runs,
 * and `driftwatch images gone` run as a child process against the collector's API, its exit code
 * the answer: 1 while the version runs (listing where), 0 once it is gone, 2 on an error, 3 for a
 * version it never saw (a typo must not pass a CI gate).
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeCri, type FakeContainer } from '../helpers/cri-server.js';
import { CLI, eventually, getJson, spawnCli, spawnCollector } from '../helpers/processes.js';

const NGINX = 'docker.io/library/nginx';
const SHOP = 'ghcr.io/acme/shop';

function fake(n: number, image: string, imageRef: string, namespace: string, pod: string): FakeContainer {
  return { id: `${n}`.repeat(64).slice(0, 64), sandbox: `sb-${pod}`, name: 'main', image, imageRef, pod: { name: pod, namespace, uid: `uid-${pod}`, labels: { app: pod.split('-')[0] as string } } };
}

/** `driftwatch images ...` as a child process: its exit code and output. */
function images(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'images', ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

test('an agent reports what the runtime runs; the collector knows each version and where; images gone answers 1 then 0', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-e2e-inventory-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const digest = `sha256:${'a'.repeat(64)}`;
  const cri = await startFakeCri([
    fake(1, 'docker.io/library/nginx:1.25', `docker.io/library/nginx@${digest}`, 'shop', 'web-1'),
    fake(2, 'docker.io/library/nginx:1.25', `docker.io/library/nginx@${digest}`, 'shop', 'web-2'),
    fake(3, 'ghcr.io/acme/shop:v1', `ghcr.io/acme/shop@sha256:${'b'.repeat(64)}`, 'shop', 'shop-1'),
  ]);
  t.teardown(() => cri.cleanup());
  const events = join(dir, 'falco.json');
  writeFileSync(events, '');
  const collector = await spawnCollector(t, join(dir, 'collector.db'), 0, ['--image-report-interval', '200ms']);
  const agent = spawnCli(t, [
    'agent', '--source', `falco-file:${events}`, '--collector', `127.0.0.1:${collector.grpcPort}`, '--node', 'node-e2e',
    '--state-dir', join(dir, 'agent'), '--http-listen', '127.0.0.1:0', '--cri-socket', cri.target, '--inventory-interval', '1s',
  ]);
  t.teardown(() => {
    if (!t.passed) for (const l of agent.logs.slice(-10)) t.log(JSON.stringify(l).slice(0, 400));
  });
  const started = await agent.waitForLog((l) => l.msg === 'agent started');

  const nginx = await eventually(async () => {
    const list = await getJson(`${collector.url}/api/v1/images`);
    return list.items.length === 2 ? getJson<any>(`${collector.url}/api/v1/images/${encodeURIComponent(NGINX)}`) : undefined;
  }, 30_000, 'the report in the inventory');
  t.like(nginx, { repository: NGINX, running: true, containers: 2 });
  t.is(nginx.versions.length, 1);
  t.like(nginx.versions[0], { tag: '1.25', digest, running: true, containers: 2 }, 'the tag from ContainerStatus, the digest from the image ref');
  t.deepEqual(nginx.versions[0].runningIn.map((p: any) => `${p.namespace}/${p.pod}@${p.node}`).sort(), ['shop/web-1@node-e2e', 'shop/web-2@node-e2e']);
  t.regex(await (await fetch(`http://${started.http as string}/metrics`)).text(), /driftwatch_agent_inventory_reports_total\{source="cri"\} [1-9]/);
  const exported = await getJson(`${collector.url}/api/v1/images/export?format=json`);
  t.deepEqual(exported.items.map((i: any) => i.image).sort(), [`${NGINX}@${digest}`, `${SHOP}@sha256:${'b'.repeat(64)}`]);

  const before = Date.now() - 60_000;
  const running = await images(['gone', 'nginx', '--tag', '1.25', '--url', collector.url]);
  t.is(running.code, 1, running.stderr);
  t.regex(running.stdout, /docker\.io\/library\/nginx:1\.25 is not gone: it runs in 2 place/);
  t.regex(running.stdout, /shop\/web-1 on node-e2e/);
  t.regex(running.stdout, /shop\/web-2 on node-e2e/);
  t.is((await images(['gone', NGINX, '--digest', digest, '--url', collector.url])).code, 1);

  // The rollout: nginx's pods go; the next report says so.
  for (const id of [...cri.containers.keys()]) if (cri.containers.get(id)!.image.startsWith('docker.io/library/nginx')) cri.containers.delete(id);
  await eventually(async () => ((await getJson(`${collector.url}/api/v1/images/${encodeURIComponent(NGINX)}`)).running === false ? true : undefined), 30_000, 'nginx gone from the report');
  const after = Date.now() + 1;
  const gone = await images(['gone', 'nginx', '--tag', '1.25', '--url', collector.url]);
  t.is(gone.code, 0, gone.stdout + gone.stderr);
  t.regex(gone.stdout, /is gone: no container of it runs/);
  const ranSince = await images(['gone', 'nginx', '--tag', '1.25', '--since', new Date(before).toISOString(), '--url', collector.url]);
  t.is(ranSince.code, 1, 'it ran since then');
  t.regex(ranSince.stdout, /it ran since .*\n(.|\n)*shop\/web-1 on node-e2e\s+ran/);
  t.is((await images(['gone', 'nginx', '--tag', '1.25', '--since', new Date(after).toISOString(), '--url', collector.url])).code, 0);
  // Never seen is not gone: a tag it never saw, a misspelt repository; 0 only when the caller says so.
  const unseenTag = await images(['gone', 'nginx', '--tag', '1.24', '--url', collector.url]);
  t.is(unseenTag.code, 3, unseenTag.stdout + unseenTag.stderr);
  t.is(unseenTag.stdout.trim(), 'docker.io/library/nginx:1.24 was never seen by this collector: check the name; gone only means seen and no longer running');
  const typo = await images(['gone', 'ngnix', '--tag', '1.25', '--url', collector.url]);
  t.is(typo.code, 3, typo.stdout + typo.stderr);
  t.is(typo.stdout.trim(), 'docker.io/library/ngnix:1.25 was never seen by this collector: check the name; gone only means seen and no longer running');
  t.is((await images(['gone', NGINX, '--digest', `sha256:${'c'.repeat(64)}`, '--url', collector.url])).code, 3, 'a digest never seen');
  const allowed = await images(['gone', 'ngnix', '--tag', '1.25', '--allow-unseen', '--url', collector.url]);
  t.is(allowed.code, 0, allowed.stdout + allowed.stderr);
  t.regex(allowed.stdout, /^docker\.io\/library\/ngnix:1\.25 was never seen by this collector: check the name; gone only means seen and no longer running/);
  const unseenJson = await images(['gone', 'nginx', '--tag', '1.24', '--json', '--url', collector.url]);
  t.is(unseenJson.code, 3);
  t.like(JSON.parse(unseenJson.stdout), { image: 'docker.io/library/nginx:1.24', seen: false, gone: false });
  t.like(JSON.parse((await images(['gone', 'nginx', '--tag', '1.25', '--json', '--url', collector.url])).stdout), { seen: true, gone: true });
  t.is((await images(['gone', SHOP, '--tag', 'v1', '--url', collector.url])).code, 1, 'the other image still runs');

  // Errors are 2, never a pass: no version named, a bad time, a collector that cannot be reached.
  t.is((await images(['gone', 'nginx', '--url', collector.url])).code, 2);
  t.is((await images(['gone', 'nginx', '--tag', '1.25', '--since', 'last tuesday', '--url', collector.url])).code, 2);
  const unreachable = await images(['gone', 'nginx', '--tag', '1.25', '--url', 'http://127.0.0.1:1']);
  t.is(unreachable.code, 2);
  t.regex(unreachable.stderr, /cannot reach the collector/);
});
