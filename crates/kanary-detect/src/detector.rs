//! The interface every detector implements, its findings and its calibration.
//!
//! A detector's life: [`Detector::learn`] a model of normal behaviour from windows, then
//! [`Detector::calibrate`] its alarm threshold on the same learning windows, then
//! [`Detector::score`] new windows. Calibration is cross-validated: the learning windows are cut
//! into contiguous blocks (`folds`), a copy of the detector learns from all blocks but one and
//! scores the one held out, so every learning window gets a score from a model that never saw it —
//! an honest sample of how new normal windows score. The threshold is a high quantile of those
//! held-out scores, widened by a margin proportional to their spread (see [`Calibration`]). Blocks
//! rather than random folds because neighbouring windows of one container are alike: a random
//! split would leak them into the model and make held-out scores too optimistic.
//!
//! Detector state is plain serde data with a [`FORMAT_VERSION`], written and read by [`to_json`] and
//! [`from_json`], so a model learnt once can be persisted and reloaded by the agent.

use kanary_model::record::AlertClass;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{DetectError, Result};
use crate::window::FeatureWindow;

/// Version of the serialised detector state; bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// One feature that made a window score high: what was learnt for it against what was seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// The feature, e.g. an n-gram as syscall names (`open→read→close`) or one syscall's name.
    pub feature: String,
    /// What the model learnt for it (a probability or a share; the detector documents which).
    pub baseline: f64,
    /// What the window showed (a count or a share; the detector documents which).
    pub observed: f64,
    /// The class of anomaly this feature points at, when it differs from its detector's
    /// ([`Detector::class`]): one behaviour-profile finding may hold an unexpected process and an
    /// unexpected peer, each becoming its own alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<AlertClass>,
    /// Evidence for a reader: the command line, the process, the peer's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Contribution {
    /// A contribution of `feature` with no class of its own and no detail.
    pub fn new(feature: impl Into<String>, baseline: f64, observed: f64) -> Self {
        Contribution {
            feature: feature.into(),
            baseline,
            observed,
            class: None,
            detail: None,
        }
    }
}

/// A detector's verdict on one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The detector that scored ([`Detector::kind`]).
    pub detector: String,
    /// The class of anomaly it reports ([`Detector::class`]); contributions may name others.
    pub class: AlertClass,
    /// Anomaly score: higher is more anomalous.
    pub score: f64,
    /// The calibrated threshold.
    pub threshold: f64,
    /// `score > threshold`.
    pub anomalous: bool,
    /// The features that contributed most, most anomalous first.
    pub contributions: Vec<Contribution>,
}

/// How a threshold is derived from the learning windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Calibration {
    /// Contiguous blocks the learning windows are cut into; each is scored by a model learnt
    /// from the others. At least 2 (with fewer windows than folds, one window per block).
    pub folds: usize,
    /// Quantile of the held-out scores taken as the threshold (0.99: about 1% of new normal
    /// windows would alarm if they behave like the learning ones).
    pub quantile: f64,
    /// Widening: threshold = q + margin × (q − median) of the held-out scores. 0 keeps the
    /// quantile; a positive margin trades detection for fewer false alarms when production drifts.
    pub margin: f64,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            folds: 5,
            quantile: 0.99,
            margin: 0.0,
        }
    }
}

impl Calibration {
    fn check(&self) -> Result<()> {
        if self.folds < 2 {
            return Err(DetectError::Config(format!(
                "calibration folds must be at least 2 (got {})",
                self.folds
            )));
        }
        if !(0.0..=1.0).contains(&self.quantile) {
            return Err(DetectError::Config(format!(
                "calibration quantile must be within 0..=1 (got {})",
                self.quantile
            )));
        }
        if !(self.margin >= 0.0 && self.margin.is_finite()) {
            return Err(DetectError::Config(format!(
                "calibration margin must be finite and not negative (got {})",
                self.margin
            )));
        }
        Ok(())
    }
}

