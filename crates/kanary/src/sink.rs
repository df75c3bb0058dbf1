//! Where records go. Every output format is one [`Sink`].

use std::io::{self, Write};

use kanary_model::record::Record;

/// A destination for records.
pub trait Sink {
    /// Writes one record.
    fn write(&mut self, record: &Record) -> io::Result<()>;
    /// Makes everything written so far visible to readers.
    fn flush(&mut self) -> io::Result<()>;
}

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
}

impl Sink for NdjsonSink {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
