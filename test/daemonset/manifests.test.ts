/**
 * What `kubectl apply -k daemonset/overlays/NAME` applies, for every overlay: valid against the
 * Kubernetes schemas, least privilege per event source, resources from the benchmark figures,
 * probes, monitoring, and configs that the agent's and collector's own loaders accept.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { AGENT_NODE_FLAGS, loadAgentConfig } from '../../agent/main.js';
import { loadCollectorConfig } from '../../collector/main.js';
import { render, type KObject } from '../../daemonset/tools/render.js';
import { schemaErrors, schemaErrorsByGroup } from '../helpers/k8s-schema.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DAEMONSET = join(ROOT, 'daemonset');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const OVERLAYS = ['falco', 'tetragon', 'ebpf'] as const;
type Overlay = (typeof OVERLAYS)[number];

type Json = Record<string, any>;

const rendered = new Map<Overlay, KObject[]>(OVERLAYS.map((o) => [o, render(join(DAEMONSET, 'overlays', o))]));
const certManager = render(join(DAEMONSET, 'cert-manager'));
let validated: Record<string, string[]> | undefined;
/** Schema errors per overlay (and of cert-manager), checked in one pass on first use. */
function errorsOf(group: string): string[] {
  validated ??= schemaErrorsByGroup(
    { ...Object.fromEntries(OVERLAYS.map((o) => [o, rendered.get(o)!.filter((x) => x.kind !== 'TracingPolicy')])), 'cert-manager': certManager },
    ROOT,
  );
  return validated[group]!;
}

function find(objects: KObject[], kind: string, namePrefix: string): Json {
  // Generated ConfigMaps carry a 10-character hash suffix.
  const found = objects.filter((o) => o.kind === kind && (o.metadata.name === namePrefix || (kind === 'ConfigMap' && /^-[a-z0-9]{10}$/.test(o.metadata.name.slice(namePrefix.length)) && o.metadata.name.startsWith(namePrefix))));
  if (found.length !== 1) throw new Error(`expected one ${kind} ${namePrefix}, found ${found.length}`);
  return found[0]!;
}

function podSpec(o: Json): Json {
  return o.spec.template.spec as Json;
}

function allContainers(spec: Json): Json[] {
  return [...((spec.initContainers as Json[] | undefined) ?? []), ...(spec.containers as Json[])];
}

/** The ConfigMap a pod mounts as volume `volume`, by its (hashed) name. */
function mountedConfigMap(objects: KObject[], spec: Json, volume: string): Json {
  const v = (spec.volumes as Json[]).find((x) => x.name === volume);
  const name = v?.configMap?.name as string | undefined;
  const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === name);
  if (!cm) throw new Error(`volume ${volume} mounts no rendered ConfigMap (${String(name)})`);
  return cm;
}

/** A figure from bench/RESULTS.md's table, in MiB or cores. */
function benchFigure(figure: string): number {
  const row = readFileSync(join(ROOT, 'bench/RESULTS.md'), 'utf8').split('\n').find((l) => l.includes(`| ${figure} |`));
  const m = row?.match(/\| ([\d.]+) (MiB|cores) \|/);
  if (!m) throw new Error(`bench/RESULTS.md has no figure "${figure}"`);
  return Number(m[1]);
}

function mebibytes(q: string): number {
  const m = /^(\d+)(Mi|Gi)$/.exec(q);
  if (!m) throw new Error(`unexpected memory quantity ${q}`);
  return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
}