/// An anomaly detector over feature windows.
pub trait Detector {
    /// Short name of the detector, e.g. `sequence`.
    fn kind(&self) -> &'static str;

    /// The class of anomaly its findings report by default.
    fn class(&self) -> AlertClass;

    /// Learns the model of normal behaviour from `windows`, replacing any earlier model. Errors
    /// when the windows hold nothing to learn from.
    fn learn(&mut self, windows: &[FeatureWindow]) -> Result<()>;

    /// Anomaly score of `window` (higher is more anomalous), without threshold or explanation.
    fn raw_score(&self, window: &FeatureWindow) -> Result<f64>;

    /// The `top` features of `window` that contributed most to its score.
    fn explain(&self, window: &FeatureWindow, top: usize) -> Result<Vec<Contribution>>;

    /// Whether it judges the figures of a window (counts, rates, mixes) rather than its facts.
    /// Statistical detectors do not judge a container's start-up windows nor idle windows,
    /// which are no sample of its steady state; the behaviour profile and the invariants judge
    /// every window.
    fn is_statistical(&self) -> bool {
        true
    }

    /// Whether its scores are a few discrete levels, mostly zero (novelty counts): its
    /// threshold is then the empirical held-out quantile, since an exponential tail fitted to
    /// such scores would put it far above the one novelty it must catch (see [`threshold_of`]).
    fn discrete_scores(&self) -> bool {
        false
    }

    /// The lowest threshold [`Detector::calibrate`] may set, however quiet the held-out scores
    /// were; none by default.
    fn min_threshold(&self) -> f64 {
        f64::NEG_INFINITY
    }

    /// How many contributions [`Detector::score`] reports.
    fn top(&self) -> usize {
        5
    }

    /// The calibrated threshold, if any.
    fn threshold(&self) -> Option<f64>;

    /// Sets the threshold (normally done by [`Detector::calibrate`]).
    fn set_threshold(&mut self, threshold: f64);

    /// Scores `window` against the learnt model and the calibrated threshold.
    fn score(&self, window: &FeatureWindow) -> Result<Finding> {
        let threshold = self
            .threshold()
            .ok_or(DetectError::NotTrained(self.kind()))?;
        let score = self.raw_score(window)?;
        Ok(Finding {
            detector: self.kind().to_string(),
            class: self.class(),
            score,
            threshold,
            anomalous: score > threshold,
            contributions: self.explain(window, self.top())?,
        })
    }

    /// Calibrates the threshold on the learning `windows` (see the module documentation) and
    /// returns it. The model learnt by [`Detector::learn`] is kept as it is: the held-out models
    /// are copies.
    fn calibrate(&mut self, windows: &[FeatureWindow], calibration: &Calibration) -> Result<f64>
    where
        Self: Clone + Sized,
    {
        let scores = cross_validated_scores(self, windows, calibration)?;
        let threshold = if self.discrete_scores() {
            empirical_threshold(&scores, calibration)
        } else {
            threshold_of(&scores, calibration)
        };
        let threshold = threshold.max(self.min_threshold());
        self.set_threshold(threshold);
        Ok(threshold)
    }

    /// [`Detector::learn`] then [`Detector::calibrate`] on the same windows.
    fn fit(&mut self, windows: &[FeatureWindow], calibration: &Calibration) -> Result<f64>
    where
        Self: Clone + Sized,
    {
        self.learn(windows)?;
        self.calibrate(windows, calibration)
    }
}

/// Scores every window of `windows` with a copy of `detector` that learnt from the other folds.
/// Blocks whose complement holds nothing learnable are skipped.
pub fn cross_validated_scores<D: Detector + Clone>(
    detector: &D,
    windows: &[FeatureWindow],
    calibration: &Calibration,
) -> Result<Vec<f64>> {
    cross_validated(detector, windows, calibration, |copy, window| {
        copy.raw_score(window)
    })
}

