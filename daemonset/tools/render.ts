/**
 * A small kustomize renderer for Driftwatch's own manifests, so that tests (and ops without
 * kubectl) can see exactly what `kubectl apply -k daemonset/overlays/NAME` applies.
 *
 * It supports only what daemonset/ uses, and refuses anything else by name instead of silently
 * ignoring it: `resources` (files and kustomization directories), `components` (directories whose
 * kustomization is `kind: Component`, applied after the resources to everything accumulated so
 * far, as kustomize does), `namespace`, `labels` (pairs, without selectors or templates),
 * `configMapGenerator` (files, with kustomize's content-hash name suffix and the references to it
 * rewritten; `behavior` create, replace or merge), `patches` (strategic merge from a file, for the
 * fields and list merge keys of pod templates, and `$patch: delete` of a whole object), and
 * `images`. Like kustomize's default load restrictor, it reads no file outside the kustomization's
 * own directory.
 *
 * test/daemonset/render.test.ts compares its output with `kubectl kustomize` where kubectl exists.
 *
 * Usage: node dist/daemonset/tools/render.js daemonset/overlays/falco
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';

/** A Kubernetes object as plain data. */
export type KObject = Record<string, unknown> & { apiVersion: string; kind: string; metadata: Record<string, unknown> & { name: string } };

/** Why a kustomization could not be rendered; `path` names the file. */
export class RenderError extends Error {
  readonly code = 'render_failed' as const;
  constructor(readonly path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'RenderError';
  }
}

const KUSTOMIZATION_KEYS = new Set(['apiVersion', 'kind', 'resources', 'components', 'namespace', 'labels', 'configMapGenerator', 'patches', 'images']);
/** Kinds without a namespace among those daemonset/ uses (kustomize knows the built-in ones; TracingPolicy is never namespaced here). */
const CLUSTER_SCOPED = new Set(['Namespace', 'PriorityClass', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'StorageClass', 'PersistentVolume', 'TracingPolicy']);
/** Strategic-merge keys of the lists daemonset/ patches (from the Kubernetes API's patchMergeKey). */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  env: 'name',
  ports: 'containerPort',
  imagePullSecrets: 'name',
};
const WORKLOAD_KINDS = new Set(['DaemonSet', 'StatefulSet', 'Deployment', 'ReplicaSet', 'Job']);

type Json = Record<string, unknown>;

function isMap(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

interface Rendered {
  objects: KObject[];
  /** Generated ConfigMaps not yet given their hash suffix: object → name before the suffix. */
  unhashed: Map<KObject, string>;
}

/** Render the kustomization in `dir` to its list of objects. */
export function render(dir: string): KObject[] {
  const out = build(resolve(dir));
  finishGenerated(out);
  return out.objects;
}

/** The rendered objects as one multi-document YAML text, as `kubectl kustomize` prints them. */
export function renderYaml(dir: string): string {
  return render(dir).map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
}

function readYamlDocs(path: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'));
  const values: unknown[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new RenderError(path, doc.errors[0]!.message);
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value !== null && value !== undefined) values.push(value);
  }
  return values;
}

/** A path named in a kustomization, checked to stay inside its root (kustomize's LoadRestrictionsRootOnly). */
function inside(root: string, name: string, kustomization: string): string {
  const path = resolve(root, name);
  const rel = relative(root, path);
  if (rel.startsWith('..') || rel.startsWith(sep) || rel === '') throw new RenderError(kustomization, `${name} is outside ${root}; only kustomization directories may be referenced there`);
  return path;
}

function asObject(value: unknown, path: string): KObject {
  if (!isMap(value) || typeof value.apiVersion !== 'string' || typeof value.kind !== 'string' || !isMap(value.metadata) || typeof value.metadata.name !== 'string') {
    throw new RenderError(path, 'every document must be a Kubernetes object with apiVersion, kind and metadata.name');
  }
  return value as KObject;
}

/**
 * Build the kustomization (or, with `into`, the Component) in `root`. A Component works on the
 * objects its parent has accumulated so far: its resources join them, its generators may replace
 * theirs, its patches and transformers apply to all of them.
 */
