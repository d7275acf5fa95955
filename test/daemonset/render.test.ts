/**
 * The kustomize renderer in daemonset/tools: kustomize's hash suffixes, strategic merge as
 * kustomize orders it, refusal of what it does not support, and — where kubectl is installed —
 * the very same objects as `kubectl kustomize` for every kustomization in daemonset/.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { configMapHash, render, RenderError, type KObject } from '../../daemonset/tools/render.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const KUSTOMIZATIONS = ['overlays/falco', 'overlays/tetragon', 'overlays/ebpf', 'overlays/ha', 'overlays/ha-external-db', 'cert-manager'];

function withTree(files: Record<string, string>, fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'dw-kustomize-'));
  try {
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, name)), { recursive: true });
      writeFileSync(join(dir, name), text);
    }
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('ConfigMap hash suffixes are kustomize 5\'s (values printed by kubectl kustomize)', (t) => {
  t.is(configMapHash({ a: 'b' }), '4h2mbtbbt6');
  t.is(configMapHash({ 'f.txt': 'hello\n' }), 'dhdgtdmfh9');
  // Go's JSON escapes <, > and &: the Falco rules contain them.
  t.is(configMapHash({ 'g.txt': 'a >= b && c < d\n' }), '86g4d56t6k');
});

test('strategic merge: patched and new list items first, by merge key; generated names rewritten in references', (t) => {
  withTree(
    {
      'base/kustomization.yaml': 'namespace: ns\nresources: [ds.yaml]\n',
      'base/ds.yaml': [
        'apiVersion: apps/v1', 'kind: DaemonSet', 'metadata: {name: d}', 'spec:', '  selector: {matchLabels: {a: b}}', '  template:', '    metadata: {labels: {a: b}}', '    spec:',
        '      containers:', '        - name: main', '          image: img', '          volumeMounts: [{name: cfg, mountPath: /c}]',
        '      volumes: [{name: cfg, configMap: {name: cfg}}, {name: other, emptyDir: {}}]', '',
      ].join('\n'),
      'over/kustomization.yaml': 'resources: [../base]\nconfigMapGenerator: [{name: cfg, namespace: ns, files: [a.txt]}]\npatches: [{path: p.yaml}]\nimages: [{name: img, newName: reg/img, newTag: "1.2"}]\n',
      'over/a.txt': 'hello\n',
      'over/p.yaml': [
        'apiVersion: apps/v1', 'kind: DaemonSet', 'metadata: {name: d, namespace: ns}', 'spec:', '  template:', '    spec:',
        '      containers:', '        - name: side', '          image: img:0.9', '        - name: main', '          volumeMounts: [{name: x, mountPath: /x}]',
        '      volumes: [{name: x, emptyDir: {}}]', '',
      ].join('\n'),
    },
    (dir) => {
      const objects = render(join(dir, 'over'));
      const ds = objects.find((o) => o.kind === 'DaemonSet') as KObject & { spec: any };
      const spec = ds.spec.template.spec;
      t.deepEqual(spec.containers.map((c: any) => c.name), ['side', 'main']);
      t.deepEqual(spec.containers.map((c: any) => c.image), ['reg/img:1.2', 'reg/img:1.2']);
      t.deepEqual(spec.containers[1].volumeMounts.map((m: any) => m.mountPath), ['/x', '/c']);
      t.deepEqual(spec.volumes.map((v: any) => v.name), ['x', 'cfg', 'other']);
      t.is(spec.volumes[1].configMap.name, `cfg-${configMapHash({ 'a.txt': 'hello\n' })}`);
      t.true(objects.some((o) => o.kind === 'ConfigMap' && o.metadata.name === spec.volumes[1].configMap.name));
      t.is(ds.metadata.namespace, 'ns');
    },
  );
});

test('refuses what it does not support, and files outside the kustomization', (t) => {
  withTree({ 'k/kustomization.yaml': 'commonLabels: {a: b}\n' }, (dir) => {
    const err = t.throws(() => render(join(dir, 'k')), { instanceOf: RenderError });
    t.regex(err.message, /unsupported field "commonLabels"/);
  });
  withTree({ 'k/kustomization.yaml': 'resources: [../outside.yaml]\n', 'outside.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n' }, (dir) => {
    t.throws(() => render(join(dir, 'k')), { instanceOf: RenderError, message: /outside/ });
  });
  withTree(
    {
      'k/kustomization.yaml': 'resources: [cm.yaml]\npatches: [{path: p.yaml}]\n',
      'k/cm.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n',
      'k/p.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\n',
    },
    (dir) => {
      t.throws(() => render(join(dir, 'k')), { instanceOf: RenderError, message: /no ConfigMap \/y to patch/ });
    },
  );
});

/** A base with a StatefulSet, a generated ConfigMap and a Service; an overlay with a Component that swaps the StatefulSet for a Deployment. */
const COMPONENT_TREE: Record<string, string> = {
  'base/kustomization.yaml': 'namespace: ns\nlabels: [{pairs: {part: of}}]\nresources: [sts.yaml, svc.yaml]\nconfigMapGenerator: [{name: cfg, files: [c.yaml]}]\n',
  'base/c.yaml': 'db: file\n',
  'base/sts.yaml': [
    'apiVersion: apps/v1', 'kind: StatefulSet', 'metadata: {name: s}', 'spec:', '  selector: {matchLabels: {a: b}}', '  serviceName: h', '  template:', '    metadata: {labels: {a: b}}', '    spec:',
    '      containers: [{name: main, image: img, volumeMounts: [{name: cfg, mountPath: /c}]}]', '      volumes: [{name: cfg, configMap: {name: cfg}}]', '',
  ].join('\n'),
  'base/svc.yaml': 'apiVersion: v1\nkind: Service\nmetadata: {name: h}\nspec: {clusterIP: None, selector: {a: b}}\n',
  'comp/kustomization.yaml': [
    'apiVersion: kustomize.config.k8s.io/v1alpha1', 'kind: Component', 'resources: [dep.yaml]',
    'configMapGenerator: [{name: cfg, namespace: ns, behavior: replace, files: [c.yaml]}]', 'patches: [{path: del-sts.yaml}, {path: del-svc.yaml}]', '',
  ].join('\n'),
  'comp/c.yaml': 'db: url-file\n',
  'comp/del-sts.yaml': '$patch: delete\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s, namespace: ns}\n',
  'comp/del-svc.yaml': '$patch: delete\napiVersion: v1\nkind: Service\nmetadata: {name: h, namespace: ns}\n',
  'comp/dep.yaml': [
    'apiVersion: apps/v1', 'kind: Deployment', 'metadata: {name: d, namespace: ns}', 'spec:', '  replicas: 3', '  selector: {matchLabels: {a: b}}', '  template:', '    metadata: {labels: {a: b}}', '    spec:',
    '      containers: [{name: main, image: img, volumeMounts: [{name: cfg, mountPath: /c}]}]', '      volumes: [{name: cfg, configMap: {name: cfg}}]', '',
  ].join('\n'),
  'over/kustomization.yaml': 'resources: [../base]\ncomponents: [../comp]\nimages: [{name: img, newTag: "2"}]\n',
};

