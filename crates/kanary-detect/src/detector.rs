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
}

/// A detector's verdict on one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The detector that scored ([`Detector::kind`]).
    pub detector: String,
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

    /// Learns the model of normal behaviour from `windows`, replacing any earlier model. Errors
    /// when the windows hold nothing to learn from.
    fn learn(&mut self, windows: &[FeatureWindow]) -> Result<()>;

    /// Anomaly score of `window` (higher is more anomalous), without threshold or explanation.
    fn raw_score(&self, window: &FeatureWindow) -> Result<f64>;

    /// The `top` features of `window` that contributed most to its score.
    fn explain(&self, window: &FeatureWindow, top: usize) -> Result<Vec<Contribution>>;

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
        let threshold = threshold_of(&scores, calibration);
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
            scores.push(copy.raw_score(window)?);
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

/// The threshold `calibration` derives from held-out scores.
pub fn threshold_of(scores: &[f64], calibration: &Calibration) -> f64 {
    let mut sorted: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let q = quantile(&sorted, calibration.quantile);
    let median = quantile(&sorted, 0.5);
    q + calibration.margin * (q - median).max(0.0)
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
        // 0.99 quantile 4.96, median 3: 4.96 + 1.96.
        assert!((threshold_of(&sorted, &calibration) - 6.92).abs() < 1e-9);
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
