//! Offline evaluation: `kanary eval`.
//!
//! Learns a detector from every trace under `--train`, calibrates its threshold on them
//! (cross-validated, as in production), scores every trace under `--normal` and `--attack`, and
//! reports trace-level AUC and detection rates at 1% and 5% false alarms. A trace's score is its
//! most anomalous window's: one window per trace by default, or windows of `--window` syscalls cut
//! as the agent's intervals would cut a container's activity.
//!
//! Labels: ADFA-LD traces are labelled by folder (`--normal` 0, `--attack` 1). LID-DS recordings
//! are labelled by their `.json` (`exploit`), wherever they were found (`--normal` and `--attack`
//! may then be the same folder; a recording found twice counts once); of an attack recording only
//! what follows the exploit time is scored, and of any recording under `--train` only what
//! precedes it is learnt, so no attack activity is ever learnt as normal and normal activity
//! before an exploit is not counted as detected attack.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::combined::{CombinedConfig, CombinedDetector};
use crate::dataset::{Part, Trace};
use crate::detector::{Calibration, Detector};
use crate::error::{DetectError, Result};
use crate::frequency::{FrequencyConfig, FrequencyDetector};
use crate::metrics::{self, OperatingPoint};
use crate::names::{Abi, SyscallNames};
use crate::sequence::{Aggregate, SequenceConfig, SequenceDetector};
use crate::window::check_ngram_len;
use crate::{adfa, lidds};

/// The n-gram length `kanary eval` uses unless told otherwise: the length of lowest held-out
/// cross-entropy on ADFA-LD's training traces among 5..=7 (`examples/tune.rs`,
/// `docs/detection.md`).
pub const DEFAULT_NGRAM_LEN: u32 = 7;

/// Data set formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// ADFA-LD: one `.txt` file per process, space-separated i386 syscall numbers.
    Adfa,
    /// LID-DS 2021: `.sc` sysdig recordings with a `.json` label beside each.
    Lidds,
}

/// Which detector to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DetectorKind {
    /// The sequence and frequency detectors' standardised scores, averaged (the default).
    Combined,
    /// The n-gram language model over per-thread syscall sequences.
    Sequence,
    /// Nearest neighbours over syscall-frequency profiles.
    Frequency,
}

impl DetectorKind {
    /// The detector's name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::Combined => "combined",
            DetectorKind::Sequence => "sequence",
            DetectorKind::Frequency => "frequency",
        }
    }
}

/// `kanary eval` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Data set format.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Folder of normal traces to learn from (searched recursively).
    #[arg(long, value_name = "DIR")]
    pub train: PathBuf,
    /// Folder of normal traces to score (label 0; LID-DS: labels from the .json files).
    #[arg(long, value_name = "DIR")]
    pub normal: PathBuf,
    /// Folder of attack traces to score (label 1; LID-DS: labels from the .json files).
    #[arg(long, value_name = "DIR")]
    pub attack: PathBuf,
    /// Write every scored trace as CSV `path,score` (higher is more anomalous) to this file.
    #[arg(long, value_name = "FILE")]
    pub scores: Option<PathBuf>,
    /// n-gram length (2..=7), as `collectors.syscalls.ngram_len` in the agent.
    #[arg(long, default_value_t = DEFAULT_NGRAM_LEN)]
    pub ngram_len: u32,
    /// Cut traces into windows of this many syscalls (a trace scores as its worst window);
    /// default: one window per trace.
    #[arg(long, value_name = "SYSCALLS")]
    pub window: Option<u64>,
    /// Detector to evaluate.
    #[arg(long, value_enum, default_value = "combined")]
    pub detector: DetectorKind,
    /// How the sequence detector aggregates a window's n-gram surprisals (also inside the
    /// combined detector).
    #[arg(long, value_enum, default_value = "mean")]
    pub aggregate: AggregateArg,
}

/// The sequence aggregates `kanary eval` offers (see [`Aggregate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AggregateArg {
    /// Mean surprisal: the window's cross-entropy (the default).
    Mean,
    /// Share of n-grams never seen while learning: STIDE's mismatch rate.
    Mismatch,
    /// Surprisal of the rarest n-gram.
    Max,
}

impl From<AggregateArg> for Aggregate {
    fn from(arg: AggregateArg) -> Aggregate {
        match arg {
            AggregateArg::Mean => Aggregate::Mean,
            AggregateArg::Mismatch => Aggregate::UnseenMass,
            AggregateArg::Max => Aggregate::Max,
        }
    }
}

