/**
 * The SQLite store's schema as this revision writes it: the tables, indexes and triggers, created if
 * missing (every statement is idempotent). migrations.ts runs them, in order, with the steps that
 * bring an older file up to date between them.
 */

/**
 * The schema revision this code writes (PRAGMA user_version). Revision 4: deviation ids scoped by
 * node (`node:id`), and baseline entry rows whose id does not read back as an entry repaired away.
 * Revision 7: image tickets (./tickets.ts).
 * Revision 8: the SBOM tables (sboms.ts), so that `store migrate` knows a file has them.
 */
export const SCHEMA_VERSION = 8;

/** Columns revision 3 added to alerts, with their definitions (ALTER TABLE on older files). */
export const ALERT_COLUMNS_V3: readonly [string, string][] = [
  ['severity', `TEXT NOT NULL DEFAULT 'medium'`],
  ['rule_id', `TEXT NOT NULL DEFAULT ''`],
  ['rule_reason', `TEXT NOT NULL DEFAULT ''`],
  ['team', `TEXT NOT NULL DEFAULT ''`],
  ['namespace', `TEXT NOT NULL DEFAULT ''`],
  ['labels', `TEXT NOT NULL DEFAULT '{}'`],
  ['receivers', `TEXT NOT NULL DEFAULT '[]'`],
  ['suppressed_by', `TEXT NOT NULL DEFAULT ''`],
  ['state_by', `TEXT NOT NULL DEFAULT ''`],
  ['state_at', `INTEGER NOT NULL DEFAULT 0`],
  ['state_comment', `TEXT NOT NULL DEFAULT ''`],
];

/** Provenance of examples and of dropped shares, added to files made before them (older rows: NULL, not recorded). */
export const PROVENANCE_COLUMNS: readonly (readonly [string, string, string])[] = [
  ['baseline_entry_nodes', 'example_keys', 'TEXT'],
  ['baseline_entries', 'dropped_nodes', `TEXT NOT NULL DEFAULT '[]'`],
  // Where the entry's executable came from (core/event ExecutableOrigin; NULL: no source told).
  ['baseline_entries', 'origin', 'TEXT'],
  // The key's drift allow list (JSON array of path globs), reviewed like entries.
  ['baseline_reviews', 'drift_allowed', `TEXT NOT NULL DEFAULT '[]'`],
];

