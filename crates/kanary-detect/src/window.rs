//! Feature windows: what a detector sees of one container over one interval.
//!
//! In production a window is one `stats` interval of one container: its syscall counts and its
//! per-thread n-gram counts, exactly as the kernel counted them ([`FeatureWindow::from_stats`]).
//! Offline, [`Windower`] rebuilds the same features from raw per-thread syscall sequences by
//! sliding windows the way `bpf/syscalls.bpf.c` does, so figures measured on data sets describe
//! what the agent will see:
//!
//! * every thread has its own sliding window (kernel task storage), so threads never mix inside
//!   an n-gram;
//! * a thread's first `n - 1` syscalls produce no n-gram (the window is not full yet);
//! * a thread's window survives the end of an interval (task storage outlives the drain of the
//!   n-gram map), so cutting the stream into windows does not restart any thread;
//! * syscall numbers that do not fit the 9-bit packing are ignored altogether, as the kernel
//!   ignores ids at or above `KANARY_SYSCALL_SLOTS`.

use std::collections::{BTreeMap, HashMap};

use kanary_model::ngram::{self, BITS_PER_SYSCALL, MAX_LEN, MIN_LEN};
use kanary_model::stats::ContainerStats;
use serde::{Deserialize, Serialize};

use crate::activity::{self, Fact};
use crate::error::{DetectError, Result};

/// Number of distinct syscall numbers the kernel counts (9 bits).
const SLOTS: usize = 1 << BITS_PER_SYSCALL;

/// The features of one container over one interval (or of one trace offline).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FeatureWindow {
    /// n-gram length (2..=7), or 0 when the window carries no n-grams.
    pub ngram_len: u32,
    /// Non-zero count by syscall number, sorted by number.
    pub syscalls: Vec<(u32, u64)>,
    /// Non-zero count by packed n-gram ([`kanary_model::ngram`]), sorted by n-gram.
    pub ngrams: Vec<(u64, u64)>,
    /// Resource and activity figures by name ([`crate::activity::METRICS`]); empty offline.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    /// Discrete facts of the interval (execs, opens, connections, security calls), repeats
    /// folded; empty offline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub facts: Vec<Fact>,
}

/// Checks that `n` is 0 (no n-grams) or a length the packing holds.
pub fn check_ngram_len(n: u32) -> Result<()> {
    if n == 0 || (MIN_LEN..=MAX_LEN).contains(&n) {
        Ok(())
    } else {
        Err(DetectError::NgramLen(format!(
            "{n} is not 0 or between {MIN_LEN} and {MAX_LEN}"
        )))
    }
}

impl FeatureWindow {
    /// The features of one `stats` record covering `interval_s` seconds: its syscall counts,
    /// packed n-gram counts and figures ([`activity::metrics_of`]). A missing section gives no
    /// counts (and `ngram_len` 0 without n-grams). Facts are added by the caller.
    pub fn from_stats(stats: &ContainerStats, interval_s: f64) -> Self {
        let mut syscalls: Vec<(u32, u64)> = stats
            .syscalls
            .as_ref()
            .map(|s| {
                s.by_number
                    .iter()
                    .copied()
                    .filter(|&(_, n)| n > 0)
                    .collect()
            })
            .unwrap_or_default();
        syscalls.sort_unstable();
        let (ngram_len, mut ngrams) = match &stats.ngrams {
            Some(section) => (
                section.n,
                section
                    .packed
                    .iter()
                    .copied()
                    .filter(|&(_, n)| n > 0)
                    .collect::<Vec<_>>(),
            ),
            None => (0, Vec::new()),
        };
        ngrams.sort_unstable();
        FeatureWindow {
            ngram_len,
            syscalls,
            ngrams,
            metrics: activity::metrics_of(stats, interval_s),
            facts: Vec::new(),
        }
    }

    /// One window over whole per-thread syscall sequences (each inner vector is one thread, in
    /// order).
    pub fn from_threads(ngram_len: u32, threads: &[Vec<u32>]) -> Result<Self> {
        let mut windower = Windower::new(ngram_len, None)?;
        for (tid, seq) in threads.iter().enumerate() {
            for &nr in seq {
                windower.push(tid as u64, nr);
            }
        }
        Ok(windower.finish().unwrap_or(FeatureWindow {
            ngram_len,
            ..FeatureWindow::default()
        }))
    }

    /// All syscalls of the window.
    pub fn syscall_total(&self) -> u64 {
        self.syscalls.iter().map(|&(_, n)| n).sum()
    }

    /// All n-grams of the window.
    pub fn ngram_total(&self) -> u64 {
        self.ngrams.iter().map(|&(_, n)| n).sum()
    }

