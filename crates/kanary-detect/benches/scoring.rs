//! Per-window scoring cost of every detector, on synthetic timed windows of a web server
//! ([`kanary_detect::resource::synthetic_window`]: syscalls, n-grams and every metric, plus the
//! facts of [`facts`]), and the serialised size of each learnt model, printed once as "memory per baseline".
//!
//! `cargo bench -p kanary-detect --bench scoring -- --warm-up-time 1 --measurement-time 3`
//!
//! Adding a detector is one line in [`scoring`]: its name, a fresh instance and the n-gram length
//! of its windows.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use kanary_detect::activity::{Activity, Fact, Peer};
use kanary_detect::behaviour::{BehaviourConfig, BehaviourProfile};
use kanary_detect::detector::{to_json, Calibration, Detector};
use kanary_detect::forest::{WindowConfig, WindowModel};
use kanary_detect::invariants::Invariants;
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
        .map(|seed| {
            let mut window =
                synthetic_window(ngram_len, seed).expect("synthetic windows are well formed");
            window.facts = facts(seed);
            window
        })
        .collect()
}

/// A web server's facts in one window: 40 page reads from a churning set, a log write, a cache
/// connection and now and then a health-check program: what the behaviour profile and the
/// invariants go through per window.
fn facts(seed: u64) -> Vec<Fact> {
    let fact = |activity, count| Fact { activity, count };
    let mut out: Vec<Fact> = (0..40)
        .map(|i| {
            let path = format!("/srv/www/page-{}.html", (seed * 7 + i) % 500);
            let open = Activity::Open {
                path,
                write: false,
                ok: true,
                comm: "nginx".into(),
            };
            fact(open, 1 + i % 3)
        })
        .collect();
    out.push(fact(
        Activity::Open {
            path: format!("/var/log/nginx/access-{seed}.log"),
            write: true,
            ok: true,
            comm: "nginx".into(),
        },
        1,
    ));
    out.push(fact(
        Activity::Connect {
            peer: Peer::Container {
                image: "redis:7".into(),
                name: "cache".into(),
            },
            port: 6379,
            protocol: "tcp".into(),
            ok: true,
            comm: "nginx".into(),
        },
        12,
    ));
    if seed.is_multiple_of(5) {
        let exec = Activity::Exec {
            path: "/usr/bin/curl".into(),
            parent: "sh".into(),
            cmdline: "curl -fsS http://localhost/health".into(),
            uid: 0,
        };
        out.push(fact(exec, 1));
    }
    out
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
    bench(
        c,
        "behaviour",
        BehaviourProfile::new(BehaviourConfig::default()),
        3,
    );
    bench(c, "invariants", Invariants::new(), 3);
}

criterion_group!(benches, scoring);
criterion_main!(benches);
