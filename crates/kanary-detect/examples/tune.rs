//! The one setting chosen from data, on normal training traces only: the n-gram length.
//!
//! `cargo run -p kanary-detect --release --example tune -- ../shared/datasets/adfa-ld/training`
//!
//! No validation or attack trace is read. The training traces are cut into 5 contiguous folds; for
//! each n, a language model learns from 4 folds and the held-out fold's n-grams are scored: the
//! held-out cross-entropy (bits per n-gram) is the standard model-order criterion of language
//! modelling. The choice is the n of lowest cross-entropy among 5..=7 (the kernel packs at most
//! 7 syscalls; below 5, the literature's detectors lose the ordering that makes them work).
//! Lengths 2..=4 are printed for information. Then, for the chosen n, it prints how the detectors'
//! cross-validated scores of held-out training traces are spread (information only: it is what
//! the calibration and the combined detector's standardisation see).

use std::path::PathBuf;

use kanary_detect::dataset::{Part, Trace};
use kanary_detect::detector::{cross_validated_scores, quantile, Calibration};
use kanary_detect::sequence::NgramModel;
use kanary_detect::{
    adfa, Aggregate, FeatureWindow, FrequencyConfig, FrequencyDetector, SequenceConfig,
    SequenceDetector,
};

const FOLDS: usize = 5;

fn windows(traces: &[Trace], n: u32) -> Vec<FeatureWindow> {
    traces
        .iter()
        .flat_map(|t| t.windows(n, None, Part::Whole).unwrap_or_default())
        .collect()
}

/// Held-out cross-entropy of the n-gram model, bits per n-gram.
fn cross_entropy(folds: &[Vec<Trace>], n: u32) -> f64 {
    let (mut bits, mut grams) = (0.0, 0u64);
    for (k, fold) in folds.iter().enumerate() {
        let rest: Vec<Trace> = folds
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .flat_map(|(_, f)| f.iter().cloned())
            .collect();
        let Ok(model) = NgramModel::learn(&windows(&rest, n)) else {
            continue;
        };
        for window in windows(fold, n) {
            for (gram, count) in window.ngrams {
                bits += model.surprisal(gram) * count as f64;
                grams += count;
            }
        }
    }
    bits / grams.max(1) as f64
}

fn spread(name: &str, mut scores: Vec<f64>) {
    scores.sort_by(f64::total_cmp);
    println!(
        "  {name:24} median {:.4}  q90 {:.4}  q99 {:.4}  max {:.4}",
        quantile(&scores, 0.5),
        quantile(&scores, 0.9),
        quantile(&scores, 0.99),
        scores.last().copied().unwrap_or(f64::NAN)
    );
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
    println!("{} training traces, {FOLDS} contiguous folds", traces.len());
    println!("held-out cross-entropy (bits per n-gram):");
    let mut best: Option<(f64, u32)> = None;
    for n in 2..=7 {
        let ce = cross_entropy(&folds, n);
        let candidate = (5..=7).contains(&n);
        println!(
            "  n={n}: {ce:.4}{}",
            if candidate { "" } else { "  (not a candidate)" }
        );
        if candidate && best.is_none_or(|(b, _)| ce < b) {
            best = Some((ce, n));
        }
    }
    let Some((_, n)) = best else {
        eprintln!("tune: no n-gram length could be scored");
        std::process::exit(1);
    };
    println!("chosen n-gram length: {n}");

    let learn = windows(&traces, n);
    let calibration = Calibration::default();
    println!("cross-validated scores of held-out training traces, n = {n}:");
    for (name, aggregate) in [
        ("sequence mean", Aggregate::Mean),
        ("sequence mismatch rate", Aggregate::UnseenMass),
        ("sequence max", Aggregate::Max),
    ] {
        let detector = SequenceDetector::new(SequenceConfig {
            aggregate,
            ..SequenceConfig::default()
        });
        match cross_validated_scores(&detector, &learn, &calibration) {
            Ok(scores) => spread(name, scores),
            Err(error) => eprintln!("tune: {name}: {error}"),
        }
    }
    let frequency = FrequencyDetector::new(FrequencyConfig::default());
    match cross_validated_scores(&frequency, &learn, &calibration) {
        Ok(scores) => spread("frequency", scores),
        Err(error) => eprintln!("tune: frequency: {error}"),
    }
}
