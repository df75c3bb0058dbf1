//! The resource model: how far each of a window's resource and activity figures rises above what
//! the image's containers usually do.
//!
//! **Features.** Every figure of [`METRICS`] a window carries, the syscall rate ([`SYSCALLS`])
//! among them: levels (CPU %, memory, pids) and rates per second, so that a baseline learnt at one
//! stats interval judges windows of another. Only the agent's windows carry figures; offline
//! windows are cut every so many syscalls and carry none: they are not learnt from, and score 0. A figure absent from a window (its collector was off) is skipped,
//! never read as 0: learning "no CPU" from a window whose CPU was not measured would make every
//! measured window look like a burn. A figure that is not a finite number is treated as absent too.
//!
//! **Model.** Per figure, robust statistics of the learning windows that carried it: the median,
//! and a spread that is the median absolute deviation scaled to a standard deviation (× 1.4826,
//! exact for normal data), floored at `max(relative_floor × median, absolute floor)`. The floor
//! is what keeps near-constant figures from exploding: a container whose pids were 8 in every
//! learning window has a MAD of 0, and without a floor its ninth process would be an infinite
//! anomaly. The absolute floors are the smallest change worth a reader's attention, per metric
//! ([`absolute_floor`]): 1 % of a core, 4 MiB of memory, 2 pids, and per second 64 KiB of block IO or
//! traffic, 2 connections or failed connections, 5 accepts, 2 forks or execs, 20 opens, 5 failed
//! opens and 50 syscalls. Median and MAD rather than mean and standard deviation because the
//! learning period has its own bursts (a deploy, a cron job) that would otherwise widen the band
//! for good.
//!
//! **Score.** Per figure the one-sided robust z, `max(0, (x − median) / spread)`, and the window
//! score is the largest of them. One-sided because abuse adds load: mining burns CPU, exfiltration
//! sends bytes, a fork bomb forks, a scan connects and fails. Less of anything is a quiet hour or a
//! drained replica, and a two-sided score would alarm every night. The maximum rather than a sum or
//! a soft-max because the figures move together with load (more requests mean more CPU, syscalls,
//! bytes in and out, opens): adding them up would count one busy minute several times and loosen
//! the calibrated threshold, while the maximum is the z of the one figure that is named first in
//! the explanation, so the score reads directly ("egress volume at z = 40").
//!
//! **Not here.** No smoothing and no trend across windows: [`Detector::score`] judges one window
//! on its own, and the agent's incidents already fold consecutive anomalous windows together. A
//! slow memory climb is caught once the level leaves the learnt band, whatever its pace; a slope
//! detector would mostly report page cache filling up, which the cgroup's memory figure counts.
//!
//! **Explanation.** The figures by decreasing z (only those above their median), each named after
//! the rate detector it stands for (`cpu burn: cpu_percent`, `memory growth: memory_bytes`,
//! `io storm: io_write_bytes`, `egress volume: tx_bytes`, `fork rate: forks`, `pids: pids`,
//! `syscall storm: syscalls`, `connection burst: connects`, ...), with `baseline` = the learnt
//! median, `observed` = the window's value and a detail such as `z=14.2 (median 3.1%, spread 0.8%,
//! learnt max 4.0%)`.

use std::collections::BTreeMap;

use kanary_model::record::AlertClass;
use serde::{Deserialize, Serialize};

use crate::activity::METRICS;
use crate::detector::{quantile, Contribution, Detector, Versioned, FORMAT_VERSION};
use crate::error::{DetectError, Result};
use crate::forest::SplitMix64;
use crate::window::FeatureWindow;

/// The lowest threshold, in robust z: a figure must stand this many spreads above its median
/// to alarm, however steady the learning windows were. A machine-regular workload (a loop that
/// forks exactly 20 times a second) gives held-out scores all near 0 and a calibrated threshold
/// near 1, where one second of scheduling jitter would alarm.
pub const MIN_THRESHOLD: f64 = 3.0;

/// Name of the syscall rate among the figures.
pub const SYSCALLS: &str = "syscalls";

/// Scales a median absolute deviation to the standard deviation of normal data.
const MAD_TO_SIGMA: f64 = 1.4826;

const KIB: f64 = 1024.0;
const MIB: f64 = 1024.0 * KIB;

