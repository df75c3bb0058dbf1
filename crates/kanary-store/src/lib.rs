//! kanary's embedded store: per-image [`Baseline`]s and alert incidents kept in SQLite under the
//! agent's data directory, baseline export files, and the `kanary baseline` ([`cli`]) and
//! `kanary alerts` ([`alerts_cli`]) commands.
//!
//! # Why a crate of its own
//!
//! `kanary-detect` stays pure (no I/O, no C code): the offline evaluation and the benchmarks
//! build it without compiling SQLite, and everything about files and databases lives here.
//!
//! # Database
//!
//! One file, `<data-dir>/kanary.db` ([`DB_FILE`]), SQLite compiled in (`rusqlite`'s `bundled`),
//! in WAL mode so the CLI can read while the agent writes, with a 5 s busy timeout, every write
//! in an immediate transaction. Tables ([`schema`]):
//!
//! * `schema_version`: the schema's version; [`schema::MIGRATIONS`] brings an older database
//!   up to date on open, and a newer one is refused ([`StoreError::SchemaTooNew`]).
//! * `baselines`: one row per image, keyed by [`BaselineKey::id`] (the image id, else the name),
//!   with the key's parts, the phase, the state as JSON, the timestamps (nanoseconds since the
//!   Unix epoch), the kanary and format versions, and the models as a JSON blob with its length
//!   and an FNV-1a checksum (SQLite does not checksum its pages, so a damaged blob would
//!   otherwise be read as a slightly different model).
//! * `alerts` (schema version 2): one row per alert incident, the latest of its records
//!   ([`Store::put_alert`], [`Store::alerts`]), with a retention bound ([`DEFAULT_MAX_ALERTS`];
//!   the oldest ended incidents go first, open ones never). `kanary alerts list` reads it
//!   ([`alerts_cli`]).
//! * `quarantine`: rows that could not be decoded (damaged, or of a format version this kanary
//!   does not read), moved here whole with the reason, instead of being deleted. The caller
//!   then relearns the image; nothing is dropped silently. `kanary baseline list` shows them,
//!   `reset` removes them.
//!
//! Cheap checks (versions, state, blob length) run on every [`Store::list`]; the full decode
//! (checksum, models, consistency) on [`Store::get`].
//!
//! # Files
//!
//! An export is one baseline as one JSON document, self-describing: `kind`
//! (`kanary-baseline`), `format_version`, `kanary_version`, `key`, `state`, `models`,
//! `created_at`, `updated_at` ([`Baseline`]). It is written canonically, so exporting an
//! imported file gives the same bytes. [`read_file`] checks everything before a baseline is
//! stored, and refuses a file with an error naming it and what is wrong.
#![deny(missing_docs)]

mod alerts;
pub mod alerts_cli;
pub mod cli;
mod error;
pub mod schema;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kanary_detect::baseline::{self, Baseline, BaselineKey, Models, State, KIND};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

pub use alerts::{class_name, AlertQuery, DEFAULT_MAX_ALERTS, PRUNE_EVERY};
pub use error::{Result, StoreError};

/// The database file in the data directory.
pub const DB_FILE: &str = "kanary.db";

/// How long a write waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The baseline store (see the crate documentation).
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// The alert retention bound ([`Store::set_max_alerts`]).
    max_alerts: usize,
    /// Alert writes through this handle until the next pruning (every [`PRUNE_EVERY`]).
    writes_before_prune: u64,
}

/// A stored baseline without its models: what `kanary baseline list` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The image.
    pub key: BaselineKey,
    /// Learning or detecting, with the counts.
    pub state: State,
    /// When it started learning.
    pub created_at: SystemTime,
    /// When it last changed.
    pub updated_at: SystemTime,
    /// The kanary version that last wrote it.
    pub kanary_version: String,
    /// Its format version.
    pub format_version: u32,
    /// Size of its models blob.
    pub models_bytes: u64,
}

/// A baseline moved to quarantine because it could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineEntry {
    /// The image it was for.
    pub key: BaselineKey,
    /// When it was moved.
    pub quarantined_at: SystemTime,
    /// Why it could not be decoded.
    pub reason: String,
    /// Size of the models blob kept.
    pub models_bytes: u64,
}

/// Which baselines a command is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Every baseline.
    All,
    /// Those whose image matches ([`BaselineKey::matches`]: name, id or id prefix).
    Image(String),
}

/// What [`Store::reset`] removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Removed {
    /// The baselines removed.
    pub baselines: Vec<BaselineKey>,
    /// The quarantine entries removed.
    pub quarantined: Vec<BaselineKey>,
}

