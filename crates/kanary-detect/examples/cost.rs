//! What a learnt model costs: the heap bytes of its tables and the time to score one window.
//!
//! `cargo run -p kanary-detect --release --example cost -- ../shared/datasets/adfa-ld/training`
//!
//! Reads the training traces only. Each detector learns from them (n = 7) and then scores their
//! windows again and again in a timed loop: whole traces (one window per trace, as in the
//! evaluation) and windows of 200 syscalls (a busy agent interval).

use std::path::PathBuf;
use std::time::Instant;

use kanary_detect::dataset::Part;
use kanary_detect::eval::DEFAULT_NGRAM_LEN;
use kanary_detect::{
    adfa, CombinedConfig, CombinedDetector, Detector, FeatureWindow, FrequencyConfig,
    FrequencyDetector, SequenceConfig, SequenceDetector,
};

/// Mean nanoseconds per window over enough passes to take about a second.
fn per_window<D: Detector>(detector: &D, windows: &[FeatureWindow]) -> f64 {
    let mut passes = 0u64;
    let mut sink = 0.0;
    let start = Instant::now();
    while passes < 2 || start.elapsed().as_secs_f64() < 1.0 {
        for window in windows {
            sink += detector.raw_score(window).unwrap_or(0.0);
        }
        passes += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Keeps the scores alive so the loop is not optimised away.
    std::hint::black_box(sink);
    elapsed * 1e9 / (passes as f64 * windows.len().max(1) as f64)
}

fn main() {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: cost TRAINING_DIR");
        std::process::exit(2);
    };
    let traces = match adfa::read_dir(&dir, false) {
        Ok(traces) => traces,
        Err(error) => {
            eprintln!("cost: {error}");
            std::process::exit(1);
        }
    };
    let n = DEFAULT_NGRAM_LEN;
    let windows = |every| -> Vec<FeatureWindow> {
        traces
            .iter()
            .flat_map(|t| t.windows(n, every, Part::Whole).unwrap_or_default())
            .collect()
    };
    let (whole, short) = (windows(None), windows(Some(200)));
    let distinct = |w: &[FeatureWindow]| {
        w.iter().map(|w| w.ngrams.len()).sum::<usize>() as f64 / w.len().max(1) as f64
    };
    println!(
        "{} traces, n = {n}: {} whole-trace windows ({:.0} distinct n-grams each on average), \
         {} windows of 200 syscalls ({:.0})",
        traces.len(),
        whole.len(),
        distinct(&whole),
        short.len(),
        distinct(&short)
    );
    let mut sequence = SequenceDetector::new(SequenceConfig::default());
    let mut frequency = FrequencyDetector::new(FrequencyConfig::default());
    let mut combined = CombinedDetector::new(CombinedConfig::default());
    let learnt = sequence
        .learn(&whole)
        .and_then(|()| frequency.learn(&whole))
        .and_then(|()| combined.learn(&whole));
    if let Err(error) = learnt {
        eprintln!("cost: {error}");
        std::process::exit(1);
    }
    let model = sequence.model().map_or(0, |m| m.table_bytes());
    let distinct_grams = sequence.model().map_or(0, |m| m.distinct());
    println!(
        "sequence:  {distinct_grams} distinct {n}-grams, tables {:.2} MiB",
        model as f64 / 1048576.0
    );
    println!(
        "frequency: {} profiles, tables {:.2} MiB",
        frequency.profiles(),
        frequency.table_bytes() as f64 / 1048576.0
    );
    println!(
        "combined:  tables {:.2} MiB",
        combined.table_bytes() as f64 / 1048576.0
    );
    println!("scoring time per window (µs): whole trace / 200 syscalls");
    let us = |ns: f64| ns / 1000.0;
    println!(
        "  sequence   {:8.1} / {:8.1}",
        us(per_window(&sequence, &whole)),
        us(per_window(&sequence, &short))
    );
    println!(
        "  frequency  {:8.1} / {:8.1}",
        us(per_window(&frequency, &whole)),
        us(per_window(&frequency, &short))
    );
    println!(
        "  combined   {:8.1} / {:8.1}",
        us(per_window(&combined, &whole)),
        us(per_window(&combined, &short))
    );
}
