//! The database schema and its migrations (version 1: baselines and quarantine; 2: alerts).
//!
//! `schema_version` holds one row: the version of the schema the database has. On open,
//! [`migrate`] applies, in one immediate transaction, every migration from that version to
//! [`LATEST`] (so two processes opening a new database at once cannot both migrate it), and
//! refuses a database whose version is newer than this build knows rather than guessing at it.
//! A later schema change appends one function to [`MIGRATIONS`]; it may run SQL or rewrite rows
//! in Rust (e.g. convert blobs of an older format), and it never edits an earlier one.

use std::path::Path;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::{Result, StoreError};

/// One migration: brings the schema from its index to its index + 1.
pub type Migration = fn(&Transaction<'_>) -> rusqlite::Result<()>;

/// Every migration, in order: `MIGRATIONS[i]` upgrades version `i` to `i + 1`.
pub const MIGRATIONS: &[Migration] = &[create_tables, create_alerts];

/// The schema version this build writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// Version 1: the baselines and the quarantine.
fn create_tables(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE baselines (
            -- BaselineKey::id(): the image id when known, else the image name.
            key TEXT PRIMARY KEY NOT NULL,
            image_id TEXT,
            image TEXT NOT NULL,
            -- 'learning' or 'detecting' (also inside state), for queries by hand.
            phase TEXT NOT NULL,
            -- kanary_detect::baseline::State as JSON.
            state TEXT NOT NULL,
            -- Nanoseconds since the Unix epoch.
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            kanary_version TEXT NOT NULL,
            format_version INTEGER NOT NULL,
            -- kanary_detect::baseline::Models as JSON, its length and FNV-1a checksum.
            models BLOB NOT NULL,
            models_len INTEGER NOT NULL,
            models_checksum INTEGER NOT NULL
        );
        CREATE INDEX baselines_by_image ON baselines (image);
        -- Rows of baselines that could not be decoded, moved here whole with the reason.
        CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT NOT NULL,
            image_id TEXT,
            image TEXT NOT NULL,
            quarantined_at INTEGER NOT NULL,
            reason TEXT NOT NULL,
            phase TEXT,
            state TEXT,
            created_at INTEGER,
            updated_at INTEGER,
            kanary_version TEXT,
            format_version INTEGER,
            models BLOB
        );",
    )
}

/// Version 2: the alerts (one row per incident, see [`crate::Store::put_alert`]).
fn create_alerts(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE alerts (
            -- Alert::id: one incident, rewritten by each of its records.
            id TEXT PRIMARY KEY NOT NULL,
            container_id TEXT NOT NULL,
            container_name TEXT NOT NULL,
            image TEXT,
            image_id TEXT,
            -- AlertClass as written in records (sequence_anomaly, ...).
            class TEXT NOT NULL,
            -- Severity as a rank for range queries: 0 low, 1 medium, 2 high, 3 critical.
            severity INTEGER NOT NULL,
            score REAL NOT NULL,
            count INTEGER NOT NULL,
            -- Nanoseconds since the Unix epoch.
            first_seen INTEGER NOT NULL,
            last_seen INTEGER NOT NULL,
            -- 1 once the incident's ended record was stored.
            ended INTEGER NOT NULL,
            -- When the latest record of the incident was stored.
            stored_at INTEGER NOT NULL,
            -- The latest record's kanary_model::record::Alert as JSON: what queries return.
            alert TEXT NOT NULL
        );
        CREATE INDEX alerts_by_last_seen ON alerts (last_seen);
        -- Retention prunes the oldest ended incidents.
        CREATE INDEX alerts_by_ended ON alerts (ended, last_seen);",
    )
}

/// Brings the database at `path` (open as `conn`) to [`LATEST`].
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    migrate_with(conn, path, MIGRATIONS)
}

/// [`migrate`] with an explicit list of migrations (tests try future ones).
pub fn migrate_with(conn: &mut Connection, path: &Path, migrations: &[Migration]) -> Result<()> {
    let failed = |what: &str, e: rusqlite::Error| StoreError::Database {
        path: path.to_path_buf(),
        message: format!("{what}: {e}"),
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| failed("starting the schema check", e))?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);")
        .map_err(|e| failed("creating schema_version", e))?;
    let found: i64 = tx
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_version",
            [],
            |row| row.get(0),
        )
        .map_err(|e| failed("reading schema_version", e))?;
    let latest = migrations.len() as i64;
    if found > latest {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: latest,
        });
    }
    if found < 0 {
        return Err(StoreError::Database {
            path: path.to_path_buf(),
            message: format!("schema_version is {found}: the database is damaged"),
        });
    }
    for (version, migration) in migrations.iter().enumerate().skip(found as usize) {
        migration(&tx).map_err(|e| {
            failed(
                &format!(
                    "migrating the schema from version {version} to {}",
                    version + 1
                ),
                e,
            )
        })?;
    }
    if found < latest {
        tx.execute("DELETE FROM schema_version", [])
            .and_then(|_| tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [latest]))
            .map_err(|e| failed("writing schema_version", e))?;
    }
    tx.commit().map_err(|e| failed("committing the schema", e))
}
