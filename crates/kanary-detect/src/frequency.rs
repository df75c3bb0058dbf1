//! The frequency detector: how far a window's syscall mix is from every mix seen while learning.
//!
//! **Features.** A window's syscall counts normalised to shares (`p_i`, summing to 1): the bag of
//! syscalls, independent of how busy the container was.
//!
//! **Model.** The learnt profiles themselves (up to `max_profiles`, evenly thinned), and the score
//! of a window is its Hellinger distance `H(p, q) = sqrt(1 − Σ sqrt(p_i q_i))` (0: same mix, 1: no
//! syscall in common) to its `k`-th nearest profile. Why nearest neighbours rather than the
//! distance to one mean profile: a container's normal behaviour is a few distinct modes (serving,
//! idle, a cron job, a log rotation), and the mean of the modes looks like none of them, so a
//! single profile either alarms on every mode or must be so wide it misses everything. Why
//! Hellinger: the square root stabilises the variance of counts (a syscall going from 0.1% to 1%
//! matters as much as one going from 10% to 19%), it is bounded, and a syscall never seen before
//! adds its full share. An isolation forest was the alternative; it needs randomness and many
//! trees to be stable on this few dimensions with many empty ones, and explains less directly.
//!
//! **Explanation.** The syscalls whose shares differ most from the nearest profile, with
//! `baseline` = the share in that profile and `observed` = the share in the window.

use kanary_model::record::AlertClass;
use serde::{Deserialize, Serialize};

use crate::detector::{Contribution, Detector, Versioned, FORMAT_VERSION};
use crate::error::{DetectError, Result};
use crate::names::SyscallNames;
use crate::window::FeatureWindow;

/// Settings of the frequency detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrequencyConfig {
    /// The score is the distance to the `k`-th nearest learnt profile (1: the nearest).
    pub k: usize,
    /// Most profiles kept (memory and scoring time grow with it).
    pub max_profiles: usize,
    /// How many syscalls a finding explains.
    pub top: usize,
    /// How syscall numbers are named in explanations.
    pub names: SyscallNames,
}

impl Default for FrequencyConfig {
    fn default() -> Self {
        FrequencyConfig {
            k: 1,
            max_profiles: 4096,
            top: 5,
            names: SyscallNames::default(),
        }
    }
}

/// A window's syscall shares, square-rooted, sorted by syscall number.
type Profile = Vec<(u32, f64)>;

fn profile(window: &FeatureWindow) -> Option<Profile> {
    let total = window.syscall_total();
    if total == 0 {
        return None;
    }
    let mut shares: Profile = window
        .syscalls
        .iter()
        .filter(|&&(_, count)| count > 0)
        .map(|&(nr, count)| (nr, (count as f64 / total as f64).sqrt()))
        .collect();
    // Windows built by hand may not keep the sorted invariant; the merges below need it.
    shares.sort_by_key(|e| e.0);
    Some(shares)
}

/// Hellinger distance between two square-rooted profiles.
fn hellinger(a: &Profile, b: &Profile) -> f64 {
    let (mut i, mut j, mut affinity) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                affinity += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    (1.0 - affinity).max(0.0).sqrt()
}

/// The frequency detector (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrequencyDetector {
    /// [`FORMAT_VERSION`] of this state.
    pub format_version: u32,
    /// Settings.
    pub config: FrequencyConfig,
    profiles: Vec<Profile>,
    threshold: Option<f64>,
}

impl FrequencyDetector {
    /// A detector that has learnt nothing yet.
    pub fn new(config: FrequencyConfig) -> Self {
        FrequencyDetector {
            format_version: FORMAT_VERSION,
            config,
            profiles: Vec::new(),
            threshold: None,
        }
    }

    /// How many profiles were kept.
    pub fn profiles(&self) -> usize {
        self.profiles.len()
    }

    /// Estimated heap bytes of the kept profiles.
    pub fn table_bytes(&self) -> usize {
        self.profiles.capacity() * std::mem::size_of::<Profile>()
            + self
                .profiles
                .iter()
                .map(|p| p.capacity() * std::mem::size_of::<(u32, f64)>())
                .sum::<usize>()
    }

    /// Distances from `p` to every profile, sorted ascending with the profile's index.
    fn nearest(&self, p: &Profile) -> Result<Vec<(f64, usize)>> {
        if self.profiles.is_empty() {
            return Err(DetectError::NotTrained("frequency"));
        }
        let mut distances: Vec<(f64, usize)> = self
            .profiles
            .iter()
            .enumerate()
            .map(|(i, q)| (hellinger(p, q), i))
            .collect();
        distances.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        Ok(distances)
    }
}

impl Versioned for FrequencyDetector {
    fn format_version(&self) -> u32 {
        self.format_version
    }
}