/// Everything an evaluation needs besides the data.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// n-gram length.
    pub ngram_len: u32,
    /// Syscalls per window (`None`: one window per trace).
    pub window: Option<u64>,
    /// Which detector.
    pub detector: DetectorKind,
    /// Sequence detector settings (its names are replaced by the data set's).
    pub sequence: SequenceConfig,
    /// Frequency detector settings (its names are replaced by the data set's).
    pub frequency: FrequencyConfig,
    /// Threshold calibration.
    pub calibration: Calibration,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            ngram_len: DEFAULT_NGRAM_LEN,
            window: None,
            detector: DetectorKind::Combined,
            sequence: SequenceConfig::default(),
            frequency: FrequencyConfig::default(),
            calibration: Calibration::default(),
        }
    }
}

/// Traces read for an evaluation.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Where the training traces were found.
    pub train_dir: PathBuf,
    /// Traces to learn from.
    pub train: Vec<Trace>,
    /// Traces to score.
    pub test: Vec<Trace>,
    /// How their syscall numbers are named.
    pub names: SyscallNames,
}

/// Reads the three folders of an evaluation.
pub fn load(format: Format, train: &Path, normal: &Path, attack: &Path) -> Result<Dataset> {
    match format {
        Format::Adfa => {
            let train_traces = adfa::read_dir(train, false)?;
            let mut test = adfa::read_dir(normal, false)?;
            test.extend(adfa::read_dir(attack, true)?);
            Ok(Dataset {
                train_dir: train.to_path_buf(),
                train: train_traces,
                test,
                names: SyscallNames::new(Abi::I386),
            })
        }
        Format::Lidds => {
            let mut names = SyscallNames::new(Abi::X86_64);
            let train_traces = lidds::read_dir(train, &mut names)?;
            let mut test = lidds::read_dir(normal, &mut names)?;
            let mut seen: Vec<PathBuf> = test.iter().map(|t| canonical(&t.path)).collect();
            for trace in lidds::read_dir(attack, &mut names)? {
                let path = canonical(&trace.path);
                if !seen.contains(&path) {
                    seen.push(path);
                    test.push(trace);
                }
            }
            Ok(Dataset {
                train_dir: train.to_path_buf(),
                train: train_traces,
                test,
                names,
            })
        }
    }
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// One scored trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Its file.
    pub path: PathBuf,
    /// Its label.
    pub attack: bool,
    /// Its score: its most anomalous window's (0 when it has no window).
    pub score: f64,
}

/// The result of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Traces learnt from.
    pub train_traces: usize,
    /// Windows learnt from.
    pub train_windows: usize,
    /// Every scored trace, in the order read.
    pub scores: Vec<Scored>,
    /// Normal traces scored.
    pub normal: usize,
    /// Attack traces scored.
    pub attack: usize,
    /// Area under the ROC curve.
    pub auc: f64,
    /// Operating point at no more than 1% false alarms.
    pub at_1_percent: OperatingPoint,
    /// Operating point at no more than 5% false alarms.
    pub at_5_percent: OperatingPoint,
    /// Operating point at the threshold the detector calibrated on the learning data alone.
    pub calibrated: OperatingPoint,
}

/// Learns, calibrates and scores as the options say.
pub fn evaluate(data: &Dataset, options: &EvalOptions) -> Result<Report> {
    check_ngram_len(options.ngram_len)?;
    if options.ngram_len == 0 {
        return Err(DetectError::Config(
            "the n-gram length must be 2..=7".into(),
        ));
    }
    let sequence = SequenceConfig {
        names: data.names.clone(),
        ..options.sequence.clone()
    };
    let frequency = FrequencyConfig {
        names: data.names.clone(),
        ..options.frequency.clone()
    };
    match options.detector {
        DetectorKind::Combined => {
            let config = CombinedConfig {
                sequence,
                frequency,
                folds: options.calibration.folds,
                ..CombinedConfig::default()
            };
            evaluate_with(CombinedDetector::new(config), data, options)
        }
        DetectorKind::Sequence => evaluate_with(SequenceDetector::new(sequence), data, options),
        DetectorKind::Frequency => evaluate_with(FrequencyDetector::new(frequency), data, options),
    }
}

/// The windows of the learnable part of `traces`.
pub fn learning_windows(
    traces: &[Trace],
    options: &EvalOptions,
) -> Result<Vec<crate::window::FeatureWindow>> {
    let mut windows = Vec::new();
    for trace in traces {
        windows.extend(trace.windows(options.ngram_len, options.window, Part::BeforeExploit)?);
    }
    Ok(windows)
}

