//! kanary's detection engine: anomaly detectors over the features the agent collects, and their
//! offline evaluation.
//!
//! # Design
//!
//! * **One feature contract.** Detectors see only a [`FeatureWindow`]: one container's syscall
//!   counts and per-thread syscall n-gram counts over one interval, exactly as the kernel counted
//!   them (`ContainerStats.syscalls.by_number` and `.ngrams.packed`). Offline data sets are turned
//!   into the same windows by [`window::Windower`], which slides per-thread windows the way
//!   `bpf/syscalls.bpf.c` does, so a figure measured offline describes what the agent will see.
//!   No detector reads raw sequences, arguments or timing the agent does not export.
//! * **Learn, calibrate, score.** Every detector implements [`Detector`]: it learns a model of
//!   normal behaviour from windows, calibrates its alarm threshold on those same windows by
//!   cross-validation (each block of windows scored by a model that never saw it; the threshold
//!   is a high quantile of those held-out scores), then scores new windows into a [`Finding`]
//!   that says which features made the score (n-grams or syscalls by name, learnt baseline
//!   against observed). No attack data is needed or used to set a threshold.
//! * **Two complementary detectors, and their sum.** [`SequenceDetector`]: an interpolated
//!   modified Kneser-Ney n-gram language model over per-thread syscall sequences, scoring a window
//!   by its cross-entropy, the mean surprisal of its n-grams (new code paths: a shell, an
//!   exploit's syscalls). [`FrequencyDetector`]: nearest-neighbour Hellinger distance between
//!   syscall-frequency profiles (a changed mix of known syscalls, e.g. a brute force or a scan).
//!   [`CombinedDetector`]: the mean of the two scores, each standardised by its own held-out
//!   normal scores. All are deterministic and cheap: scoring a window is a few hash lookups per
//!   distinct n-gram, and one sparse dot product per kept profile.
//! * **Persistable.** Detector state is serde data with a format version ([`detector::to_json`],
//!   [`detector::from_json`]), so the agent can learn once and reload. A [`baseline::Baseline`]
//!   wraps the combined detector per container image with its learning lifecycle (learn for a
//!   while, calibrate, detect) in a versioned envelope; the `kanary-store` crate persists it.
//! * **Honest evaluation.** [`eval`] (`kanary eval`) learns from a training folder only, scores
//!   normal and attack folders at trace level, and reports AUC and detection at 1% and 5% false
//!   alarms; readers for ADFA-LD ([`adfa`]) and LID-DS 2021 ([`lidds`]) turn the data sets into
//!   traces. Bad input is an error naming the file and line, never a panic.
//!
//! `docs/detection.md` gives the figures measured and what was tuned on what.
#![deny(missing_docs)]

pub mod activity;
pub mod adfa;
pub mod baseline;
pub mod behaviour;
pub mod combined;
pub mod dataset;
pub mod detector;
pub mod error;
pub mod eval;
pub mod forest;
pub mod frequency;
pub mod generalise;
mod i386_table;
pub mod invariants;
pub mod lidds;
pub mod metrics;
pub mod names;
pub mod policy;
pub mod resource;
pub mod sequence;
pub mod synthetic;
pub mod window;

pub use combined::{CombinedConfig, CombinedDetector};
pub use detector::{Calibration, Contribution, Detector, Finding};
pub use error::{DetectError, Result};
pub use frequency::{FrequencyConfig, FrequencyDetector};
pub use sequence::{Aggregate, SequenceConfig, SequenceDetector};
pub use window::FeatureWindow;
