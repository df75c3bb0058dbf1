//! The combined detector: the sequence and frequency detectors' evidence added up.
//!
//! **Why.** The two detectors look at the same window in two ways, both learnt from normal
//! behaviour only: the sequence detector asks how unlikely the window's syscall sequences are
//! under one model of every learnt sequence (a new code path), the frequency detector how far its
//! syscall mix is from the nearest learnt mix (a known mode doing something else, or an unknown
//! mode made of common sequences). An attack that is only weakly visible in each view can still
//! be visible in their sum, and a normal window that one view finds odd is often ordinary in the
//! other.
//!
//! **Score.** The two raw scores are in different units (bits per n-gram, a Hellinger distance), so
//! each is first put on the scale of its own normal behaviour: `z = (s − median) / (q99 −
//! median)`, where the median and the 0.99 quantile are those of the sub-detector's held-out
//! scores on the learning windows (cut into [`CombinedConfig::folds`] contiguous blocks, each
//! scored by a model learnt from the others, as [`Detector::calibrate`] does). A `z` of 0 is a
//! typical normal window, 1 a window at that detector's own 1%-false-alarm point. The score is the
//! mean of the two `z`. The 0.99 quantile rather than a spread around the median sets the unit
//! because alarms live in the tail: it makes the two detectors' tails, not their bulks,
//! commensurate. The equal weights, the unit and the mean were fixed before any measurement on
//! held-out or attack data (`docs/detection.md`, "Honesty rules"); nothing here is fitted to
//! attacks.
//!
//! **Explanation.** The explanation of the sub-detector with the larger `z`, then the other's: n-
//! grams (`baseline` = learnt probability, `observed` = count) and syscalls (`baseline` = share in
//! the nearest learnt profile, `observed` = share in the window).

use kanary_model::record::AlertClass;
use serde::{Deserialize, Serialize};

use crate::detector::{
    cross_validated_scores, quantile, Calibration, Contribution, Detector, Versioned,
    FORMAT_VERSION,
};
use crate::error::{DetectError, Result};
use crate::frequency::{FrequencyConfig, FrequencyDetector};
use crate::sequence::{SequenceConfig, SequenceDetector};
use crate::window::FeatureWindow;

/// Settings of the combined detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CombinedConfig {
    /// The sequence detector's settings.
    pub sequence: SequenceConfig,
    /// The frequency detector's settings.
    pub frequency: FrequencyConfig,
    /// Contiguous blocks the learning windows are cut into to measure each sub-detector's normal
    /// scale (at least 2).
    pub folds: usize,
    /// How many features a finding explains.
    pub top: usize,
    /// Fewest syscalls a window needs to be judged: a syscall mix or a handful of n-grams from
    /// fewer is noise, not evidence, and such a window scores as typical (z = 0). 0 judges every
    /// window (offline traces); the agent uses [`CombinedConfig::live`].
    pub min_syscalls: u64,
}

impl Default for CombinedConfig {
    fn default() -> Self {
        CombinedConfig {
            sequence: SequenceConfig::default(),
            frequency: FrequencyConfig::default(),
            folds: 5,
            top: 5,
            min_syscalls: 0,
        }
    }
}

impl CombinedConfig {
    /// The settings of the live agent: as the default, but windows with fewer than 64 syscalls
    /// are not judged. In the scenario suite, an app replica that nginx briefly stopped sending
    /// requests to made 10 syscalls in a 5 s window, all `poll`: a mix "100% poll" is 8 units
    /// from normal, and it was the suite's most frequent false alert. In the suite's normal
    /// runs fewer than 1% of windows have under 170 syscalls. Attacks that make few syscalls
    /// still meet the behaviour profile and the invariants, which judge facts, not mixes.
    pub fn live() -> Self {
        CombinedConfig {
            min_syscalls: 64,
            ..CombinedConfig::default()
        }
    }
}

/// A sub-detector's normal scale: `z = (score − median) / unit`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    /// Median of the held-out learning scores.
    pub median: f64,
    /// 0.99 quantile minus the median (a positive fallback when they coincide).
    pub unit: f64,
}

impl Scale {
    /// The scale of held-out normal `scores`.
    pub fn of(scores: &[f64]) -> Scale {
        let mut sorted: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let median = quantile(&sorted, 0.5);
        let spread = quantile(&sorted, 0.99) - median;
        let range = sorted
            .last()
            .zip(sorted.first())
            .map_or(0.0, |(hi, lo)| hi - lo);
        // Held-out scores that hardly vary (a very regular workload) would make any deviation
        // infinite: fall back to their range, then to the raw unit.
        let unit = if spread > f64::EPSILON {
            spread
        } else if range > f64::EPSILON {
            range
        } else {
            1.0
        };
        Scale { median, unit }
    }

