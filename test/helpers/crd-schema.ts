/**
 * Validate custom resources against their CustomResourceDefinition's OpenAPI schema (a CRD file
 * vendored in fixtures/crd/), with ajv, the way the API server treats a `kubectl apply` under
 * strict field validation (kubectl's default):
 * - types, formats (int32, int64, date-time), enums, patterns, bounds, required fields;
 * - an unknown field is an error wherever the schema lists an object's properties, unless it
 *   says x-kubernetes-preserve-unknown-fields (the API server would reject it, not prune it);
 * - x-kubernetes-int-or-string accepts an integer or a string.
 * Not checked: the CEL rules in x-kubernetes-validations (the API server evaluates them; a test
 * that relies on one must check it itself) and the operator's own admission webhook.
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import addFormats from 'ajv-formats';
import { parse as parseYaml } from 'yaml';

type Schema = Record<string, unknown>;

/** The x-kubernetes-* keywords, kept in the schema as annotations once their meaning is applied. */
const KUBERNETES_KEYWORDS = [
  'x-kubernetes-validations',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'x-kubernetes-int-or-string',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-embedded-resource',
];

function isMap(v: unknown): v is Schema {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A structural schema, as JSON Schema with the API server's strictness made explicit. */
function strict(schema: Schema): Schema {
  const out: Schema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'properties' && isMap(value)) out.properties = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, strict(v as Schema)]));
    else if ((key === 'items' || key === 'additionalProperties' || key === 'not') && isMap(value)) out[key] = strict(value);
    else if ((key === 'anyOf' || key === 'allOf' || key === 'oneOf') && Array.isArray(value)) out[key] = value.map((v) => strict(v as Schema));
    else out[key] = value;
  }
  if (isMap(out.properties) && out.additionalProperties === undefined && out['x-kubernetes-preserve-unknown-fields'] !== true && out['x-kubernetes-embedded-resource'] !== true) {
    out.additionalProperties = false;
  }
  if (out['x-kubernetes-int-or-string'] === true && out.anyOf === undefined) {
    delete out.type;
    out.anyOf = [{ type: 'integer' }, { type: 'string' }];
  }
  return out;
}

/** A validator for the kind a CRD file defines; `apiVersion` picks the served version. */
export interface CrdValidator {
  readonly group: string;
  readonly kind: string;
  /** Every violation of `object` as `path: message`, [] when valid. */
  errors(object: unknown): string[];
}

/** Load a CRD (YAML) and compile the schema of `version` (its storage version by default). */
export function loadCrd(path: string, version?: string): CrdValidator {
  const crd = parseYaml(readFileSync(path, 'utf8')) as { kind: string; spec: { group: string; names: { kind: string }; versions: { name: string; storage?: boolean; schema?: { openAPIV3Schema?: Schema } }[] } };
  if (crd.kind !== 'CustomResourceDefinition') throw new Error(`${path} is a ${crd.kind}, not a CustomResourceDefinition`);
  const served = crd.spec.versions.find((v) => (version === undefined ? v.storage === true : v.name === version));
  const schema = served?.schema?.openAPIV3Schema;
  if (!served || !schema) throw new Error(`${path} has no schema for version ${version ?? '(storage)'}`);
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, allowUnionTypes: true });
  addFormats.default(ajv, ['int32', 'int64', 'date-time']);
  ajv.addVocabulary(KUBERNETES_KEYWORDS);
  const validate = ajv.compile(strict(schema));
  const apiVersion = `${crd.spec.group}/${served.name}`;
  return {
    group: crd.spec.group,
    kind: crd.spec.names.kind,
    errors(object) {
      const problems: string[] = [];
      if (!isMap(object) || object.apiVersion !== apiVersion || object.kind !== crd.spec.names.kind) problems.push(`/: not a ${apiVersion} ${crd.spec.names.kind}`);
      if (!validate(object)) {
        for (const e of validate.errors as ErrorObject[]) {
          const extra = e.keyword === 'additionalProperties' ? ` (${String((e.params as { additionalProperty: string }).additionalProperty)})` : '';
          problems.push(`${e.instancePath || '/'}: ${e.message ?? e.keyword}${extra}`);
        }
      }
      return problems;
    },
  };
}
