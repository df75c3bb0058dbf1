//! Reader of LID-DS 2021 recordings (Leipzig Intrusion Detection Data Set).
//!
//! A recording is a `.sc` file, one sysdig event a line:
//! `timestamp_ns uid pid procname tid syscall direction args...`, with a sibling `.json` that
//! labels it (`exploit`: whether an attack happened, `time.exploit[0].absolute`: when, in
//! seconds). How it is read:
//!
//! * only syscall entries (direction `>`) count, as the agent counts `sys_enter`;
//! * threads are told apart by `tid`; events stay in file (time) order;
//! * names become x86_64 numbers (the recordings are x86_64); a name the table lacks (sysdig
//!   spells a few differently) gets an interned number from [`SyscallNames`], shared by every
//!   recording of an evaluation so numbers agree between learning and scoring;
//! * sysdig's pseudo-events (`switch`, `procexit`, `signaldeliver`, ...) are not syscalls, the
//!   agent's hook never sees them, so they are skipped;
//! * the label is the `.json`'s `exploit`, whatever folder the recording was found in; for an
//!   attack recording the index of the first entry at or after the exploit time is kept, so an
//!   evaluation can score only what follows it and learn only from what precedes it.
//!
//! The procname field may contain spaces; the direction field is found as the first `>` or `<`
//! token after the fixed fields, the two before it being tid and syscall.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use crate::dataset::{files_under, Trace};
use crate::error::{DetectError, Result};
use crate::names::SyscallNames;

/// sysdig events that are not syscalls.
const PSEUDO_EVENTS: &[&str] = &[
    "switch",
    "procexit",
    "signaldeliver",
    "container",
    "notification",
    "procinfo",
    "drop",
    "sysdigevent",
    "infra",
    "page_fault",
    "cpu_hotplug",
    "k8s",
    "mesos",
    "tracer",
    "pluginevent",
    "scapevent",
];

/// A recording's label, from its `.json`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Label {
    /// Whether an exploit ran.
    pub exploit: bool,
    /// When, in nanoseconds since the epoch (as the `.sc` timestamps).
    pub exploit_ns: Option<u64>,
}

/// The `.json` beside a `.sc` file.
pub fn label_path(sc: &Path) -> PathBuf {
    sc.with_extension("json")
}

/// Reads the label of the recording `sc`.
pub fn read_label(sc: &Path) -> Result<Label> {
    let path = label_path(sc);
    let text = std::fs::read_to_string(&path).map_err(|e| DetectError::io(&path, e))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| DetectError::parse(&path, e.line(), e.to_string()))?;
    let exploit = value
        .get("exploit")
        .and_then(serde_json::Value::as_bool)
        .ok_or_else(|| DetectError::invalid(&path, "no boolean `exploit` field"))?;
    let exploit_ns = if exploit {
        let seconds = value
            .pointer("/time/exploit/0/absolute")
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| {
                DetectError::invalid(
                    &path,
                    "`exploit` is true but `time.exploit[0].absolute` is missing",
                )
            })?;
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err(DetectError::invalid(
                &path,
                format!("bad exploit time {seconds}"),
            ));
        }
        Some((seconds * 1e9).round() as u64)
    } else {
        None
    };
    Ok(Label {
        exploit,
        exploit_ns,
    })
}

/// Reads the recording `sc` and its label, numbering syscalls with `names`.
pub fn read_recording(sc: &Path, names: &mut SyscallNames) -> Result<Trace> {
    let label = read_label(sc)?;
    let file = std::fs::File::open(sc).map_err(|e| DetectError::io(sc, e))?;
    let mut events = Vec::new();
    let mut exploit_at = None;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| DetectError::io(sc, e))?;
        let number = i + 1;
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.is_empty() {
            continue;
        }
        // timestamp uid pid procname... tid syscall direction
        let Some(dir) = tokens
            .iter()
            .skip(6)
            .position(|t| *t == ">" || *t == "<")
            .map(|p| p + 6)
        else {
            return Err(DetectError::parse(
                sc,
                number,
                "expected `timestamp uid pid procname tid syscall >|< ...`",
            ));
        };
        if tokens[dir] != ">" {
            continue;
        }
        let timestamp: u64 = tokens[0].parse().map_err(|_| {
            DetectError::parse(sc, number, format!("`{}` is not a timestamp", tokens[0]))
        })?;
        let tid: u64 = tokens[dir - 2].parse().map_err(|_| {
            DetectError::parse(
                sc,
                number,
                format!("`{}` is not a thread id", tokens[dir - 2]),
            )
        })?;
        let name = tokens[dir - 1];
        if PSEUDO_EVENTS.contains(&name) {
            continue;
        }
        let nr = names.number(name).ok_or_else(|| {
            DetectError::parse(
                sc,
                number,
                format!("too many distinct unknown syscall names to number `{name}`"),
            )
        })?;
        if exploit_at.is_none() && label.exploit_ns.is_some_and(|at| timestamp >= at) {
            exploit_at = Some(events.len());
        }
        events.push((tid, nr));
    }
    if label.exploit && exploit_at.is_none() {
        // The exploit time is after the last event: nothing of the attack was recorded.
        exploit_at = Some(events.len());
    }
    Ok(Trace {
        path: sc.to_path_buf(),
        events,
        attack: label.exploit,
        exploit_at,
    })
}