function withFile<T>(text: string, fn: (path: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'dw-config-'));
  try {
    const path = join(dir, 'config.yaml');
    writeFileSync(path, text);
    return fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The environment Kubernetes would give a pod if it injected service links, plus NODE_NAME. */
function podEnv(objects: KObject[]): Record<string, string> {
  const env: Record<string, string> = { NODE_NAME: 'worker-1' };
  for (const s of objects.filter((o) => o.kind === 'Service')) {
    const prefix = s.metadata.name.toUpperCase().replace(/-/g, '_');
    env[`${prefix}_SERVICE_HOST`] = '10.96.0.10';
    for (const p of (s.spec as Json).ports as Json[]) {
      env[`${prefix}_SERVICE_PORT`] = String(p.port);
      env[`${prefix}_PORT`] = `tcp://10.96.0.10:${String(p.port)}`;
    }
  }
  return env;
}

/** Security expectations per overlay: what each source needs and nothing more. */
const EXPECTED: Record<Overlay, { hostPID: boolean; agentUser: number; agentCaps: string[]; hostPaths: Record<string, boolean>; extra: Record<string, string[]> }> = {
  falco: {
    hostPID: false,
    agentUser: 65532,
    agentCaps: [],
    // hostPath → mounted read-only?
    hostPaths: { '/var/lib/driftwatch': false, '/proc': true, '/run/containerd/containerd.sock': true },
    extra: { falco: ['BPF', 'PERFMON', 'SYS_RESOURCE', 'SYS_PTRACE'], 'state-dir-owner': ['CHOWN', 'DAC_READ_SEARCH'] },
  },
  tetragon: { hostPID: true, agentUser: 0, agentCaps: ['SYS_PTRACE'], hostPaths: { '/var/lib/driftwatch': false, '/var/run/cilium/tetragon': true }, extra: {} },
  ebpf: {
    hostPID: true,
    agentUser: 0,
    agentCaps: ['BPF', 'PERFMON', 'SYS_RESOURCE', 'SYS_PTRACE'],
    hostPaths: { '/var/lib/driftwatch': false, '/sys/kernel/tracing': true, '/run/containerd/containerd.sock': true },
    extra: {},
  },
};

for (const overlay of OVERLAYS) {
  const objects = rendered.get(overlay)!;
  const ds = find(objects, 'DaemonSet', 'driftwatch-agent');
  const spec = podSpec(ds);
  const agent = (spec.containers as Json[]).find((c) => c.name === 'agent')!;
  const expected = EXPECTED[overlay];

  test(`${overlay}: every object is valid against the Kubernetes schemas (the TracingPolicy is the file as shipped)`, (t) => {
    t.deepEqual(errorsOf(overlay), []);
    const policies = objects.filter((o) => o.kind === 'TracingPolicy');
    t.is(policies.length, overlay === 'tetragon' ? 1 : 0);
    for (const p of policies) {
      const shipped = parseYaml(readFileSync(join(DAEMONSET, 'tetragon/driftwatch-tracingpolicy.yaml'), 'utf8')) as Json;
      const { labels, ...metadata } = p.metadata;
      t.deepEqual({ ...p, metadata }, shipped);
      t.false('namespace' in p.metadata, 'TracingPolicy is cluster-scoped');
    }
  });

  test(`${overlay}: least privilege per container, with the reason in the pod's annotation`, (t) => {
    t.is(spec.hostPID === true, expected.hostPID);
    t.not(spec.hostNetwork, true);
    t.not(spec.hostIPC, true);
    t.is(spec.automountServiceAccountToken, false);
    t.is(spec.enableServiceLinks, false);
    const reason = String(ds.spec.template.metadata.annotations['driftwatch.io/privileges']);
    for (const c of allContainers(spec)) {
      const sc = c.securityContext as Json;
      t.not(sc.privileged, true, `${c.name} privileged`);
      t.is(sc.allowPrivilegeEscalation, false, `${c.name} allowPrivilegeEscalation`);
      t.is(sc.readOnlyRootFilesystem, true, `${c.name} readOnlyRootFilesystem`);
      t.deepEqual(sc.capabilities.drop, ['ALL'], `${c.name} drops every capability`);
      const added = (sc.capabilities.add as string[] | undefined) ?? [];
      t.deepEqual(added, c.name === 'agent' ? expected.agentCaps : (expected.extra[c.name] ?? []), `${c.name} capabilities`);
      for (const cap of added) t.true(reason.includes(cap), `the privileges annotation says why ${c.name} has ${cap}`);
      const seccomp = (sc.seccompProfile ?? spec.securityContext?.seccompProfile) as Json | undefined;
      t.truthy(seccomp, `${c.name} has a seccomp profile`);
      if (seccomp?.type === 'Unconfined' || sc.appArmorProfile?.type === 'Unconfined') t.true(reason.includes('Unconfined'), `the annotation says why ${c.name} is Unconfined`);
    }
    if (expected.hostPID) t.true(reason.includes('hostPID'));
    t.is(agent.securityContext.runAsUser, expected.agentUser);
    t.is(agent.securityContext.runAsNonRoot, expected.agentUser !== 0);
  });

  test(`${overlay}: host mounts are only those the source needs, read-only except the state dir`, (t) => {
    const hostVolumes = (spec.volumes as Json[]).filter((v) => v.hostPath);
    t.deepEqual(hostVolumes.map((v) => v.hostPath.path as string).sort(), Object.keys(expected.hostPaths).sort());
    for (const v of hostVolumes) {
      const mounts = allContainers(spec).flatMap((c) => (c.volumeMounts as Json[]).filter((m) => m.name === v.name));
      t.true(mounts.length > 0, `${v.name} is mounted`);
      const shouldBeReadOnly = expected.hostPaths[v.hostPath.path as string];
      for (const m of mounts) if (shouldBeReadOnly) t.is(m.readOnly, true, `${v.hostPath.path} read-only`);
    }
    const state = hostVolumes.find((v) => v.hostPath.path === '/var/lib/driftwatch')!;
    t.is(state.hostPath.type, 'DirectoryOrCreate');
  });

  test(`${overlay}: scheduling on every node, rolling update, probes, limits from the benchmark`, (t) => {
    t.true((spec.tolerations as Json[]).some((x) => x.operator === 'Exists' && x.key === undefined && x.effect === undefined), 'tolerates every taint');
    t.truthy(objects.find((o) => o.kind === 'PriorityClass' && o.metadata.name === spec.priorityClassName));
    t.is(ds.spec.updateStrategy.type, 'RollingUpdate');
    t.is(ds.spec.updateStrategy.rollingUpdate.maxSurge, 0, 'two agents would share one state dir');
    t.truthy(ds.spec.updateStrategy.rollingUpdate.maxUnavailable);
    for (const c of allContainers(spec)) {
      for (const r of ['cpu', 'memory']) {
        t.truthy(c.resources?.requests?.[r], `${c.name} requests ${r}`);
        t.truthy(c.resources?.limits?.[r], `${c.name} limits ${r}`);
      }
    }
    for (const c of spec.containers as Json[]) {
      t.truthy(c.livenessProbe, `${c.name} liveness`);
      t.truthy(c.readinessProbe, `${c.name} readiness`);
    }
    const port = (agent.ports as Json[]).find((p) => p.name === 'metrics')!;
    t.is(agent.livenessProbe.httpGet.path, '/livez');
    t.is(agent.readinessProbe.httpGet.path, '/readyz');
    // The kubelet probes a port of their own (probeListen), which a scrape storm on /metrics cannot delay.
    for (const probe of [agent.startupProbe, agent.livenessProbe, agent.readinessProbe]) t.is(probe.httpGet.port, 'probes');
    const annotations = ds.spec.template.metadata.annotations as Json;
    t.is(annotations['prometheus.io/scrape'], 'true');
    t.is(Number(annotations['prometheus.io/port']), port.containerPort);
    // bench/RESULTS.md: the agent's settled RSS must fit the request, its peak twice in the limit.
    const settled = benchFigure('agent RSS after 88240 events over 2000 baselines');
    t.true(mebibytes(agent.resources.requests.memory as string) >= settled, 'memory request covers the measured RSS');
    t.true(mebibytes(agent.resources.limits.memory as string) >= 2 * settled, 'memory limit leaves 2x room');
  });

  test(`${overlay}: the agent's ConfigMap parses with the agent's own loader and agrees with the pod`, (t) => {
    const cm = mountedConfigMap(objects, spec, 'config');
    const mount = (agent.volumeMounts as Json[]).find((m) => m.name === 'config')!;
    const args = agent.args as string[];
    const configPath = args[args.indexOf('--config') + 1]!;
    t.is(dirname(configPath), mount.mountPath);
    const text = cm.data[configPath.slice(mount.mountPath.length + 1)] as string;
    const config = withFile(text, (file) => loadAgentConfig({}, podEnv(objects), file));
    t.is(config.node, 'worker-1', 'node from NODE_NAME (downward API)');
    t.true((agent.env as Json[]).some((e) => e.name === 'NODE_NAME' && e.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName'));
    // httpListen is the scraped port and probeListen the probed one, on the pod IP.
    const ports = Object.fromEntries((agent.ports as Json[]).map((p) => [p.name, p.containerPort]));
    t.is(config.httpListen, `0.0.0.0:${String(ports.metrics)}`);
    t.is(config.probeListen, `0.0.0.0:${String(ports.probes)}`);
    // The state dir is on the hostPath volume.
    const stateMount = (agent.volumeMounts as Json[]).find((m) => m.name === 'state')!;
    t.true(config.stateDir.startsWith(`${stateMount.mountPath as string}/`));
    // The collector address is the collector's Service and gRPC port.
    const [host, portText] = config.collector.split(':');
    const [svcName, namespace] = host!.split('.');
    const svc = find(objects, 'Service', svcName!);
    t.is(svc.metadata.namespace, namespace);
    t.true((svc.spec.ports as Json[]).some((p) => p.name === 'grpc' && p.port === Number(portText)));
    if (overlay === 'falco') t.deepEqual(config.sources, ['falco-http:127.0.0.1:2801']);
    if (overlay === 'tetragon') {
      t.deepEqual(config.sources, ['tetragon-file:/var/run/cilium/tetragon/tetragon.log']);
      const m = (agent.volumeMounts as Json[]).find((x) => x.name === 'tetragon-export')!;
      t.true(config.sources[0]!.startsWith(`tetragon-file:${m.mountPath as string}/`));
    }
    if (overlay === 'ebpf') t.deepEqual(config.sources, ['ebpf']);
  });

  test(`${overlay}: collector — StatefulSet with a volume for its database, config parsed by its own loader, Service, PDB`, (t) => {
    const sts = find(objects, 'StatefulSet', 'driftwatch-collector');
    const cspec = podSpec(sts);
    const c = (cspec.containers as Json[])[0]!;
    const cm = mountedConfigMap(objects, cspec, 'config');
    // Inside a pod the kubelet sets KUBERNETES_SERVICE_HOST/PORT: the collector finds the API server for TokenReviews from them.
    const config = withFile(cm.data['collector.yaml'] as string, (file) =>
      loadCollectorConfig({}, { ...podEnv(objects), KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, file),
    );
    t.like(config, { agentAuth: 'token', kubeApiServer: 'https://10.96.0.1:443', insecure: false });
    const tls = (c.volumeMounts as Json[]).find((m) => m.name === 'tls')!;
    t.is(dirname(config.tlsCert as string), tls.mountPath);
    const tokens = (c.volumeMounts as Json[]).find((m) => m.name === 'tokens')!;
    t.is(dirname(config.apiTokensFile as string), tokens.mountPath);
    const agentSa = find(objects, 'ServiceAccount', 'driftwatch-agent');
    t.deepEqual(config.agentServiceAccounts, [`${agentSa.metadata.namespace}:${agentSa.metadata.name}`]);
    const data = (c.volumeMounts as Json[]).find((m) => m.name === 'data')!;
    t.is(dirname(config.db ?? ''), data.mountPath);
    t.deepEqual((sts.spec.volumeClaimTemplates as Json[]).map((v) => v.metadata.name), ['data']);
    t.is(sts.spec.replicas, 1, 'SQLite has one writer');
    t.is(cspec.securityContext.runAsNonRoot, true);
    t.is(c.securityContext.readOnlyRootFilesystem, true);
    t.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
    const svc = find(objects, 'Service', 'driftwatch-collector');
    const ports = Object.fromEntries((c.ports as Json[]).map((p) => [p.name, p.containerPort]));
    t.is(`0.0.0.0:${String(ports.grpc)}`, config.grpcListen);
    t.is(`0.0.0.0:${String(ports.http)}`, config.httpListen);
    t.is(`0.0.0.0:${String(ports.probes)}`, config.probeListen);
    t.deepEqual((svc.spec.ports as Json[]).map((p) => p.targetPort).sort(), ['grpc', 'http'], 'the probe port is in no Service');
    t.is(c.livenessProbe.httpGet.path, '/livez');
    t.is(c.readinessProbe.httpGet.path, '/readyz');
    for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) t.is(probe.httpGet.port, 'probes');
    const pdb = find(objects, 'PodDisruptionBudget', 'driftwatch-collector');
    t.deepEqual(pdb.spec.selector.matchLabels, sts.spec.selector.matchLabels);
    t.true(mebibytes(c.resources.requests.memory as string) >= benchFigure('collector RSS with 1M stored deviations'));
    // Secrets for TLS and API tokens are mounted as files, optional until they exist.
    const secrets = Object.fromEntries((cspec.volumes as Json[]).filter((v) => v.secret).map((v) => [v.secret.secretName, v.secret]));
    t.true(secrets['driftwatch-collector-tls']?.optional);
    t.true(secrets['driftwatch-api-tokens']?.optional);
    t.deepEqual((c.volumeMounts as Json[]).filter((m) => m.name === 'tls' || m.name === 'tokens').map((m) => m.mountPath).sort(), ['/etc/driftwatch/tls', '/etc/driftwatch/tokens']);
  });

  test(`${overlay}: RBAC is TokenReview create and nothing else; the agent has no API access`, (t) => {
    const roles = objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role');
    t.is(roles.length, 1);
    t.deepEqual((roles[0] as Json).rules, [{ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }]);
    const bindings = objects.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding') as Json[];
    t.is(bindings.length, 1);
    t.deepEqual(bindings[0]!.subjects, [{ kind: 'ServiceAccount', name: 'driftwatch-collector', namespace: 'driftwatch' }]);
    t.is(bindings[0]!.roleRef.name, roles[0]!.metadata.name);
    t.is(find(objects, 'ServiceAccount', 'driftwatch-agent').automountServiceAccountToken, false);
    const token = (spec.volumes as Json[]).find((v) => v.projected)!.projected.sources[0].serviceAccountToken;
    t.is(token.audience, 'driftwatch-collector', 'the agent token is for the collector, not the API server');
  });

  test(`${overlay}: NetworkPolicy admits agents on gRPC and the API from named namespaces only`, (t) => {
    const np = find(objects, 'NetworkPolicy', 'driftwatch-collector');
    const rules = np.spec.ingress as Json[];
    const grpc = rules.find((r) => r.ports.some((p: Json) => p.port === 7070))!;
    t.deepEqual(grpc.from, [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'driftwatch' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'driftwatch-agent' } } }]);
    const http = rules.find((r) => r.ports.some((p: Json) => p.port === 8080))!;
    for (const peer of http.from as Json[]) {
      t.is(peer.podSelector, undefined);
      const expr = peer.namespaceSelector.matchExpressions[0];
      t.is(expr.key, 'kubernetes.io/metadata.name');
      t.is(expr.operator, 'In');
      t.true(expr.values.length > 0);
    }
    t.is(rules.length, 2, 'no other ingress: the probe port (8081) only from the node');
    t.false(rules.some((r) => r.ports.some((p: Json) => p.port === 8081 || p.port === 'probes')));
    t.true(rules.every((r) => Array.isArray(r.from) && r.from.length > 0), 'no rule admits every source');
  });

  test(`${overlay}: ServiceMonitors find the agents' and the collector's metrics ports`, (t) => {
    for (const [monitor, podName] of [['driftwatch-agent', 'driftwatch-agent'], ['driftwatch-collector', 'driftwatch-collector']] as const) {
      const sm = find(objects, 'ServiceMonitor', monitor);
      const services = objects.filter((o) => o.kind === 'Service' && Object.entries(sm.spec.selector.matchLabels as Json).every(([k, v]) => o.metadata.labels?.[k as never] === v)) as Json[];
      const endpointPort = sm.spec.endpoints[0].port as string;
      const svc = services.find((s) => (s.spec.ports as Json[]).some((p) => p.name === endpointPort));
      t.truthy(svc, `${monitor} selects a Service with port ${endpointPort}`);
      t.is(svc!.spec.selector['app.kubernetes.io/name'], podName);
    }
  });

  test(`${overlay}: images are the release of package.json`, (t) => {
    const images = objects.flatMap((o) => (o.kind === 'DaemonSet' || o.kind === 'StatefulSet' ? allContainers(podSpec(o)) : [])).map((c) => c.image as string);
    const own = images.filter((i) => i.startsWith('ghcr.io/driftwatch/'));
    t.true(own.length >= 2);
    for (const image of own) t.regex(image, new RegExp(`:${VERSION.replace(/\./g, '\\.')}(-agent)?$`));
    t.is(agent.image.endsWith('-agent'), overlay === 'ebpf', 'only the ebpf agent needs the image with bpftrace');
    t.false(images.some((i) => i.endsWith(':latest') || !i.includes(':')), 'every image pinned');
  });
}