    /// The standardised score.
    pub fn z(&self, score: f64) -> f64 {
        (score - self.median) / self.unit
    }
}

/// The combined detector (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CombinedDetector {
    /// [`FORMAT_VERSION`] of this state.
    pub format_version: u32,
    /// Settings.
    pub config: CombinedConfig,
    sequence: SequenceDetector,
    frequency: FrequencyDetector,
    /// Normal scales of the sequence and frequency scores, once learnt.
    scales: Option<[Scale; 2]>,
    threshold: Option<f64>,
}

impl CombinedDetector {
    /// A detector that has learnt nothing yet.
    pub fn new(config: CombinedConfig) -> Self {
        CombinedDetector {
            format_version: FORMAT_VERSION,
            sequence: SequenceDetector::new(config.sequence.clone()),
            frequency: FrequencyDetector::new(config.frequency.clone()),
            config,
            scales: None,
            threshold: None,
        }
    }

    /// The learnt sub-detectors.
    pub fn parts(&self) -> (&SequenceDetector, &FrequencyDetector) {
        (&self.sequence, &self.frequency)
    }

    /// Estimated heap bytes of both sub-detectors' learnt tables.
    pub fn table_bytes(&self) -> usize {
        self.sequence.model().map_or(0, |m| m.table_bytes()) + self.frequency.table_bytes()
    }

    /// The learnt normal scales of the sequence and frequency scores.
    pub fn scales(&self) -> Option<[Scale; 2]> {
        self.scales
    }

    /// The standardised sequence and frequency scores of `window`.
    pub fn z_scores(&self, window: &FeatureWindow) -> Result<[f64; 2]> {
        let [sequence, frequency] = self.scales.ok_or(DetectError::NotTrained("combined"))?;
        if window.syscall_total() < self.config.min_syscalls {
            return Ok([0.0, 0.0]);
        }
        Ok([
            sequence.z(self.sequence.raw_score(window)?),
            frequency.z(self.frequency.raw_score(window)?),
        ])
    }
}

impl Versioned for CombinedDetector {
    fn format_version(&self) -> u32 {
        self.format_version
    }
}