/// Reads every `.sc` recording under `dir` (recursively). Errors when there is none.
pub fn read_dir(dir: &Path, names: &mut SyscallNames) -> Result<Vec<Trace>> {
    let files = files_under(dir, ".sc")?;
    if files.is_empty() {
        return Err(DetectError::invalid(
            dir,
            "no LID-DS recording (*.sc) under it",
        ));
    }
    files
        .iter()
        .map(|path| read_recording(path, names))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Abi;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kanary-lidds-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const JSON: &str = r#"{"exploit": true, "time": {"exploit": [{"absolute": 2.5}]}}"#;

    #[test]
    fn reads_enter_events_by_thread_and_splits_at_the_exploit() {
        let dir = temp_dir("ok");
        let sc = "1000000000 0 10 apache2 10 read > fd=3\n\
                  1000000001 0 10 apache2 10 read < res=1\n\
                  2000000000 0 10 my proc 11 openat > fd=3\n\
                  2500000000 0 10 apache2 10 switch > next=0\n\
                  2600000000 0 10 apache2 10 pread > fd=3\n\
                  \n\
                  2700000000 0 10 apache2 11 read > fd=3\n";
        std::fs::write(dir.join("r.sc"), sc).unwrap();
        std::fs::write(dir.join("r.json"), JSON).unwrap();
        let mut names = SyscallNames::new(Abi::X86_64);
        let traces = read_dir(&dir, &mut names).unwrap();
        let trace = &traces[0];
        let pread = names.number("pread").unwrap();
        assert!(pread >= 468, "sysdig's `pread` is interned");
        assert_eq!(trace.events, vec![(10, 0), (11, 257), (10, pread), (11, 0)]);
        assert!(trace.attack);
        assert_eq!(trace.exploit_at, Some(2));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_input_names_the_file_and_line() {
        let dir = temp_dir("bad");
        let mut names = SyscallNames::new(Abi::X86_64);
        std::fs::write(dir.join("r.sc"), "1 0 10 apache2 10 read > fd=3\n").unwrap();
        let error = read_dir(&dir, &mut names).unwrap_err().to_string();
        assert!(error.contains("r.json"), "{error}");
        std::fs::write(dir.join("r.json"), r#"{"exploit": true}"#).unwrap();
        let error = read_dir(&dir, &mut names).unwrap_err().to_string();
        assert!(error.contains("time.exploit"), "{error}");
        std::fs::write(dir.join("r.json"), r#"{"exploit": false}"#).unwrap();
        std::fs::write(
            dir.join("r.sc"),
            "1 0 10 apache2 10 read > fd=3\nx 0 10 a 10 read >\n",
        )
        .unwrap();
        let error = read_dir(&dir, &mut names).unwrap_err().to_string();
        assert!(
            error.contains("r.sc:2") && error.contains("timestamp"),
            "{error}"
        );
        std::fs::write(dir.join("r.sc"), "1 0 10 apache2 ten read > fd=3\n").unwrap();
        let error = read_dir(&dir, &mut names).unwrap_err().to_string();
        assert!(
            error.contains("r.sc:1") && error.contains("thread id"),
            "{error}"
        );
        std::fs::write(dir.join("r.sc"), "1 0 10 apache2 10 read\n").unwrap();
        let error = read_dir(&dir, &mut names).unwrap_err().to_string();
        assert!(error.contains("r.sc:1"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
