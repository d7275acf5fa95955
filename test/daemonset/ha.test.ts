/**
 * What `kubectl apply -k daemonset/overlays/ha` (CloudNativePG) and `…/ha-external-db` (a Secret)
 * apply: valid against the Kubernetes schemas and the operator's CRD, a collector Deployment of
 * three spread across nodes under a budget that keeps two, the database URL from a Secret file
 * only, and otherwise exactly the falco overlay (the agent side and the collector's settings).
 * The collector does not read dbUrlFile yet (issue 20's PostgreSQL store); these tests check the
 * manifests, not a running collector.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { render, type KObject } from '../../daemonset/tools/render.js';
import { loadCrd } from '../helpers/crd-schema.js';
import { schemaErrors, schemaErrorsByGroup } from '../helpers/k8s-schema.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DAEMONSET = join(ROOT, 'daemonset');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const VARIANTS = ['ha', 'ha-external-db'] as const;
type Variant = (typeof VARIANTS)[number];
/** The Secret whose key `uri` holds the database URL, per variant: CloudNativePG's owner Secret (<cluster>-app), or the user's. */
const DB_SECRET: Record<Variant, string> = { ha: 'driftwatch-db-app', 'ha-external-db': 'driftwatch-db' };

type Json = Record<string, any>;

const falco = render(join(DAEMONSET, 'overlays/falco'));
const rendered = new Map<Variant, KObject[]>(VARIANTS.map((v) => [v, render(join(DAEMONSET, 'overlays', v))]));
const cnpgCluster = loadCrd(join(ROOT, 'fixtures/crd/postgresql.cnpg.io_clusters.yaml'));
const isCluster = (o: KObject): boolean => o.apiVersion === 'postgresql.cnpg.io/v1' && o.kind === 'Cluster';
let validated: Record<string, string[]> | undefined;
/** Schema errors per variant (Kubernetes' own kinds), checked in one pass on first use. */
function errorsOf(variant: Variant): string[] {
  validated ??= schemaErrorsByGroup(Object.fromEntries(VARIANTS.map((v) => [v, rendered.get(v)!.filter((o) => !isCluster(o))])), ROOT);
  return validated[variant]!;
}