test('falco: the sidecar loads the Driftwatch rules as shipped and posts to the agent on loopback', (t) => {
  const objects = rendered.get('falco')!;
  const spec = podSpec(find(objects, 'DaemonSet', 'driftwatch-agent'));
  const falco = (spec.containers as Json[]).find((c) => c.name === 'falco')!;
  const rules = mountedConfigMap(objects, spec, 'falco-rules');
  t.is(rules.data['driftwatch-rules.yaml'], readFileSync(join(DAEMONSET, 'falco/driftwatch-rules.yaml'), 'utf8'));
  const falcoYaml = parseYaml(mountedConfigMap(objects, spec, 'falco-config').data['falco.yaml'] as string) as Json;
  const rulesMount = (falco.volumeMounts as Json[]).find((m) => m.name === 'falco-rules')!;
  t.deepEqual(falcoYaml.rules_files, [`${rulesMount.mountPath as string}/driftwatch-rules.yaml`]);
  t.is(falcoYaml.json_output, true);
  t.is(falcoYaml.http_output.enabled, true);
  t.is(falcoYaml.http_output.url, 'http://127.0.0.1:2801/', 'the agent\'s falco-http source in the same pod');
  t.is(falcoYaml.engine.kind, 'modern_ebpf', 'least-privileged mode needs the modern probe');
  const configMount = (falco.volumeMounts as Json[]).find((m) => m.name === 'falco-config')!;
  t.deepEqual(falco.args, ['/usr/bin/falco', '-c', `${configMount.mountPath as string}/falco.yaml`]);
  // The rules skip the agent's own namespace, or its accepts of Falco's POSTs would feed back.
  const shipped = parseYaml(readFileSync(join(DAEMONSET, 'falco/driftwatch-rules.yaml'), 'utf8')) as Json[];
  const excluded = shipped.find((x) => x.list === 'dw_excluded_namespaces')!.items as string[];
  t.true(excluded.includes(find(objects, 'DaemonSet', 'driftwatch-agent').metadata.namespace as string));
});