/// How a figure is shown to a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Percent,
    Bytes,
    Count,
}

/// One watched figure: its name, the rate detector it stands for, its unit and its floor.
struct Rate {
    metric: &'static str,
    detector: &'static str,
    unit: Unit,
    /// The smallest change worth attention, in the figure's unit (per second for rates).
    floor: f64,
}

/// Every figure the model watches: [`METRICS`] in its order, then the syscall rate.
const RATES: &[Rate] = &[
    Rate {
        metric: "cpu_percent",
        detector: "cpu burn",
        unit: Unit::Percent,
        floor: 1.0,
    },
    Rate {
        metric: "memory_bytes",
        detector: "memory growth",
        unit: Unit::Bytes,
        floor: 4.0 * MIB,
    },
    Rate {
        metric: "io_read_bytes",
        detector: "io storm",
        unit: Unit::Bytes,
        floor: 64.0 * KIB,
    },
    Rate {
        metric: "io_write_bytes",
        detector: "io storm",
        unit: Unit::Bytes,
        floor: 64.0 * KIB,
    },
    Rate {
        metric: "pids",
        detector: "pids",
        unit: Unit::Count,
        floor: 2.0,
    },
    Rate {
        metric: "rx_bytes",
        detector: "ingress volume",
        unit: Unit::Bytes,
        floor: 64.0 * KIB,
    },
    Rate {
        metric: "tx_bytes",
        detector: "egress volume",
        unit: Unit::Bytes,
        floor: 64.0 * KIB,
    },
    Rate {
        metric: "connects",
        detector: "connection burst",
        unit: Unit::Count,
        floor: 2.0,
    },
    Rate {
        metric: "connect_failures",
        detector: "connection burst",
        unit: Unit::Count,
        floor: 2.0,
    },
    Rate {
        metric: "accepts",
        detector: "accept burst",
        unit: Unit::Count,
        floor: 5.0,
    },
    Rate {
        metric: "execs",
        detector: "fork rate",
        unit: Unit::Count,
        floor: 2.0,
    },
    Rate {
        metric: "forks",
        detector: "fork rate",
        unit: Unit::Count,
        floor: 2.0,
    },
    Rate {
        metric: "opens",
        detector: "open storm",
        unit: Unit::Count,
        floor: 20.0,
    },
    Rate {
        metric: "open_failures",
        detector: "open storm",
        unit: Unit::Count,
        floor: 5.0,
    },
    Rate {
        metric: SYSCALLS,
        detector: "syscall storm",
        unit: Unit::Count,
        floor: 50.0,
    },
];

fn rate_of(metric: &str) -> Option<&'static Rate> {
    RATES.iter().find(|rate| rate.metric == metric)
}

/// The absolute spread floor of `metric`, in its unit (per second for rates); `None` for a name
/// the model does not watch.
pub fn absolute_floor(metric: &str) -> Option<f64> {
    rate_of(metric).map(|rate| rate.floor)
}

/// The value of figure `metric` ([`METRICS`]) in `window`, if it was measured:
/// `None` for a window that carries no metric at all (not timed, see the module documentation),
/// for a figure whose collector was off, and for a value that is not a finite number.
pub fn metric_value(window: &FeatureWindow, metric: &str) -> Option<f64> {
    window
        .metrics
        .get(metric)
        .copied()
        .filter(|value| value.is_finite())
}

/// Every figure name the models over metrics use, in a fixed order: [`METRICS`].
pub fn metric_names() -> impl Iterator<Item = &'static str> {
    METRICS.iter().copied()
}

/// The median of `values` and their MAD scaled to a standard deviation (× 1.4826), unfloored;
/// sorts `values` ascending. Both are 0 for no values.
pub(crate) fn median_and_sigma(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let median = quantile(values, 0.5);
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
    deviations.sort_by(f64::total_cmp);
    (median, MAD_TO_SIGMA * quantile(&deviations, 0.5))
}

/// `value` for a reader, in the unit of `metric`.
pub(crate) fn shown(metric: &str, value: f64) -> String {
    match rate_of(metric).map_or(Unit::Count, |rate| rate.unit) {
        Unit::Percent => format!("{value:.1}%"),
        Unit::Count => format!("{value:.1}"),
        Unit::Bytes => {
            let magnitude = value.abs();
            if magnitude >= 1024.0 * MIB {
                format!("{:.1} GiB", value / (1024.0 * MIB))
            } else if magnitude >= MIB {
                format!("{:.1} MiB", value / MIB)
            } else if magnitude >= KIB {
                format!("{:.1} KiB", value / KIB)
            } else {
                format!("{value:.0} B")
            }
        }
    }
}

