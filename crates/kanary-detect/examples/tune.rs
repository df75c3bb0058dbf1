//! Chooses the detectors' settings on normal training traces only (no attack is read).
//!
//! `cargo run -p kanary-detect --release --example tune -- ../shared/datasets/adfa-ld/training`
//!
//! The training traces are cut into 5 contiguous folds. For every candidate setting and fold, a
//! detector learns from the other 4 folds and scores (a) each held-out trace, as a normal trace,
//! and (b) a synthetic anomaly made from it: a segment of another held-out trace (10% of the
//! trace's length, between 10 and 100 syscalls) spliced in at a random place — a process that
//! suddenly runs another program's code, the way an exploited process does. The criterion is the
//! detection rate of the synthetic anomalies at 1% false alarms on the held-out normal traces,
//! then their AUC; held-out cross-entropy (bits per n-gram, the mean aggregate) is printed for
//! the language model. Everything is deterministic.

use std::path::PathBuf;

use kanary_detect::dataset::{Part, Trace};
use kanary_detect::eval::{DetectorKind, EvalOptions};
use kanary_detect::metrics;
use kanary_detect::{
    adfa, Aggregate, Detector, FeatureWindow, FrequencyConfig, FrequencyDetector, SequenceConfig,
    SequenceDetector,
};

const FOLDS: usize = 5;

struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

/// The held-out trace `i` of `fold` with a segment of another held-out trace spliced in, in its
/// order or shuffled (`foreign`: known syscalls in an order no program makes).
fn splice(fold: &[Trace], i: usize, rng: &mut Lcg, foreign: bool) -> Trace {
    let host = &fold[i];
    let donor = &fold[(i + 1 + rng.below(fold.len() - 1)) % fold.len()];
    let len = (host.events.len() as f64 * 0.1).round() as usize;
    let len = len.clamp(10, 100).min(donor.events.len());
    let start = rng.below(donor.events.len() - len + 1);
    let at = rng.below(host.events.len() + 1);
    let mut segment = donor.events[start..start + len].to_vec();
    if foreign {
        for j in (1..segment.len()).rev() {
            segment.swap(j, rng.below(j + 1));
        }
    }
    let mut events = host.events[..at].to_vec();
    events.extend_from_slice(&segment);
    events.extend_from_slice(&host.events[at..]);
    Trace {
        path: host.path.clone(),
        events,
        attack: true,
        exploit_at: None,
    }
}

fn windows(traces: &[Trace], options: &EvalOptions) -> Vec<FeatureWindow> {
    traces
        .iter()
        .flat_map(|t| {
            t.windows(options.ngram_len, options.window, Part::Whole)
                .unwrap_or_default()
        })
        .collect()
}

fn score<D: Detector>(detector: &D, trace: &Trace, options: &EvalOptions) -> f64 {
    t_windows(trace, options)
        .iter()
        .map(|w| detector.raw_score(w).unwrap_or(f64::NAN))
        .fold(0.0, f64::max)
}

fn t_windows(trace: &Trace, options: &EvalOptions) -> Vec<FeatureWindow> {
    trace
        .windows(options.ngram_len, options.window, Part::Whole)
        .unwrap_or_default()
}

struct Outcome {
    auc: f64,
    dr1: f64,
    dr5: f64,
    far_at_calibrated: f64,
}

fn cross_validate<D: Detector + Clone>(
    make: impl Fn() -> D,
    folds: &[Vec<Trace>],
    spliced: &[Vec<Trace>],
    options: &EvalOptions,
) -> Outcome {
    let (mut normal, mut attack, mut alarms) = (Vec::new(), Vec::new(), 0usize);
    for (k, fold) in folds.iter().enumerate() {
        let rest: Vec<Trace> = folds
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .flat_map(|(_, f)| f.iter().cloned())
            .collect();
        let mut detector = make();
        let learn = windows(&rest, options);
        let Ok(threshold) = detector.fit(&learn, &options.calibration) else {
            continue;
        };
        for trace in fold {
            let s = score(&detector, trace, options);
            alarms += usize::from(s > threshold);
            normal.push(s);
        }
        for trace in &spliced[k] {
            attack.push(score(&detector, trace, options));
        }
    }
    let point = |far| {
        metrics::detection_at_far(&normal, &attack, far).map_or(f64::NAN, |p| p.detection_rate)
    };
    Outcome {
        auc: metrics::auc(&normal, &attack).unwrap_or(f64::NAN),
        dr1: point(0.01),
        dr5: point(0.05),
        far_at_calibrated: alarms as f64 / normal.len().max(1) as f64,
    }
}

