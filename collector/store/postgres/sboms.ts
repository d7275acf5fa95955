/**
 * The SBOM slice on PostgreSQL (issue 22): the tables of migration 4, the same rows as SQLite's
 * (sqlite/sboms.ts). Packages and files go in by arrays (unnest), a chunk per statement, so that a
 * document of half a million files is a few hundred statements in one transaction, not a million.
 */
import type pg from 'pg';
import type { SbomPackage } from '../../../core/sbom/parse.js';
import type { Async } from '../async.js';
import { sbomSummaryOf } from '../sqlite/sboms.js';
import { MAX_SBOM_LOOKUP, type SbomRecord, type SbomStore } from '../store.js';
import { transaction, type Sql } from './db.js';

/** Rows per INSERT … SELECT unnest(…). */
const CHUNK = 5_000;

/** Migration 4's statements (schema.ts lists it). */
export const SBOM_MIGRATION_SQL = `
    CREATE TABLE sboms (
      digest        TEXT COLLATE "C" PRIMARY KEY,
      repository    TEXT COLLATE "C" NOT NULL,
      format        TEXT NOT NULL,
      spec_version  TEXT NOT NULL,
      tool          TEXT NOT NULL,
      imported_at   BIGINT NOT NULL,
      imported_by   TEXT NOT NULL,
      files_listed  BOOLEAN NOT NULL,
      package_count BIGINT NOT NULL,
      file_count    BIGINT NOT NULL
    );
    CREATE INDEX sboms_repository ON sboms (repository, imported_at);
    CREATE TABLE sbom_packages (
      digest  TEXT COLLATE "C" NOT NULL REFERENCES sboms (digest) ON DELETE CASCADE,
      idx     INTEGER NOT NULL,
      name    TEXT NOT NULL,
      version TEXT NOT NULL,
      purl    TEXT NOT NULL,
      type    TEXT NOT NULL,
      PRIMARY KEY (digest, idx)
    );
    CREATE TABLE sbom_files (
      digest      TEXT COLLATE "C" NOT NULL REFERENCES sboms (digest) ON DELETE CASCADE,
      path        TEXT COLLATE "C" NOT NULL,
      package_idx INTEGER NOT NULL,
      PRIMARY KEY (digest, path)
    );
`;

const HEADER = `digest, repository, format, spec_version, tool, imported_at, imported_by, files_listed, package_count, file_count`;

type Row = Parameters<typeof sbomSummaryOf>[0];

/** The SBOM slice on `pool`. */
export function postgresSboms(pool: pg.Pool, sql: Sql): Async<SbomStore> {
  return {
    putSbom: (r: SbomRecord) =>
      transaction(pool, async (tx) => {
        // The row lock on the header serializes two imports of one digest.
        const had = await tx(`SELECT 1 FROM sboms WHERE digest = $1 FOR UPDATE`, [r.digest]);
        await tx(`DELETE FROM sboms WHERE digest = $1`, [r.digest]);
        await tx(`INSERT INTO sboms (${HEADER}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, [
          r.digest,
          r.repository,
          r.format,
          r.specVersion,
          r.tool,
          r.importedAt,
          r.importedBy,
          r.filesListed,
          r.packages.length,
          r.files.size,
        ]);
        for (let i = 0; i < r.packages.length; i += CHUNK) {
          const part = r.packages.slice(i, i + CHUNK);
          await tx(
            `INSERT INTO sbom_packages (digest, idx, name, version, purl, type) SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::text[])`,
            [r.digest, part.map((_, j) => i + j), part.map((p) => p.name), part.map((p) => p.version), part.map((p) => p.purl), part.map((p) => p.type)],
          );
        }
        const files = [...r.files];
        for (let i = 0; i < files.length; i += CHUNK) {
          const part = files.slice(i, i + CHUNK);
          await tx(`INSERT INTO sbom_files (digest, path, package_idx) SELECT $1, * FROM unnest($2::text[], $3::int[])`, [r.digest, part.map(([p]) => p), part.map(([, o]) => o)]);
        }
        return (had.rowCount ?? 0) > 0;
      }),
    async getSbom(digest) {
      const { rows } = await sql<Row>(`SELECT ${HEADER} FROM sboms WHERE digest = $1`, [digest]);
      return rows[0] ? sbomSummaryOf(rows[0]) : null;
    },
    async latestSbom(repository) {
      const { rows } = await sql<Row>(`SELECT ${HEADER} FROM sboms WHERE repository = $1 ORDER BY imported_at DESC, digest LIMIT 1`, [repository]);
      return rows[0] ? sbomSummaryOf(rows[0]) : null;
    },
    async listSboms(repository) {
      const { rows } = await sql<Row>(`SELECT ${HEADER} FROM sboms WHERE repository = $1 ORDER BY imported_at DESC, digest LIMIT 100`, [repository]);
      return rows.map(sbomSummaryOf);
    },
    async sbomFiles(digest, paths) {
      const wanted = [...new Set(paths.slice(0, MAX_SBOM_LOOKUP))];
      const { rows } = await sql<{ path: string; idx: number; name: string | null; version: string | null; purl: string | null; type: string | null }>(
        `SELECT f.path, f.package_idx AS idx, p.name, p.version, p.purl, p.type FROM sbom_files f LEFT JOIN sbom_packages p ON p.digest = f.digest AND p.idx = f.package_idx
         WHERE f.digest = $1 AND f.path = ANY($2::text[])`,
        [digest, wanted],
      );
      const byPath = new Map(rows.map((r) => [r.path, r]));
      // In the order asked, as SQLite answers.
      return wanted.flatMap((path) => {
        const r = byPath.get(path);
        if (!r) return [];
        return [{ path, package: r.idx >= 0 && r.name !== null ? { name: r.name, version: r.version ?? '', purl: r.purl ?? '', type: r.type ?? '' } : null }];
      });
    },
    async sbomPackages(digest, limit) {
      const { rows } = await sql<SbomPackage>(`SELECT name, version, purl, type FROM sbom_packages WHERE digest = $1 ORDER BY idx LIMIT $2`, [digest, Math.max(0, Math.min(limit, 100_000))]);
      return rows;
    },
  };
}