function build(root: string, into?: Rendered): Rendered {
  const file = join(root, 'kustomization.yaml');
  if (!existsSync(file)) throw new RenderError(root, 'no kustomization.yaml');
  const [k] = readYamlDocs(file);
  if (!isMap(k)) throw new RenderError(file, 'must hold a mapping');
  for (const key of Object.keys(k)) if (!KUSTOMIZATION_KEYS.has(key)) throw new RenderError(file, `unsupported field ${JSON.stringify(key)}; this renderer knows ${[...KUSTOMIZATION_KEYS].join(', ')}`);
  const kind = k.kind ?? 'Kustomization';
  const expected = into === undefined ? 'Kustomization' : 'Component';
  if (kind !== expected) throw new RenderError(file, `kind is ${JSON.stringify(kind)}, but ${into === undefined ? 'a resource directory needs a Kustomization (a Component goes under components:)' : 'a directory under components: needs kind Component'}`);

  const out: Rendered = into ?? { objects: [], unhashed: new Map() };
  for (const name of list<string>(k.resources, file, 'resources')) {
    const path = resolve(root, name);
    if (existsSync(path) && statSync(path).isDirectory()) {
      const sub = build(path);
      out.objects.push(...sub.objects);
      for (const [o, n] of sub.unhashed) out.unhashed.set(o, n);
    } else {
      for (const doc of readYamlDocs(inside(root, name, file))) out.objects.push(asObject(doc, path));
    }
  }

  for (const name of list<string>(k.components, file, 'components')) {
    const path = resolve(root, name);
    if (!existsSync(path) || !statSync(path).isDirectory()) throw new RenderError(file, `components: ${name} is not a directory`);
    build(path, out);
  }

  for (const gen of list<Json>(k.configMapGenerator, file, 'configMapGenerator')) {
    for (const key of Object.keys(gen)) if (!['name', 'namespace', 'files', 'behavior'].includes(key)) throw new RenderError(file, `configMapGenerator: unsupported field ${JSON.stringify(key)}`);
    if (typeof gen.name !== 'string') throw new RenderError(file, 'configMapGenerator: name is required');
    const behavior = gen.behavior ?? 'create';
    if (behavior !== 'create' && behavior !== 'replace' && behavior !== 'merge') throw new RenderError(file, `configMapGenerator: behavior must be create, replace or merge, not ${JSON.stringify(behavior)}`);
    const data: Record<string, string> = {};
    for (const f of list<string>(gen.files, file, 'configMapGenerator.files')) {
      if (f.includes('=')) throw new RenderError(file, 'configMapGenerator: key=path file entries are not supported');
      data[basename(f)] = readFileSync(inside(root, f, file), 'utf8');
    }
    const namespace = typeof gen.namespace === 'string' ? gen.namespace : undefined;
    const existing = [...out.unhashed].find(([o, n]) => n === gen.name && o.metadata.namespace === namespace)?.[0];
    if (behavior === 'create') {
      if (existing) throw new RenderError(file, `configMapGenerator: ${String(namespace ?? '')}/${gen.name} exists already; use behavior replace or merge`);
      const metadata: KObject['metadata'] = { name: gen.name };
      if (namespace !== undefined) metadata.namespace = namespace;
      const cm: KObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata, data };
      out.objects.push(cm);
      out.unhashed.set(cm, gen.name);
    } else {
      if (!existing) throw new RenderError(file, `configMapGenerator: no generated ConfigMap ${String(namespace ?? '')}/${gen.name} to ${behavior}`);
      // kustomize keeps the existing object's metadata (labels, namespace) and place in the list.
      existing.data = behavior === 'merge' ? { ...(existing.data as Record<string, string>), ...data } : data;
    }
  }

  for (const patch of list<Json>(k.patches, file, 'patches')) {
    if (Object.keys(patch).some((key) => key !== 'path') || typeof patch.path !== 'string') throw new RenderError(file, 'patches: only { path: FILE } strategic-merge patches are supported');
    const patchFile = inside(root, patch.path, file);
    for (const doc of readYamlDocs(patchFile)) {
      const { $patch: directive, ...rest } = isMap(doc) ? doc : { $patch: undefined };
      const p = asObject(directive === undefined ? doc : rest, patchFile);
      const target = out.objects.find((o) => o.kind === p.kind && o.metadata.name === p.metadata.name && (p.metadata.namespace === undefined || o.metadata.namespace === p.metadata.namespace));
      if (!target) throw new RenderError(patchFile, `no ${p.kind} ${String(p.metadata.namespace ?? '')}/${p.metadata.name} to patch`);
      if (directive !== undefined) {
        if (directive !== 'delete') throw new RenderError(patchFile, `patch directive $patch: ${JSON.stringify(directive)} is not supported (only delete, of a whole object)`);
        out.objects.splice(out.objects.indexOf(target), 1);
        out.unhashed.delete(target);
        continue;
      }
      const merged = mergeMap(target, p, patchFile) as KObject;
      out.objects[out.objects.indexOf(target)] = merged;
      const unhashedName = out.unhashed.get(target);
      if (unhashedName !== undefined) {
        out.unhashed.delete(target);
        out.unhashed.set(merged, unhashedName);
      }
    }
  }

  if (k.namespace !== undefined) {
    if (typeof k.namespace !== 'string') throw new RenderError(file, 'namespace must be a string');
    for (const o of out.objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  }

  for (const entry of list<Json>(k.labels, file, 'labels')) {
    if (entry.includeSelectors === true || entry.includeTemplates === true || !isMap(entry.pairs)) throw new RenderError(file, 'labels: only pairs without includeSelectors/includeTemplates are supported');
    for (const o of out.objects) o.metadata.labels = { ...(isMap(o.metadata.labels) ? o.metadata.labels : {}), ...entry.pairs };
  }

  for (const image of list<Json>(k.images, file, 'images')) {
    if (typeof image.name !== 'string' || Object.keys(image).some((key) => !['name', 'newName', 'newTag'].includes(key))) throw new RenderError(file, 'images: only name, newName and newTag are supported');
    for (const o of out.objects) for (const c of podContainers(o)) c.image = retag(String(c.image ?? ''), image);
  }
  // Hash suffixes are added once, at the top (render), so that references written in any
  // kustomization, above or below the generator, still find the ConfigMap by its given name.
  return out;
}