impl Detector for FrequencyDetector {
    fn kind(&self) -> &'static str {
        "frequency"
    }

    fn class(&self) -> AlertClass {
        AlertClass::SequenceAnomaly
    }

    fn learn(&mut self, windows: &[FeatureWindow]) -> Result<()> {
        if self.config.k == 0 || self.config.max_profiles == 0 {
            return Err(DetectError::Config(
                "frequency detector: k and max_profiles must be at least 1".into(),
            ));
        }
        let mut profiles: Vec<Profile> = windows.iter().filter_map(profile).collect();
        if profiles.is_empty() {
            return Err(DetectError::EmptyTraining(
                "no learning window holds a syscall".into(),
            ));
        }
        // Identical mixes add nothing to a nearest-neighbour search.
        profiles.sort_by(|a, b| {
            a.iter()
                .map(|e| (e.0, e.1.to_bits()))
                .cmp(b.iter().map(|e| (e.0, e.1.to_bits())))
        });
        profiles.dedup();
        if profiles.len() > self.config.max_profiles {
            // Even thinning keeps the spread of modes; it is deterministic, unlike sampling.
            let len = profiles.len();
            let keep = self.config.max_profiles;
            profiles = (0..keep)
                .filter_map(|i| profiles.get(i * len / keep).cloned())
                .collect();
        }
        profiles.shrink_to_fit();
        self.profiles = profiles;
        Ok(())
    }

    /// Hellinger distance to the `k`-th nearest learnt profile; 0 for a window without syscalls.
    fn raw_score(&self, window: &FeatureWindow) -> Result<f64> {
        let Some(p) = profile(window) else {
            if self.profiles.is_empty() {
                return Err(DetectError::NotTrained("frequency"));
            }
            return Ok(0.0);
        };
        let distances = self.nearest(&p)?;
        let k = self.config.k.min(distances.len()).max(1);
        Ok(distances.get(k - 1).map_or(0.0, |d| d.0))
    }

    /// The syscalls whose share differs most from the nearest profile: `baseline` = share in that
    /// profile, `observed` = share in the window.
    fn explain(&self, window: &FeatureWindow, top: usize) -> Result<Vec<Contribution>> {
        let Some(p) = profile(window) else {
            return Ok(Vec::new());
        };
        let distances = self.nearest(&p)?;
        let Some(nearest) = distances.first().and_then(|d| self.profiles.get(d.1)) else {
            return Ok(Vec::new());
        };
        let share = |profile: &Profile, nr: u32| {
            profile
                .binary_search_by_key(&nr, |e| e.0)
                .map_or(0.0, |i| profile[i].1 * profile[i].1)
        };
        let mut numbers: Vec<u32> = p.iter().chain(nearest).map(|e| e.0).collect();
        numbers.sort_unstable();
        numbers.dedup();
        let mut terms: Vec<(f64, u32, f64, f64)> = numbers
            .into_iter()
            .map(|nr| {
                let (observed, baseline) = (share(&p, nr), share(nearest, nr));
                let term = (observed.sqrt() - baseline.sqrt()).powi(2);
                (term, nr, baseline, observed)
            })
            .collect();
        terms.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        Ok(terms
            .into_iter()
            .take(top)
            .map(|(_, nr, baseline, observed)| {
                Contribution::new(self.config.names.name(nr), baseline, observed)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::{from_json, to_json, Calibration};

    fn window(counts: &[(u32, u64)]) -> FeatureWindow {
        FeatureWindow {
            ngram_len: 0,
            syscalls: counts.to_vec(),
            ..FeatureWindow::default()
        }
    }

    /// Two modes (serving and idle), with some jitter.
    fn training() -> Vec<FeatureWindow> {
        (0..60u64)
            .map(|i| {
                let j = i / 3;
                if i % 3 == 0 {
                    window(&[(7, 50 + j % 5), (230, 10 + j % 3)])
                } else {
                    window(&[(0, 100 + j % 7), (1, 100), (3, 20 + i % 4), (232, 40)])
                }
            })
            .collect()
    }

    #[test]
    fn distances_are_hellinger() {
        let a = profile(&window(&[(1, 1)])).unwrap();
        let b = profile(&window(&[(2, 1)])).unwrap();
        assert_eq!(hellinger(&a, &a), 0.0);
        assert!((hellinger(&a, &b) - 1.0).abs() < 1e-12);
        let c = profile(&window(&[(1, 1), (2, 1)])).unwrap();
        let expected = (1.0 - 0.5f64.sqrt()).sqrt();
        assert!((hellinger(&a, &c) - expected).abs() < 1e-12);
    }

    #[test]
    fn both_modes_pass_and_a_new_mix_alarms() {
        let mut detector = FrequencyDetector::new(FrequencyConfig::default());
        detector.fit(&training(), &Calibration::default()).unwrap();
        for normal in [
            // Twice as busy, same mix: the shares are what count.
            window(&[(7, 104), (230, 23)]),
            window(&[(0, 103), (1, 101), (3, 21), (232, 40)]),
        ] {
            let finding = detector.score(&normal).unwrap();
            assert!(!finding.anomalous, "{finding:?}");
        }
        // The serving mode plus a shell: execve, clone, dup2.
        let attacked = window(&[
            (0, 100),
            (1, 100),
            (3, 20),
            (232, 40),
            (59, 8),
            (56, 8),
            (33, 12),
        ]);
        let finding = detector.score(&attacked).unwrap();
        assert!(finding.anomalous, "{finding:?}");
        let first = &finding.contributions[0];
        assert_eq!(first.feature, "dup2", "{finding:?}");
        assert_eq!(first.baseline, 0.0);
        assert!((first.observed - 12.0 / 288.0).abs() < 1e-12);
    }

    #[test]
    fn state_round_trips_and_bad_input_errors() {
        let mut detector = FrequencyDetector::new(FrequencyConfig {
            max_profiles: 4,
            ..FrequencyConfig::default()
        });
        detector.fit(&training(), &Calibration::default()).unwrap();
        assert_eq!(detector.profiles(), 4);
        let back: FrequencyDetector = from_json(&to_json(&detector).unwrap()).unwrap();
        let w = window(&[(0, 1), (59, 1)]);
        assert_eq!(back.score(&w).unwrap(), detector.score(&w).unwrap());
        assert_eq!(detector.raw_score(&window(&[])).unwrap(), 0.0);
        let mut empty = FrequencyDetector::new(FrequencyConfig::default());
        assert!(matches!(
            empty.learn(&[window(&[])]),
            Err(DetectError::EmptyTraining(_))
        ));
        assert!(matches!(
            empty.raw_score(&w),
            Err(DetectError::NotTrained(_))
        ));
    }
}
