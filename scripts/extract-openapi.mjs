#!/usr/bin/env node
/**
 * Extract operations from a publisher's OpenAPI (3.x) or Swagger (2.0) description into a small
 * fixture for payload tests: the chosen operations, and every object their `$ref`s reach (followed
 * transitively), copied unchanged. Nothing is edited by hand: run again on the same input, the same
 * file comes out (keys in source order, two-space JSON).
 *
 *   node scripts/extract-openapi.mjs --in FULL.json --out fixtures/specs/x.json \
 *     --source 'owner/repo @ commit: path' [--drop-key x-octokit] --op 'post /path' ...
 *
 * `--drop-key K` removes every key K (a vendor extension another packager added) wherever it is.
 * The output adds one key, `x-driftwatch-extract`: the source, the operations and this command.
 */
import { readFileSync, writeFileSync } from 'node:fs';

function args(argv) {
  const out = { ops: [], drop: [] };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`${k} needs a value`);
    if (k === '--in') out.in = v;
    else if (k === '--out') out.out = v;
    else if (k === '--source') out.source = v;
    else if (k === '--op') out.ops.push(v);
    else if (k === '--drop-key') out.drop.push(v);
    else throw new Error(`unknown option ${k}`);
  }
  if (!out.in || !out.out || !out.source || out.ops.length === 0) throw new Error('usage: --in FILE --out FILE --source TEXT --op "method /path" ...');
  return out;
}

const opts = args(process.argv.slice(2));
const doc = JSON.parse(readFileSync(opts.in, 'utf8'));

/** Follow a local JSON pointer. */
function at(pointer) {
  if (!pointer.startsWith('#/')) throw new Error(`only local refs are followed: ${pointer}`);
  let cur = doc;
  const keys = pointer.slice(2).split('/').map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
  for (const k of keys) {
    if (cur === null || typeof cur !== 'object' || !(k in cur)) throw new Error(`unresolved ref ${pointer}`);
    cur = cur[k];
  }
  return { keys, value: cur };
}

/** A copy of `v` without the dropped keys; every $ref met is queued. */
function copy(v, queue) {
  if (Array.isArray(v)) return v.map((x) => copy(x, queue));
  if (v === null || typeof v !== 'object') return v;
  const out = {};
  for (const [k, x] of Object.entries(v)) {
    if (opts.drop.includes(k)) continue;
    if (k === '$ref' && typeof x === 'string') queue.push(x);
    out[k] = copy(x, queue);
  }
  return out;
}

/** Set `value` at `keys` in `target`, creating objects on the way. */
function put(target, keys, value) {
  let cur = target;
  for (const k of keys.slice(0, -1)) cur = cur[k] ??= {};
  cur[keys.at(-1)] = value;
}

const out = {};
for (const k of ['openapi', 'swagger', 'info', 'host', 'basePath', 'servers']) if (k in doc) out[k] = copy(doc[k], []);
out['x-driftwatch-extract'] = {
  source: opts.source,
  operations: opts.ops,
  command: `node scripts/extract-openapi.mjs --source '${opts.source}'${opts.drop.map((d) => ` --drop-key ${d}`).join('')}${opts.ops.map((o) => ` --op '${o}'`).join('')}`,
};
const queue = [];
out.paths = {};
for (const op of opts.ops) {
  const m = /^(get|put|post|patch|delete) (\/\S*)$/.exec(op);
  if (!m) throw new Error(`--op must be "method /path": ${op}`);
  const [, method, path] = m;
  const item = doc.paths?.[path];
  if (!item?.[method]) throw new Error(`no operation ${method} ${path} in ${opts.in}`);
  out.paths[path] ??= {};
  // Parameters shared by every method of the path belong to the operation too.
  if (item.parameters) out.paths[path].parameters = copy(item.parameters, queue);
  out.paths[path][method] = copy(item[method], queue);
}
const seen = new Set();
while (queue.length > 0) {
  const ref = queue.shift();
  if (seen.has(ref)) continue;
  seen.add(ref);
  const { keys, value } = at(ref);
  put(out, keys, copy(value, queue));
}
// Reached objects in the order of the source document, so the file is the same whatever the queue order.
function ordered(src, dst) {
  if (dst === null || typeof dst !== 'object' || Array.isArray(dst) || src === null || typeof src !== 'object') return dst;
  const res = {};
  for (const k of Object.keys(src)) if (k in dst) res[k] = ordered(src[k], dst[k]);
  for (const k of Object.keys(dst)) if (!(k in res)) res[k] = dst[k];
  return res;
}
for (const section of ['components', 'definitions', 'parameters', 'responses']) if (out[section]) out[section] = ordered(doc[section], out[section]);
writeFileSync(opts.out, `${JSON.stringify(out, null, 2)}\n`);
console.log(`${opts.out}: ${opts.ops.length} operations, ${seen.size} referenced objects`);
