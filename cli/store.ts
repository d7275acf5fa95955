/**
 * `driftwatch store migrate`: move an installation from its SQLite file to PostgreSQL
 * (collector/store/migrate.ts does the copy). The PostgreSQL URL comes from a file or the
 * environment, so its password is never on a command line; a URL given with --to must carry none.
 * Exit codes: 0 copied and verified, 1 refused or failed (the target left empty), 2 bad usage.
 */
import { parseArgs } from 'node:util';
import { checkPostgresUrl, DatabaseUrlError, maskSecrets, passwordsOf, readDatabaseUrlFile } from '../collector/store/database-url.js';
import { UsageError, printable, table } from './api-client.js';

/** Help of `driftwatch store`. */
export const STORE_HELP = `driftwatch store — the collector's database
  driftwatch store migrate --from sqlite:FILE --to-file URLFILE
      Copy a collector's SQLite file, everything in it (baselines with their versions, reviews and
      per-node shares, alerts, deviations, exceptions, deliveries, nodes, quarantine, audit log),
      into an empty PostgreSQL database, in one transaction: all of it or nothing. Stop the
      collector first (rows it writes during the copy stay behind). The file is only read; one of
      an older revision is refused with how to upgrade it. A database that already holds data is
      refused and left as it is. Prints the rows per table on both sides and the time taken.
  --from sqlite:FILE     the collector's SQLite file (its --db)
  --to-file FILE         a file holding the postgres://user:password@host:port/database URL
                         (a Kubernetes Secret mounted as a file)
  --to postgres://…      the URL on the command line: only without a password (others on the
                         machine read command lines); the password then comes from PGPASSWORD
                         or ~/.pgpass
Without either flag: DRIFTWATCH_DB_URL_FILE (a file, as --to-file), else DRIFTWATCH_DB_URL (the
URL itself). Passwords are never printed.`;

const OPTIONS = {
  from: { type: 'string' },
  to: { type: 'string' },
  'to-file': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The target's URL, from --to-file, --to or the environment (one of them), checked. */
function targetUrl(values: { to?: string | undefined; 'to-file'?: string | undefined }, env: NodeJS.ProcessEnv): string {
  const given = [values.to !== undefined && '--to', values['to-file'] !== undefined && '--to-file'].filter(Boolean);
  if (given.length > 1) throw new UsageError('give the target once: --to-file FILE or --to URL');
  const file = values['to-file'] ?? (values.to === undefined ? env.DRIFTWATCH_DB_URL_FILE : undefined);
  try {
    if (file !== undefined && file !== '') return readDatabaseUrlFile(file, values['to-file'] !== undefined ? `--to-file ${file}` : `DRIFTWATCH_DB_URL_FILE (${file})`);
    if (values.to !== undefined) {
      // A password on the command line is in every process listing and the shell's history: refused
      // rather than warned about, since by the time a warning is read it has been seen.
      if (passwordsOf(values.to).length > 0) {
        throw new UsageError('--to carries a password, which anyone on this machine can read in the process list: put the URL in a file (--to-file FILE, mode 0600) or in DRIFTWATCH_DB_URL, and change that password');
      }
      return checkPostgresUrl(values.to, '--to');
    }
    if (env.DRIFTWATCH_DB_URL !== undefined && env.DRIFTWATCH_DB_URL !== '') return checkPostgresUrl(env.DRIFTWATCH_DB_URL.trim(), 'DRIFTWATCH_DB_URL');
  } catch (err) {
    throw err instanceof DatabaseUrlError ? new UsageError(err.message) : err;
  }
  throw new UsageError('no target: give --to-file FILE (or DRIFTWATCH_DB_URL_FILE / DRIFTWATCH_DB_URL in the environment)');
}

/** The SQLite file of --from sqlite:FILE. */
function sourcePath(from: string | undefined): string {
  if (from === undefined) throw new UsageError('give the SQLite file: --from sqlite:FILE');
  const path = from.startsWith('sqlite:') ? from.slice('sqlite:'.length) : from;
  if (path === '' || /^[a-z]+:\/\//i.test(path)) throw new UsageError('--from takes sqlite:FILE, the collector\'s SQLite file');
  return path;
}

async function migrateCommand(args: string[], env: NodeJS.ProcessEnv, out: (t: string) => void, secrets: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  if (values.help) return out(STORE_HELP), 0;
  if (positionals.length > 0) throw new UsageError(`unexpected ${positionals.join(' ')}`);
  const from = sourcePath(values.from);
  const url = targetUrl(values, env);
  secrets.push(...passwordsOf(url));
  const { migrateSqliteToPostgres } = await import('../collector/store/migrate.js');
  const { redactedUrl } = await import('../collector/store/postgres/index.js');
  out(`copying ${printable(from)} into ${printable(redactedUrl(url))} (one transaction: all or nothing)`);
  const report = await migrateSqliteToPostgres(from, url, { onTable: (t, n) => out(`  ${t}: ${n} rows`) });
  const rows = [['TABLE', 'SQLITE', 'POSTGRESQL'], ...report.tables.map((t) => [t.table, String(t.source), String(t.target)])];
  rows.push(['baseline_open_alerts (rebuilt, keys)', String(report.openAlertKeys.source), String(report.openAlertKeys.target)]);
  out(table(rows));
  const total = report.tables.reduce((n, t) => n + t.target, 0);
  out(`copied ${total} rows in ${(report.ms / 1000).toFixed(1)} s; every table's count matches. Point the collector at PostgreSQL now; keep ${printable(from)} until you have checked it.`);
  return 0;
}

/** Run `driftwatch store ARGS`. */
export async function runStore(args: string[], env: NodeJS.ProcessEnv = process.env, io = { out: (t: string) => console.log(t), err: (t: string) => console.error(t) }): Promise<number> {
  const secrets: string[] = [];
  // Every line out goes through this: a password in a driver's or server's message is masked too.
  const mask = (text: string) => maskSecrets(text, secrets);
  const out = (t: string) => io.out(mask(t));
  const [verb, ...rest] = args;
  try {
    if (verb === '--help' || verb === '-h' || verb === 'help') return out(STORE_HELP), 0;
    if (verb !== 'migrate') throw new UsageError(`unknown store command ${JSON.stringify((verb ?? '').slice(0, 40))}; one of: migrate`);
    return await migrateCommand(rest, env, out, secrets);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(mask(`driftwatch store: ${(err as Error).message}\n\n${STORE_HELP}`));
      return 2;
    }
    const e = err as Error & { code?: string };
    io.err(mask(`driftwatch store migrate: ${e.name === 'StoreMigrationError' ? '' : 'failed, nothing was copied (the target holds no rows of this attempt): '}${e.message}`));
    return 1;
  }
}