function find(objects: KObject[], kind: string, name: string): Json {
  const found = objects.filter((o) => o.kind === kind && (o.metadata.name === name || (kind === 'ConfigMap' && o.metadata.name.startsWith(`${name}-`) && /^-[a-z0-9]{10}$/.test(o.metadata.name.slice(name.length)))));
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name}, found ${found.length}`);
  return found[0]!;
}

function key(o: KObject): string {
  return `${o.kind}/${String(o.metadata.namespace ?? '')}/${o.metadata.name}`;
}

function mountedConfigMap(objects: KObject[], spec: Json, volume: string): Json {
  const name = (spec.volumes as Json[]).find((v) => v.name === volume)?.configMap?.name as string | undefined;
  const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === name);
  if (!cm) throw new Error(`volume ${volume} mounts no rendered ConfigMap (${String(name)})`);
  return cm;
}

function selects(selector: Json, labels: Json): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

for (const variant of VARIANTS) {
  const objects = rendered.get(variant)!;
  const deployment = find(objects, 'Deployment', 'driftwatch-collector');
  const spec = deployment.spec.template.spec as Json;
  const collector = (spec.containers as Json[]).find((c) => c.name === 'collector')!;
  const podLabels = deployment.spec.template.metadata.labels as Json;

  test(`${variant}: every object is valid against the Kubernetes schemas, the Cluster against CloudNativePG's CRD`, (t) => {
    t.deepEqual(errorsOf(variant), []);
    const clusters = objects.filter(isCluster);
    t.is(clusters.length, variant === 'ha' ? 1 : 0);
    for (const c of clusters) t.deepEqual(cnpgCluster.errors(c), [], `${c.metadata.name}`);
  });

  test(`${variant}: the collector is a Deployment of 3 that rolls one new pod in before an old one goes; no StatefulSet, volume claim or headless Service is left`, (t) => {
    t.is(deployment.spec.replicas, 3);
    t.deepEqual(deployment.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    t.true(selects(deployment.spec.selector.matchLabels as Json, podLabels));
    t.deepEqual(objects.filter((o) => o.kind === 'StatefulSet' || o.kind === 'PersistentVolumeClaim').map(key), []);
    t.deepEqual(objects.filter((o) => o.kind === 'Service' && (o.spec as Json).clusterIP === 'None' && selects((o.spec as Json).selector as Json, podLabels)).map(key), []);
    t.false((spec.volumes as Json[]).some((v) => v.persistentVolumeClaim || v.hostPath), 'no state of its own');
  });

  test(`${variant}: the budget keeps 2 of 3 through voluntary disruptions and lets unhealthy replicas go`, (t) => {
    const pdb = find(objects, 'PodDisruptionBudget', 'driftwatch-collector');
    t.is(pdb.spec.minAvailable, 2);
    t.is(pdb.spec.maxUnavailable, undefined, 'minAvailable and maxUnavailable exclude each other');
    t.true(pdb.spec.minAvailable < deployment.spec.replicas, 'a drain can always evict one');
    t.is(pdb.spec.unhealthyPodEvictionPolicy, 'AlwaysAllow');
    t.deepEqual(pdb.spec.selector.matchLabels, deployment.spec.selector.matchLabels);
    t.true(selects(pdb.spec.selector.matchLabels as Json, podLabels));
  });

  test(`${variant}: replicas prefer different nodes (and zones); preferred, so that all three run on a cluster of fewer nodes`, (t) => {
    const anti = spec.affinity.podAntiAffinity as Json;
    t.is(anti.requiredDuringSchedulingIgnoredDuringExecution, undefined);
    const terms = anti.preferredDuringSchedulingIgnoredDuringExecution as Json[];
    const byKey = Object.fromEntries(terms.map((x) => [x.podAffinityTerm.topologyKey, x]));
    t.truthy(byKey['kubernetes.io/hostname']);
    t.is(byKey['kubernetes.io/hostname'].weight, 100);
    t.truthy(byKey['topology.kubernetes.io/zone']);
    for (const term of terms) t.true(selects(term.podAffinityTerm.labelSelector.matchLabels as Json, podLabels), 'the term repels the collector\'s own pods');
  });

  test(`${variant}: readiness on /readyz and liveness on /livez, on the probe port of the process the Service sends API calls to, which no Service exposes`, (t) => {
    t.is(collector.readinessProbe.httpGet.path, '/readyz');
    t.is(collector.livenessProbe.httpGet.path, '/livez');
    t.is(collector.startupProbe.httpGet.path, '/livez');
    for (const probe of [collector.readinessProbe, collector.livenessProbe, collector.startupProbe]) t.is(probe.httpGet.port, 'probes');
    const config = parseYaml(mountedConfigMap(objects, spec, 'config').data['collector.yaml'] as string) as Json;
    const port = (collector.ports as Json[]).find((p) => p.name === 'probes')!;
    t.is(config.probeListen, `0.0.0.0:${port.containerPort}`, 'the probe port is the one the collector listens on');
    const svc = find(objects, 'Service', 'driftwatch-collector');
    t.true(selects(svc.spec.selector as Json, podLabels));
    t.true((svc.spec.ports as Json[]).some((p) => p.name === 'http'), 'the Service sends API calls to this pod');
    t.false((svc.spec.ports as Json[]).some((p) => p.targetPort === 'probes' || p.targetPort === port.containerPort), 'no Service exposes the probe port');
  });

  test(`${variant}: the database URL is a file from the Secret ${DB_SECRET[variant]}, never an argument, an environment variable or the ConfigMap`, (t) => {
    const config = parseYaml(mountedConfigMap(objects, spec, 'config').data['collector.yaml'] as string) as Json;
    t.is(config.db, undefined, 'no SQLite file');
    const file = config.dbUrlFile as string;
    const volume = (spec.volumes as Json[]).find((v) => v.secret?.secretName === DB_SECRET[variant])!;
    t.truthy(volume, `a volume of the Secret ${DB_SECRET[variant]}`);
    const mount = (collector.volumeMounts as Json[]).find((m) => m.name === volume.name)!;
    t.is(dirname(file), mount.mountPath);
    t.is(mount.readOnly, true);
    t.deepEqual(volume.secret.items, [{ key: 'uri', path: basename(file) }]);
    t.not(volume.secret.optional, true, 'without a database the pod must not start');
    t.is(volume.secret.defaultMode, 0o440);
    const args = JSON.stringify(collector.args);
    t.false(/db|postgres/i.test(args), args);
    t.deepEqual(collector.env ?? [], []);
    t.deepEqual(collector.envFrom ?? [], []);
    t.false(/postgres(ql)?:\/\//.test(JSON.stringify(objects)), 'no URL anywhere in the manifests');
  });

  test(`${variant}: the collector's settings are the single collector's, with dbUrlFile in place of db`, (t) => {
    const ours = parseYaml(mountedConfigMap(objects, spec, 'config').data['collector.yaml'] as string) as Json;
    const single = find(falco, 'StatefulSet', 'driftwatch-collector').spec.template.spec as Json;
    const theirs = parseYaml(mountedConfigMap(falco, single, 'config').data['collector.yaml'] as string) as Json;
    const { dbUrlFile, ...rest } = ours;
    const { db, ...theirRest } = theirs;
    t.is(typeof dbUrlFile, 'string');
    t.is(typeof db, 'string');
    t.deepEqual(rest, theirRest);
  });

  test(`${variant}: the pod runs as the single collector's does (user, capabilities, probes' ports, resources, secrets for TLS and tokens)`, (t) => {
    const single = find(falco, 'StatefulSet', 'driftwatch-collector').spec.template as Json;
    const singleCollector = (single.spec.containers as Json[])[0]!;
    t.deepEqual(deployment.spec.template.metadata.annotations, single.metadata.annotations);
    const { fsGroupChangePolicy, ...singleSecurity } = single.spec.securityContext as Json;
    t.is(fsGroupChangePolicy, 'OnRootMismatch', 'only meaningful for the StatefulSet\'s volume');
    t.deepEqual(spec.securityContext, singleSecurity);
    for (const field of ['image', 'args', 'ports', 'resources', 'securityContext', 'livenessProbe', 'readinessProbe', 'startupProbe']) t.deepEqual(collector[field], singleCollector[field], field);
    for (const field of ['serviceAccountName', 'enableServiceLinks', 'priorityClassName', 'terminationGracePeriodSeconds']) t.deepEqual(spec[field], single.spec[field], field);
    const secrets = (s: Json) => (s.volumes as Json[]).filter((v) => v.secret && v.secret.secretName !== DB_SECRET[variant]);
    t.deepEqual(secrets(spec), secrets(single.spec));
    const mounts = (c: Json) => (c.volumeMounts as Json[]).filter((m) => m.name !== 'db' && m.name !== 'data').sort((a, b) => String(a.name).localeCompare(String(b.name)));
    t.deepEqual(mounts(collector), mounts(singleCollector));
  });

  test(`${variant}: everything else is the falco overlay's, and it still finds the collector's pods`, (t) => {
    const replaced = new Set(['StatefulSet/driftwatch/driftwatch-collector', 'Service/driftwatch/driftwatch-collector-headless', 'PodDisruptionBudget/driftwatch/driftwatch-collector']);
    const added = (o: KObject): boolean => o.kind === 'Deployment' || o.kind === 'PodDisruptionBudget' || isCluster(o);
    const ours = new Map(objects.filter((o) => !added(o) && !(o.kind === 'ConfigMap' && o.metadata.name.startsWith('driftwatch-collector-config-'))).map((o) => [key(o), o]));
    const theirs = new Map(falco.filter((o) => !replaced.has(key(o)) && !(o.kind === 'ConfigMap' && o.metadata.name.startsWith('driftwatch-collector-config-'))).map((o) => [key(o), o]));
    t.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort());
    for (const [k, o] of ours) t.deepEqual(o, theirs.get(k), k);
    const np = find(objects, 'NetworkPolicy', 'driftwatch-collector');
    t.true(selects(np.spec.podSelector.matchLabels as Json, podLabels), 'the NetworkPolicy guards the new pods');
    t.is(deployment.metadata.namespace, find(objects, 'ServiceAccount', 'driftwatch-collector').metadata.namespace);
  });

  test(`${variant}: images are the release of package.json`, (t) => {
    const images = objects.flatMap((o) => (['DaemonSet', 'Deployment'].includes(o.kind) ? [...((o.spec as Json).template.spec.initContainers ?? []), ...(o.spec as Json).template.spec.containers] : [])).map((c: Json) => c.image as string);
    t.is(collector.image, `ghcr.io/driftwatch/driftwatch:${VERSION}`);
    t.false(images.some((i) => i === 'driftwatch' || i.endsWith(':latest') || !i.includes(':')), images.join(', '));
  });
}