test('cert-manager: certificates for the Secrets the pods mount, for the name agents dial', (t) => {
  const objects = certManager;
  t.deepEqual(errorsOf('cert-manager'), []);
  const certs = objects.filter((o) => o.kind === 'Certificate') as Json[];
  const byName = Object.fromEntries(certs.map((c) => [c.spec.secretName, c]));
  const falco = rendered.get('falco')!;
  const mounted = new Set([podSpec(find(falco, 'DaemonSet', 'driftwatch-agent')), podSpec(find(falco, 'StatefulSet', 'driftwatch-collector'))].flatMap((s) => (s.volumes as Json[]).filter((v) => v.secret).map((v) => v.secret.secretName as string)));
  for (const secret of ['driftwatch-agent-tls', 'driftwatch-collector-tls']) {
    t.truthy(byName[secret], `a Certificate makes ${secret}`);
    t.true(mounted.has(secret), `${secret} is mounted`);
  }
  t.true(byName['driftwatch-collector-tls'].spec.usages.includes('server auth'));
  t.true(byName['driftwatch-agent-tls'].spec.usages.includes('client auth'));
  const agentConfig = parseYaml(readFileSync(join(DAEMONSET, 'overlays/falco/agent.yaml'), 'utf8')) as Json;
  t.true(byName['driftwatch-collector-tls'].spec.dnsNames.includes((agentConfig.collector as string).split(':')[0]));
  const issuers = new Set(objects.filter((o) => o.kind === 'Issuer').map((o) => o.metadata.name));
  for (const c of certs) t.true(issuers.has(c.spec.issuerRef.name), `${c.metadata.name as string} has its issuer`);
});