/** The tables every revision has (revision 3's alert columns are added by ALERT_COLUMNS_V3). */
export const TABLES = `
    CREATE TABLE IF NOT EXISTS deviations (
      seq              INTEGER PRIMARY KEY,
      id               TEXT NOT NULL UNIQUE,
      fingerprint      TEXT NOT NULL,
      baseline_key     TEXT NOT NULL,
      kind             TEXT NOT NULL,
      time             INTEGER NOT NULL,
      received_at      INTEGER NOT NULL,
      node             TEXT NOT NULL,
      body             TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS deviations_fingerprint ON deviations(fingerprint, seq);
    CREATE INDEX IF NOT EXISTS deviations_key ON deviations(baseline_key, seq);
    CREATE INDEX IF NOT EXISTS deviations_node ON deviations(node, seq);
    CREATE TABLE IF NOT EXISTS alerts (
      seq               INTEGER PRIMARY KEY,
      fingerprint       TEXT NOT NULL UNIQUE,
      state             TEXT NOT NULL DEFAULT 'firing',
      baseline_key      TEXT NOT NULL,
      image             TEXT NOT NULL,
      kind              TEXT NOT NULL,
      entry             TEXT NOT NULL,
      reason            TEXT NOT NULL,
      explanation       TEXT NOT NULL,
      nearest           TEXT NOT NULL,
      first_seen        INTEGER NOT NULL,
      last_seen         INTEGER NOT NULL,
      count             INTEGER NOT NULL,
      nodes             TEXT NOT NULL,
      pods              TEXT NOT NULL,
      last_deviation_id TEXT NOT NULL,
      example           TEXT NOT NULL,
      created_at        INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS alerts_image ON alerts(image, seq);
    -- Per baseline key and node: the header of the newest delta that node sent.
    CREATE TABLE IF NOT EXISTS baseline_nodes (
      key         TEXT NOT NULL,
      node        TEXT NOT NULL,
      version     INTEGER NOT NULL,
      received_at INTEGER NOT NULL,
      header      TEXT NOT NULL,
      PRIMARY KEY (key, node)
    ) WITHOUT ROWID;
    -- Per key, entry and node: that node's own absolute stats. Deltas carry absolute stats, so a
    -- resent or late delta changes nothing here, and the difference feeds the merged row exactly.
    -- example_keys: exampleKey of the merged examples the node sent (at most MAX_MERGED_EXAMPLES),
    -- so that dropping the node takes out its examples and no one else's; NULL: not recorded.
    CREATE TABLE IF NOT EXISTS baseline_entry_nodes (
      key          TEXT NOT NULL,
      entry_id     TEXT NOT NULL,
      node         TEXT NOT NULL,
      first_seen   INTEGER NOT NULL,
      last_seen    INTEGER NOT NULL,
      count        INTEGER NOT NULL,
      example_keys TEXT,
      PRIMARY KEY (key, entry_id, node)
    ) WITHOUT ROWID;
    -- Per key and entry: the cluster-wide merge (counts summed over nodes, first/last widened);
    -- dropped_nodes: the nodes whose share was taken out of it (at most MAX_DROPPED_NODES).
    CREATE TABLE IF NOT EXISTS baseline_entries (
      key           TEXT NOT NULL,
      entry_id      TEXT NOT NULL,
      type          TEXT NOT NULL,
      first_seen    INTEGER NOT NULL,
      last_seen     INTEGER NOT NULL,
      count         INTEGER NOT NULL,
      nodes         INTEGER NOT NULL,
      examples      TEXT NOT NULL,
      dropped_nodes TEXT NOT NULL DEFAULT '[]',
      PRIMARY KEY (key, entry_id)
    ) WITHOUT ROWID;
    -- Notifications for sinks: written in the transaction that decides them, delivered by the
    -- outbox worker, retried with backoff across restarts; the row stays as the delivery record.
    CREATE TABLE IF NOT EXISTS outbox (
      seq        INTEGER PRIMARY KEY,
      alert      TEXT NOT NULL,
      sink       TEXT NOT NULL,
      action     TEXT NOT NULL,
      body       TEXT NOT NULL,
      state      TEXT NOT NULL,
      attempts   INTEGER NOT NULL DEFAULT 0,
      next_at    INTEGER NOT NULL,
      last_error TEXT NOT NULL DEFAULT '',
      created_at INTEGER NOT NULL,
      done_at    INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS outbox_due ON outbox(sink, state, next_at, seq);
    CREATE INDEX IF NOT EXISTS outbox_alert ON outbox(alert, seq);
    -- Review: what security decided. State override per key ('' follows the agents; locked,
    -- enforcing (imported) or relearn), each entry's status, and every version with its entries.
    CREATE TABLE IF NOT EXISTS baseline_reviews (
      key     TEXT PRIMARY KEY,
      state   TEXT NOT NULL DEFAULT '',
      version INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS baseline_entry_reviews (
      key      TEXT NOT NULL,
      entry_id TEXT NOT NULL,
      status   TEXT NOT NULL,
      by       TEXT NOT NULL,
      at       INTEGER NOT NULL,
      reason   TEXT NOT NULL,
      PRIMARY KEY (key, entry_id)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS baseline_versions (
      key     TEXT NOT NULL,
      version INTEGER NOT NULL,
      at      INTEGER NOT NULL,
      by      TEXT NOT NULL,
      action  TEXT NOT NULL,
      reason  TEXT NOT NULL,
      state   TEXT NOT NULL,
      entries TEXT NOT NULL,
      removed TEXT NOT NULL,
      PRIMARY KEY (key, version)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS exceptions (
      id          TEXT PRIMARY KEY,
      key_glob    TEXT NOT NULL,
      entry_glob  TEXT NOT NULL,
      namespace   TEXT NOT NULL,
      reason      TEXT NOT NULL,
      owner       TEXT NOT NULL,
      created_by  TEXT NOT NULL,
      created_at  INTEGER NOT NULL,
      expires_at  INTEGER NOT NULL,
      revoked_at  INTEGER NOT NULL DEFAULT 0,
      revoked_by  TEXT NOT NULL DEFAULT '',
      reminded_at INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
`;