test('components: applied after the resources to all of them; $patch: delete; a generated ConfigMap replaced keeps its labels', (t) => {
  withTree(COMPONENT_TREE, (dir) => {
    const objects = render(join(dir, 'over'));
    t.deepEqual(objects.map((o) => o.kind).sort(), ['ConfigMap', 'Deployment']);
    const cm = objects.find((o) => o.kind === 'ConfigMap')!;
    t.deepEqual(cm.data, { 'c.yaml': 'db: url-file\n' });
    t.is(cm.metadata.name, `cfg-${configMapHash({ 'c.yaml': 'db: url-file\n' })}`);
    t.deepEqual(cm.metadata.labels, { part: 'of' }, 'the base\'s labels stay on the replaced ConfigMap');
    const spec = (objects.find((o) => o.kind === 'Deployment') as KObject & { spec: any }).spec.template.spec;
    t.is(spec.volumes[0].configMap.name, cm.metadata.name, 'the component\'s own objects find the generated name');
    t.is(spec.containers[0].image, 'img:2', 'the overlay\'s images apply to what the component added');
  });
});

test('components: the kinds must match where they are listed; replace needs something to replace', (t) => {
  withTree({ ...COMPONENT_TREE, 'over/kustomization.yaml': 'resources: [../base, ../comp]\n' }, (dir) => {
    t.throws(() => render(join(dir, 'over')), { instanceOf: RenderError, message: /Component goes under components/ });
  });
  withTree({ ...COMPONENT_TREE, 'over/kustomization.yaml': 'resources: [../base]\ncomponents: [../base]\n' }, (dir) => {
    t.throws(() => render(join(dir, 'over')), { instanceOf: RenderError, message: /needs kind Component/ });
  });
  withTree({ ...COMPONENT_TREE, 'over/kustomization.yaml': 'components: [../comp]\n' }, (dir) => {
    t.throws(() => render(join(dir, 'over')), { instanceOf: RenderError, message: /no generated ConfigMap ns\/cfg to replace/ });
  });
  withTree({ ...COMPONENT_TREE, 'comp/del-sts.yaml': '$patch: replace\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s, namespace: ns}\n' }, (dir) => {
    t.throws(() => render(join(dir, 'over')), { instanceOf: RenderError, message: /\$patch: "replace" is not supported/ });
  });
});

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) if (dir !== '' && existsSync(join(dir, name))) return join(dir, name);
  return undefined;
}

function keyed(objects: unknown[]): Map<string, unknown> {
  return new Map(objects.map((o) => {
    const k = o as KObject;
    return [`${k.kind}/${String(k.metadata.namespace ?? '')}/${k.metadata.name}`, o];
  }));
}

const kubectl = findOnPath('kubectl');
(kubectl ? test : test.skip)('every kustomization renders to exactly what kubectl kustomize renders', (t) => {
  for (const k of KUSTOMIZATIONS) {
    const dir = join(ROOT, 'daemonset', k);
    const text = execFileSync(kubectl!, ['kustomize', dir], { encoding: 'utf8', timeout: 30_000 });
    const theirs = keyed(parseAllDocuments(text).map((d) => d.toJS() as unknown).filter((x) => x !== null));
    const ours = keyed(render(dir));
    t.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort(), k);
    for (const [key, object] of ours) t.deepEqual(object, theirs.get(key), `${k}: ${key}`);
  }
  withTree(COMPONENT_TREE, (dir) => {
    const text = execFileSync(kubectl!, ['kustomize', join(dir, 'over')], { encoding: 'utf8', timeout: 30_000 });
    t.deepEqual(keyed(render(join(dir, 'over'))), keyed(parseAllDocuments(text).map((d) => d.toJS() as unknown).filter((x) => x !== null)), 'the component test tree');
  });
});
