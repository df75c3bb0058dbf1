//! The ADFA-LD figures of `docs/detection.md`: the default detector and the named alternatives,
//! each learnt from `training/` and scored once on `validation/` (normal) against `attack/`.
//!
//! `cargo run -p kanary-detect --release --example report -- ../shared/datasets/adfa-ld`
//!
//! Every setting here was fixed before this was first run (`docs/detection.md`, "Honesty
//! rules"); the alternatives are printed so readers see the spread, not to choose among them.

use std::path::PathBuf;

use kanary_detect::eval::{self, DetectorKind, EvalOptions, Format};
use kanary_detect::{Aggregate, SequenceConfig};

fn main() {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: report ADFA_LD_DIR");
        std::process::exit(2);
    };
    let data = match eval::load(
        Format::Adfa,
        &dir.join("training"),
        &dir.join("validation"),
        &dir.join("attack"),
    ) {
        Ok(data) => data,
        Err(error) => {
            eprintln!("report: {error}");
            std::process::exit(1);
        }
    };
    let runs: [(&str, DetectorKind, u32, Aggregate); 9] = [
        (
            "default: combined",
            DetectorKind::Combined,
            7,
            Aggregate::Mean,
        ),
        ("sequence, mean", DetectorKind::Sequence, 7, Aggregate::Mean),
        (
            "frequency (1-NN)",
            DetectorKind::Frequency,
            7,
            Aggregate::Mean,
        ),
        ("sequence, mean", DetectorKind::Sequence, 5, Aggregate::Mean),
        (
            "STIDE mismatch rate",
            DetectorKind::Sequence,
            6,
            Aggregate::UnseenMass,
        ),
        (
            "STIDE mismatch rate",
            DetectorKind::Sequence,
            7,
            Aggregate::UnseenMass,
        ),
        (
            "old default: max",
            DetectorKind::Sequence,
            5,
            Aggregate::Max,
        ),
        ("combined", DetectorKind::Combined, 3, Aggregate::Mean),
        ("sequence, mean", DetectorKind::Sequence, 3, Aggregate::Mean),
    ];
    println!("| detector | n | AUC | DR@1% | DR@5% | calibrated: false alarms / detection |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, detector, ngram_len, aggregate) in runs {
        let options = EvalOptions {
            ngram_len,
            detector,
            sequence: SequenceConfig {
                aggregate,
                ..SequenceConfig::default()
            },
            ..EvalOptions::default()
        };
        match eval::evaluate(&data, &options) {
            Ok(r) => println!(
                "| {name} | {ngram_len} | {:.3} | {:.1}% | {:.1}% | {:.1}% / {:.1}% |",
                r.auc,
                r.at_1_percent.detection_rate * 100.0,
                r.at_5_percent.detection_rate * 100.0,
                r.calibrated.false_alarm_rate * 100.0,
                r.calibrated.detection_rate * 100.0
            ),
            Err(error) => println!("| {name} | {ngram_len} | error: {error} |"),
        }
    }
}