    /// Adds `other`'s counts to this window (same n-gram length).
    pub fn merge(&mut self, other: &FeatureWindow) -> Result<()> {
        if self.ngram_len != other.ngram_len && !other.ngrams.is_empty() {
            return Err(DetectError::NgramLen(format!(
                "cannot merge {}-grams into {}-grams",
                other.ngram_len, self.ngram_len
            )));
        }
        self.syscalls = merge_sorted(&self.syscalls, &other.syscalls);
        self.ngrams = merge_sorted(&self.ngrams, &other.ngrams);
        Ok(())
    }
}

/// Adds two count lists sorted by key into one.
fn merge_sorted<K: Ord + Copy>(a: &[(K, u64)], b: &[(K, u64)]) -> Vec<(K, u64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push((a[i].0, a[i].1 + b[j].1));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// One thread's sliding window, as `struct thread_window` in the kernel.
#[derive(Debug, Clone, Copy, Default)]
struct Slider {
    packed: u64,
    filled: u32,
}

/// Rebuilds the kernel's features from a stream of `(thread, syscall)` events and cuts it into
/// windows, either every `every` syscalls or when asked ([`Windower::cut`], e.g. at a time
/// boundary).
#[derive(Debug)]
pub struct Windower {
    ngram_len: u32,
    mask: u64,
    every: Option<u64>,
    threads: HashMap<u64, Slider>,
    syscalls: Vec<u64>,
    ngrams: HashMap<u64, u64>,
    in_window: u64,
    ignored: u64,
}

impl Windower {
    /// A windower for `ngram_len`-grams (0: syscall counts only) that cuts a window every
    /// `every` syscalls (`None`: only on [`Windower::cut`] and [`Windower::finish`]).
    pub fn new(ngram_len: u32, every: Option<u64>) -> Result<Self> {
        check_ngram_len(ngram_len)?;
        if every == Some(0) {
            return Err(DetectError::Config(
                "a window must hold at least 1 syscall".into(),
            ));
        }
        Ok(Windower {
            ngram_len,
            mask: if ngram_len == 0 {
                0
            } else {
                ngram::mask(ngram_len)
            },
            every,
            threads: HashMap::new(),
            syscalls: vec![0; SLOTS],
            ngrams: HashMap::new(),
            in_window: 0,
            ignored: 0,
        })
    }

    /// Syscalls ignored because their number does not fit 9 bits.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// Counts syscall `nr` made by thread `tid`; returns the window it completes, if any.
    pub fn push(&mut self, tid: u64, nr: u32) -> Option<FeatureWindow> {
        if nr as usize >= SLOTS {
            // The kernel drops these before counting anything (id >= KANARY_SYSCALL_SLOTS).
            self.ignored += 1;
            return None;
        }
        self.syscalls[nr as usize] += 1;
        self.in_window += 1;
        if self.ngram_len > 0 {
            let slider = self.threads.entry(tid).or_default();
            slider.packed = ngram::push(slider.packed, nr);
            if slider.filled < self.ngram_len {
                slider.filled += 1;
            }
            if slider.filled >= self.ngram_len {
                *self.ngrams.entry(slider.packed & self.mask).or_insert(0) += 1;
            }
        }
        match self.every {
            Some(every) if self.in_window >= every => self.cut(),
            _ => None,
        }
    }

    /// Thread `tid` exited: its window is gone (a new thread with the same id starts empty, as a
    /// new task gets fresh task storage).
    pub fn exit(&mut self, tid: u64) {
        self.threads.remove(&tid);
    }

    /// Ends the current window now; `None` when it holds no syscall. Threads keep their sliding
    /// windows, as in the kernel across intervals.
    pub fn cut(&mut self) -> Option<FeatureWindow> {
        if self.in_window == 0 {
            return None;
        }
        let syscalls = self
            .syscalls
            .iter_mut()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(nr, n)| (nr as u32, std::mem::take(n)))
            .collect();
        let mut ngrams: Vec<(u64, u64)> = self.ngrams.drain().collect();
        ngrams.sort_unstable();
        self.in_window = 0;
        Some(FeatureWindow {
            ngram_len: self.ngram_len,
            syscalls,
            ngrams,
            ..FeatureWindow::default()
        })
    }

    /// Ends the stream: the last, possibly partial, window.
    pub fn finish(mut self) -> Option<FeatureWindow> {
        self.cut()
    }
}