/** Nodes whose agents are not trusted any more. */
export const QUARANTINE_TABLE = `
    CREATE TABLE IF NOT EXISTS quarantined_nodes (
      node   TEXT PRIMARY KEY,
      by     TEXT NOT NULL,
      at     INTEGER NOT NULL,
      reason TEXT NOT NULL
    ) WITHOUT ROWID;
`;

/** Indexes over revision 3's alert columns (after they were added). */
export const ALERT_INDEXES = `
    CREATE INDEX IF NOT EXISTS alerts_severity ON alerts(severity, seq);
    CREATE INDEX IF NOT EXISTS alerts_namespace ON alerts(namespace, seq);
    CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, seq);
`;

/** The open alert states, as an SQL list (a constant, never input). */
export const OPEN_STATES = `('firing', 'acknowledged')`;

/**
 * Open alerts per baseline key, for the baseline list: a counter kept exact by triggers on every
 * path that inserts, changes the state of, or deletes an alert, so the list reads one row per key
 * instead of counting every open alert (it was 35 ms at 10k deviations, 65 ms at 10M).
 */
export const OPEN_ALERT_COUNTER = `
    DROP INDEX IF EXISTS alerts_state_key;
    CREATE TABLE IF NOT EXISTS baseline_open_alerts (key TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TRIGGER IF NOT EXISTS alerts_open_insert AFTER INSERT ON alerts WHEN new.state IN ${OPEN_STATES} BEGIN
      INSERT INTO baseline_open_alerts (key, n) VALUES (new.baseline_key, 1) ON CONFLICT (key) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER IF NOT EXISTS alerts_open_delete AFTER DELETE ON alerts WHEN old.state IN ${OPEN_STATES} BEGIN
      UPDATE baseline_open_alerts SET n = n - 1 WHERE key = old.baseline_key;
    END;
    CREATE TRIGGER IF NOT EXISTS alerts_open_update AFTER UPDATE OF state, baseline_key ON alerts
    WHEN (old.state IN ${OPEN_STATES}) != (new.state IN ${OPEN_STATES}) OR old.baseline_key != new.baseline_key BEGIN
      UPDATE baseline_open_alerts SET n = n - 1 WHERE key = old.baseline_key AND old.state IN ${OPEN_STATES};
      INSERT INTO baseline_open_alerts (key, n) SELECT new.baseline_key, 1 WHERE new.state IN ${OPEN_STATES} ON CONFLICT (key) DO UPDATE SET n = n + 1;
    END;
`;

/** Each agent's last contact and lag (issue 7, delivery). */
export const NODES_TABLE = `
    CREATE TABLE IF NOT EXISTS nodes (
      node          TEXT PRIMARY KEY,
      agent_version TEXT NOT NULL,
      sources       TEXT NOT NULL,
      first_seen    INTEGER NOT NULL,
      last_contact  INTEGER NOT NULL,
      spooled       INTEGER NOT NULL,
      spool_bytes   INTEGER NOT NULL,
      lag_ms        INTEGER NOT NULL,
      spool_dropped INTEGER NOT NULL,
      watermark     INTEGER NOT NULL,
      silent_since  INTEGER NOT NULL,
      stopped_at    INTEGER NOT NULL
    ) WITHOUT ROWID;
`;

/** The audit log (collector/audit.ts): every change made through the API, append-only. */
export const AUDIT_TABLE = `
    CREATE TABLE IF NOT EXISTS audit_log (
      seq     INTEGER PRIMARY KEY AUTOINCREMENT,
      time    INTEGER NOT NULL,
      actor   TEXT NOT NULL,
      role    TEXT NOT NULL,
      action  TEXT NOT NULL,
      target  TEXT NOT NULL,
      before  TEXT NOT NULL,
      after   TEXT NOT NULL
    );
`;