impl Detector for CombinedDetector {
    fn kind(&self) -> &'static str {
        "combined"
    }

    fn class(&self) -> AlertClass {
        AlertClass::SequenceAnomaly
    }

    /// Learns both sub-detectors from `windows` and measures their normal scales on held-out
    /// blocks of the same windows.
    fn learn(&mut self, windows: &[FeatureWindow]) -> Result<()> {
        let folds = Calibration {
            folds: self.config.folds,
            ..Calibration::default()
        };
        let mut sequence = SequenceDetector::new(self.config.sequence.clone());
        let mut frequency = FrequencyDetector::new(self.config.frequency.clone());
        sequence.learn(windows)?;
        frequency.learn(windows)?;
        let scales = [
            Scale::of(&cross_validated_scores(&sequence, windows, &folds)?),
            Scale::of(&cross_validated_scores(&frequency, windows, &folds)?),
        ];
        self.sequence = sequence;
        self.frequency = frequency;
        self.scales = Some(scales);
        Ok(())
    }

    /// Mean of the two standardised scores.
    fn raw_score(&self, window: &FeatureWindow) -> Result<f64> {
        let [sequence, frequency] = self.z_scores(window)?;
        Ok((sequence + frequency) / 2.0)
    }

    /// The explanation of the sub-detector with the larger standardised score first, then the
    /// other's, `top` in all.
    fn explain(&self, window: &FeatureWindow, top: usize) -> Result<Vec<Contribution>> {
        let [sequence, frequency] = self.z_scores(window)?;
        let mut first = self.sequence.explain(window, top)?;
        let mut second = self.frequency.explain(window, top)?;
        if frequency > sequence {
            std::mem::swap(&mut first, &mut second);
        }
        // Both views speak when they can: at least a third of the list for the second one.
        let keep_second = second.len().min(top / 3);
        first.truncate(top - keep_second);
        first.extend(second.into_iter().take(top - first.len()));
        Ok(first)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::{from_json, to_json};
    use crate::synthetic::normal_trace;
    use crate::window::windows_of_threads;

    fn training() -> Vec<FeatureWindow> {
        windows_of_threads(3, &[normal_trace(7, 3000)], Some(200)).unwrap()
    }

    #[test]
    fn scales_standardise_held_out_scores() {
        let scale = Scale::of(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(scale.median, 3.0);
        assert!((scale.unit - 1.96).abs() < 1e-12);
        assert!((scale.z(4.96) - 1.0).abs() < 1e-12);
        assert_eq!(Scale::of(&[2.0, 2.0, 2.0]).unit, 1.0);
        assert_eq!(Scale::of(&[]).unit, 1.0);
    }

    #[test]
    fn either_view_can_raise_the_alarm() {
        let mut detector = CombinedDetector::new(CombinedConfig::default());
        let threshold = detector.fit(&training(), &Calibration::default()).unwrap();
        let [sequence, frequency] = detector.scales().unwrap();
        assert!(sequence.unit > 0.0 && frequency.unit > 0.0);

        let normal = FeatureWindow::from_threads(3, &[normal_trace(99, 40)]).unwrap();
        let finding = detector.score(&normal).unwrap();
        assert!(!finding.anomalous, "normal window {finding:?}");

        // A shell in the middle: new syscalls in new sequences, seen by both views.
        let mut attacked = normal_trace(5, 20);
        attacked.extend_from_slice(&[56, 59, 33, 33, 33, 59, 257, 217, 0, 1, 231]);
        attacked.extend(normal_trace(6, 20));
        let attacked = FeatureWindow::from_threads(3, &[attacked]).unwrap();
        let finding = detector.score(&attacked).unwrap();
        assert!(
            finding.anomalous && finding.score > threshold,
            "{finding:?}"
        );
        assert_eq!(finding.contributions.len(), 5);
        assert!(
            finding
                .contributions
                .iter()
                .any(|c| ["clone", "execve", "dup2"]
                    .iter()
                    .any(|s| c.feature.contains(s))),
            "{finding:?}"
        );

        // Only known sequences, but one request path over and over: a changed mix.
        let flood: Vec<u32> = [232, 0, 1, 20, 3].repeat(60);
        let flood = FeatureWindow::from_threads(3, &[flood]).unwrap();
        let [_, z_frequency] = detector.z_scores(&flood).unwrap();
        assert!(
            z_frequency > 1.0,
            "the frequency view sees the flood: {z_frequency}"
        );
    }

    #[test]
    fn the_live_settings_do_not_judge_a_window_of_a_few_syscalls() {
        let mut live = CombinedDetector::new(CombinedConfig::live());
        live.fit(&training(), &Calibration::default()).unwrap();
        // Ten polls: "100% poll" is far from any learnt mix, and no evidence of anything.
        let sparse = FeatureWindow::from_threads(3, &[vec![7; 10]]).unwrap();
        assert_eq!(live.z_scores(&sparse).unwrap(), [0.0, 0.0]);
        assert!(!live.score(&sparse).unwrap().anomalous);
        let mut offline = CombinedDetector::new(CombinedConfig::default());
        offline.fit(&training(), &Calibration::default()).unwrap();
        let [_, z_frequency] = offline.z_scores(&sparse).unwrap();
        assert!(z_frequency > 1.0, "judged offline: {z_frequency}");
        // From 64 syscalls on, the live settings judge as the default ones do.
        let flood = FeatureWindow::from_threads(3, &[[232, 0, 1, 20, 3].repeat(60)]).unwrap();
        assert_eq!(
            live.z_scores(&flood).unwrap(),
            offline.z_scores(&flood).unwrap()
        );
    }

    #[test]
    fn state_round_trips_and_untrained_errors() {
        let mut detector = CombinedDetector::new(CombinedConfig::default());
        detector.fit(&training(), &Calibration::default()).unwrap();
        let back: CombinedDetector = from_json(&to_json(&detector).unwrap()).unwrap();
        let window = &training()[2];
        // serde_json's default float parsing may be one ulp off: equal up to rounding.
        let (a, b) = (back.score(window).unwrap(), detector.score(window).unwrap());
        assert!((a.score - b.score).abs() < 1e-12, "{a:?} {b:?}");
        assert_eq!(a.contributions, b.contributions);
        assert_eq!(back.scales().map(|s| s.len()), Some(2));
        let untrained = CombinedDetector::new(CombinedConfig::default());
        assert!(matches!(
            untrained.raw_score(window),
            Err(DetectError::NotTrained(_))
        ));
        let mut empty = CombinedDetector::new(CombinedConfig::default());
        assert!(matches!(
            empty.learn(&[FeatureWindow::default()]),
            Err(DetectError::EmptyTraining(_))
        ));
    }
}
