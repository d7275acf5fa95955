/**
 * A small, deterministic YAML writer for the documents Driftwatch exports (baselines,
 * NetworkPolicies, Falco rules). Why not the `yaml` package's stringify: it writes NEL, U+2028,
 * BOM, DEL, C1 and bidi controls raw inside quoted strings and leaves `yes`/`on` plain, which YAML
 * 1.1 readers (PyYAML, go-yaml v2, so much of the Kubernetes tool chain) read as line breaks or
 * booleans. Here a string is plain only when it is unambiguous in YAML 1.1 and 1.2, otherwise it is
 * a JSON string (valid YAML double-quoted scalar) with every such character escaped.
 * Parsing stays with the `yaml` package.
 */

/** A value the writer can emit. */
export type YamlValue = string | number | boolean | null | readonly YamlValue[] | YamlMap | Commented;

/** A mapping; keys are emitted in insertion order. */
export interface YamlMap {
  readonly [key: string]: YamlValue | undefined;
}

/** A value with comment lines written before it (inside a sequence) or before its key (in a map). */
export class Commented {
  constructor(readonly comments: readonly string[], readonly value: YamlValue) {}
}

// YAML 1.1 booleans and nulls: plain in 1.2, but not to a 1.1 reader.
const AMBIGUOUS = /^(?:y|n|yes|no|true|false|on|off|null|~)$/i;
const PLAIN = /^[A-Za-z_/<][A-Za-z0-9_./<>@+:-]*$/;
// C0, DEL, C1, line/paragraph separators, BOM, zero-width and bidi controls, lone surrogates.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** A string as a JSON string with every character that any YAML or terminal could misread escaped. */
export function quoted(s: string): string {
  return JSON.stringify(s).replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A scalar as YAML: plain when that is unambiguous to every reader, quoted otherwise. */
export function scalar(v: string | number | boolean | null): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new RangeError(`cannot write ${v} as YAML`);
    return String(v);
  }
  return PLAIN.test(v) && !AMBIGUOUS.test(v) && !v.endsWith(':') ? v : quoted(v);
}

/** One comment line: anything that could end the comment is escaped. */
function comment(text: string, pad: string): string {
  const safe = text.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `${pad}#${safe === '' ? '' : ` ${safe}`}`;
}

function isScalar(v: YamlValue): v is string | number | boolean | null {
  return v === null || typeof v !== 'object';
}

function isEmpty(v: YamlValue): string | null {
  if (Array.isArray(v)) return v.length === 0 ? '[]' : null;
  if (v !== null && typeof v === 'object' && !(v instanceof Commented)) return Object.values(v).some((x) => x !== undefined) ? null : '{}';
  return null;
}

function key(k: string): string {
  return scalar(k);
}

function writeMap(map: YamlMap, pad: string, out: string[], firstPrefix: string | null): void {
  let first = true;
  for (const [k, raw] of Object.entries(map)) {
    if (raw === undefined) continue;
    let v = raw;
    const lead = first && firstPrefix !== null ? firstPrefix : pad;
    if (v instanceof Commented) {
      // A comment cannot sit between `- ` and the first key: put it before the item instead.
      for (const c of v.comments) out.push(comment(c, first && firstPrefix !== null ? pad.slice(2) : pad));
      v = v.value;
    }
    first = false;
    writeEntry(`${lead}${key(k)}:`, v, pad, out);
  }
}

function writeEntry(head: string, v: YamlValue, pad: string, out: string[]): void {
  if (v instanceof Commented) throw new TypeError('nested comments are not supported');
  if (isScalar(v)) return void out.push(`${head} ${scalar(v)}`);
  const empty = isEmpty(v);
  if (empty !== null) return void out.push(`${head} ${empty}`);
  out.push(head);
  if (Array.isArray(v)) writeSeq(v as readonly YamlValue[], `${pad}  `, out);
  else writeMap(v as YamlMap, `${pad}  `, out, null);
}

function writeSeq(seq: readonly YamlValue[], pad: string, out: string[]): void {
  for (const raw of seq) {
    let v = raw;
    if (v instanceof Commented) {
      for (const c of v.comments) out.push(comment(c, pad));
      v = v.value;
    }
    if (v instanceof Commented) throw new TypeError('nested comments are not supported');
    if (isScalar(v)) {
      out.push(`${pad}- ${scalar(v)}`);
      continue;
    }
    const empty = isEmpty(v);
    if (empty !== null) out.push(`${pad}- ${empty}`);
    else if (Array.isArray(v)) {
      out.push(`${pad}-`);
      writeSeq(v as readonly YamlValue[], `${pad}  `, out);
    } else writeMap(v as YamlMap, `${pad}  `, out, `${pad}- `);
  }
}

/** Write one document (a mapping or a sequence) with optional comment lines at its head. */
export function yamlDocument(value: YamlMap | readonly YamlValue[], headComments: readonly string[] = []): string {
  const out: string[] = headComments.map((c) => comment(c, ''));
  if (Array.isArray(value)) writeSeq(value as readonly YamlValue[], '', out);
  else writeMap(value as YamlMap, '', out, null);
  return `${out.join('\n')}\n`;
}