/// A trace's score: its most anomalous window's (the scored part: after the exploit for an
/// attack recording).
pub fn score_trace<D: Detector>(detector: &D, trace: &Trace, options: &EvalOptions) -> Result<f64> {
    let part = if trace.attack {
        Part::FromExploit
    } else {
        Part::Whole
    };
    let mut score: f64 = 0.0;
    for window in trace.windows(options.ngram_len, options.window, part)? {
        score = score.max(detector.raw_score(&window)?);
    }
    Ok(score)
}

fn evaluate_with<D: Detector + Clone>(
    mut detector: D,
    data: &Dataset,
    options: &EvalOptions,
) -> Result<Report> {
    let windows = learning_windows(&data.train, options)?;
    if windows.iter().all(|w| w.syscall_total() == 0) {
        return Err(DetectError::EmptyTraining(format!(
            "no syscall in the {} traces under {}",
            data.train.len(),
            data.train_dir.display()
        )));
    }
    detector.learn(&windows).map_err(|e| match e {
        DetectError::EmptyTraining(why) => {
            DetectError::EmptyTraining(format!("{}: {why}", data.train_dir.display()))
        }
        other => other,
    })?;
    let threshold = detector.calibrate(&windows, &options.calibration)?;
    let mut scores = Vec::with_capacity(data.test.len());
    for trace in &data.test {
        scores.push(Scored {
            path: trace.path.clone(),
            attack: trace.attack,
            score: score_trace(&detector, trace, options)?,
        });
    }
    let normal: Vec<f64> = scores
        .iter()
        .filter(|s| !s.attack)
        .map(|s| s.score)
        .collect();
    let attack: Vec<f64> = scores
        .iter()
        .filter(|s| s.attack)
        .map(|s| s.score)
        .collect();
    let missing = |what: &str| DetectError::Config(format!("no {what} trace to score"));
    let auc = metrics::auc(&normal, &attack).ok_or_else(|| {
        missing(if normal.is_empty() {
            "normal"
        } else {
            "attack"
        })
    })?;
    let point =
        |far| metrics::detection_at_far(&normal, &attack, far).ok_or_else(|| missing("normal"));
    Ok(Report {
        train_traces: data.train.len(),
        train_windows: windows.len(),
        normal: normal.len(),
        attack: attack.len(),
        auc,
        at_1_percent: point(0.01)?,
        at_5_percent: point(0.05)?,
        calibrated: metrics::at_threshold(&normal, &attack, threshold)
            .ok_or_else(|| missing("attack"))?,
        scores,
    })
}

/// Writes scores as CSV `path,score` with a header line.
pub fn write_scores(path: &Path, scores: &[Scored]) -> Result<()> {
    let mut out = String::from("path,score\n");
    for scored in scores {
        out.push_str(&csv_field(&scored.path.to_string_lossy()));
        out.push(',');
        out.push_str(&scored.score.to_string());
        out.push('\n');
    }
    let mut file = std::fs::File::create(path).map_err(|e| DetectError::io(path, e))?;
    file.write_all(out.as_bytes())
        .map_err(|e| DetectError::io(path, e))
}

/// Quotes a CSV field when it needs it (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Human-readable report.
pub fn render(report: &Report, args: &EvalArgs, options: &EvalOptions) -> String {
    let detector = match args.detector {
        DetectorKind::Frequency => "frequency".to_string(),
        kind => format!("{} ({:?} aggregate)", kind.name(), args.aggregate).to_lowercase(),
    };
    let window = options.window.map_or_else(
        || "one window per trace".to_string(),
        |n| format!("windows of {n} syscalls"),
    );
    let pct = |v: f64| format!("{:.1}%", v * 100.0);
    let point = |p: &OperatingPoint| {
        format!(
            "{} (threshold {:.4}, false alarms {})",
            pct(p.detection_rate),
            p.threshold,
            pct(p.false_alarm_rate)
        )
    };
    format!(
        "{detector} detector, {}-grams, {window}\n\
         learnt from {} traces ({} windows) under {}\n\
         scored {} normal and {} attack traces\n\
         AUC                          {:.4}\n\
         detection at 1% false alarms {}\n\
         detection at 5% false alarms {}\n\
         calibrated threshold         {} (quantile {} of cross-validated learning scores)\n",
        options.ngram_len,
        report.train_traces,
        report.train_windows,
        args.train.display(),
        report.normal,
        report.attack,
        report.auc,
        point(&report.at_1_percent),
        point(&report.at_5_percent),
        point(&report.calibrated),
        options.calibration.quantile,
    )
}

