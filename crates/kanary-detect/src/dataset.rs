//! Traces read from offline data sets, and how they become feature windows.

use std::path::{Path, PathBuf};

use crate::error::{DetectError, Result};
use crate::window::{FeatureWindow, Windower};

/// One trace: the syscalls of one process (ADFA-LD) or one recording (LID-DS), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The file it was read from, as found under the folder searched.
    pub path: PathBuf,
    /// `(thread, syscall number)` events, in the order they happened.
    pub events: Vec<(u64, u32)>,
    /// Whether the data set labels it an attack.
    pub attack: bool,
    /// For an attack recording with a known exploit time: the index of the first event at or
    /// after it.
    pub exploit_at: Option<usize>,
}

/// Which part of a trace to turn into windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Everything.
    Whole,
    /// Before the exploit (everything when there is none): what may be learnt from.
    BeforeExploit,
    /// From the exploit on (everything when there is none). The events before it still fill the
    /// threads' sliding windows, as they would have in the running kernel, but no window is cut
    /// from them.
    FromExploit,
}

impl Trace {
    /// The trace's feature windows: `every` syscalls per window, or one window for the whole
    /// part (`None`).
    pub fn windows(
        &self,
        ngram_len: u32,
        every: Option<u64>,
        part: Part,
    ) -> Result<Vec<FeatureWindow>> {
        let split = self
            .exploit_at
            .unwrap_or(self.events.len())
            .min(self.events.len());
        let (prime, scored) = match part {
            Part::Whole => (&self.events[..0], &self.events[..]),
            Part::BeforeExploit => (&self.events[..0], &self.events[..split]),
            Part::FromExploit if self.exploit_at.is_some() => {
                (&self.events[..split], &self.events[split..])
            }
            Part::FromExploit => (&self.events[..0], &self.events[..]),
        };
        let mut windower = Windower::new(ngram_len, every)?;
        for &(tid, nr) in prime {
            windower.push(tid, nr);
        }
        windower.cut();
        let mut windows = Vec::new();
        for &(tid, nr) in scored {
            windows.extend(windower.push(tid, nr));
        }
        windows.extend(windower.finish());
        Ok(windows)
    }
}

/// Every file under `dir` (recursively) whose name ends with `suffix`, sorted; hidden entries
/// are skipped. Errors name the directory that could not be read.
pub fn files_under(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    let metadata = std::fs::metadata(dir).map_err(|e| DetectError::io(dir, e))?;
    if !metadata.is_dir() {
        return Err(DetectError::invalid(dir, "not a directory"));
    }
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current).map_err(|e| DetectError::io(&current, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| DetectError::io(&current, e))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let kind = entry.file_type().map_err(|e| DetectError::io(&path, e))?;
            // Follow symbolic links as a user pointing at a data set would expect.
            let is_dir = if kind.is_symlink() {
                std::fs::metadata(&path)
                    .map_err(|e| DetectError::io(&path, e))?
                    .is_dir()
            } else {
                kind.is_dir()
            };
            if is_dir {
                pending.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exploit_split_primes_threads_without_scoring_them() {
        let trace = Trace {
            path: "t".into(),
            events: vec![(1, 1), (1, 2), (1, 3), (1, 4), (2, 5)],
            attack: true,
            exploit_at: Some(3),
        };
        let before = trace.windows(2, None, Part::BeforeExploit).unwrap();
        assert_eq!(before.len(), 1);
        assert_eq!(before[0].syscall_total(), 3);
        let after = trace.windows(2, None, Part::FromExploit).unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].syscalls, vec![(4, 1), (5, 1)]);
        // Thread 1's window was full at the exploit: (3 4) is counted after it.
        assert_eq!(
            after[0].ngrams,
            vec![(kanary_model::ngram::pack(&[3, 4]), 1)]
        );
        assert_eq!(trace.windows(2, Some(2), Part::Whole).unwrap().len(), 3);
    }

    #[test]
    fn missing_directories_are_named() {
        let error = files_under(Path::new("/nonexistent/kanary"), ".txt").unwrap_err();
        assert!(error.to_string().contains("/nonexistent/kanary"), "{error}");
    }
}
