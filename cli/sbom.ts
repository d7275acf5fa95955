/**
 * `driftwatch sbom ...`: import an image's SBOM into a collector, and read what it holds. Thin
 * client of the collector's HTTP API (POST/GET /api/v1/sboms); tables for people, `--json` for
 * scripts. Exit codes: 0 done, 1 the collector refused or failed, 2 bad usage.
 */
import { readFileSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { MAX_SBOM_BYTES } from '../core/sbom/parse.js';
import { CLIENT_OPTIONS as COMMON, UsageError, createApiClient, printable, table } from './api-client.js';

/** Help of `driftwatch sbom`. */
export const SBOM_HELP = `driftwatch sbom — what each image version is made of (CycloneDX JSON or SPDX JSON, from syft or trivy)
  driftwatch sbom import FILE --image REPO@sha256:DIGEST   store FILE as the SBOM of that image digest
                                                            (replaces the one it had)
  driftwatch sbom show sha256:DIGEST                       its header, counts and first packages
  driftwatch sbom list REPO                                the SBOMs of a repository, last imported first
Make one with:  syft IMAGE -o spdx-json=sbom.json    or   trivy image --format cyclonedx -o sbom.json IMAGE
Common flags: --url, --token-file, --json (see driftwatch alerts --help)`;

const s = (v: unknown) => printable(String(v ?? ''));

async function sbom(args: string[], env: NodeJS.ProcessEnv, out: (t: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { ...COMMON, image: { type: 'string' } }, allowPositionals: true, strict: true });
  if (values.help) return out(SBOM_HELP), 0;
  const [verb, arg, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected ${extra.join(' ')}`);
  if (arg === undefined) throw new UsageError(`${verb ?? 'sbom'} needs an argument (driftwatch sbom --help)`);
  const api = createApiClient(values, env);
  const json = (v: unknown) => (out(JSON.stringify(v, null, 2)), 0);
  if (verb === 'import') {
    if (values.image === undefined || !/@sha256:[0-9a-f]{64}$/.test(values.image)) throw new UsageError('import needs --image REPO@sha256:<64 hex digits>: the digest the SBOM describes');
    const size = statSync(arg).size;
    if (size > MAX_SBOM_BYTES) throw new UsageError(`${printable(arg)} is ${size} bytes; a collector takes SBOMs up to ${MAX_SBOM_BYTES}`);
    const r = await api.raw('POST', `/api/v1/sboms?image=${encodeURIComponent(values.image)}`, { text: readFileSync(arg, 'utf8'), contentType: 'application/json' });
    const result = JSON.parse(r.text);
    if (values.json) return json(result);
    out(`${s(result.digest)}  ${s(result.repository)}: ${s(result.format)} ${s(result.specVersion)} by ${s(result.tool) || 'an unnamed tool'}, ${s(result.packages)} packages, ${s(result.files)} files${result.filesListed ? '' : ' (no file list: executables cannot be checked against it)'}${result.replaced ? ' (replaced the previous SBOM)' : ''}`);
    for (const n of Array.isArray(result.notices) ? result.notices : []) out(`notice  ${s(n.key)}: ${s(n.text)}`);
    return 0;
  }
  if (verb === 'show') {
    const r = await api.call('GET', `/api/v1/sboms/${encodeURIComponent(arg)}`);
    if (values.json) return json(r);
    out(`${s(r.digest)}  ${s(r.repository)}: ${s(r.format)} ${s(r.specVersion)} by ${s(r.tool) || '-'}, imported ${s(r.importedAt)} by ${s(r.importedBy)}`);
    out(`  ${s(r.packageCount)} packages, ${s(r.fileCount)} files${r.filesListed ? '' : ' (no file list)'}`);
    const rows = [['PACKAGE', 'VERSION', 'TYPE', 'PURL']];
    for (const p of Array.isArray(r.packages) ? r.packages : []) rows.push([s(p.name), s(p.version), s(p.type), s(p.purl)]);
    if (rows.length > 1) out(table(rows));
    return 0;
  }
  if (verb === 'list') {
    const r = await api.call('GET', `/api/v1/sboms?repository=${encodeURIComponent(arg)}`);
    if (values.json) return json(r);
    if (r.items.length === 0) return out(`no SBOM for ${printable(arg)}`), 0;
    const rows = [['DIGEST', 'FORMAT', 'TOOL', 'PACKAGES', 'FILES', 'IMPORTED']];
    for (const x of r.items) rows.push([s(x.digest), `${s(x.format)} ${s(x.specVersion)}`, s(x.tool), s(x.packageCount), s(x.fileCount), s(x.importedAt)]);
    return out(table(rows)), 0;
  }
  throw new UsageError(`unknown sbom command ${JSON.stringify(String(verb).slice(0, 40))}; one of: import, show, list`);
}

/** Run `driftwatch sbom ARGS`; the exit code. */
export async function runSbom(args: string[], env: NodeJS.ProcessEnv = process.env, out: (t: string) => void = (t) => console.log(t), err: (t: string) => void = (t) => console.error(t)): Promise<number> {
  try {
    return await sbom(args, env, out);
  } catch (e) {
    const message = (e as Error).message;
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) return err(`driftwatch sbom: ${message}\n\n${SBOM_HELP}`), 2;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return err(`driftwatch sbom: no such file: ${printable((e as NodeJS.ErrnoException).path ?? '')}`), 1;
    return err(`driftwatch sbom: ${printable(message)}`), 1;
  }
}

/** Lines for `baselines show`: the SBOM behind a baseline, each process entry's package, and the version notice. */
export function sbomLines(joined: any): string[] {
  if (!joined || typeof joined !== 'object' || !joined.sbom) return ['  sbom       none imported for this image (driftwatch sbom --help)'];
  const lines = [`  sbom       ${s(joined.sbom.digest)} (${s(joined.sbom.tool) || s(joined.sbom.format)})${joined.sbom.note ? `: ${s(joined.sbom.note)}` : ''}`];
  for (const e of Array.isArray(joined.entries) ? joined.entries : []) lines.push(`  package    ${s(e.text)}${e.notInSbom ? '  <- drift evidence' : ''}`);
  if (joined.notice) {
    lines.push(`NOTICE  ${s(joined.notice.text)}`);
    for (const c of Array.isArray(joined.notice.changes) ? joined.notice.changes : []) {
      const p = (x: any) => (x ? `${s(x.name)} ${s(x.version)}` : '-');
      lines.push(`  ${s(c.change).padEnd(9)} ${s(c.exe)}: ${p(c.before)} -> ${p(c.after)}`);
    }
  }
  return lines;
}