/// Settings of the resource model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceConfig {
    /// The spread of a figure is at least this fraction of its median.
    pub relative_floor: f64,
    /// How many figures a finding explains.
    pub top: usize,
}

impl Default for ResourceConfig {
    fn default() -> Self {
        ResourceConfig {
            relative_floor: 0.05,
            top: 5,
        }
    }
}

impl ResourceConfig {
    fn check(&self) -> Result<()> {
        if !(self.relative_floor >= 0.0 && self.relative_floor.is_finite()) {
            return Err(DetectError::Config(format!(
                "resource model: relative_floor must be finite and not negative (got {})",
                self.relative_floor
            )));
        }
        Ok(())
    }
}

/// What was learnt for one figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricBaseline {
    /// The figure ([`METRICS`]).
    pub metric: String,
    /// Median over the learning windows that carried it.
    pub median: f64,
    /// Robust spread: 1.4826 × MAD, floored (see the module documentation).
    pub spread: f64,
    /// Largest value learnt (shown to a reader as the edge of the normal band).
    pub max: f64,
}

impl MetricBaseline {
    /// The robust statistics of `values` (finite, not empty) for `metric`.
    fn of(metric: &str, mut values: Vec<f64>, config: &ResourceConfig) -> MetricBaseline {
        let (median, sigma) = median_and_sigma(&mut values);
        let floor = absolute_floor(metric).unwrap_or(0.0);
        MetricBaseline {
            metric: metric.to_string(),
            median,
            spread: sigma.max(config.relative_floor * median.abs()).max(floor),
            max: values.last().copied().unwrap_or(median),
        }
    }

    /// One-sided robust z of `value`; refuses a spread that loaded state could have broken.
    fn z(&self, value: f64) -> Result<f64> {
        if !(self.spread > 0.0 && self.spread.is_finite() && self.median.is_finite()) {
            return Err(DetectError::State(format!(
                "resource baseline of {}: median {} and spread {} must be finite, the spread \
                 positive",
                self.metric, self.median, self.spread
            )));
        }
        Ok(((value - self.median) / self.spread).max(0.0))
    }
}

/// The resource model (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceModel {
    /// [`FORMAT_VERSION`] of this state.
    pub format_version: u32,
    /// Settings.
    pub config: ResourceConfig,
    baselines: Vec<MetricBaseline>,
    threshold: Option<f64>,
}

impl ResourceModel {
    /// A model that has learnt nothing yet.
    pub fn new(config: ResourceConfig) -> Self {
        ResourceModel {
            format_version: FORMAT_VERSION,
            config,
            baselines: Vec::new(),
            threshold: None,
        }
    }

    /// What was learnt per figure, in the order of [`metric_names`]; figures no learning window
    /// carried are absent.
    pub fn baselines(&self) -> &[MetricBaseline] {
        &self.baselines
    }

    /// `(z, baseline, value)` of every learnt figure `window` carries.
    fn scored<'a>(
        &'a self,
        window: &'a FeatureWindow,
    ) -> impl Iterator<Item = Result<(f64, &'a MetricBaseline, f64)>> + 'a {
        self.baselines.iter().filter_map(move |baseline| {
            let value = metric_value(window, &baseline.metric)?;
            Some(baseline.z(value).map(|z| (z, baseline, value)))
        })
    }

    fn learnt(&self) -> Result<()> {
        if self.baselines.is_empty() {
            return Err(DetectError::NotTrained("resource"));
        }
        Ok(())
    }
}

impl Versioned for ResourceModel {
    fn format_version(&self) -> u32 {
        self.format_version
    }
}