/// Held-out cross-entropy of the n-gram model, bits per n-gram.
fn cross_entropy(folds: &[Vec<Trace>], n: u32) -> f64 {
    let options = EvalOptions {
        ngram_len: n,
        ..EvalOptions::default()
    };
    let (mut bits, mut grams) = (0.0, 0u64);
    for (k, fold) in folds.iter().enumerate() {
        let rest: Vec<Trace> = folds
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .flat_map(|(_, f)| f.iter().cloned())
            .collect();
        let Ok(model) = kanary_detect::sequence::NgramModel::learn(&windows(&rest, &options))
        else {
            continue;
        };
        for window in windows(fold, &options) {
            for (gram, count) in window.ngrams {
                bits += model.surprisal(gram) * count as f64;
                grams += count;
            }
        }
    }
    bits / grams.max(1) as f64
}

fn main() {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: tune TRAINING_DIR");
        std::process::exit(2);
    };
    let traces = match adfa::read_dir(&dir, false) {
        Ok(traces) => traces,
        Err(error) => {
            eprintln!("tune: {error}");
            std::process::exit(1);
        }
    };
    let folds: Vec<Vec<Trace>> = (0..FOLDS)
        .map(|k| traces[traces.len() * k / FOLDS..traces.len() * (k + 1) / FOLDS].to_vec())
        .collect();
    let mut rng = Lcg(2013);
    let foreign = std::env::args().nth(2).as_deref() == Some("foreign");
    let spliced: Vec<Vec<Trace>> = folds
        .iter()
        .map(|fold| {
            (0..fold.len())
                .map(|i| splice(fold, i, &mut rng, foreign))
                .collect()
        })
        .collect();
    println!(
        "synthetic anomalies: {}",
        if foreign {
            "shuffled segments"
        } else {
            "segments in order"
        }
    );
    println!("{} training traces, {FOLDS} folds", traces.len());
    println!("held-out cross-entropy (bits per n-gram):");
    for n in 2..=7 {
        println!("  n={n}: {:.4}", cross_entropy(&folds, n));
    }
    let aggregates = [
        ("mean", Aggregate::Mean),
        ("tail5%", Aggregate::TailMean { fraction: 0.05 }),
        ("tail10%", Aggregate::TailMean { fraction: 0.1 }),
        ("tail20%", Aggregate::TailMean { fraction: 0.2 }),
        ("q95", Aggregate::Quantile { q: 0.95 }),
        ("unseen", Aggregate::UnseenMass),
        ("max", Aggregate::Max),
    ];
    println!("detector  n  aggregate  window  synthAUC  synthDR@1%  synthDR@5%  FAR@calibrated");
    let mut best: Option<(f64, f64, String)> = None;
    for window in [None, Some(200)] {
        for n in 2..=7 {
            for (name, aggregate) in aggregates {
                let options = EvalOptions {
                    ngram_len: n,
                    window,
                    detector: DetectorKind::Sequence,
                    ..EvalOptions::default()
                };
                let make = || {
                    SequenceDetector::new(SequenceConfig {
                        aggregate,
                        ..SequenceConfig::default()
                    })
                };
                let o = cross_validate(make, &folds, &spliced, &options);
                let line = format!(
                    "sequence  {n}  {name:9}  {:6}  {:.4}    {:.3}       {:.3}       {:.3}",
                    window.map_or("trace".to_string(), |w| w.to_string()),
                    o.auc,
                    o.dr1,
                    o.dr5,
                    o.far_at_calibrated
                );
                println!("{line}");
                if best.as_ref().is_none_or(|b| (o.dr1, o.auc) > (b.0, b.1)) {
                    best = Some((o.dr1, o.auc, line));
                }
            }
        }
        for k in [1, 3] {
            let options = EvalOptions {
                ngram_len: 2,
                window,
                detector: DetectorKind::Frequency,
                ..EvalOptions::default()
            };
            let make = || {
                FrequencyDetector::new(FrequencyConfig {
                    k,
                    ..FrequencyConfig::default()
                })
            };
            let o = cross_validate(make, &folds, &spliced, &options);
            println!(
                "frequency k={k}  {:6}  {:.4}    {:.3}       {:.3}       {:.3}",
                window.map_or("trace".to_string(), |w| w.to_string()),
                o.auc,
                o.dr1,
                o.dr5,
                o.far_at_calibrated
            );
        }
    }
    if let Some((_, _, line)) = best {
        println!("best sequence setting (synthetic DR@1% then AUC):\n{line}");
    }
}