function list<T>(value: unknown, file: string, field: string): T[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new RenderError(file, `${field} must be a list`);
  return value as T[];
}

/**
 * Strategic merge of `patch` into `base`: maps merge key by key, lists with a known merge key
 * merge element by element (patched and new elements first in the patch's order, then the base's
 * others, as kustomize orders them), other lists and scalars are replaced. `$patch` directives are
 * refused.
 */
function mergeMap(base: Json, patch: Json, file: string): Json {
  const out: Json = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) throw new RenderError(file, `patch directive ${key} is not supported`);
    const current = out[key];
    if (value === null) delete out[key];
    else if (isMap(value) && isMap(current)) out[key] = mergeMap(current, value, file);
    else if (Array.isArray(value) && Array.isArray(current) && MERGE_KEYS[key] !== undefined) out[key] = mergeList(current, value, MERGE_KEYS[key], file);
    else out[key] = structuredClone(value);
  }
  return out;
}

function mergeList(base: unknown[], patch: unknown[], mergeKey: string, file: string): unknown[] {
  const keyOf = (item: unknown): unknown => {
    if (!isMap(item) || item[mergeKey] === undefined) throw new RenderError(file, `list item without its merge key ${mergeKey}`);
    return item[mergeKey];
  };
  const patchedKeys = new Set(patch.map(keyOf));
  const merged = patch.map((item) => {
    const original = base.find((b) => keyOf(b) === keyOf(item));
    return original === undefined ? structuredClone(item) : mergeMap(original as Json, item as Json, file);
  });
  return [...merged, ...base.filter((b) => !patchedKeys.has(keyOf(b)))];
}

