//! `ndjson`: every record as one JSON object per line, to a file or standard output.

use std::fs::File;
use std::io::{self, Write};

use super::Sink;

/// Newline-delimited JSON, one record per line.
pub struct NdjsonSink {
    out: io::BufWriter<Box<dyn Write + Send>>,
}

impl NdjsonSink {
    /// Writes to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        NdjsonSink {
            out: io::BufWriter::with_capacity(64 * 1024, out),
        }
    }

    /// Writes to `path`, appended to, or standard output for `-`.
    pub fn open(path: &str) -> io::Result<Self> {
        Ok(Self::new(open_output(path)?))
    }
}

/// The file at `path` opened for appending (created if needed), or standard output for `-`.
pub fn open_output(path: &str) -> io::Result<Box<dyn Write + Send>> {
    if path == "-" {
        return Ok(Box::new(io::stdout()));
    }
    Ok(Box::new(
        File::options().create(true).append(true).open(path)?,
    ))
}

impl Sink for NdjsonSink {
    fn write(&mut self, record: &kanary_model::record::Record) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