/// The cross-validation behind [`cross_validated_scores`], with any per-window `score` of the
/// held-out copies (a detector with several thresholds scores each of its parts).
pub fn cross_validated<D: Detector + Clone, T>(
    detector: &D,
    windows: &[FeatureWindow],
    calibration: &Calibration,
    score: impl Fn(&D, &FeatureWindow) -> Result<T>,
) -> Result<Vec<T>> {
    calibration.check()?;
    if windows.len() < 2 {
        return Err(DetectError::EmptyTraining(format!(
            "calibration needs at least 2 learning windows (got {})",
            windows.len()
        )));
    }
    let folds = calibration.folds.min(windows.len());
    let mut scores = Vec::with_capacity(windows.len());
    for fold in 0..folds {
        let (start, end) = block(windows.len(), folds, fold);
        let rest: Vec<FeatureWindow> = windows[..start]
            .iter()
            .chain(&windows[end..])
            .cloned()
            .collect();
        let mut copy = detector.clone();
        match copy.learn(&rest) {
            Ok(()) => {}
            Err(DetectError::EmptyTraining(_)) => continue,
            Err(error) => return Err(error),
        }
        for window in &windows[start..end] {
            scores.push(score(&copy, window)?);
        }
    }
    if scores.is_empty() {
        return Err(DetectError::EmptyTraining(
            "no fold of the learning windows left anything to learn from".into(),
        ));
    }
    Ok(scores)
}

/// The `[start, end)` range of block `fold` when `len` items are cut into `folds` blocks.
fn block(len: usize, folds: usize, fold: usize) -> (usize, usize) {
    (len * fold / folds, len * (fold + 1) / folds)
}

/// The threshold `calibration` derives from held-out scores: the larger of their empirical
/// `quantile` and the same quantile of an exponential tail fitted to the scores above their
/// median, then widened by `margin`.
///
/// Why the tail fit: with few learning windows (tens, as in a short learning period) the
/// empirical 0.99 quantile is just about their maximum, which a new normal window exceeds with
/// probability 1/(N+1), several times the asked-for 1%, and which swings with the one most
/// extreme window. Modelling the upper half as exponential (P(S > m + x) = ½·e^(−x/λ), λ the mean
/// excess over the median m) puts the q quantile at m + λ·ln(0.5 / (1 − q)): it uses every score
/// above the median rather than the top one, so it is stable, and it extrapolates beyond the
/// largest score seen. With many windows and a light tail the empirical quantile is the larger
/// and rules.
///
/// The fit assumes a continuous score; a detector whose scores are a few discrete levels, mostly
/// zero (novelty counts), uses [`empirical_threshold`] instead.
pub fn threshold_of(scores: &[f64], calibration: &Calibration) -> f64 {
    let sorted = sorted_finite(scores);
    let q = quantile(&sorted, calibration.quantile);
    let median = quantile(&sorted, 0.5);
    let excesses: Vec<f64> = sorted
        .iter()
        .filter(|&&s| s > median)
        .map(|s| s - median)
        .collect();
    let tail = if excesses.len() >= 2 && calibration.quantile > 0.5 && calibration.quantile < 1.0 {
        let mean_excess = excesses.iter().sum::<f64>() / excesses.len() as f64;
        median + mean_excess * (0.5 / (1.0 - calibration.quantile)).ln()
    } else {
        q
    };
    let base = q.max(tail);
    base + calibration.margin * (base - median).max(0.0)
}

/// The empirical `quantile` of held-out scores, widened by `margin`, without a tail fit.
pub fn empirical_threshold(scores: &[f64], calibration: &Calibration) -> f64 {
    let sorted = sorted_finite(scores);
    let q = quantile(&sorted, calibration.quantile);
    let median = quantile(&sorted, 0.5);
    q + calibration.margin * (q - median).max(0.0)
}

fn sorted_finite(scores: &[f64]) -> Vec<f64> {
    let mut sorted: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// The `q` quantile of ascending `sorted` values, interpolated linearly; 0 when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        len => {
            let pos = q.clamp(0.0, 1.0) * (len - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = pos.ceil() as usize;
            sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
        }
    }
}

