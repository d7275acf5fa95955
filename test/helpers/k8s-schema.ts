/**
 * Validate Kubernetes objects against the API's schemas, two ways, because each misses what the
 * other catches:
 * - kubernetes-models' validators (generated from the Kubernetes OpenAPI and the cert-manager and
 *   prometheus-operator CRDs) check types, formats (quantities, int32) and required fields, but
 *   accept unknown fields (a misspelt `hostPid` would pass);
 * - the TypeScript compiler checks each object as an object literal typed with the same models'
 *   interfaces, whose excess-property check rejects every field the schema does not have.
 */
import { resolve } from 'node:path';
import ts from 'typescript';
import type { Model } from '@kubernetes-models/base';
// One module per model: the group indexes load hundreds of models.
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { PriorityClass } from 'kubernetes-models/scheduling.k8s.io/v1/PriorityClass';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { Certificate } from '@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate';
import { Issuer } from '@kubernetes-models/cert-manager/cert-manager.io/v1/Issuer';
import type { KObject } from '../../daemonset/tools/render.js';

type ModelClass = new (data: never) => Model<unknown>;

/** apiVersion/kind → the model class and its interface (module, name) for the type check. */
const SCHEMAS: Record<string, { model: ModelClass; module: string; type: string }> = {
  'v1/Namespace': { model: Namespace, module: 'kubernetes-models/v1/Namespace', type: 'INamespace' },
  'v1/ServiceAccount': { model: ServiceAccount, module: 'kubernetes-models/v1/ServiceAccount', type: 'IServiceAccount' },
  'v1/ConfigMap': { model: ConfigMap, module: 'kubernetes-models/v1/ConfigMap', type: 'IConfigMap' },
  'v1/Service': { model: Service, module: 'kubernetes-models/v1/Service', type: 'IService' },
  'apps/v1/DaemonSet': { model: DaemonSet, module: 'kubernetes-models/apps/v1/DaemonSet', type: 'IDaemonSet' },
  'apps/v1/StatefulSet': { model: StatefulSet, module: 'kubernetes-models/apps/v1/StatefulSet', type: 'IStatefulSet' },
  'apps/v1/Deployment': { model: Deployment, module: 'kubernetes-models/apps/v1/Deployment', type: 'IDeployment' },
  'rbac.authorization.k8s.io/v1/ClusterRole': { model: ClusterRole, module: 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole', type: 'IClusterRole' },
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': { model: ClusterRoleBinding, module: 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding', type: 'IClusterRoleBinding' },
  'scheduling.k8s.io/v1/PriorityClass': { model: PriorityClass, module: 'kubernetes-models/scheduling.k8s.io/v1/PriorityClass', type: 'IPriorityClass' },
  'policy/v1/PodDisruptionBudget': { model: PodDisruptionBudget, module: 'kubernetes-models/policy/v1/PodDisruptionBudget', type: 'IPodDisruptionBudget' },
  'networking.k8s.io/v1/NetworkPolicy': { model: NetworkPolicy, module: 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy', type: 'INetworkPolicy' },
  'monitoring.coreos.com/v1/ServiceMonitor': { model: ServiceMonitor, module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor', type: 'IServiceMonitor' },
  'cert-manager.io/v1/Certificate': { model: Certificate, module: '@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate', type: 'ICertificate' },
  'cert-manager.io/v1/Issuer': { model: Issuer, module: '@kubernetes-models/cert-manager/cert-manager.io/v1/Issuer', type: 'IIssuer' },
};

/** Whether a schema is known for this object's apiVersion and kind. */
export function hasSchema(o: KObject): boolean {
  return SCHEMAS[`${o.apiVersion}/${o.kind}`] !== undefined;
}

function label(o: KObject): string {
  return `${o.kind} ${String(o.metadata.namespace ?? '')}/${o.metadata.name}`;
}

/** Every schema error of these objects, one line each, naming the object; [] when all are valid. */
export function schemaErrors(objects: readonly KObject[], repoRoot: string): string[] {
  return schemaErrorsByGroup({ objects }, repoRoot).objects ?? [];
}

/**
 * The same for several groups of objects (one per overlay, say) at once: the type check costs
 * about two seconds however many objects it sees, so it runs once for all of them.
 */
export function schemaErrorsByGroup(groups: Readonly<Record<string, readonly KObject[]>>, repoRoot: string): Record<string, string[]> {
  const errors: Record<string, string[]> = Object.fromEntries(Object.keys(groups).map((g) => [g, []]));
  const lines: string[] = [];
  const imports = new Set<string>();
  const groupOfLine = new Map<number, string>();
  let i = 0;
  for (const [group, objects] of Object.entries(groups)) {
    for (const o of objects) {
      const schema = SCHEMAS[`${o.apiVersion}/${o.kind}`];
      if (!schema) {
        errors[group]!.push(`${label(o)}: no schema for ${o.apiVersion} ${o.kind}`);
        continue;
      }
      try {
        new schema.model(structuredClone(o) as never).validate();
      } catch (err) {
        errors[group]!.push(`${label(o)}: ${(err as Error).message}`);
      }
      imports.add(`import type { ${schema.type} } from '${schema.module}';`);
      lines.push(`// ${label(o)}\nexport const o${i++}: ${schema.type} = ${JSON.stringify(o)};`);
      groupOfLine.set(lines.length - 1, group);
    }
  }
  const file = resolve(repoRoot, '__k8s_schema_check.ts');
  const header = [...imports];
  const source = [...header, ...lines].join('\n');
  const options: ts.CompilerOptions = { strict: true, noEmit: true, skipLibCheck: true, target: ts.ScriptTarget.ES2022, lib: ['lib.es2022.d.ts'], module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, types: [] };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.getSourceFile = (name, version, ...rest) => (resolve(name) === file ? ts.createSourceFile(name, source, version) : getSourceFile(name, version, ...rest));
  host.fileExists = (name) => resolve(name) === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  const sourceLines = source.split('\n');
  for (const d of ts.getPreEmitDiagnostics(program)) {
    let where = '';
    let group = Object.keys(groups)[0]!;
    if (d.file && d.start !== undefined && resolve(d.file.fileName) === file) {
      const line = d.file.getLineAndCharacterOfPosition(d.start).line;
      where = sourceLines[line - 1]?.replace(/^\/\/ /, '') ?? '';
      // Each object is two lines (its label, then the literal) after the imports.
      group = groupOfLine.get(Math.floor((line - header.length) / 2)) ?? group;
    }
    errors[group]!.push(`${where}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ').slice(0, 400)}`);
  }
  return errors;
}