test('ha: CloudNativePG runs 3 instances across nodes, commits wait for a replica, and its owner Secret is the one the collectors mount', (t) => {
  const objects = rendered.get('ha')!;
  const cluster = objects.find(isCluster) as Json;
  t.is(cluster.metadata.namespace, find(objects, 'Deployment', 'driftwatch-collector').metadata.namespace);
  t.is(cluster.spec.instances, 3);
  // CEL rules are not checked by the schema helper: `number` must be > 0 (and below instances).
  const sync = cluster.spec.postgresql.synchronous as Json;
  t.true(sync.number >= 1 && sync.number < cluster.spec.instances);
  t.is(sync.dataDurability, 'required', 'an acknowledged batch is on a replica before the agent hears so');
  t.is(cluster.spec.affinity.enablePodAntiAffinity, true);
  t.is(cluster.spec.affinity.topologyKey, 'kubernetes.io/hostname');
  t.is(cluster.spec.affinity.podAntiAffinityType, 'preferred');
  t.truthy(cluster.spec.bootstrap.initdb.database);
  t.truthy(cluster.spec.bootstrap.initdb.owner);
  t.is(`${cluster.metadata.name as string}-app`, DB_SECRET.ha, 'CloudNativePG names the owner\'s Secret <cluster>-app');
  t.notThrows(() => find(objects, 'PriorityClass', cluster.spec.priorityClassName as string), 'the database is as important as the collector');
});

