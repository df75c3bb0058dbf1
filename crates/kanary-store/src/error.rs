//! Errors of the store: each names the database or file concerned and what is wrong with it.

use std::path::PathBuf;

use kanary_detect::baseline::BaselineKey;
use kanary_detect::DetectError;

/// What went wrong in the store or with a baseline file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("baseline store {}: {message}", path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// What failed, and SQLite's reason.
        message: String,
    },
    /// There is no store in the data directory yet.
    #[error(
        "no baseline store at {} (the agent creates it when it first learns; check --data-dir)",
        path.display()
    )]
    Missing {
        /// The database file looked for.
        path: PathBuf,
    },
    /// The database was written by a newer kanary, with a schema this one does not know.
    #[error(
        "baseline store {}: schema version {found} is newer than this kanary's {supported}: \
         upgrade kanary",
        path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// A file could not be read or written.
    // The I/O error is part of the message rather than a `source`, so a chain printer such as
    // anyhow's `{:#}` does not repeat it.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// A baseline file whose content cannot be used.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A stored baseline could not be decoded: it was moved to quarantine and its image learns
    /// again from scratch.
    #[error(
        "the stored baseline of {key} is unreadable ({reason}); it was moved to quarantine and \
         will be relearnt"
    )]
    Quarantined {
        /// Its image.
        key: BaselineKey,
        /// Why it could not be decoded.
        reason: String,
    },
    /// No baseline matches the image asked for.
    #[error("no baseline matches image {0:?} (see `kanary baseline list`)")]
    NotFound(String),
    /// Several baselines match the image asked for.
    #[error("image {selector:?} matches {} baselines ({}): name one by its image id", matches.len(), list(matches))]
    Ambiguous {
        /// What was asked for.
        selector: String,
        /// The baselines it matches.
        matches: Vec<BaselineKey>,
    },
    /// Some items of a command failed (each was reported as it failed).
    #[error("{failed} of {total} {what} failed (see the errors above)")]
    Partial {
        /// What the items were, e.g. `imports`.
        what: &'static str,
        /// How many failed.
        failed: usize,
        /// How many were tried.
        total: usize,
    },
    /// An alert that cannot be stored, or a stored one that cannot be decoded.
    #[error("alert {id}: {message}")]
    Alert {
        /// The alert's (incident's) id.
        id: String,
        /// What is wrong with it.
        message: String,
    },
    /// A baseline that cannot be stored or used as it is.
    #[error(transparent)]
    Detect(#[from] DetectError),
}

fn list(keys: &[BaselineKey]) -> String {
    keys.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Result of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            cause,
        }
    }

    /// A baseline file at `path` that cannot be used.
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        StoreError::File {
            path: path.into(),
            message: message.into(),
        }
    }
}