/// Cuts per-thread sequences into windows: one window for everything (`every` = `None`), or one
/// every `every` syscalls, taking the threads one after the other.
pub fn windows_of_threads(
    ngram_len: u32,
    threads: &[Vec<u32>],
    every: Option<u64>,
) -> Result<Vec<FeatureWindow>> {
    let mut windower = Windower::new(ngram_len, every)?;
    let mut windows = Vec::new();
    for (tid, seq) in threads.iter().enumerate() {
        for &nr in seq {
            windows.extend(windower.push(tid as u64, nr));
        }
    }
    windows.extend(windower.finish());
    Ok(windows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kanary_model::stats::{NgramStats, SyscallStats};

    fn gram(seq: &[u32]) -> u64 {
        ngram::pack(seq)
    }

    /// Two interleaved threads, n = 3, counted by hand the way the kernel does.
    #[test]
    fn reproduces_the_kernel_counting() {
        // Thread 1: 0 1 2 0 1 2 ; thread 2: 3 0 1 2. Interleaved as the CPU ran them.
        let events = [
            (1, 0),
            (1, 1),
            (2, 3),
            (1, 2), // t1 full: (0 1 2)
            (2, 0),
            (2, 1), // t2 full: (3 0 1)
            (1, 0), // t1: (1 2 0)
            (2, 2), // t2: (0 1 2)
            (1, 1), // t1: (2 0 1)
            (1, 2), // t1: (0 1 2)
        ];
        let mut windower = Windower::new(3, None).unwrap();
        for (tid, nr) in events {
            assert!(windower.push(tid, nr).is_none());
        }
        let window = windower.finish().unwrap();
        assert_eq!(window.ngram_len, 3);
        assert_eq!(window.syscalls, vec![(0, 3), (1, 3), (2, 3), (3, 1)]);
        let mut expected = vec![
            (gram(&[0, 1, 2]), 3),
            (gram(&[3, 0, 1]), 1),
            (gram(&[1, 2, 0]), 1),
            (gram(&[2, 0, 1]), 1),
        ];
        expected.sort_unstable();
        assert_eq!(window.ngrams, expected);
        // A thread's first n-1 syscalls make no n-gram: 10 syscalls, 2 threads, 10 - 2*2 = 6.
        assert_eq!(window.ngram_total(), 6);
        assert_eq!(window.syscall_total(), 10);
    }

    #[test]
    fn cutting_windows_does_not_restart_threads() {
        let seq = vec![vec![5, 6, 7, 5, 6, 7, 5]];
        let windows = windows_of_threads(3, &seq, Some(3)).unwrap();
        assert_eq!(windows.len(), 3);
        // First window: 3 syscalls, one n-gram (5 6 7).
        assert_eq!(windows[0].ngrams, vec![(gram(&[5, 6, 7]), 1)]);
        // Second: syscalls 5 6 7 complete (6 7 5), (7 5 6), (5 6 7) because the thread's window
        // carried over, as task storage does across intervals.
        assert_eq!(windows[1].ngram_total(), 3);
        assert_eq!(windows[2].syscalls, vec![(5, 1)]);
        assert_eq!(windows[2].ngrams, vec![(gram(&[6, 7, 5]), 1)]);
        // The whole trace as one window counts the same n-grams in total.
        let whole = FeatureWindow::from_threads(3, &seq).unwrap();
        assert_eq!(whole.ngram_total(), 5);
        let mut merged = windows[0].clone();
        for w in &windows[1..] {
            merged.merge(w).unwrap();
        }
        assert_eq!(merged, whole);
    }

    #[test]
    fn exited_threads_start_over_and_wide_numbers_are_ignored() {
        let mut windower = Windower::new(2, None).unwrap();
        windower.push(1, 4);
        windower.exit(1);
        windower.push(1, 5);
        assert!(windower.push(1, 600).is_none());
        assert_eq!(windower.ignored(), 1);
        let window = windower.finish().unwrap();
        assert!(
            window.ngrams.is_empty(),
            "a fresh thread has no full window"
        );
        assert_eq!(window.syscall_total(), 2);
    }

    #[test]
    fn matches_the_stats_record_and_rejects_bad_lengths() {
        let threads = vec![vec![0, 1, 3, 0, 1, 3], vec![257, 0]];
        let window = FeatureWindow::from_threads(2, &threads).unwrap();
        let mut stats = ContainerStats::default();
        let mut by_number = window.syscalls.clone();
        by_number.reverse();
        stats.syscalls = Some(SyscallStats::from_counts(by_number, 5));
        stats.ngrams = Some(NgramStats::from_counts(2, window.ngrams.clone(), 3));
        let mut from_stats = FeatureWindow::from_stats(&stats, 2.0);
        // The figures come from the record only (the syscall rate per second here).
        assert_eq!(
            std::mem::take(&mut from_stats.metrics),
            BTreeMap::from([("syscalls".to_string(), 4.0)])
        );
        assert_eq!(from_stats, window);
        assert_eq!(
            FeatureWindow::from_stats(&ContainerStats::default(), 1.0).ngram_len,
            0
        );
        assert!(Windower::new(8, None).is_err());
        assert!(Windower::new(1, None).is_err());
        assert!(Windower::new(3, Some(0)).is_err());
        assert!(Windower::new(0, None).is_ok());
    }
}