test('the CRD check catches a misspelt field, a wrong enum, a wrong type and a missing required field; the Kubernetes check a bad Deployment', (t) => {
  const cluster = structuredClone(rendered.get('ha')!.find(isCluster)) as Json;
  cluster.spec.instance = 3;
  cluster.spec.postgresql.synchronous.method = 'all';
  cluster.spec.storage.size = 20;
  cluster.spec.affinity.topologyKeys = 'kubernetes.io/hostname';
  const errors = cnpgCluster.errors(cluster);
  t.true(errors.some((e) => e.startsWith('/spec:') && e.includes('(instance)')), errors.join('\n'));
  t.true(errors.some((e) => e.startsWith('/spec/postgresql/synchronous/method:')), errors.join('\n'));
  t.true(errors.some((e) => e.startsWith('/spec/storage/size:')), errors.join('\n'));
  t.true(errors.some((e) => e.startsWith('/spec/affinity:') && e.includes('(topologyKeys)')), errors.join('\n'));
  delete cluster.spec.instances;
  t.true(cnpgCluster.errors(cluster).some((e) => e.startsWith('/spec:') && e.includes('instances')));
  t.deepEqual(cnpgCluster.errors({ ...cluster, apiVersion: 'postgresql.cnpg.io/v2' }).filter((e) => e.startsWith('/: not a')).length, 1);
  const deployment = structuredClone(find(rendered.get('ha')!, 'Deployment', 'driftwatch-collector')) as Json;
  deployment.spec.replica = 3;
  const k8s = schemaErrors([deployment as KObject], ROOT);
  t.true(k8s.some((e) => e.includes('Deployment') && e.includes('replica')), k8s.join('\n'));
});
