/**
 * Payloads checked against the publishers' own OpenAPI files in /work/shared/specs (Swagger 2.0 for
 * Alertmanager, OpenAPI 3.0 for PagerDuty) with ajv, rather than against our reading of them.
 * Their schema objects are JSON Schema plus a few OpenAPI annotations; ajv runs in strict mode with
 * only those annotations added, so a keyword it does not know (a spec update) fails loudly instead
 * of being skipped and silently weakening a test. Formats (date-time, uri, url, uuid) are checked.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parse as parseYaml } from 'yaml';

// ajv-formats is CommonJS; its plugin is the module's default export.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

/** Where the specs live (shared, read-only, copied unchanged from the publishers). */
export const SPECS_DIR = process.env.DRIFTWATCH_SPECS_DIR ?? '/work/shared/specs';

/** OpenAPI's annotations inside schema objects: they describe, they do not constrain. */
const OPENAPI_ANNOTATIONS = ['example', 'x-examples', 'discriminator'];

/** A loaded spec document. */
export interface Spec {
  doc: Record<string, unknown>;
  /** Validate `value` against `schema` (an object of this document); returns the violations, [] when valid. */
  validate(schema: unknown, value: unknown): string[];
  /** Follow a JSON pointer (`#/definitions/postableAlerts`). */
  at(pointer: string): unknown;
}

/** The extracts of publishers' descriptions kept in this repository (fixtures/specs/README.md says where each came from). */
export const REPO_SPECS_DIR = fileURLToPath(new URL('../../../fixtures/specs', import.meta.url));

/** Load a spec file (YAML or JSON) from `dir` (default SPECS_DIR). */
export function loadSpec(file: string, dir: string = SPECS_DIR, options: { annotations?: readonly string[] } = {}): Spec {
  const text = readFileSync(`${dir}/${file}`, 'utf8');
  const doc = (file.endsWith('.json') ? JSON.parse(text) : parseYaml(text)) as Record<string, unknown>;
  const ajv = new Ajv({ strict: true, allErrors: true, validateSchema: false });
  addFormats(ajv);
  // A publisher's own annotation keywords (`x-…`) are named by the caller, one by one: any other unknown keyword still fails.
  ajv.addVocabulary([...OPENAPI_ANNOTATIONS, ...(options.annotations ?? [])]);
  const compiled = new WeakMap<object, ValidateFunction>();
  // The document itself is no schema (swagger, info, paths): each schema a ref reaches is added on its
  // own, under an id made of its pointer, and refs are rewritten to those ids.
  const base = `https://specs.invalid/${encodeURIComponent(file)}`;
  const added = new Set<string>();
  const anchored = (schema: unknown): unknown => {
    if (Array.isArray(schema)) return schema.map(anchored);
    if (!schema || typeof schema !== 'object') return schema;
    const out = Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, k === '$ref' && typeof v === 'string' ? add(v) : anchored(v)]));
    return nullableAsJsonSchema(out);
  };
  const add = (ref: string): string => {
    const id = `${base}${ref.slice(1)}`;
    if (!added.has(id)) {
      added.add(id);
      ajv.addSchema(anchored(at(ref)) as object, id);
    }
    return id;
  };
  const at = (pointer: string): unknown => {
    if (!pointer.startsWith('#/')) throw new Error(`only local refs are supported: ${pointer}`);
    let cur: unknown = doc;
    for (const raw of pointer.slice(2).split('/')) {
      const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
      if (!cur || typeof cur !== 'object' || !(key in cur)) throw new Error(`unresolved ref ${pointer}`);
      cur = (cur as Record<string, unknown>)[key];
    }
    return cur;
  };
  const validate = (schema: unknown, value: unknown): string[] => {
    if (!schema || typeof schema !== 'object') throw new Error('a schema object of the spec is needed');
    let check = compiled.get(schema);
    if (!check) {
      check = ajv.compile(anchored(schema) as object);
      compiled.set(schema, check);
    }
    if (check(value)) return [];
    return (check.errors ?? []).map((e) => {
      const detail = e.keyword === 'enum' ? ` (${(e.params.allowedValues as unknown[]).join(', ')})` : e.keyword === 'additionalProperties' ? ` (${String(e.params.additionalProperty)})` : '';
      return `$${e.instancePath.replace(/\//g, '.')}: ${e.message ?? e.keyword}${detail}`;
    });
  };
  return { doc, validate, at };
}

/**
 * OpenAPI 3.0's `nullable: true` is not JSON Schema: ajv reads it only beside `type`. Next to `$ref`,
 * `oneOf` or `allOf` (GitHub's description has many) it becomes what it means, the schema or null;
 * `nullable: false` says nothing. Mechanical, the same for every document.
 */
function nullableAsJsonSchema(schema: Record<string, unknown>): Record<string, unknown> {
  if (!('nullable' in schema)) return schema;
  const { nullable, ...rest } = schema;
  if (nullable !== true) return rest;
  if (typeof rest.type === 'string') return schema;
  return { anyOf: [rest, { type: 'null' }] };
}
