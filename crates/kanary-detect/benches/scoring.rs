//! Per-window scoring cost of every detector, on synthetic timed windows of a web server
//! ([`kanary_detect::resource::synthetic_window`]: syscalls, n-grams and every metric), and the
//! serialised size of each learnt model, printed once as "memory per baseline".
//!
//! `cargo bench -p kanary-detect --bench scoring -- --warm-up-time 1 --measurement-time 3`
//!
//! Adding a detector is one line in [`scoring`]: its name, a fresh instance and the n-gram length
//! of its windows.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use kanary_detect::detector::{to_json, Calibration, Detector};
use kanary_detect::forest::{WindowConfig, WindowModel};
use kanary_detect::resource::{synthetic_window, ResourceConfig, ResourceModel};
use kanary_detect::{
    CombinedConfig, CombinedDetector, FeatureWindow, FrequencyConfig, FrequencyDetector,
    SequenceConfig, SequenceDetector,
};
use serde::Serialize;

/// Learning windows: five minutes of one container at 1-second intervals, enough for the window
/// model to reach its full subsample of 256.
const LEARNING: u64 = 300;
/// Distinct windows scored in turn.
const SCORED: u64 = 32;

fn windows(ngram_len: u32, seeds: std::ops::Range<u64>) -> Vec<FeatureWindow> {
    seeds
        .map(|seed| synthetic_window(ngram_len, seed).expect("synthetic windows are well formed"))
        .collect()
}

/// Learns and calibrates `detector` on windows of `ngram_len`-grams, prints its serialised size,
/// then measures [`Detector::score`] (score and explanation) of one unseen window.
fn bench<D: Detector + Clone + Serialize>(
    c: &mut Criterion,
    name: &str,
    mut detector: D,
    ngram_len: u32,
) {
    detector
        .fit(&windows(ngram_len, 0..LEARNING), &Calibration::default())
        .expect("the synthetic workload is learnable");
    let bytes = to_json(&detector).expect("state serialises").len();
    println!("memory per baseline: {name}: {bytes} bytes of JSON");
    let scored = windows(ngram_len, 10_000..10_000 + SCORED);
    let mut next = 0;
    c.bench_function(&format!("score/{name}"), |b| {
        b.iter(|| {
            next = (next + 1) % scored.len();
            black_box(detector.score(black_box(&scored[next])))
        })
    });
}

fn scoring(c: &mut Criterion) {
    bench(
        c,
        "sequence n=3",
        SequenceDetector::new(SequenceConfig::default()),
        3,
    );
    bench(
        c,
        "sequence n=7",
        SequenceDetector::new(SequenceConfig::default()),
        7,
    );
    bench(
        c,
        "frequency",
        FrequencyDetector::new(FrequencyConfig::default()),
        3,
    );
    bench(
        c,
        "combined n=3",
        CombinedDetector::new(CombinedConfig::default()),
        3,
    );
    bench(
        c,
        "resource",
        ResourceModel::new(ResourceConfig::default()),
        3,
    );
    bench(c, "window", WindowModel::new(WindowConfig::default()), 3);
}

criterion_group!(benches, scoring);
criterion_main!(benches);
