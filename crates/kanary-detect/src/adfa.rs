//! Reader of the ADFA Linux Dataset (ADFA-LD, Creech & Hu 2013).
//!
//! Each `.txt` file is one trace: the system calls of one process as space-separated i386 syscall
//! numbers, possibly over several lines. One process is one thread, so the whole file is one
//! thread's sequence.

use std::path::Path;

use crate::dataset::{files_under, Trace};
use crate::error::{DetectError, Result};
use kanary_model::ngram::BITS_PER_SYSCALL;

/// Reads one trace file, labelled `attack`.
pub fn read_trace(path: &Path, attack: bool) -> Result<Trace> {
    let text = std::fs::read_to_string(path).map_err(|e| DetectError::io(path, e))?;
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for token in line.split_whitespace() {
            let nr: u32 = token.parse().map_err(|_| {
                DetectError::parse(path, i + 1, format!("`{token}` is not a syscall number"))
            })?;
            if nr >= 1 << BITS_PER_SYSCALL {
                return Err(DetectError::parse(
                    path,
                    i + 1,
                    format!("syscall number {nr} does not fit the {BITS_PER_SYSCALL}-bit packing"),
                ));
            }
            events.push((0, nr));
        }
    }
    Ok(Trace {
        path: path.to_path_buf(),
        events,
        attack,
        exploit_at: None,
    })
}

/// Reads every `.txt` trace under `dir` (recursively), all labelled `attack`. Errors when there is
/// none.
pub fn read_dir(dir: &Path, attack: bool) -> Result<Vec<Trace>> {
    let files = files_under(dir, ".txt")?;
    if files.is_empty() {
        return Err(DetectError::invalid(
            dir,
            "no ADFA-LD trace (*.txt) under it",
        ));
    }
    files.iter().map(|path| read_trace(path, attack)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("kanary-adfa-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        dir
    }

    #[test]
    fn reads_traces_recursively() {
        let dir = temp_dir("ok");
        std::fs::write(dir.join("a.txt"), "6 6 63\n120 252 \n").unwrap();
        std::fs::write(dir.join("sub/b.txt"), "3 4").unwrap();
        std::fs::write(dir.join("notes.md"), "not a trace").unwrap();
        let traces = read_dir(&dir, true).unwrap();
        assert_eq!(traces.len(), 2);
        assert_eq!(
            traces[0].events,
            vec![(0, 6), (0, 6), (0, 63), (0, 120), (0, 252)]
        );
        assert!(traces[1].path.ends_with("sub/b.txt") && traces[1].attack);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_tokens_name_the_file_and_line() {
        let dir = temp_dir("bad");
        std::fs::write(dir.join("a.txt"), "6 6\n6 x7 3\n").unwrap();
        let error = read_dir(&dir, false).unwrap_err().to_string();
        assert!(
            error.contains("a.txt:2") && error.contains("`x7`"),
            "{error}"
        );
        std::fs::write(dir.join("a.txt"), "6 600").unwrap();
        let error = read_dir(&dir, false).unwrap_err().to_string();
        assert!(
            error.contains("a.txt:1") && error.contains("600"),
            "{error}"
        );
        std::fs::remove_file(dir.join("a.txt")).unwrap();
        let error = read_dir(&dir, false).unwrap_err().to_string();
        assert!(error.contains("no ADFA-LD trace"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
