/**
 * Reading an image's SBOM: CycloneDX JSON (1.2–1.7) and SPDX JSON (2.2, 2.3) as syft and trivy
 * write them, down to what Driftwatch uses: the packages (name, version, purl, type) and which file
 * path belongs to which package. Pure: text in, data out; the document is hostile input.
 *
 * Where a document says a file belongs to a package:
 *
 * | format    | writer | evidence                                                                  |
 * | --------- | ------ | ------------------------------------------------------------------------- |
 * | CycloneDX | syft   | component property `syft:location:N:path` (the file it was found in: the binary itself for a binary or Go cataloger, the package database for dpkg/apk) |
 * | CycloneDX | trivy  | component property `aquasecurity:trivy:FilePath`                          |
 * | CycloneDX | any    | `evidence.occurrences[].location` (1.5+); `dependencies` from a package to a `file` component |
 * | SPDX      | syft   | `relationships` `CONTAINS` package → file (its installed files, from the package database) |
 * | SPDX      | any    | `packages[].hasFiles`; `CONTAINED_BY` file → package                      |
 *
 * A file the document lists without an owner (syft's CycloneDX `file` components, an SPDX file no
 * package contains) is still known to be in the image. Paths are made absolute (trivy writes
 * `usr/lib/…`, the SPDX examples `./src/…`).
 *
 * Bounds, and why: a syft SPDX document of a large image (a JDK on Debian, ~60 000 files with
 * checksums) is 30–40 MiB, so MAX_SBOM_BYTES is 64 MiB; JSON.parse of that peaks at a few hundred
 * MiB, which is why the collector parses one document at a time. Packages, files, string lengths and
 * nesting are bounded below; a document over a count bound is refused (a partial file list would
 * make every missing binary look like drift), an over-long string is skipped and counted.
 */

/** Largest SBOM document accepted, in bytes (see the header for why). */
export const MAX_SBOM_BYTES = 64 << 20;
/** Most packages one document may list. */
export const MAX_SBOM_PACKAGES = 50_000;
/** Most file paths one document may list. */
export const MAX_SBOM_FILES = 500_000;
/** Deepest nesting of CycloneDX `components` followed. */
export const MAX_COMPONENT_DEPTH = 32;
/** Longest path kept (PATH_MAX). */
const MAX_PATH = 4096;
/** Longest name, version and type kept. */
const MAX_NAME = 512;
/** Longest purl kept. */
const MAX_PURL = 2048;

/** One package of an SBOM. */
export interface SbomPackage {
  name: string;
  version: string;
  /** Package URL, or ''. */
  purl: string;
  /** The purl's type (`deb`, `apk`, `golang`), else the writer's package type, else ''. */
  type: string;
}

/** What Driftwatch keeps of an SBOM document. */
export interface ParsedSbom {
  format: 'cyclonedx' | 'spdx';
  /** `1.6`, `SPDX-2.3`. */
  specVersion: string;
  /** The tool that wrote it (`syft 1.18.1`, `trivy 0.58.0`), or ''. */
  tool: string;
  packages: SbomPackage[];
  /** Every file path the document names → the index of its package in `packages`, or -1 when it names no owner. */
  files: Map<string, number>;
  /** The document lists the image's files (file components, SPDX files), not only where packages were found. */
  filesListed: boolean;
  /** Values skipped as malformed or over-long (a name that is not a string, a 5000-character path). */
  skipped: number;
}