/// What [`Store::import`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The image imported.
    pub key: BaselineKey,
    /// Its phase.
    pub phase: &'static str,
    /// Whether it replaced a baseline of the same image.
    pub replaced: bool,
}

impl Store {
    /// Opens the store in `dir`, creating the directory and the database if needed, and brings
    /// its schema up to date.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        Self::open_with(
            &dir.join(DB_FILE),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
    }

    /// Opens the store in `dir` only if it exists ([`StoreError::Missing`] otherwise): for the
    /// commands that have nothing to do without one.
    pub fn open_existing(dir: &Path) -> Result<Store> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Err(StoreError::Missing { path });
        }
        Self::open_with(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    fn open_with(path: &Path, flags: OpenFlags) -> Result<Store> {
        let failed = |what: &str, e: rusqlite::Error| {
            let damaged = matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
            );
            StoreError::Database {
                path: path.to_path_buf(),
                message: if damaged {
                    // Nothing is deleted for the operator: say what to do instead.
                    format!(
                        "{what}: {e}; the file is damaged: move it aside (with its -wal and -shm \
                         files) to start a new store, where the images learn again, or restore \
                         a copy; exported baselines can be imported again"
                    )
                } else {
                    format!("{what}: {e}")
                },
            }
        };
        let flags = flags | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| failed("opening", e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| failed("setting the busy timeout", e))?;
        // The first statement reads the file: a file that is not a database fails here.
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|e| failed("switching to WAL mode", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Database {
                path: path.to_path_buf(),
                message: format!("cannot use WAL mode (journal mode is {mode})"),
            });
        }
        // NORMAL is durable enough in WAL mode: a power cut may lose the last commits, never
        // corrupt the database.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| failed("setting synchronous", e))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            max_alerts: DEFAULT_MAX_ALERTS,
            writes_before_prune: 0,
        };
        schema::migrate(&mut store.conn, path)?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A database error, named by the database and what was being done.
    fn db(&self, what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        let what = what.to_string();
        move |e| StoreError::Database {
            path: self.path.clone(),
            message: format!("{what}: {e}"),
        }
    }

    /// The baseline of `key`'s image (looked up by [`BaselineKey::id`]), if any. A stored
    /// baseline that cannot be decoded is moved to quarantine and reported as
    /// [`StoreError::Quarantined`]; the next `get` finds nothing, so the caller relearns.
    pub fn get(&mut self, key: &BaselineKey) -> Result<Option<Baseline>> {
        let row = self
            .conn
            .query_row(
                "SELECT image_id, image, state, created_at, updated_at, kanary_version, \
                 format_version, models, models_len, models_checksum \
                 FROM baselines WHERE key = ?1",
                params![key.id()],
                |row| {
                    Ok(FullRow {
                        image_id: row.get(0)?,
                        image: row.get(1)?,
                        state: row.get(2)?,
                        created_at: row.get(3)?,
                        updated_at: row.get(4)?,
                        kanary_version: row.get(5)?,
                        format_version: row.get(6)?,
                        models: row.get(7)?,
                        models_len: row.get(8)?,
                        models_checksum: row.get(9)?,
                    })
                },
            )
            .optional()
            .map_err(self.db("reading a baseline"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        match row.decode(key.id()) {
            Ok(baseline) => Ok(Some(baseline)),
            Err(reason) => {
                let stored = BaselineKey {
                    image_id: row.image_id,
                    image: row.image,
                };
                self.quarantine(key.id(), &reason)?;
                Err(StoreError::Quarantined {
                    key: stored,
                    reason,
                })
            }
        }
    }

    /// Stores `baseline`, replacing the one of the same image. Returns whether one was
    /// replaced.
    pub fn put(&mut self, baseline: &Baseline) -> Result<bool> {
        baseline.check()?;
        let state = serde_json::to_string(&baseline.state)
            .map_err(|e| kanary_detect::DetectError::State(e.to_string()))?;
        let models = serde_json::to_vec(&baseline.models)
            .map_err(|e| kanary_detect::DetectError::State(e.to_string()))?;
        let checksum = fnv1a(&models) as i64;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| StoreError::Database {
                path: self.path.clone(),
                message: format!("starting a write: {e}"),
            })?;
        let path = self.path.clone();
        let failed = |e: rusqlite::Error| StoreError::Database {
            path: path.clone(),
            message: format!("storing the baseline of {}: {e}", baseline.key),
        };
        let replaced = tx
            .query_row(
                "SELECT 1 FROM baselines WHERE key = ?1",
                params![baseline.key.id()],
                |_| Ok(()),
            )
            .optional()
            .map_err(failed)?
            .is_some();
        tx.execute(
            "INSERT INTO baselines (key, image_id, image, phase, state, created_at, updated_at, \
             kanary_version, format_version, models, models_len, models_checksum) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
             ON CONFLICT(key) DO UPDATE SET image_id = excluded.image_id, \
             image = excluded.image, phase = excluded.phase, state = excluded.state, \
             created_at = excluded.created_at, updated_at = excluded.updated_at, \
             kanary_version = excluded.kanary_version, format_version = excluded.format_version, \
             models = excluded.models, models_len = excluded.models_len, \
             models_checksum = excluded.models_checksum",
            params![
                baseline.key.id(),
                baseline.key.image_id,
                baseline.key.image,
                baseline.state.phase(),
                state,
                nanos(baseline.created_at),
                nanos(baseline.updated_at),
                baseline.kanary_version,
                baseline.format_version,
                models,
                models.len() as i64,
                checksum,
            ],
        )
        .map_err(failed)?;
        tx.commit().map_err(failed)?;
        Ok(replaced)
    }

    /// Every stored baseline, by image name. Rows whose envelope is unreadable (an unknown
    /// format version, a damaged state, a truncated models blob) are moved to quarantine on the
    /// way ([`Store::quarantined`] lists them).
    pub fn list(&mut self) -> Result<Vec<Summary>> {
        let rows = {
            let mut statement = self
                .conn
                .prepare(
                    "SELECT key, image_id, image, state, created_at, updated_at, kanary_version, \
                     format_version, length(models), models_len \
                     FROM baselines ORDER BY image, key",
                )
                .map_err(self.db("listing baselines"))?;
            let rows = statement
                .query_map([], |row| {
                    Ok(SummaryRow {
                        key: row.get(0)?,
                        image_id: row.get(1)?,
                        image: row.get(2)?,
                        state: row.get(3)?,
                        created_at: row.get(4)?,
                        updated_at: row.get(5)?,
                        kanary_version: row.get(6)?,
                        format_version: row.get(7)?,
                        models_bytes: row.get(8)?,
                        models_len: row.get(9)?,
                    })
                })
                .map_err(self.db("listing baselines"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(self.db("listing baselines"))?;
            rows
        };
        let mut summaries = Vec::with_capacity(rows.len());
        for row in rows {
            match row.decode() {
                Ok(summary) => summaries.push(summary),
                Err(reason) => self.quarantine(&row.key, &reason)?,
            }
        }
        Ok(summaries)
    }

    /// The baselines in quarantine, oldest first.
    pub fn quarantined(&self) -> Result<Vec<QuarantineEntry>> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT image_id, image, quarantined_at, reason, length(models) \
                 FROM quarantine ORDER BY id",
            )
            .map_err(self.db("listing the quarantine"))?;
        let entries = statement
            .query_map([], |row| {
                Ok(QuarantineEntry {
                    key: BaselineKey {
                        image_id: row.get(0)?,
                        image: row.get(1)?,
                    },
                    quarantined_at: time_of(row.get(2)?),
                    reason: row.get(3)?,
                    models_bytes: row.get::<_, Option<i64>>(4)?.unwrap_or(0).max(0) as u64,
                })
            })
            .map_err(self.db("listing the quarantine"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.db("listing the quarantine"))?;
        Ok(entries)
    }

    /// The stored baselines `selector` names (none is not an error here).
    pub fn find(&mut self, selector: &Selector) -> Result<Vec<Summary>> {
        let all = self.list()?;
        Ok(match selector {
            Selector::All => all,
            Selector::Image(image) => all.into_iter().filter(|s| s.key.matches(image)).collect(),
        })
    }

    /// The one stored baseline `image` names: [`StoreError::NotFound`] when none (or
    /// [`StoreError::Quarantined`] when the only match is in quarantine, with its reason),
    /// [`StoreError::Ambiguous`] when several (two image ids under one name).
    pub fn find_one(&mut self, image: &str) -> Result<BaselineKey> {
        let mut found = self.find(&Selector::Image(image.to_string()))?;
        match found.len() {
            0 => match self
                .quarantined()?
                .into_iter()
                .rev()
                .find(|q| q.key.matches(image))
            {
                Some(entry) => Err(StoreError::Quarantined {
                    key: entry.key,
                    reason: entry.reason,
                }),
                None => Err(StoreError::NotFound(image.to_string())),
            },
            1 => Ok(found.remove(0).key),
            _ => Err(StoreError::Ambiguous {
                selector: image.to_string(),
                matches: found.into_iter().map(|s| s.key).collect(),
            }),
        }
    }

    /// Removes the baselines (and quarantine entries) `selector` names, so their images learn
    /// again from scratch. Every baseline of a name goes, whatever its image id. Removing
    /// nothing is [`StoreError::NotFound`] for an image, and fine for [`Selector::All`].
    pub fn reset(&mut self, selector: &Selector) -> Result<Removed> {
        let baselines: Vec<BaselineKey> = self.find(selector)?.into_iter().map(|s| s.key).collect();
        let quarantined: Vec<BaselineKey> = self
            .quarantined()?
            .into_iter()
            .map(|q| q.key)
            .filter(|key| match selector {
                Selector::All => true,
                Selector::Image(image) => key.matches(image),
            })
            .collect();
        if let Selector::Image(image) = selector {
            if baselines.is_empty() && quarantined.is_empty() {
                return Err(StoreError::NotFound(image.clone()));
            }
        }
        let path = self.path.clone();
        let failed = |e: rusqlite::Error| StoreError::Database {
            path: path.clone(),
            message: format!("resetting baselines: {e}"),
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(failed)?;
        for key in &baselines {
            tx.execute("DELETE FROM baselines WHERE key = ?1", params![key.id()])
                .map_err(failed)?;
        }
        for key in &quarantined {
            tx.execute("DELETE FROM quarantine WHERE key = ?1", params![key.id()])
                .map_err(failed)?;
        }
        tx.commit().map_err(failed)?;
        // A key quarantined twice is one image to report.
        let mut unique: Vec<BaselineKey> = Vec::with_capacity(quarantined.len());
        for key in quarantined {
            if !unique.contains(&key) {
                unique.push(key);
            }
        }
        let quarantined = unique;
        Ok(Removed {
            baselines,
            quarantined,
        })
    }

    /// Writes the baseline of `key` to `path` ([`write_file`]). A baseline that cannot be decoded
    /// goes to quarantine and is reported ([`StoreError::Quarantined`]) instead.
    pub fn export(&mut self, key: &BaselineKey, path: &Path) -> Result<()> {
        let baseline = self
            .get(key)?
            .ok_or_else(|| StoreError::NotFound(key.id().to_string()))?;
        write_file(&baseline, path)
    }

    /// Reads a baseline file ([`read_file`]) and stores it, replacing the baseline of the same
    /// image. A refused file changes nothing.
    pub fn import(&mut self, path: &Path) -> Result<Imported> {
        let baseline = read_file(path)?;
        let replaced = self.put(&baseline)?;
        Ok(Imported {
            phase: baseline.state.phase(),
            key: baseline.key,
            replaced,
        })
    }

    /// Moves the row of `key` to the quarantine with `reason`, in one transaction.
    fn quarantine(&mut self, key: &str, reason: &str) -> Result<()> {
        let path = self.path.clone();
        let failed = |e: rusqlite::Error| StoreError::Database {
            path: path.clone(),
            message: format!("moving the baseline {key:?} to quarantine: {e}"),
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(failed)?;
        tx.execute(
            "INSERT INTO quarantine (key, image_id, image, quarantined_at, reason, phase, state, \
             created_at, updated_at, kanary_version, format_version, models) \
             SELECT key, image_id, image, ?2, ?3, phase, state, created_at, updated_at, \
             kanary_version, format_version, models FROM baselines WHERE key = ?1",
            params![key, nanos(SystemTime::now()), reason],
        )
        .map_err(failed)?;
        tx.execute("DELETE FROM baselines WHERE key = ?1", params![key])
            .map_err(failed)?;
        tx.commit().map_err(failed)
    }
}

/// A `baselines` row without its models.
struct SummaryRow {
    key: String,
    image_id: Option<String>,
    image: String,
    state: String,
    created_at: i64,
    updated_at: i64,
    kanary_version: String,
    format_version: i64,
    models_bytes: Option<i64>,
    models_len: i64,
}

impl SummaryRow {
    /// The summary, or why the row is unreadable.
    fn decode(&self) -> std::result::Result<Summary, String> {
        let format_version = check_version(self.format_version, &self.kanary_version)?;
        let models_bytes = self.models_bytes.unwrap_or(0);
        if models_bytes != self.models_len {
            return Err(format!(
                "the models blob is {models_bytes} bytes, {} were written: it is damaged",
                self.models_len
            ));
        }
        let key = BaselineKey {
            image_id: self.image_id.clone(),
            image: self.image.clone(),
        };
        if key.id() != self.key {
            return Err(format!(
                "stored under {:?} but its image is {key}",
                self.key
            ));
        }
        Ok(Summary {
            key,
            state: decode_state(&self.state)?,
            created_at: time_of(self.created_at),
            updated_at: time_of(self.updated_at),
            kanary_version: self.kanary_version.clone(),
            format_version,
            models_bytes: models_bytes.max(0) as u64,
        })
    }
}

/// A whole `baselines` row.
struct FullRow {
    image_id: Option<String>,
    image: String,
    state: String,
    created_at: i64,
    updated_at: i64,
    kanary_version: String,
    format_version: i64,
    models: Vec<u8>,
    models_len: i64,
    models_checksum: i64,
}

impl FullRow {
    /// The baseline stored under `key`, or why it cannot be read.
    fn decode(&self, key: &str) -> std::result::Result<Baseline, String> {
        let format_version = check_version(self.format_version, &self.kanary_version)?;
        if self.models.len() as i64 != self.models_len {
            return Err(format!(
                "the models blob is {} bytes, {} were written: it is damaged",
                self.models.len(),
                self.models_len
            ));
        }
        if fnv1a(&self.models) as i64 != self.models_checksum {
            return Err("the models blob does not match its checksum: it is damaged".into());
        }
        let mut deserializer = serde_json::Deserializer::from_slice(&self.models);
        let models: Models = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            format!("models.{path}: {}", e.into_inner())
        })?;
        let baseline = Baseline {
            kind: KIND.to_string(),
            format_version,
            kanary_version: self.kanary_version.clone(),
            key: BaselineKey {
                image_id: self.image_id.clone(),
                image: self.image.clone(),
            },
            state: decode_state(&self.state)?,
            models,
            created_at: time_of(self.created_at),
            updated_at: time_of(self.updated_at),
        };
        if baseline.key.id() != key {
            return Err(format!(
                "stored under {key:?} but its image is {}",
                baseline.key
            ));
        }
        baseline.check().map_err(|e| e.to_string())?;
        Ok(baseline)
    }
}

/// The stored format version, if this kanary reads it.
fn check_version(version: i64, writer: &str) -> std::result::Result<u32, String> {
    match u32::try_from(version) {
        Ok(v) if v == baseline::FORMAT_VERSION => Ok(v),
        _ => Err(baseline::version_message(version.max(0) as u64, writer)),
    }
}

fn decode_state(text: &str) -> std::result::Result<State, String> {
    serde_json::from_str(text).map_err(|e| format!("state: {e}"))
}

/// Nanoseconds since the Unix epoch (negative before it), saturating: exact for any time a
/// baseline can have.
fn nanos(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

/// The time of [`nanos`].
fn time_of(nanos: i64) -> SystemTime {
    let magnitude = Duration::from_nanos(nanos.unsigned_abs());
    // Every i64 of nanoseconds fits a Linux SystemTime; the fallback only keeps this total.
    if nanos >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(magnitude)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(magnitude)
    }
    .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// 64-bit FNV-1a: a cheap checksum that tells a damaged blob from the one written (not a
/// defence against tampering: the store is as trusted as the data directory).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Reads and checks a baseline file (see the crate documentation); every error names the file.
pub fn read_file(path: &Path) -> Result<Baseline> {
    let text = std::fs::read_to_string(path).map_err(|e| StoreError::io(path, e))?;
    Baseline::from_json(&text).map_err(|e| {
        let message = match e {
            kanary_detect::DetectError::State(message) => message,
            other => other.to_string(),
        };
        StoreError::file(path, format!("not a usable kanary baseline: {message}"))
    })
}

/// Writes `baseline` to `path` as canonical JSON, atomically: a temporary file in the same
/// directory renamed over `path`, so a reader (or a crash) never sees half a file.
pub fn write_file(baseline: &Baseline, path: &Path) -> Result<()> {
    let mut text = baseline.to_json()?;
    text.push('\n');
    let name = path
        .file_name()
        .ok_or_else(|| StoreError::file(path, "not a file name"))?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(name);
    temporary_name.push(format!(".tmp-{}", std::process::id()));
    let temporary = path.with_file_name(temporary_name);
    std::fs::write(&temporary, text).map_err(|e| StoreError::io(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        StoreError::io(path, e)
    })
}

#[cfg(test)]
mod tests;