test('schema check catches a misspelt field, a bad quantity and a wrong type', (t) => {
  const ds = structuredClone(find(rendered.get('falco')!, 'DaemonSet', 'driftwatch-agent')) as Json;
  podSpec(ds).hostPid = true;
  const sts = structuredClone(find(rendered.get('falco')!, 'StatefulSet', 'driftwatch-collector')) as Json;
  podSpec(sts).containers[0].resources.limits.memory = '512 megabytes';
  const svc = structuredClone(find(rendered.get('falco')!, 'Service', 'driftwatch-collector')) as Json;
  svc.spec.ports[0].port = '7070';
  const errors = schemaErrors([ds, sts, svc] as KObject[], ROOT);
  t.true(errors.some((e) => e.includes('DaemonSet') && e.includes('hostPid')), errors.join('\n'));
  t.true(errors.some((e) => e.includes('StatefulSet') && e.includes('memory')), errors.join('\n'));
  t.true(errors.some((e) => e.includes('Service') && e.includes('port')), errors.join('\n'));
});

test('the agent runs with the Node flags the benchmark measured it with', (t) => {
  for (const overlay of OVERLAYS) {
    const agent = (podSpec(find(rendered.get(overlay)!, 'DaemonSet', 'driftwatch-agent')).containers as Json[]).find((c) => c.name === 'agent')!;
    t.is((agent.env as Json[]).find((e) => e.name === 'NODE_OPTIONS')?.value, AGENT_NODE_FLAGS.join(' '), overlay);
  }
});