/// Runs `kanary eval`: prints the report on stdout and writes the scores if asked.
pub fn run(args: &EvalArgs) -> Result<()> {
    let options = EvalOptions {
        ngram_len: args.ngram_len,
        window: args.window,
        detector: args.detector,
        sequence: SequenceConfig {
            aggregate: args.aggregate.into(),
            ..SequenceConfig::default()
        },
        ..EvalOptions::default()
    };
    let data = load(args.format, &args.train, &args.normal, &args.attack)?;
    let report = evaluate(&data, &options)?;
    print!("{}", render(&report, args, &options));
    if let Some(path) = &args.scores {
        write_scores(path, &report.scores)?;
        println!("scores written to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kanary-eval-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["train", "normal", "attack"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        dir
    }

    fn write(dir: &Path, name: &str, seq: &[u32]) {
        let text: Vec<String> = seq.iter().map(u32::to_string).collect();
        std::fs::write(dir.join(name), text.join(" ")).unwrap();
    }

    #[test]
    fn evaluates_a_tiny_data_set_end_to_end() {
        let dir = temp_dir("tiny");
        let normal = |i: u32| -> Vec<u32> {
            (0..60)
                .map(|j| [3, 4, 5, 6][((i + j) % 4) as usize])
                .collect()
        };
        for i in 0..12 {
            write(&dir.join("train"), &format!("t{i}.txt"), &normal(i));
        }
        for i in 0..4 {
            write(&dir.join("normal"), &format!("n{i}.txt"), &normal(i + 1));
            let mut attack = normal(i);
            attack.splice(20..20, [11, 11, 120, 102, 11, 63, 63]);
            write(&dir.join("attack"), &format!("a,{i}.txt"), &attack);
        }
        let scores = dir.join("scores.csv");
        let args = EvalArgs {
            format: Format::Adfa,
            train: dir.join("train"),
            normal: dir.join("normal"),
            attack: dir.join("attack"),
            scores: Some(scores.clone()),
            ngram_len: 3,
            window: None,
            detector: DetectorKind::Combined,
            aggregate: AggregateArg::Mean,
        };
        run(&args).unwrap();
        let csv = std::fs::read_to_string(&scores).unwrap();
        assert_eq!(csv.lines().count(), 9);
        assert!(csv.starts_with("path,score\n"));
        assert!(
            csv.contains("\"") && csv.contains("a,0.txt"),
            "quoted: {csv}"
        );
        let data = load(Format::Adfa, &args.train, &args.normal, &args.attack).unwrap();
        for detector in [
            DetectorKind::Combined,
            DetectorKind::Sequence,
            DetectorKind::Frequency,
        ] {
            let options = EvalOptions {
                ngram_len: 3,
                detector,
                ..EvalOptions::default()
            };
            let report = evaluate(&data, &options).unwrap();
            assert_eq!(report.auc, 1.0, "{detector:?}");
            assert_eq!(report.at_1_percent.detection_rate, 1.0);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let dir = temp_dir("bad");
        write(&dir.join("normal"), "n.txt", &[1, 2, 3]);
        write(&dir.join("attack"), "a.txt", &[1, 2, 3]);
        let run_on = |train: &Path| {
            let args = EvalArgs {
                format: Format::Adfa,
                train: train.to_path_buf(),
                normal: dir.join("normal"),
                attack: dir.join("attack"),
                scores: None,
                ngram_len: 3,
                window: None,
                detector: DetectorKind::Sequence,
                aggregate: AggregateArg::Mean,
            };
            run(&args).unwrap_err().to_string()
        };
        let error = run_on(&dir.join("missing"));
        assert!(error.contains("missing"), "{error}");
        let error = run_on(&dir.join("train"));
        assert!(error.contains("no ADFA-LD trace"), "{error}");
        std::fs::write(dir.join("train/empty.txt"), "\n").unwrap();
        std::fs::write(dir.join("train/empty2.txt"), "").unwrap();
        let error = run_on(&dir.join("train"));
        assert!(
            error.contains("empty training set") && error.contains("train"),
            "{error}"
        );
        std::fs::write(dir.join("train/short.txt"), "1 2").unwrap();
        let error = run_on(&dir.join("train"));
        assert!(error.contains("empty training set"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