/** Why a document was refused: `invalid_document` (not an SBOM we read) or `too_large` (over a bound). */
export class SbomError extends Error {
  constructor(
    readonly code: 'invalid_document' | 'too_large',
    message: string,
  ) {
    super(message);
    this.name = 'SbomError';
  }
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function arrayOf(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

/** Collects packages and files within the bounds. */
class Collector {
  readonly packages: SbomPackage[] = [];
  readonly files = new Map<string, number>();
  skipped = 0;

  text(v: unknown, max: number): string | null {
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string' || v.length > max || v.includes('\0')) {
      this.skipped++;
      return null;
    }
    return v;
  }

  addPackage(p: Json, purlValue: unknown, fallbackType: unknown): number {
    if (this.packages.length >= MAX_SBOM_PACKAGES) throw new SbomError('too_large', `the document lists more than ${MAX_SBOM_PACKAGES} packages`);
    const name = this.text(p.name, MAX_NAME) ?? '';
    const version = this.text(p.version ?? p.versionInfo, MAX_NAME) ?? '';
    const purl = this.text(purlValue, MAX_PURL) ?? '';
    const type = purlType(purl) || (this.text(fallbackType, MAX_NAME) ?? '');
    this.packages.push({ name, version, purl, type });
    return this.packages.length - 1;
  }

  /** Note `raw` as a file path owned by package `owner` (-1: no owner known). The first owner named stays. */
  addFile(raw: unknown, owner: number): string | null {
    const path = typeof raw === 'string' && raw.length <= MAX_PATH ? normalizeSbomPath(raw) : null;
    if (path === null) {
      this.skipped++;
      return null;
    }
    const had = this.files.get(path);
    if (had === undefined) {
      if (this.files.size >= MAX_SBOM_FILES) throw new SbomError('too_large', `the document lists more than ${MAX_SBOM_FILES} files`);
      this.files.set(path, owner);
    } else if (had === -1 && owner !== -1) this.files.set(path, owner);
    return path;
  }
}

/** `pkg:deb/debian/curl@7.88.1` → `deb`; '' for anything that is not a purl. */
function purlType(purl: string): string {
  const m = /^pkg:\/*([a-zA-Z][a-zA-Z0-9.+-]{0,31})\//.exec(purl);
  return m ? (m[1] as string).toLowerCase() : '';
}

/**
 * A path as an absolute, clean file path (`usr/bin/x` and `./usr/bin/x` → `/usr/bin/x`), or null
 * when it is not one (empty, NUL, a `..` segment, a URL or an archive member like `a.jar!/b`).
 */
export function normalizeSbomPath(raw: string): string | null {
  if (raw === '' || raw.includes('\0') || raw.includes('!/') || /^[a-z][a-z0-9+.-]*:/i.test(raw)) return null;
  const parts: string[] = [];
  for (const seg of raw.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') return null;
    parts.push(seg);
  }
  return parts.length === 0 ? null : `/${parts.join('/')}`;
}

/** Parse an SBOM document (CycloneDX JSON or SPDX JSON); throws SbomError. */
export function parseSbom(text: string): ParsedSbom {
  if (text.length > MAX_SBOM_BYTES) throw new SbomError('too_large', `the document is larger than ${MAX_SBOM_BYTES} bytes`);
  let doc: unknown;
  try {
    // V8's JSON.parse is iterative: a deeply nested document cannot exhaust the stack here.
    doc = JSON.parse(text);
  } catch {
    throw new SbomError('invalid_document', 'the document is not valid JSON');
  }
  if (!isObject(doc)) throw new SbomError('invalid_document', 'the document is not a JSON object');
  if (doc.bomFormat === 'CycloneDX') return parseCycloneDx(doc);
  if (typeof doc.spdxVersion === 'string') return parseSpdx(doc);
  throw new SbomError('invalid_document', 'neither CycloneDX JSON (bomFormat "CycloneDX") nor SPDX JSON (spdxVersion)');
}

// ---- CycloneDX ----

const CDX_VERSIONS = /^1\.[2-7]$/;
/** Component types that are not packages of the image. */
const CDX_NOT_PACKAGES = new Set(['file', 'operating-system', 'container', 'data', 'machine-learning-model', 'cryptographic-asset']);
/** Properties whose value is a path the component was found at. */
const CDX_PATH_PROPERTY = /^(syft:location:\d+:path|aquasecurity:trivy:FilePath)$/;

/** The first tool named, through the collector's text bounds (a NUL or over-long value is skipped and counted). */
function cdxTool(metadata: unknown, c: Collector): string {
  if (!isObject(metadata)) return '';
  const tools = metadata.tools;
  // 1.4 and before: an array of {vendor, name, version}; 1.5+: {components: [...], services: [...]}.
  const list = Array.isArray(tools) ? tools : isObject(tools) ? arrayOf(tools.components) : [];
  const first = list.find(isObject);
  if (!first) return '';
  const name = c.text(first.name, MAX_NAME) ?? '';
  const version = c.text(first.version, MAX_NAME) ?? '';
  return `${name} ${version}`.trim().slice(0, MAX_NAME);
}

function parseCycloneDx(doc: Json): ParsedSbom {
  const specVersion = typeof doc.specVersion === 'string' ? doc.specVersion : '';
  if (!CDX_VERSIONS.test(specVersion)) throw new SbomError('invalid_document', `CycloneDX specVersion ${JSON.stringify(specVersion.slice(0, 16))} is not one Driftwatch reads (1.2 to 1.7)`);
  if (doc.components !== undefined && !Array.isArray(doc.components)) throw new SbomError('invalid_document', 'components is not an array');
  const c = new Collector();
  const packageByRef = new Map<string, number>();
  const fileByRef = new Map<string, string>();
  let fileComponents = 0;
  // Depth-first over nested components with an explicit stack: depth is bounded, not the call stack.
  const stack: { list: unknown[]; depth: number }[] = [{ list: arrayOf(doc.components), depth: 0 }];
  while (stack.length > 0) {
    const { list, depth } = stack.pop() as { list: unknown[]; depth: number };
    for (const comp of list) {
      if (!isObject(comp)) {
        c.skipped++;
        continue;
      }
      const ref = typeof comp['bom-ref'] === 'string' ? comp['bom-ref'] : '';
      if (comp.type === 'file') {
        fileComponents++;
        const path = c.addFile(comp.name, -1);
        if (path !== null && ref !== '') fileByRef.set(ref, path);
      } else if (typeof comp.type === 'string' && !CDX_NOT_PACKAGES.has(comp.type)) {
        const index = c.addPackage(comp, comp.purl, cdxProperty(comp, 'syft:package:type') ?? cdxProperty(comp, 'aquasecurity:trivy:PkgType') ?? comp.type);
        if (ref !== '') packageByRef.set(ref, index);
        for (const p of arrayOf(comp.properties)) if (isObject(p) && typeof p.name === 'string' && CDX_PATH_PROPERTY.test(p.name)) c.addFile(p.value, index);
        const evidence = comp.evidence;
        if (isObject(evidence)) for (const o of arrayOf(evidence.occurrences)) if (isObject(o)) c.addFile(o.location, index);
      }
      if (Array.isArray(comp.components)) {
        if (depth + 1 >= MAX_COMPONENT_DEPTH) throw new SbomError('invalid_document', `components nest deeper than ${MAX_COMPONENT_DEPTH} levels`);
        stack.push({ list: comp.components, depth: depth + 1 });
      }
    }
  }
  // A package that depends on a file component owns it.
  for (const d of arrayOf(doc.dependencies)) {
    if (!isObject(d) || typeof d.ref !== 'string') continue;
    const owner = packageByRef.get(d.ref);
    if (owner === undefined) continue;
    for (const on of arrayOf(d.dependsOn)) {
      const path = typeof on === 'string' ? fileByRef.get(on) : undefined;
      if (path !== undefined) c.addFile(path, owner);
    }
  }
  return { format: 'cyclonedx', specVersion, tool: cdxTool(doc.metadata, c), packages: c.packages, files: c.files, filesListed: fileComponents > 0, skipped: c.skipped };
}

function cdxProperty(comp: Json, name: string): string | undefined {
  for (const p of arrayOf(comp.properties)) if (isObject(p) && p.name === name && typeof p.value === 'string') return p.value;
  return undefined;
}

// ---- SPDX ----

const SPDX_VERSIONS = /^SPDX-2\.[0-3]$/;

/** The first `Tool:` creator, through the collector's text bounds (a NUL or over-long value is skipped and counted). */
function spdxTool(creationInfo: unknown, c: Collector): string {
  if (!isObject(creationInfo)) return '';
  for (const creator of arrayOf(creationInfo.creators)) {
    if (typeof creator === 'string' && creator.startsWith('Tool:')) return (c.text(creator, MAX_NAME) ?? '').slice(5).trim();
  }
  return '';
}

function spdxPurl(p: Json): string | undefined {
  for (const r of arrayOf(p.externalRefs)) if (isObject(r) && r.referenceType === 'purl' && typeof r.referenceLocator === 'string') return r.referenceLocator;
  return undefined;
}

function parseSpdx(doc: Json): ParsedSbom {
  const specVersion = doc.spdxVersion as string;
  if (!SPDX_VERSIONS.test(specVersion)) throw new SbomError('invalid_document', `spdxVersion ${JSON.stringify(specVersion.slice(0, 16))} is not one Driftwatch reads (SPDX-2.2, SPDX-2.3)`);
  for (const k of ['packages', 'files', 'relationships'] as const) if (doc[k] !== undefined && !Array.isArray(doc[k])) throw new SbomError('invalid_document', `${k} is not an array`);
  const c = new Collector();
  const packageById = new Map<string, number>();
  const hasFiles: [string, unknown[]][] = [];
  for (const p of arrayOf(doc.packages)) {
    if (!isObject(p)) {
      c.skipped++;
      continue;
    }
    const index = c.addPackage(p, spdxPurl(p), p.primaryPackagePurpose);
    if (typeof p.SPDXID === 'string') packageById.set(p.SPDXID, index);
    if (typeof p.SPDXID === 'string' && Array.isArray(p.hasFiles)) hasFiles.push([p.SPDXID, p.hasFiles]);
  }
  const fileById = new Map<string, string>();
  let listed = 0;
  for (const f of arrayOf(doc.files)) {
    if (!isObject(f)) {
      c.skipped++;
      continue;
    }
    const path = c.addFile(f.fileName, -1);
    if (path === null) continue;
    listed++;
    if (typeof f.SPDXID === 'string') fileById.set(f.SPDXID, path);
  }
  const own = (pkgId: unknown, fileId: unknown) => {
    const owner = typeof pkgId === 'string' ? packageById.get(pkgId) : undefined;
    const path = typeof fileId === 'string' ? fileById.get(fileId) : undefined;
    // Both ends must be what the relationship needs: a file CONTAINS a package too (the SPDX example's jar).
    if (owner !== undefined && path !== undefined) c.addFile(path, owner);
  };
  for (const [pkgId, ids] of hasFiles) for (const id of ids) own(pkgId, id);
  for (const r of arrayOf(doc.relationships)) {
    if (!isObject(r)) continue;
    if (r.relationshipType === 'CONTAINS') own(r.spdxElementId, r.relatedSpdxElement);
    else if (r.relationshipType === 'CONTAINED_BY') own(r.relatedSpdxElement, r.spdxElementId);
  }
  return { format: 'spdx', specVersion, tool: spdxTool(doc.creationInfo, c), packages: c.packages, files: c.files, filesListed: listed > 0, skipped: c.skipped };
}
