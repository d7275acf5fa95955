/**
 * The SBOM slice on SQLite: one SBOM per image digest, its packages and its file paths with their
 * owners (issue 22). Its tables are its own; baselines and alerts are joined to it when read.
 */
import type { SbomPackage } from '../../../core/sbom/parse.js';
import { MAX_SBOM_LOOKUP, type SbomFile, type SbomRecord, type SbomStore, type SbomSummary } from '../store.js';
import { writeTransaction, type Db } from './db.js';

/** The SBOM tables (revision 8; created if missing: a file made before them gets them when opened). */
export const SBOM_TABLES = `
    CREATE TABLE IF NOT EXISTS sboms (
      digest        TEXT PRIMARY KEY,
      repository    TEXT NOT NULL,
      format        TEXT NOT NULL,
      spec_version  TEXT NOT NULL,
      tool          TEXT NOT NULL,
      imported_at   INTEGER NOT NULL,
      imported_by   TEXT NOT NULL,
      files_listed  INTEGER NOT NULL,
      package_count INTEGER NOT NULL,
      file_count    INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS sboms_repository ON sboms(repository, imported_at);
    CREATE TABLE IF NOT EXISTS sbom_packages (
      digest  TEXT NOT NULL,
      idx     INTEGER NOT NULL,
      name    TEXT NOT NULL,
      version TEXT NOT NULL,
      purl    TEXT NOT NULL,
      type    TEXT NOT NULL,
      PRIMARY KEY (digest, idx)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS sbom_files (
      digest      TEXT NOT NULL,
      path        TEXT NOT NULL,
      package_idx INTEGER NOT NULL,
      PRIMARY KEY (digest, path)
    ) WITHOUT ROWID;
`;

interface SbomRow {
  digest: string;
  repository: string;
  format: 'cyclonedx' | 'spdx';
  spec_version: string;
  tool: string;
  imported_at: number;
  imported_by: string;
  files_listed: number;
  package_count: number;
  file_count: number;
}

/** A header row as the store's summary (PostgreSQL's rows map the same way). */
export function sbomSummaryOf(r: SbomRow): SbomSummary {
  return {
    digest: r.digest,
    repository: r.repository,
    format: r.format,
    specVersion: r.spec_version,
    tool: r.tool,
    importedAt: Number(r.imported_at),
    importedBy: r.imported_by,
    filesListed: Boolean(r.files_listed),
    packageCount: Number(r.package_count),
    fileCount: Number(r.file_count),
  };
}

const HEADER = `digest, repository, format, spec_version, tool, imported_at, imported_by, files_listed, package_count, file_count`;

/** The SBOM slice on `db`. */
export function sqliteSboms(db: Db): SbomStore {
  const selectOne = db.prepare(`SELECT ${HEADER} FROM sboms WHERE digest = ?`);
  const selectLatest = db.prepare(`SELECT ${HEADER} FROM sboms WHERE repository = ? ORDER BY imported_at DESC, digest LIMIT 1`);
  const selectOfRepository = db.prepare(`SELECT ${HEADER} FROM sboms WHERE repository = ? ORDER BY imported_at DESC, digest LIMIT 100`);
  const upsert = db.prepare(
    `INSERT INTO sboms (${HEADER}) VALUES (@digest, @repository, @format, @specVersion, @tool, @importedAt, @importedBy, @filesListed, @packageCount, @fileCount)
     ON CONFLICT (digest) DO UPDATE SET repository = excluded.repository, format = excluded.format, spec_version = excluded.spec_version, tool = excluded.tool,
       imported_at = excluded.imported_at, imported_by = excluded.imported_by, files_listed = excluded.files_listed, package_count = excluded.package_count, file_count = excluded.file_count`,
  );
  const deletePackages = db.prepare(`DELETE FROM sbom_packages WHERE digest = ?`);
  const deleteFiles = db.prepare(`DELETE FROM sbom_files WHERE digest = ?`);
  const insertPackage = db.prepare(`INSERT INTO sbom_packages (digest, idx, name, version, purl, type) VALUES (?, ?, ?, ?, ?, ?)`);
  const insertFile = db.prepare(`INSERT INTO sbom_files (digest, path, package_idx) VALUES (?, ?, ?)`);
  const selectFile = db.prepare(
    `SELECT f.package_idx AS idx, p.name, p.version, p.purl, p.type FROM sbom_files f LEFT JOIN sbom_packages p ON p.digest = f.digest AND p.idx = f.package_idx WHERE f.digest = ? AND f.path = ?`,
  );
  const selectPackages = db.prepare(`SELECT name, version, purl, type FROM sbom_packages WHERE digest = ? ORDER BY idx LIMIT ?`);

  const put = writeTransaction(db, (r: SbomRecord): boolean => {
    const replaced = selectOne.get(r.digest) !== undefined;
    deletePackages.run(r.digest);
    deleteFiles.run(r.digest);
    upsert.run({ digest: r.digest, repository: r.repository, format: r.format, specVersion: r.specVersion, tool: r.tool, importedAt: r.importedAt, importedBy: r.importedBy, filesListed: r.filesListed ? 1 : 0, packageCount: r.packages.length, fileCount: r.files.size });
    r.packages.forEach((p, i) => insertPackage.run(r.digest, i, p.name, p.version, p.purl, p.type));
    for (const [path, owner] of r.files) insertFile.run(r.digest, path, owner);
    return replaced;
  });

  return {
    putSbom: (r) => put(r),
    getSbom: (digest) => {
      const row = selectOne.get(digest) as SbomRow | undefined;
      return row ? sbomSummaryOf(row) : null;
    },
    latestSbom: (repository) => {
      const row = selectLatest.get(repository) as SbomRow | undefined;
      return row ? sbomSummaryOf(row) : null;
    },
    listSboms: (repository) => (selectOfRepository.all(repository) as SbomRow[]).map(sbomSummaryOf),
    sbomFiles(digest, paths) {
      const out: SbomFile[] = [];
      for (const path of new Set(paths.slice(0, MAX_SBOM_LOOKUP))) {
        const row = selectFile.get(digest, path) as ({ idx: number } & Partial<SbomPackage>) | undefined;
        if (!row) continue;
        out.push({ path, package: row.idx >= 0 && row.name !== undefined && row.name !== null ? { name: row.name, version: row.version ?? '', purl: row.purl ?? '', type: row.type ?? '' } : null });
      }
      return out;
    },
    sbomPackages: (digest, limit) => selectPackages.all(digest, Math.max(0, Math.min(limit, 100_000))) as SbomPackage[],
  };
}
