//! Errors of the detection engine: every one names what was wrong and where, so bad input never
//! turns into a panic or a silent zero.

use std::path::PathBuf;

/// What went wrong while learning, scoring, loading state or reading a data set.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// A file or directory could not be read.
    // The I/O error is part of the message rather than a `source`, so a chain printer such as
    // anyhow's `{:#}` does not repeat it.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// A data set file has a line that does not parse.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A data set file or directory is not usable as a whole (e.g. a missing label file).
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Nothing to learn from (no window, or no n-gram in any window).
    #[error("empty training set: {0}")]
    EmptyTraining(String),
    /// Windows with different n-gram lengths, or a length the packing cannot hold.
    #[error("n-gram length mismatch: {0}")]
    NgramLen(String),
    /// A detector was asked to score before it learnt anything.
    #[error("the {0} detector has not learnt a model yet")]
    NotTrained(&'static str),
    /// Saved detector state that this version cannot read.
    #[error("detector state: {0}")]
    State(String),
    /// An option with a value out of its range.
    #[error("invalid setting: {0}")]
    Config(String),
}

/// Result of the detection engine.
pub type Result<T, E = DetectError> = std::result::Result<T, E>;

impl DetectError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        DetectError::Io {
            path: path.into(),
            cause,
        }
    }

    /// A parse error at `path:line`.
    pub fn parse(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        DetectError::Parse {
            path: path.into(),
            line,
            message: message.into(),
        }
    }

    /// A file or directory that is unusable as a whole.
    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DetectError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}
