/**
 * The PostgreSQL store's schema, as numbered migrations (schema_version holds the last applied).
 * Revision 1 is the SQLite store's revision 4, table for table and column for column, with:
 * - BIGINT for every time (ms since the epoch), count and sequence (identity columns for `seq`);
 * - TEXT for JSON, as SQLite keeps it: the stored text is what the API returns and what sinks and
 *   the audit log carry, byte for byte (JSONB would reorder keys and drop whitespace), no query
 *   looks inside it (a header's state is a column of its own), and the row mappers are the SQLite
 *   store's;
 * - COLLATE "C" on the text columns lists are ordered by or compared on, so that ORDER BY sorts by
 *   bytes as SQLite does, whatever the database's locale;
 * - baseline_keys: one row per baseline key, the row every write to that key locks (db.ts lockKeys);
 * - the open-alert counter kept by a trigger, as SQLite's triggers keep it.
 * Revision 2 partitions deviations by day of receipt (partitions.ts says why and how); an id is
 * stored once through deviation_ids, since a unique index of a partitioned table must hold the
 * partition key (see the migration).
 */
import { IMAGE_TICKETS_MIGRATION } from './tickets.js';
import { createDaysInMigration, dayOf, daysAhead, DAY_MS } from './partitions.js';
import type { Sql } from './db.js';
import { SBOM_MIGRATION_SQL } from './sboms.js';

/** One migration: the revision it brings the database to, and its statements (run in one transaction). */
export interface PostgresMigration {
  version: number;
  description: string;
  sql: string;
  /** What runs after `sql` in the same transaction, when the statements depend on the data. */
  run?: (sql: Sql, now: number) => Promise<void>;
}

/** How far back migration 2 makes day partitions for existing rows (older ones go to DEFAULT). */
const MIGRATED_DAYS = 400;

const OPEN = `('firing', 'acknowledged')`;

