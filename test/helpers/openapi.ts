/**
 * A small validator over the schema objects of the publishers' own OpenAPI files in
 * /work/shared/specs (Swagger 2.0 for Alertmanager, OpenAPI 3.0 for PagerDuty), so sink payloads
 * are checked against the real schemas rather than our reading of them. It implements the keywords
 * those schemas use: $ref, allOf, type, properties, required, additionalProperties, items, enum,
 * format (date-time, uri, url), minLength/maxLength, minItems/maxItems; any other keyword fails
 * loudly so a spec update cannot silently weaken a test.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

/** Where the specs live (shared, read-only, copied unchanged from the publishers). */
export const SPECS_DIR = process.env.DRIFTWATCH_SPECS_DIR ?? '/work/shared/specs';

type Schema = Record<string, unknown>;

/** A loaded spec document. */
export interface Spec {
  doc: Schema;
  /** Validate `value` against `schema` (resolved in this document); returns the violations, [] when valid. */
  validate(schema: unknown, value: unknown): string[];
  /** Follow a JSON pointer (`#/definitions/postableAlerts`). */
  at(pointer: string): unknown;
}

/** Load a spec file (YAML or JSON) from SPECS_DIR. */
export function loadSpec(file: string): Spec {
  const text = readFileSync(`${SPECS_DIR}/${file}`, 'utf8');
  const doc = (file.endsWith('.json') ? JSON.parse(text) : parseYaml(text)) as Schema;
  const at = (pointer: string): unknown => {
    if (!pointer.startsWith('#/')) throw new Error(`only local refs are supported: ${pointer}`);
    let cur: unknown = doc;
    for (const raw of pointer.slice(2).split('/')) {
      const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
      if (!cur || typeof cur !== 'object' || !(key in (cur as Schema))) throw new Error(`unresolved ref ${pointer}`);
      cur = (cur as Schema)[key];
    }
    return cur;
  };
  const validate = (schema: unknown, value: unknown): string[] => {
    const errors: string[] = [];
    check(schema as Schema, value, '$', errors, at);
    return errors;
  };
  return { doc, validate, at };
}

const IGNORED = new Set(['description', 'title', 'example', 'examples', 'x-examples', 'default', 'readOnly', 'discriminator']);
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$/;

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function check(schema: Schema, value: unknown, path: string, errors: string[], at: (p: string) => unknown): void {
  if (typeof schema.$ref === 'string') return check(at(schema.$ref) as Schema, value, path, errors, at);
  for (const key of Object.keys(schema)) {
    if (IGNORED.has(key)) continue;
    if (!['allOf', 'type', 'properties', 'required', 'additionalProperties', 'items', 'enum', 'format', 'minLength', 'maxLength', 'minItems', 'maxItems'].includes(key)) {
      throw new Error(`schema keyword ${key} at ${path} is not supported by this checker`);
    }
  }
  if (Array.isArray(schema.allOf)) for (const s of schema.allOf) check(s as Schema, value, path, errors, at);
  const t = typeOf(value);
  if (typeof schema.type === 'string') {
    const ok = schema.type === t || (schema.type === 'number' && t === 'integer');
    if (!ok) {
      errors.push(`${path}: expected ${schema.type}, got ${t}`);
      return;
    }
  }
  if (Array.isArray(schema.enum) && !schema.enum.includes(value)) errors.push(`${path}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  if (typeof value === 'string') {
    if (typeof schema.minLength === 'number' && value.length < schema.minLength) errors.push(`${path}: shorter than ${schema.minLength}`);
    if (typeof schema.maxLength === 'number' && value.length > schema.maxLength) errors.push(`${path}: longer than ${schema.maxLength}`);
    if (schema.format === 'date-time' && (!RFC3339.test(value) || Number.isNaN(Date.parse(value)))) errors.push(`${path}: not an RFC 3339 date-time: ${value}`);
    if (schema.format === 'uri' || schema.format === 'url') {
      try {
        new URL(value);
      } catch {
        errors.push(`${path}: not an absolute URI: ${value}`);
      }
    }
  }
  if (t === 'array') {
    const arr = value as unknown[];
    if (typeof schema.minItems === 'number' && arr.length < schema.minItems) errors.push(`${path}: fewer than ${schema.minItems} items`);
    if (typeof schema.maxItems === 'number' && arr.length > schema.maxItems) errors.push(`${path}: more than ${schema.maxItems} items`);
    if (schema.items) arr.forEach((item, i) => check(schema.items as Schema, item, `${path}[${i}]`, errors, at));
  }
  if (t === 'object') {
    const obj = value as Schema;
    const props = (schema.properties ?? {}) as Record<string, Schema>;
    if (Array.isArray(schema.required)) for (const r of schema.required as string[]) if (!(r in obj)) errors.push(`${path}: missing required ${r}`);
    for (const [k, v] of Object.entries(obj)) {
      if (props[k]) check(props[k], v, `${path}.${k}`, errors, at);
      else if (schema.additionalProperties === false) errors.push(`${path}: unexpected property ${k}`);
      else if (schema.additionalProperties && typeof schema.additionalProperties === 'object') check(schema.additionalProperties as Schema, v, `${path}.${k}`, errors, at);
    }
  }
}