/**
 * Revision 5 (issue 20, several replicas): the outbox row's lease (who is delivering it, until when;
 * '' and 0 when nobody), and the periodic jobs' leases. One process uses a SQLite file, so both are
 * always its own; the columns and the table keep one schema and one SQL shape with PostgreSQL.
 */
export const LEASE_COLUMNS: readonly (readonly [string, string])[] = [
  ['lease_owner', `TEXT NOT NULL DEFAULT ''`],
  ['lease_until', 'INTEGER NOT NULL DEFAULT 0'],
];
export const JOB_LEASES_TABLE = `
    CREATE TABLE IF NOT EXISTS job_leases (
      job   TEXT PRIMARY KEY,
      owner TEXT NOT NULL,
      until INTEGER NOT NULL
    ) WITHOUT ROWID;
`;

/**
 * Revision 6: what each replica counted in its open storm-control windows (several replicas keep one
 * notification rate). Rows live as long as their window; nothing else refers to them.
 */
export const STORM_TABLE = `
    CREATE TABLE IF NOT EXISTS storm_counts (
      owner      TEXT NOT NULL,
      scope      TEXT NOT NULL,
      start      INTEGER NOT NULL,
      until      INTEGER NOT NULL,
      count      INTEGER NOT NULL,
      summarized INTEGER NOT NULL,
      PRIMARY KEY (owner, scope, start)
    ) WITHOUT ROWID;
`;

/**
 * The image inventory (issue 21): each node's latest container report and its containers (what runs
 * now), and per image version when and where it was seen (reports and deviations; places bounded per
 * version by the slice). Tables only added, without a revision of their own: a file gets them when
 * opened, and an older build that opens a file with them ignores them.
 */
export const IMAGES_TABLES = `
    CREATE TABLE IF NOT EXISTS image_reports (
      node        TEXT PRIMARY KEY,
      reported_at INTEGER NOT NULL,
      source      TEXT NOT NULL,
      containers  INTEGER NOT NULL,
      total       INTEGER NOT NULL,
      truncated   INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS image_containers (
      node         TEXT NOT NULL,
      container_id TEXT NOT NULL,
      repository   TEXT NOT NULL,
      tag          TEXT NOT NULL,
      digest       TEXT NOT NULL,
      image_id     TEXT NOT NULL,
      name         TEXT NOT NULL,
      namespace    TEXT NOT NULL,
      pod          TEXT NOT NULL,
      workload     TEXT NOT NULL,
      PRIMARY KEY (node, container_id)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS image_containers_version ON image_containers (repository, tag, digest);
    CREATE TABLE IF NOT EXISTS image_versions (
      repository TEXT NOT NULL,
      tag        TEXT NOT NULL,
      digest     TEXT NOT NULL,
      first_seen INTEGER NOT NULL,
      last_seen  INTEGER NOT NULL,
      PRIMARY KEY (repository, tag, digest)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS image_places (
      repository TEXT NOT NULL,
      tag        TEXT NOT NULL,
      digest     TEXT NOT NULL,
      node       TEXT NOT NULL,
      namespace  TEXT NOT NULL,
      pod        TEXT NOT NULL,
      workload   TEXT NOT NULL,
      first_seen INTEGER NOT NULL,
      last_seen  INTEGER NOT NULL,
      PRIMARY KEY (repository, tag, digest, node, namespace, pod)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS image_places_namespace ON image_places (namespace, repository);
    -- A digest under any tag (is this digest new to its repository?): without it, a scan per new row.
    CREATE INDEX IF NOT EXISTS image_versions_digest ON image_versions (repository, digest);
    -- New versions each node added per clock hour (MAX_NEW_VERSIONS_PER_NODE_HOUR); one row per node.
    CREATE TABLE IF NOT EXISTS image_version_quota (
      node    TEXT PRIMARY KEY,
      hour    INTEGER NOT NULL,
      created INTEGER NOT NULL
    ) WITHOUT ROWID;
`;