impl Detector for ResourceModel {
    fn kind(&self) -> &'static str {
        "resource"
    }

    fn class(&self) -> AlertClass {
        AlertClass::ResourceAnomaly
    }

    fn learn(&mut self, windows: &[FeatureWindow]) -> Result<()> {
        self.config.check()?;
        let baselines: Vec<MetricBaseline> = metric_names()
            .filter_map(|metric| {
                let values: Vec<f64> = windows
                    .iter()
                    .filter_map(|window| metric_value(window, metric))
                    .collect();
                (!values.is_empty()).then(|| MetricBaseline::of(metric, values, &self.config))
            })
            .collect();
        if baselines.is_empty() {
            return Err(DetectError::EmptyTraining(format!(
                "none of the {} learning windows carries a resource or activity metric \
                 (were the resource, network, process and file collectors all off?)",
                windows.len()
            )));
        }
        self.baselines = baselines;
        Ok(())
    }

    /// The largest one-sided robust z over the figures the window carries; 0 when it carries none.
    fn raw_score(&self, window: &FeatureWindow) -> Result<f64> {
        self.learnt()?;
        self.scored(window)
            .try_fold(0.0, |max: f64, scored| Ok(max.max(scored?.0)))
    }

    /// The figures above their median by decreasing z: `baseline` = learnt median, `observed` =
    /// the window's value.
    fn explain(&self, window: &FeatureWindow, top: usize) -> Result<Vec<Contribution>> {
        self.learnt()?;
        let mut above = Vec::new();
        for scored in self.scored(window) {
            let scored = scored?;
            if scored.0 > 0.0 {
                above.push(scored);
            }
        }
        // Stable sort: equal z keep the fixed order of the figures.
        above.sort_by(|a, b| b.0.total_cmp(&a.0));
        Ok(above
            .into_iter()
            .take(top)
            .map(|(z, baseline, value)| {
                let metric = baseline.metric.as_str();
                let detector = rate_of(metric).map_or(metric, |rate| rate.detector);
                let mut contribution =
                    Contribution::new(format!("{detector}: {metric}"), baseline.median, value);
                contribution.detail = Some(format!(
                    "z={z:.1} (median {}, spread {}, learnt max {})",
                    shown(metric, baseline.median),
                    shown(metric, baseline.spread),
                    shown(metric, baseline.max)
                ));
                contribution
            })
            .collect())
    }

    fn top(&self) -> usize {
        self.config.top
    }

    fn threshold(&self) -> Option<f64> {
        self.threshold
    }

    fn set_threshold(&mut self, threshold: f64) {
        self.threshold = Some(threshold);
    }

    fn min_threshold(&self) -> f64 {
        MIN_THRESHOLD
    }
}