/// Implemented by serialisable detector state that carries [`FORMAT_VERSION`].
pub trait Versioned {
    /// The format version this value was written with.
    fn format_version(&self) -> u32;
}

/// Serialises detector state as JSON.
pub fn to_json<D: Serialize>(detector: &D) -> Result<String> {
    serde_json::to_string(detector).map_err(|e| DetectError::State(e.to_string()))
}

/// Reads detector state written by [`to_json`], refusing other format versions with a clear error
/// rather than misreading them.
pub fn from_json<D: DeserializeOwned + Versioned>(text: &str) -> Result<D> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| DetectError::State(e.to_string()))?;
    let version = value
        .get("format_version")
        .and_then(serde_json::Value::as_u64);
    if version != Some(u64::from(FORMAT_VERSION)) {
        return Err(DetectError::State(format!(
            "format version {} is not the supported {FORMAT_VERSION}",
            version.map_or_else(|| "(missing)".to_string(), |v| v.to_string())
        )));
    }
    serde_json::from_value(value).map_err(|e| DetectError::State(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        let sorted = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&sorted, 0.5), 3.0);
        assert_eq!(quantile(&sorted, 1.0), 5.0);
        assert_eq!(quantile(&sorted, 0.0), 1.0);
        assert!((quantile(&sorted, 0.9) - 4.6).abs() < 1e-12);
        assert_eq!(quantile(&[], 0.9), 0.0);
        let calibration = Calibration {
            margin: 1.0,
            ..Calibration::default()
        };
        // Median 3, excesses above it 1 and 2: the exponential tail's 0.99 quantile is
        // 3 + 1.5 ln 50 (above the empirical 4.96), then widened by its distance from the median.
        let tail = 3.0 + 1.5 * 50f64.ln();
        let expected = tail + (tail - 3.0);
        assert!((threshold_of(&sorted, &calibration) - expected).abs() < 1e-9);
        // Without a tail to fit (q = 1 asks for the maximum), the empirical quantile.
        let max = Calibration {
            quantile: 1.0,
            ..Calibration::default()
        };
        assert_eq!(threshold_of(&sorted, &max), 5.0);
    }

    #[test]
    fn small_samples_extrapolate_beyond_their_largest_score_and_large_ones_do_not_drift() {
        // Twenty held-out scores of an exponential-like spread: the threshold lies above all of
        // them (the empirical 0.99 quantile would be about the largest).
        let small: Vec<f64> = (1..=20).map(|i| -(1.0 - i as f64 / 21.0f64).ln()).collect();
        let largest = small.iter().copied().fold(f64::MIN, f64::max);
        let threshold = threshold_of(&small, &Calibration::default());
        assert!(threshold > largest, "{threshold} <= {largest}");
        // A large sample of the same law: the fitted and empirical quantiles agree (ln 100).
        let large: Vec<f64> = (1..=20_000)
            .map(|i| -(1.0 - i as f64 / 20_001.0f64).ln())
            .collect();
        let threshold = threshold_of(&large, &Calibration::default());
        assert!((threshold - 100f64.ln()).abs() < 0.1, "{threshold}");
    }

    #[test]
    fn blocks_cover_everything_once() {
        let mut covered = [0; 11];
        for fold in 0..3 {
            let (start, end) = block(11, 3, fold);
            assert!(end > start);
            for c in &mut covered[start..end] {
                *c += 1;
            }
        }
        assert!(covered.iter().all(|&c| c == 1));
    }

    #[test]
    fn calibration_settings_are_checked() {
        for bad in [
            Calibration {
                folds: 1,
                ..Calibration::default()
            },
            Calibration {
                quantile: 1.5,
                ..Calibration::default()
            },
            Calibration {
                margin: -1.0,
                ..Calibration::default()
            },
        ] {
            assert!(matches!(bad.check(), Err(DetectError::Config(_))));
        }
    }
}