/** Every migration, in order. Never edit one that shipped: add the next. */
export const MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    description: 'the tables of the SQLite store revision 4',
    sql: `
    CREATE TABLE deviations (
      seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      id           TEXT COLLATE "C" NOT NULL UNIQUE,
      fingerprint  TEXT COLLATE "C" NOT NULL,
      baseline_key TEXT COLLATE "C" NOT NULL,
      kind         TEXT NOT NULL,
      time         BIGINT NOT NULL,
      received_at  BIGINT NOT NULL,
      node         TEXT COLLATE "C" NOT NULL,
      body         TEXT NOT NULL
    );
    CREATE INDEX deviations_fingerprint ON deviations (fingerprint, seq);
    CREATE INDEX deviations_key ON deviations (baseline_key, seq);
    CREATE INDEX deviations_node ON deviations (node, seq);
    CREATE INDEX deviations_received ON deviations (received_at);
    CREATE TABLE alerts (
      seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      fingerprint       TEXT COLLATE "C" NOT NULL UNIQUE,
      state             TEXT NOT NULL DEFAULT 'firing',
      baseline_key      TEXT COLLATE "C" NOT NULL,
      image             TEXT COLLATE "C" NOT NULL,
      kind              TEXT NOT NULL,
      entry             TEXT NOT NULL,
      reason            TEXT NOT NULL,
      explanation       TEXT NOT NULL,
      nearest           TEXT NOT NULL,
      first_seen        BIGINT NOT NULL,
      last_seen         BIGINT NOT NULL,
      count             BIGINT NOT NULL,
      nodes             TEXT NOT NULL,
      pods              TEXT NOT NULL,
      last_deviation_id TEXT NOT NULL,
      example           TEXT NOT NULL,
      created_at        BIGINT NOT NULL,
      severity          TEXT NOT NULL DEFAULT 'medium',
      rule_id           TEXT NOT NULL DEFAULT '',
      rule_reason       TEXT NOT NULL DEFAULT '',
      team              TEXT NOT NULL DEFAULT '',
      namespace         TEXT COLLATE "C" NOT NULL DEFAULT '',
      labels            TEXT NOT NULL DEFAULT '{}',
      receivers         TEXT NOT NULL DEFAULT '[]',
      suppressed_by     TEXT NOT NULL DEFAULT '',
      state_by          TEXT NOT NULL DEFAULT '',
      state_at          BIGINT NOT NULL DEFAULT 0,
      state_comment     TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX alerts_image ON alerts (image, seq);
    CREATE INDEX alerts_severity ON alerts (severity, seq);
    CREATE INDEX alerts_namespace ON alerts (namespace, seq);
    CREATE INDEX alerts_state ON alerts (state, seq);
    CREATE TABLE baseline_keys (
      key TEXT COLLATE "C" PRIMARY KEY
    );
    CREATE TABLE baseline_nodes (
      key         TEXT COLLATE "C" NOT NULL,
      node        TEXT COLLATE "C" NOT NULL,
      version     BIGINT NOT NULL,
      received_at BIGINT NOT NULL,
      state       TEXT NOT NULL,
      header      TEXT NOT NULL,
      PRIMARY KEY (key, node)
    );
    CREATE INDEX baseline_nodes_node ON baseline_nodes (node);
    CREATE TABLE baseline_entry_nodes (
      key          TEXT COLLATE "C" NOT NULL,
      entry_id     TEXT COLLATE "C" NOT NULL,
      node         TEXT COLLATE "C" NOT NULL,
      first_seen   BIGINT NOT NULL,
      last_seen    BIGINT NOT NULL,
      count        BIGINT NOT NULL,
      example_keys TEXT,
      PRIMARY KEY (key, entry_id, node)
    );
    CREATE INDEX baseline_entry_nodes_node ON baseline_entry_nodes (node, key);
    CREATE TABLE baseline_entries (
      key           TEXT COLLATE "C" NOT NULL,
      entry_id      TEXT COLLATE "C" NOT NULL,
      type          TEXT NOT NULL,
      first_seen    BIGINT NOT NULL,
      last_seen     BIGINT NOT NULL,
      count         BIGINT NOT NULL,
      nodes         BIGINT NOT NULL,
      examples      TEXT NOT NULL,
      dropped_nodes TEXT NOT NULL DEFAULT '[]',
      PRIMARY KEY (key, entry_id)
    );
    CREATE TABLE outbox (
      seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      alert      TEXT COLLATE "C" NOT NULL,
      sink       TEXT COLLATE "C" NOT NULL,
      action     TEXT NOT NULL,
      body       TEXT NOT NULL,
      state      TEXT NOT NULL,
      attempts   BIGINT NOT NULL DEFAULT 0,
      next_at    BIGINT NOT NULL,
      last_error TEXT NOT NULL DEFAULT '',
      created_at BIGINT NOT NULL,
      done_at    BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX outbox_due ON outbox (sink, state, next_at, seq);
    CREATE INDEX outbox_alert ON outbox (alert, seq);
    CREATE TABLE baseline_reviews (
      key     TEXT COLLATE "C" PRIMARY KEY,
      state   TEXT NOT NULL DEFAULT '',
      version BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE baseline_entry_reviews (
      key      TEXT COLLATE "C" NOT NULL,
      entry_id TEXT COLLATE "C" NOT NULL,
      status   TEXT NOT NULL,
      by       TEXT NOT NULL,
      at       BIGINT NOT NULL,
      reason   TEXT NOT NULL,
      PRIMARY KEY (key, entry_id)
    );
    CREATE TABLE baseline_versions (
      key     TEXT COLLATE "C" NOT NULL,
      version BIGINT NOT NULL,
      at      BIGINT NOT NULL,
      by      TEXT NOT NULL,
      action  TEXT NOT NULL,
      reason  TEXT NOT NULL,
      state   TEXT NOT NULL,
      entries TEXT NOT NULL,
      removed TEXT NOT NULL,
      PRIMARY KEY (key, version)
    );
    CREATE TABLE exceptions (
      id          TEXT COLLATE "C" PRIMARY KEY,
      key_glob    TEXT NOT NULL,
      entry_glob  TEXT NOT NULL,
      namespace   TEXT NOT NULL,
      reason      TEXT NOT NULL,
      owner       TEXT NOT NULL,
      created_by  TEXT NOT NULL,
      created_at  BIGINT NOT NULL,
      expires_at  BIGINT NOT NULL,
      revoked_at  BIGINT NOT NULL DEFAULT 0,
      revoked_by  TEXT NOT NULL DEFAULT '',
      reminded_at BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE quarantined_nodes (
      node   TEXT COLLATE "C" PRIMARY KEY,
      by     TEXT NOT NULL,
      at     BIGINT NOT NULL,
      reason TEXT NOT NULL
    );
    CREATE TABLE nodes (
      node          TEXT COLLATE "C" PRIMARY KEY,
      agent_version TEXT NOT NULL,
      sources       TEXT NOT NULL,
      first_seen    BIGINT NOT NULL,
      last_contact  BIGINT NOT NULL,
      spooled       BIGINT NOT NULL,
      spool_bytes   BIGINT NOT NULL,
      lag_ms        BIGINT NOT NULL,
      spool_dropped BIGINT NOT NULL,
      watermark     BIGINT NOT NULL,
      silent_since  BIGINT NOT NULL,
      stopped_at    BIGINT NOT NULL
    );
    CREATE TABLE audit_log (
      seq    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      time   BIGINT NOT NULL,
      actor  TEXT NOT NULL,
      role   TEXT NOT NULL,
      action TEXT NOT NULL,
      target TEXT NOT NULL,
      before TEXT NOT NULL,
      after  TEXT NOT NULL
    );
    -- Open alerts per baseline key, for the baseline list (see the SQLite store's OPEN_ALERT_COUNTER).
    CREATE TABLE baseline_open_alerts (key TEXT COLLATE "C" PRIMARY KEY, n BIGINT NOT NULL);
    CREATE FUNCTION alerts_open_count() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'UPDATE' AND (OLD.state IN ${OPEN}) = (NEW.state IN ${OPEN}) AND OLD.baseline_key = NEW.baseline_key THEN
        RETURN NULL;
      END IF;
      IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.state IN ${OPEN} THEN
        UPDATE baseline_open_alerts SET n = n - 1 WHERE key = OLD.baseline_key;
      END IF;
      IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.state IN ${OPEN} THEN
        INSERT INTO baseline_open_alerts (key, n) VALUES (NEW.baseline_key, 1) ON CONFLICT (key) DO UPDATE SET n = baseline_open_alerts.n + 1;
      END IF;
      RETURN NULL;
    END
    $$;
    CREATE TRIGGER alerts_open_count AFTER INSERT OR DELETE OR UPDATE OF state, baseline_key ON alerts
      FOR EACH ROW EXECUTE FUNCTION alerts_open_count();
    `,
  },
  {
    version: 2,
    description: 'deviations partitioned by day of receipt; ids stored once through deviation_ids',
    // PostgreSQL requires the partition key in every unique index of a partitioned table, so `id`
    // can no longer be UNIQUE there. Adding received_at to the key would not do: a batch replayed to
    // another replica is received at another time. The id's time is the agent's event time, which a
    // hostile agent picks and which is not what retention prunes on. So the ids live in a narrow
    // table of their own, deviation_ids (id PRIMARY KEY, received_at), pruned with the same cut-off
    // as the deviations, and a BEFORE INSERT trigger claims the id there: a row whose id is taken
    // is skipped (the trigger returns NULL), so every INSERT into deviations, from ingest, a copy
    // from SQLite or by hand, stores an id once; two replicas inserting one id at once meet on the
    // primary key, the second waits for the first and then skips. RETURNING lists only the stored
    // rows, as ON CONFLICT DO NOTHING did. The primary key is (seq, received_at); seq stays unique
    // as an identity column.
    sql: `
    ALTER TABLE deviations RENAME TO deviations_v1;
    ALTER TABLE deviations_v1 RENAME CONSTRAINT deviations_pkey TO deviations_v1_pkey;
    ALTER TABLE deviations_v1 RENAME CONSTRAINT deviations_id_key TO deviations_v1_id_key;
    DROP INDEX deviations_fingerprint, deviations_key, deviations_node, deviations_received;
    CREATE TABLE deviations (
      seq          BIGINT GENERATED ALWAYS AS IDENTITY,
      id           TEXT COLLATE "C" NOT NULL,
      fingerprint  TEXT COLLATE "C" NOT NULL,
      baseline_key TEXT COLLATE "C" NOT NULL,
      kind         TEXT NOT NULL,
      time         BIGINT NOT NULL,
      received_at  BIGINT NOT NULL,
      node         TEXT COLLATE "C" NOT NULL,
      body         TEXT NOT NULL,
      PRIMARY KEY (seq, received_at)
    ) PARTITION BY RANGE (received_at);
    CREATE INDEX deviations_fingerprint ON deviations (fingerprint, seq);
    CREATE INDEX deviations_key ON deviations (baseline_key, seq);
    CREATE INDEX deviations_node ON deviations (node, seq);
    CREATE INDEX deviations_received ON deviations (received_at);
    CREATE TABLE deviations_default PARTITION OF deviations DEFAULT;
    CREATE TABLE deviation_ids (
      id          TEXT COLLATE "C" PRIMARY KEY,
      received_at BIGINT NOT NULL
    );
    CREATE INDEX deviation_ids_received ON deviation_ids (received_at);
    CREATE FUNCTION deviations_once() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO deviation_ids (id, received_at) VALUES (NEW.id, NEW.received_at) ON CONFLICT (id) DO NOTHING;
      IF FOUND THEN
        RETURN NEW;
      END IF;
      RETURN NULL;
    END
    $$;
    CREATE TRIGGER deviations_once BEFORE INSERT ON deviations FOR EACH ROW EXECUTE FUNCTION deviations_once();
    `,
    async run(sql, now) {
      // Partitions for the days the existing rows were received on (the last MIGRATED_DAYS), and ahead.
      const { rows } = await sql<{ day: number }>(
        `SELECT DISTINCT received_at / ${DAY_MS} AS day FROM deviations_v1 WHERE received_at >= $1 AND received_at < $2`,
        [(dayOf(now) - MIGRATED_DAYS) * DAY_MS, (dayOf(now) + 1) * DAY_MS],
      );
      await createDaysInMigration(sql, [...rows.map((r) => Number(r.day)), ...daysAhead(now)]);
      await sql(
        `INSERT INTO deviations (seq, id, fingerprint, baseline_key, kind, time, received_at, node, body) OVERRIDING SYSTEM VALUE
         SELECT seq, id, fingerprint, baseline_key, kind, time, received_at, node, body FROM deviations_v1 ORDER BY seq`,
      );
      await sql(`SELECT setval(pg_get_serial_sequence('deviations', 'seq'), (SELECT coalesce(max(seq), 0) + 1 FROM deviations_v1), false)`);
      await sql(`DROP TABLE deviations_v1`);
    },
  },
  {
    version: 3,
    description: 'outbox delivery leases and periodic job leases (several replicas)',
    sql: `
    -- Who is delivering an outbox row, and until when ('' and 0: nobody); the claim skips live leases.
    ALTER TABLE outbox ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
    ALTER TABLE outbox ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
    -- The periodic jobs' leases: the replica whose lease is live runs the job.
    CREATE TABLE job_leases (
      job   TEXT COLLATE "C" PRIMARY KEY,
      owner TEXT NOT NULL,
      until BIGINT NOT NULL
    );
    `,
  },
  {
    version: 4,
    description: 'storm-control counts shared by replicas',
    sql: `
    -- What each replica counted in its open storm-control windows: N replicas keep one rate. Rows
    -- live as long as their window; nothing refers to them.
    CREATE TABLE storm_counts (
      owner      TEXT COLLATE "C" NOT NULL,
      scope      TEXT COLLATE "C" NOT NULL,
      start      BIGINT NOT NULL,
      until      BIGINT NOT NULL,
      count      INTEGER NOT NULL,
      summarized BOOLEAN NOT NULL,
      PRIMARY KEY (owner, scope, start)
    );
    `,
  },
  { version: 5, description: 'image tickets: one ticket per image repository (ticket sinks)', sql: IMAGE_TICKETS_MIGRATION },
  {
    version: 6,
    description: 'SBOMs per image digest: packages and file owners (issue 22)',
    sql: SBOM_MIGRATION_SQL,
  },
  {
    version: 7,
    description: 'image inventory: nodes\' container reports, image versions and where they were seen',
    // The SQLite store's IMAGES_TABLES. A report replaces its node's rows only when it is not older
    // than the stored one (the image_reports row is the lock two replicas meet on).
    sql: `
    CREATE TABLE image_reports (
      node        TEXT COLLATE "C" PRIMARY KEY,
      reported_at BIGINT NOT NULL,
      source      TEXT NOT NULL,
      containers  BIGINT NOT NULL,
      total       BIGINT NOT NULL,
      truncated   BOOLEAN NOT NULL
    );
    CREATE TABLE image_containers (
      node         TEXT COLLATE "C" NOT NULL,
      container_id TEXT COLLATE "C" NOT NULL,
      repository   TEXT COLLATE "C" NOT NULL,
      tag          TEXT COLLATE "C" NOT NULL,
      digest       TEXT COLLATE "C" NOT NULL,
      image_id     TEXT NOT NULL,
      name         TEXT NOT NULL,
      namespace    TEXT COLLATE "C" NOT NULL,
      pod          TEXT COLLATE "C" NOT NULL,
      workload     TEXT NOT NULL,
      PRIMARY KEY (node, container_id)
    );
    CREATE INDEX image_containers_version ON image_containers (repository, tag, digest);
    CREATE TABLE image_versions (
      repository TEXT COLLATE "C" NOT NULL,
      tag        TEXT COLLATE "C" NOT NULL,
      digest     TEXT COLLATE "C" NOT NULL,
      first_seen BIGINT NOT NULL,
      last_seen  BIGINT NOT NULL,
      PRIMARY KEY (repository, tag, digest)
    );
    CREATE TABLE image_places (
      repository TEXT COLLATE "C" NOT NULL,
      tag        TEXT COLLATE "C" NOT NULL,
      digest     TEXT COLLATE "C" NOT NULL,
      node       TEXT COLLATE "C" NOT NULL,
      namespace  TEXT COLLATE "C" NOT NULL,
      pod        TEXT COLLATE "C" NOT NULL,
      workload   TEXT NOT NULL,
      first_seen BIGINT NOT NULL,
      last_seen  BIGINT NOT NULL,
      PRIMARY KEY (repository, tag, digest, node, namespace, pod)
    );
    CREATE INDEX image_places_namespace ON image_places (namespace, repository);
    `,
  },
  {
    version: 8,
    description: 'ingest claims deviation ids for a whole batch in one statement; the per-row trigger claims them for every other writer',
    // The trigger's INSERT into deviation_ids, row by row, was a third of a batch's INSERT. Ingest
    // now claims the ids of its rows itself, in the same statement and in id order (deviations.ts),
    // and says so for its transaction (SET LOCAL driftwatch.ids_claimed = 'on'); the trigger then
    // stays out of its way. Every other INSERT (a copy from SQLite, by hand) is still claimed row by
    // row, so an id is stored once whoever writes it.
    sql: `
    DROP TRIGGER deviations_once ON deviations;
    CREATE TRIGGER deviations_once BEFORE INSERT ON deviations FOR EACH ROW
      WHEN (current_setting('driftwatch.ids_claimed', true) IS DISTINCT FROM 'on')
      EXECUTE FUNCTION deviations_once();
    `,
  },
  {
    version: 9,
    description: 'where a baseline entry\'s executable came from, and each key\'s drift allow list',
    sql: `
    -- core/event ExecutableOrigin of a process entry; NULL: no source told (and every older row).
    ALTER TABLE baseline_entries ADD COLUMN origin TEXT;
    -- The key's drift allow list (JSON array of path globs), reviewed like entries.
    ALTER TABLE baseline_reviews ADD COLUMN drift_allowed TEXT NOT NULL DEFAULT '[]';
    `,
  },
  {
    version: 10,
    description: 'bounds on the image inventory: an index on digests, new versions per node and hour',
    sql: `
    -- A digest under any tag (is this digest new to its repository?): without it, a scan per new row.
    CREATE INDEX image_versions_digest ON image_versions (repository, digest);
    -- New versions each node added in its current clock hour (MAX_NEW_VERSIONS_PER_NODE_HOUR).
    CREATE TABLE image_version_quota (
      node    TEXT PRIMARY KEY,
      hour    BIGINT NOT NULL,
      created INTEGER NOT NULL
    );
    `,
  },
  {
    version: 11,
    description: 'no received_at indexes on deviations and deviation_ids: ingest writes fewer index entries',
    // Only retention read them, once a day: it drops whole day partitions, and scans the one day
    // the cut-off falls in and deviation_ids (a narrow table) in transactions of their own
    // (partitions.ts). Every ingested deviation wrote two entries into them: without them the
    // store's own ingest is 12% faster (15.1k against 13.4k deviations/s, alternated runs, same server).
    sql: `
    DROP INDEX deviations_received;
    DROP INDEX deviation_ids_received;
    `,
  },
];

/** The revision this code writes. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