/// A synthetic timed window of a steady web server, deterministic in `seed`, for tests, examples
/// and benchmarks: the syscalls of [`crate::synthetic::normal_trace`] over 150 to 249 requests (as
/// `ngram_len`-grams, 0 for counts only), and one second's figures for every [`METRICS`] name,
/// consistent with that load (CPU, bytes in and out, accepts and opens grow with the requests;
/// memory and pids are steady; the server never forks, execs or fails to connect).
pub fn synthetic_window(ngram_len: u32, seed: u64) -> Result<FeatureWindow> {
    let mut rng = SplitMix64::new(seed);
    let requests = 150 + rng.below(100);
    let trace = crate::synthetic::normal_trace(seed, requests);
    let opens = trace.iter().filter(|&&nr| nr == 257).count() as f64;
    let mut window = FeatureWindow::from_threads(ngram_len, &[trace])?;
    let load = requests as f64;
    let figures: BTreeMap<&str, f64> = [
        ("cpu_percent", 0.02 * load + 0.5 * rng.unit()),
        (
            "memory_bytes",
            120.0 * MIB + (4.0 * MIB * rng.unit()).round(),
        ),
        ("io_read_bytes", (32.0 * KIB * rng.unit()).round()),
        ("io_write_bytes", (40.0 * KIB * (1.0 + rng.unit())).round()),
        ("pids", 8.0),
        ("rx_bytes", (KIB * load + 16.0 * KIB * rng.unit()).round()),
        (
            "tx_bytes",
            (8.0 * KIB * load + 64.0 * KIB * rng.unit()).round(),
        ),
        ("connects", rng.below(4) as f64),
        ("connect_failures", 0.0),
        ("accepts", (load / 4.0).round() + rng.below(5) as f64),
        ("execs", 0.0),
        ("forks", 0.0),
        ("opens", opens),
        ("open_failures", rng.below(3) as f64),
    ]
    .into_iter()
    .collect();
    window.metrics = figures
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
    // A one-second window: the syscall rate is its syscall count.
    window
        .metrics
        .insert(SYSCALLS.to_string(), window.syscall_total() as f64);
    Ok(window)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::detector::{from_json, to_json, Calibration};

    /// 30 learning windows of the synthetic web server.
    pub(crate) fn learning() -> Vec<FeatureWindow> {
        (0..30)
            .map(|seed| synthetic_window(0, seed).unwrap())
            .collect()
    }

    /// Normal windows the models never saw.
    pub(crate) fn held_out() -> Vec<FeatureWindow> {
        (1000..1020)
            .map(|seed| synthetic_window(0, seed).unwrap())
            .collect()
    }

    /// A held-out window with some figures replaced.
    pub(crate) fn with(figures: &[(&str, f64)]) -> FeatureWindow {
        let mut window = synthetic_window(0, 4242).unwrap();
        for &(name, value) in figures {
            window.metrics.insert(name.to_string(), value);
        }
        window
    }

    /// The five resource abuses, each with the feature that must explain it first.
    pub(crate) fn abuses() -> Vec<(&'static str, FeatureWindow, &'static str)> {
        vec![
            ("cpu burn", with(&[("cpu_percent", 97.0)]), "cpu_percent"),
            (
                "memory hog",
                with(&[("memory_bytes", 900.0 * MIB)]),
                "memory_bytes",
            ),
            (
                "egress spike",
                with(&[("tx_bytes", 60.0 * MIB)]),
                "tx_bytes",
            ),
            (
                "fork storm",
                // A fork bomb's pace: thousands of processes a second.
                with(&[("forks", 3000.0), ("execs", 2000.0)]),
                "forks",
            ),
            (
                "io storm",
                with(&[("io_write_bytes", 300.0 * MIB)]),
                "io_write_bytes",
            ),
        ]
    }

    fn fitted() -> ResourceModel {
        let mut model = ResourceModel::new(ResourceConfig::default());
        model.fit(&learning(), &Calibration::default()).unwrap();
        model
    }

    #[test]
    fn every_metric_is_watched_with_a_floor() {
        let names: Vec<&str> = metric_names().collect();
        let watched: Vec<&str> = RATES.iter().map(|rate| rate.metric).collect();
        assert_eq!(names, watched, "RATES must follow METRICS, then syscalls");
        assert_eq!(absolute_floor("tx_bytes"), Some(64.0 * KIB));
        assert_eq!(absolute_floor("memory_bytes"), Some(4.0 * MIB));
        assert_eq!(absolute_floor("nonsense"), None);
    }

    #[test]
    fn statistics_are_robust_and_floored() {
        let config = ResourceConfig::default();
        // One burst among steady values moves neither the median nor the MAD much.
        let cpu = MetricBaseline::of("cpu_percent", vec![10.0, 12.0, 11.0, 13.0, 90.0], &config);
        assert_eq!(cpu.median, 12.0);
        assert!((cpu.spread - MAD_TO_SIGMA * 1.0).abs() < 1e-12);
        assert_eq!(cpu.max, 90.0);
        // A constant figure gets the larger of 5% of its median and its absolute floor.
        let pids = MetricBaseline::of("pids", vec![8.0; 10], &config);
        assert_eq!(pids.spread, 2.0);
        let memory = MetricBaseline::of("memory_bytes", vec![1000.0 * MIB; 10], &config);
        assert_eq!(memory.spread, 50.0 * MIB);
        assert_eq!(memory.z(900.0 * MIB).unwrap(), 0.0, "one-sided");
        assert_eq!(memory.z(1100.0 * MIB).unwrap(), 2.0);
    }

    #[test]
    fn normal_windows_pass_and_each_abuse_alarms_with_its_figure_first() {
        let model = fitted();
        let threshold = model.threshold().unwrap();
        assert!(threshold > 0.0 && threshold < 10.0, "threshold {threshold}");
        for window in held_out() {
            let finding = model.score(&window).unwrap();
            assert!(!finding.anomalous, "normal window {finding:?}");
        }
        for (abuse, window, figure) in abuses() {
            let finding = model.score(&window).unwrap();
            assert!(finding.anomalous, "{abuse}: {finding:?}");
            assert_eq!(finding.class, AlertClass::ResourceAnomaly);
            let first = &finding.contributions[0];
            assert!(
                first.feature.ends_with(&format!(": {figure}")),
                "{abuse}: {finding:?}"
            );
            assert_eq!(first.observed, window.metrics[figure]);
            let detail = first.detail.as_deref().unwrap();
            assert!(
                detail.starts_with(&format!("z={:.1} (median", finding.score)),
                "{abuse}: the score is the first figure's z: {detail}"
            );
        }
        let burn = model.score(&abuses()[0].1).unwrap();
        assert_eq!(burn.contributions[0].feature, "cpu burn: cpu_percent");
        let hog = model.score(&abuses()[1].1).unwrap();
        let detail = hog.contributions[0].detail.as_deref().unwrap();
        assert!(detail.contains("MiB"), "memory is shown in MiB: {detail}");
    }

    #[test]
    fn a_syscall_storm_is_named() {
        let model = fitted();
        // getpid in a tight loop.
        let storm = with(&[(SYSCALLS, 200_000.0)]);
        let finding = model.score(&storm).unwrap();
        assert!(finding.anomalous, "{finding:?}");
        assert_eq!(finding.contributions[0].feature, "syscall storm: syscalls");
    }

    #[test]
    fn unmeasured_figures_are_skipped_not_zero() {
        let model = fitted();
        // The resources collector was off: no metrics at all.
        let mut off = synthetic_window(0, 77).unwrap();
        off.metrics.clear();
        let finding = model.score(&off).unwrap();
        assert!(!finding.anomalous && finding.score == 0.0, "{finding:?}");
        assert!(finding.contributions.is_empty());
        // Only the network collector was on, and egress exploded: still judged on what is there.
        let mut partial = with(&[("tx_bytes", 60.0 * MIB), ("cpu_percent", f64::NAN)]);
        partial
            .metrics
            .retain(|name, _| name.ends_with("_bytes") || name == "cpu_percent");
        let finding = model.score(&partial).unwrap();
        assert!(finding.anomalous, "{finding:?}");
        assert_eq!(finding.contributions[0].feature, "egress volume: tx_bytes");
        assert!(finding
            .contributions
            .iter()
            .all(|c| !c.feature.ends_with("cpu_percent")));
    }

    #[test]
    fn learning_needs_metrics() {
        let mut model = ResourceModel::new(ResourceConfig::default());
        assert!(matches!(
            model.raw_score(&with(&[])),
            Err(DetectError::NotTrained("resource"))
        ));
        let offline: Vec<FeatureWindow> = learning()
            .into_iter()
            .map(|mut w| {
                w.metrics.clear();
                w
            })
            .collect();
        match model.learn(&offline) {
            Err(DetectError::EmptyTraining(message)) => {
                assert!(message.contains("metric"), "{message}")
            }
            other => panic!("expected EmptyTraining, got {other:?}"),
        }
        let mut bad = ResourceModel::new(ResourceConfig {
            relative_floor: -1.0,
            ..ResourceConfig::default()
        });
        assert!(matches!(
            bad.learn(&learning()),
            Err(DetectError::Config(_))
        ));
    }

    #[test]
    fn state_round_trips_deterministically_and_bad_state_is_refused() {
        let model = fitted();
        let json = to_json(&model).unwrap();
        assert_eq!(json, to_json(&fitted()).unwrap(), "two fits, same state");
        let back: ResourceModel = from_json(&json).unwrap();
        assert_eq!(back, model);
        assert_eq!(to_json(&back).unwrap(), json);
        let window = &abuses()[2].1;
        assert_eq!(back.score(window).unwrap(), model.score(window).unwrap());

        let mut broken: serde_json::Value = serde_json::from_str(&json).unwrap();
        broken["baselines"][0]["spread"] = 0.0.into();
        let broken: ResourceModel = from_json(&broken.to_string()).unwrap();
        assert!(matches!(
            broken.raw_score(window),
            Err(DetectError::State(message)) if message.contains("cpu_percent")
        ));
        let other_version = json.replacen("\"format_version\":1", "\"format_version\":9", 1);
        assert!(matches!(
            from_json::<ResourceModel>(&other_version),
            Err(DetectError::State(_))
        ));
    }
}