function podSpec(o: KObject): Json | undefined {
  if (!WORKLOAD_KINDS.has(o.kind) || !isMap(o.spec) || !isMap(o.spec.template) || !isMap(o.spec.template.spec)) return undefined;
  return o.spec.template.spec;
}

function podContainers(o: KObject): Json[] {
  const spec = podSpec(o);
  if (!spec) return [];
  return [...list<Json>(spec.initContainers, o.metadata.name, 'initContainers'), ...list<Json>(spec.containers, o.metadata.name, 'containers')];
}

/** `name[:tag][@digest]` with the entry's new name and tag, when its name is the entry's. */
function retag(image: string, entry: Json): string {
  const at = image.indexOf('@');
  const withoutDigest = at === -1 ? image : image.slice(0, at);
  const colon = withoutDigest.lastIndexOf(':');
  const name = colon > withoutDigest.lastIndexOf('/') ? withoutDigest.slice(0, colon) : withoutDigest;
  if (name !== entry.name) return image;
  const newName = typeof entry.newName === 'string' ? entry.newName : name;
  const tag = typeof entry.newTag === 'string' ? `:${entry.newTag}` : withoutDigest.slice(name.length);
  return `${newName}${tag}${at === -1 ? '' : image.slice(at)}`;
}

/** Go's encoding/json escapes these inside strings; kustomize hashes Go's encoding. */
function goJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function sortedKeys(value: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, value[k]!]));
}

/**
 * kustomize's ConfigMap name suffix: sha256 of {"data","kind","name"} in Go's JSON, its first 10
 * hex digits with 0,1,3,a,e replaced. kustomize 5 hashes the generated object before it has a
 * name, so `name` is always empty there (checked against kubectl kustomize in the tests).
 */
export function configMapHash(data: Record<string, string>): string {
  const encoded = goJson({ data: sortedKeys(data), kind: 'ConfigMap', name: '' });
  const hex = createHash('sha256').update(encoded).digest('hex').slice(0, 10);
  const swap: Record<string, string> = { '0': 'g', '1': 'h', '3': 'k', a: 'm', e: 't' };
  return hex.replace(/[013ae]/g, (c) => swap[c]!);
}

/** Give generated ConfigMaps their hash suffix and point every pod template reference at the new name. */
function finishGenerated(out: Rendered): void {
  for (const [cm, name] of out.unhashed) {
    const hashed = `${name}-${configMapHash(cm.data as Record<string, string>)}`;
    cm.metadata.name = hashed;
    for (const o of out.objects) {
      if (o.metadata.namespace !== cm.metadata.namespace) continue;
      const spec = podSpec(o);
      if (!spec) continue;
      for (const v of list<Json>(spec.volumes, o.metadata.name, 'volumes')) {
        if (isMap(v.configMap) && v.configMap.name === name) v.configMap.name = hashed;
        if (isMap(v.projected)) for (const s of list<Json>(v.projected.sources, o.metadata.name, 'projected.sources')) if (isMap(s.configMap) && s.configMap.name === name) s.configMap.name = hashed;
      }
      for (const c of podContainers(o)) {
        for (const e of list<Json>(c.env, o.metadata.name, 'env')) if (isMap(e.valueFrom) && isMap(e.valueFrom.configMapKeyRef) && e.valueFrom.configMapKeyRef.name === name) e.valueFrom.configMapKeyRef.name = hashed;
        for (const e of list<Json>(c.envFrom, o.metadata.name, 'envFrom')) if (isMap(e.configMapRef) && e.configMapRef.name === name) e.configMapRef.name = hashed;
      }
    }
  }
  out.unhashed.clear();
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2];
  if (dir === undefined) {
    console.error('usage: node dist/daemonset/tools/render.js KUSTOMIZATION_DIR');
    process.exit(2);
  }
  try {
    process.stdout.write(renderYaml(dir));
  } catch (err) {
    console.error(`render: ${(err as Error).message}`);
    process.exit(1);
  }
}

/** Directory of this repository's daemonset/ folder, from the compiled file's location. */
export const DAEMONSET_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../daemonset');
