//! Per-image baselines: what "normal" is for one container image, learnt for a while, then used
//! to detect.
//!
//! **Lifecycle.** A [`Baseline`] starts [`State::Learning`]: each feature window of any container
//! of its image is [`Baseline::observe`]d (counted, and kept in a bounded [`Sample`]). Once the
//! learning period has passed and enough windows were seen ([`Baseline::ready`]),
//! [`Baseline::finish_learning`] learns the [`CombinedDetector`] from the sample and calibrates
//! its threshold on it; the baseline is then [`State::Detecting`] and the sample is dropped.
//! [`Baseline::progress`] tells how far learning is (windows, events, time left).
//!
//! How the agent is meant to drive it, per window of a container of image `key`:
//!
//! ```text
//! baseline = store.get(key) or Baseline::new(key, config, now)  (a quarantined one is relearnt)
//! if learning:  baseline.observe(window, now); if baseline.ready(now) { baseline.finish_learning(config, now) }
//! if detecting: baseline.detector().score(window)
//! store.put(baseline) now and then (each put writes the whole sample), and on every transition
//! ```
//!
//! **Key.** One baseline per image, shared by every container of that image ([`BaselineKey`]):
//! the image id (the runtime's content digest, `sha256:…`) when the runtime gave one, else the
//! image name as the container was started with (`nginx:1.25`). The id is preferred because it
//! names exactly one image content: a name is re-pointed by every pull or build, and a baseline
//! learnt on one content says little about the next. The name is the fallback so that a
//! container whose image could not be inspected is still watched; its baseline is then shared by
//! whatever content that name had.
//!
//! **Sample.** Learning keeps the windows themselves, because the detectors learn and calibrate
//! from whole sets of windows (cross-validated blocks in time order). The sample is bounded
//! ([`BaselineConfig::max_windows`]): when full, every other kept window is dropped and from then
//! on only every second window is kept, and so on, so the sample always spans the whole learning
//! period evenly and in order, whatever its length.
//!
//! **Persistence.** The whole baseline is serde data with its own [`FORMAT_VERSION`] (the file
//! and store envelope) on top of the detectors' [`detector::FORMAT_VERSION`]. [`Baseline::to_json`]
//! writes it canonically (object keys sorted, floats written shortest and read back exactly), so
//! writing, reading and writing again gives the same bytes; [`Baseline::from_json`] refuses other
//! versions and inconsistent content with an error that says what is wrong, never a panic. This
//! module does no I/O: the store is the `kanary-store` crate.
//!
//! Nothing here reads a clock: every transition takes `now`, so the lifecycle is tested with
//! made-up times.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::activity::{self, Fact};
use crate::behaviour::{BehaviourConfig, BehaviourProfile};
use crate::combined::{CombinedConfig, CombinedDetector};
use crate::detector::{self, Calibration, Detector};
use crate::error::{DetectError, Result};
use crate::forest::{WindowConfig, WindowModel};
use crate::policy::Policy;
use crate::resource::{ResourceConfig, ResourceModel};
use crate::window::FeatureWindow;

/// Version of the baseline envelope ([`Baseline`] as stored and exported); bumped on any
/// incompatible change of it. The detectors inside carry [`detector::FORMAT_VERSION`].
pub const FORMAT_VERSION: u32 = 3;

/// Most distinct facts a learning baseline remembers ([`Models::facts`]); the behaviour
/// profile bounds what it learns from them further.
pub const MAX_LEARNT_FACTS: usize = 16_384;

/// The `kind` of every baseline document, so that another JSON file is recognised as such.
pub const KIND: &str = "kanary-baseline";

/// The kanary version that wrote a baseline (informational: compatibility is the format version's
/// business).
pub const KANARY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Which image a baseline is for (see the module documentation for the rule).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineKey {
    /// The image id (content digest, e.g. `sha256:…`), when the runtime gave one.
    pub image_id: Option<String>,
    /// The image name the containers were started with (e.g. `nginx:1.25`).
    pub image: String,
}

impl BaselineKey {
    /// The key of an image; an empty or blank id counts as unknown.
    pub fn new(image_id: Option<&str>, image: &str) -> Self {
        BaselineKey {
            image_id: image_id
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_string),
            image: image.to_string(),
        }
    }

    /// The string a baseline is stored under: the image id when known, else the image name.
    pub fn id(&self) -> &str {
        self.image_id.as_deref().unwrap_or(&self.image)
    }

    /// Whether `selector` names this image: its name, its id, or a prefix of its id of at least
    /// 4 characters, with or without the `sha256:` scheme (as `docker images` prints ids).
    pub fn matches(&self, selector: &str) -> bool {
        if selector == self.image {
            return true;
        }
        let Some(id) = self.image_id.as_deref() else {
            return false;
        };
        let bare = |s: &'_ str| s.strip_prefix("sha256:").unwrap_or(s).to_string();
        let (selector, id) = (bare(selector), bare(id));
        selector == id || (selector.len() >= 4 && id.starts_with(&selector))
    }
}

impl std::fmt::Display for BaselineKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.image_id {
            Some(id) => write!(f, "{} ({id})", self.image),
            None => f.write_str(&self.image),
        }
    }
}

/// How baselines learn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselineConfig {
    /// How long a new baseline learns before it detects (`kanary run --learn-for`).
    #[serde(with = "humantime_serde")]
    pub learn_for: Duration,
    /// Fewest windows with syscalls a baseline must have seen to finish learning, whatever the
    /// time (at least 2: calibration scores held-out windows).
    pub min_windows: u64,
    /// Most windows the learning sample keeps (see the module documentation).
    pub max_windows: usize,
    /// Settings of the detector learnt at the end.
    pub detector: CombinedConfig,
    /// How its threshold is calibrated.
    pub calibration: Calibration,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            learn_for: Duration::from_secs(15 * 60),
            min_windows: 10,
            max_windows: 2048,
            detector: CombinedConfig::live(),
            calibration: Calibration::default(),
        }
    }
}

impl BaselineConfig {
    /// Checks the settings that the types do not.
    pub fn check(&self) -> Result<()> {
        if self.min_windows < 2 {
            return Err(DetectError::Config(format!(
                "a baseline must learn from at least 2 windows (min_windows is {})",
                self.min_windows
            )));
        }
        if (self.max_windows as u64) < self.min_windows {
            return Err(DetectError::Config(format!(
                "max_windows ({}) is below min_windows ({})",
                self.max_windows, self.min_windows
            )));
        }
        Ok(())
    }
}

/// Where a baseline is in its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case", deny_unknown_fields)]
pub enum State {
    /// Gathering windows of normal behaviour.
    Learning {
        /// When learning started.
        #[serde(with = "humantime_serde")]
        since: SystemTime,
        /// How long it learns.
        #[serde(with = "humantime_serde")]
        learn_for: Duration,
        /// Fewest windows it needs before it can finish.
        min_windows: u64,
        /// Windows with syscalls observed so far (empty windows are not counted: they hold
        /// nothing to learn).
        windows_seen: u64,
        /// Syscalls in those windows.
        events_seen: u64,
    },
    /// Scoring windows against the learnt detector.
    Detecting {
        /// When learning finished.
        #[serde(with = "humantime_serde")]
        since: SystemTime,
        /// Windows it learnt from (all seen, not only those kept in the sample).
        windows_learnt: u64,
        /// Syscalls in those windows.
        events_learnt: u64,
    },
}

impl State {
    /// `learning` or `detecting`.
    pub fn phase(&self) -> &'static str {
        match self {
            State::Learning { .. } => "learning",
            State::Detecting { .. } => "detecting",
        }
    }

    /// Whether learning is still going on.
    pub fn is_learning(&self) -> bool {
        matches!(self, State::Learning { .. })
    }

    /// When the current phase started.
    pub fn since(&self) -> SystemTime {
        match self {
            State::Learning { since, .. } | State::Detecting { since, .. } => *since,
        }
    }

    /// How far learning is at `now`.
    pub fn progress(&self, now: SystemTime) -> Progress {
        match *self {
            State::Learning {
                since,
                learn_for,
                min_windows,
                windows_seen,
                events_seen,
            } => {
                // A clock that went backwards counts as no time elapsed, not as a panic.
                let elapsed = now.duration_since(since).unwrap_or_default();
                Progress {
                    learning: true,
                    windows: windows_seen,
                    events: events_seen,
                    time_left: learn_for.saturating_sub(elapsed),
                    windows_missing: min_windows.saturating_sub(windows_seen),
                }
            }
            State::Detecting {
                windows_learnt,
                events_learnt,
                ..
            } => Progress {
                learning: false,
                windows: windows_learnt,
                events: events_learnt,
                time_left: Duration::ZERO,
                windows_missing: 0,
            },
        }
    }
}

/// How far a baseline's learning is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Still learning.
    pub learning: bool,
    /// Windows seen (learning) or learnt from (detecting).
    pub windows: u64,
    /// Syscalls in those windows.
    pub events: u64,
    /// Learning time still to go (zero once the period is over, or when detecting).
    pub time_left: Duration,
    /// Windows still needed beyond the time (learning ends when both are zero).
    pub windows_missing: u64,
}

impl Progress {
    /// Whether learning can finish: the period is over and enough windows were seen.
    pub fn done(&self) -> bool {
        self.time_left.is_zero() && self.windows_missing == 0
    }
}

/// The windows kept while learning (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// Kept windows, in the order seen.
    pub windows: Vec<FeatureWindow>,
    /// One window in `stride` is kept (a power of two, at least 1).
    pub stride: u64,
    /// Most windows kept.
    pub max_windows: usize,
}

impl Sample {
    fn new(max_windows: usize) -> Self {
        Sample {
            windows: Vec::new(),
            stride: 1,
            max_windows,
        }
    }

    /// Offers the `index`-th window seen (from 0).
    fn offer(&mut self, index: u64, window: &FeatureWindow) {
        if !index.is_multiple_of(self.stride) {
            return;
        }
        self.windows.push(window.clone());
        if self.windows.len() > self.max_windows.max(1) {
            // Keep the windows at even positions: those whose index is a multiple of 2 × stride.
            let mut position = 0;
            self.windows.retain(|_| {
                position += 1;
                position % 2 == 1
            });
            self.stride = self.stride.saturating_mul(2);
        }
    }
}

/// What a baseline has learnt, or is learning from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Models {
    /// The learning sample; empty once detecting.
    pub sample: Sample,
    /// Every distinct fact seen while learning (bounded by [`MAX_LEARNT_FACTS`]), in every
    /// window, including those the sample does not keep and start-up windows; empty once
    /// detecting (the behaviour profile then holds what was learnt).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub facts: Vec<Fact>,
    /// The learnt and calibrated sequence and frequency detector, once detecting.
    pub combined: Option<CombinedDetector>,
    /// The behaviour profile (programs, files, peers, ports), once detecting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behaviour: Option<BehaviourProfile>,
    /// The resource model (robust per-metric statistics), once detecting, when the windows
    /// carried resource figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceModel>,
    /// The window model (isolation forest over figures and syscall mix), once detecting, when
    /// the windows carried figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowModel>,
}

/// One image's baseline (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// Always [`KIND`]: tells a baseline document from any other JSON.
    pub kind: String,
    /// [`FORMAT_VERSION`] of this baseline.
    pub format_version: u32,
    /// The kanary version that last wrote it.
    pub kanary_version: String,
    /// The image.
    pub key: BaselineKey,
    /// Learning or detecting.
    pub state: State,
    /// The sample or the detector.
    pub models: Models,
    /// When it started learning.
    #[serde(with = "humantime_serde")]
    pub created_at: SystemTime,
    /// When it last changed.
    #[serde(with = "humantime_serde")]
    pub updated_at: SystemTime,
}

impl Baseline {
    /// A baseline that starts learning `key` at `now`.
    pub fn new(key: BaselineKey, config: &BaselineConfig, now: SystemTime) -> Result<Self> {
        config.check()?;
        Ok(Baseline {
            kind: KIND.to_string(),
            format_version: FORMAT_VERSION,
            kanary_version: KANARY_VERSION.to_string(),
            key,
            state: State::Learning {
                since: now,
                learn_for: config.learn_for,
                min_windows: config.min_windows,
                windows_seen: 0,
                events_seen: 0,
            },
            models: Models {
                sample: Sample::new(config.max_windows),
                facts: Vec::new(),
                combined: None,
                behaviour: None,
                resource: None,
                window: None,
            },
            created_at: now,
            updated_at: now,
        })
    }

    /// Learns from one more window of a container of this image. Windows without any syscall
    /// are ignored (nothing to learn). Errors when the baseline is not learning, or when the
    /// window's n-gram length differs from the sample's (the agent's `ngram_len` changed: the
    /// baseline must be reset).
    pub fn observe(&mut self, window: &FeatureWindow, now: SystemTime) -> Result<()> {
        let State::Learning {
            windows_seen,
            events_seen,
            ..
        } = &mut self.state
        else {
            return Err(DetectError::State(format!(
                "the baseline of {} is detecting, not learning",
                self.key
            )));
        };
        let events = window.syscall_total();
        if events == 0 {
            return Ok(());
        }
        if let Some(first) = self.models.sample.windows.first() {
            if first.ngram_len != window.ngram_len {
                return Err(DetectError::NgramLen(format!(
                    "the baseline of {} is learning {}-grams, the window has {}-grams: reset it",
                    self.key, first.ngram_len, window.ngram_len
                )));
            }
        }
        self.models.sample.offer(*windows_seen, window);
        activity::merge_facts(&mut self.models.facts, &window.facts, MAX_LEARNT_FACTS);
        *windows_seen += 1;
        *events_seen = events_seen.saturating_add(events);
        self.updated_at = now;
        Ok(())
    }

    /// Learns only the facts of `window` (programs, files, peers), not its figures: for
    /// start-up windows, whose syscall mix (the runtime's set-up, the entrypoint's exec) is no
    /// sample of the steady state but whose programs and files are normal ones. A no-op once
    /// detecting.
    pub fn observe_facts(&mut self, window: &FeatureWindow) {
        if self.state.is_learning() {
            activity::merge_facts(&mut self.models.facts, &window.facts, MAX_LEARNT_FACTS);
        }
    }

    /// Whether learning can finish at `now`: the period is over and enough windows were seen.
    /// Always false once detecting.
    pub fn ready(&self, now: SystemTime) -> bool {
        self.state.is_learning() && self.state.progress(now).done()
    }

    /// How far learning is at `now`.
    pub fn progress(&self, now: SystemTime) -> Progress {
        self.state.progress(now)
    }

    /// Ends learning at `now`: learns the detector from the sample, calibrates its threshold on
    /// it and returns the threshold. The baseline then detects and the sample is dropped. On an
    /// error (e.g. the windows hold no n-gram) the baseline is left learning, unchanged.
    pub fn finish_learning(&mut self, config: &BaselineConfig, now: SystemTime) -> Result<f64> {
        let State::Learning {
            windows_seen,
            events_seen,
            ..
        } = self.state
        else {
            return Err(DetectError::State(format!(
                "the baseline of {} has already finished learning",
                self.key
            )));
        };
        let windows = &self.models.sample.windows;
        let mut combined = CombinedDetector::new(config.detector.clone());
        let threshold = combined.fit(windows, &config.calibration)?;
        // The behaviour profile's threshold comes from the sample (held-out windows need
        // windows), what it knows from every fact seen while learning.
        let mut behaviour = BehaviourProfile::new(BehaviourConfig::default());
        behaviour.calibrate(windows, &config.calibration)?;
        behaviour.learn(&[FeatureWindow {
            // Cloned: on an error below the baseline stays learning with all it had.
            facts: self.models.facts.clone(),
            ..FeatureWindow::default()
        }])?;
        // The figure-based models need figures: with the resource collector off there is
        // nothing to learn, and the baseline detects without them.
        let resource = optional(
            ResourceModel::new(ResourceConfig::default()),
            windows,
            &config.calibration,
        )?;
        let window = optional(
            WindowModel::new(WindowConfig::default()),
            windows,
            &config.calibration,
        )?;
        self.models = Models {
            sample: Sample::new(self.models.sample.max_windows),
            facts: Vec::new(),
            combined: Some(combined),
            behaviour: Some(behaviour),
            resource,
            window,
        };
        self.state = State::Detecting {
            since: now,
            windows_learnt: windows_seen,
            events_learnt: events_seen,
        };
        self.updated_at = now;
        Ok(threshold)
    }

    /// The learnt combined (sequence and frequency) detector, once detecting.
    pub fn detector(&self) -> Option<&CombinedDetector> {
        self.models.combined.as_ref()
    }

    /// Every learnt detector, once detecting, in the order their verdicts take precedence
    /// when two raise the same class; empty while learning.
    pub fn detectors(&self) -> Vec<&dyn Detector> {
        let mut out: Vec<&dyn Detector> = Vec::new();
        if let Some(behaviour) = &self.models.behaviour {
            out.push(behaviour);
        }
        if let Some(combined) = &self.models.combined {
            out.push(combined);
        }
        if let Some(resource) = &self.models.resource {
            out.push(resource);
        }
        if let Some(window) = &self.models.window {
            out.push(window);
        }
        out
    }

    /// Sets the container-to-container allow-policy the behaviour profile applies (policy is
    /// configuration, not learnt: it is not stored with the baseline).
    pub fn set_policy(&mut self, policy: Option<Policy>) {
        let image = self.key.image.clone();
        if let Some(behaviour) = &mut self.models.behaviour {
            behaviour.set_policy(&image, policy);
        }
    }

    /// Checks what serde cannot: versions, and that state and models agree. Every decoded
    /// baseline passes here before use, so a file edited by hand or a damaged blob is refused
    /// with the reason rather than misread.
    pub fn check(&self) -> Result<()> {
        let bad = |message: String| Err(DetectError::State(message));
        if self.kind != KIND {
            return bad(format!(
                "kind is {:?}, not {KIND:?}: not a kanary baseline",
                self.kind
            ));
        }
        if self.format_version != FORMAT_VERSION {
            return bad(version_message(
                u64::from(self.format_version),
                &self.kanary_version,
            ));
        }
        if self.key.image.is_empty() {
            return bad("key.image is empty".into());
        }
        if self.key.image_id.as_deref() == Some("") {
            return bad("key.image_id is empty (omit it or give the id)".into());
        }
        let sample = &self.models.sample;
        if sample.stride == 0 || !sample.stride.is_power_of_two() {
            return bad(format!(
                "models.sample.stride is {}, not a power of two",
                sample.stride
            ));
        }
        if let Some(first) = sample.windows.first() {
            crate::window::check_ngram_len(first.ngram_len)?;
            if let Some(other) = sample
                .windows
                .iter()
                .find(|w| w.ngram_len != first.ngram_len)
            {
                return bad(format!(
                    "models.sample mixes {}-grams and {}-grams",
                    first.ngram_len, other.ngram_len
                ));
            }
        }
        match (&self.state, &self.models.combined) {
            (State::Learning { windows_seen, .. }, _) => {
                if (sample.windows.len() as u64) > *windows_seen {
                    return bad(format!(
                        "models.sample keeps {} windows but state.windows_seen is {windows_seen}",
                        sample.windows.len()
                    ));
                }
            }
            (State::Detecting { .. }, None) => {
                return bad("the state is detecting but models.combined is missing".into());
            }
            (State::Detecting { .. }, Some(combined)) => {
                let (sequence, frequency) = combined.parts();
                for (what, version) in [
                    ("models.combined", combined.format_version),
                    ("models.combined.sequence", sequence.format_version),
                    ("models.combined.frequency", frequency.format_version),
                ] {
                    if version != detector::FORMAT_VERSION {
                        return bad(format!(
                            "{what} has detector format version {version}; this kanary reads \
                             version {} only",
                            detector::FORMAT_VERSION
                        ));
                    }
                }
                let (Some(threshold), Some(scales)) = (combined.threshold(), combined.scales())
                else {
                    return bad("models.combined was never calibrated".into());
                };
                if !threshold.is_finite()
                    || scales
                        .iter()
                        .any(|s| !(s.median.is_finite() && s.unit.is_finite() && s.unit > 0.0))
                {
                    return bad(
                        "models.combined has a threshold or a scale that is not a positive \
                         finite number"
                            .into(),
                    );
                }
                match sequence.model() {
                    Some(model) if model.n() != 0 => crate::window::check_ngram_len(model.n())?,
                    _ => return bad("models.combined.sequence has no n-gram model".into()),
                }
                if self.models.behaviour.is_none() {
                    return bad("the state is detecting but models.behaviour is missing".into());
                }
                for detector in self.detectors() {
                    if !detector.threshold().is_some_and(f64::is_finite) {
                        return bad(format!(
                            "models.{} has no finite calibrated threshold",
                            detector.kind()
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The canonical JSON of this baseline: object keys sorted (the detectors' hash tables
    /// would otherwise come out in a different order in every process), so the same baseline
    /// always gives the same bytes.
    pub fn to_json(&self) -> Result<String> {
        let mut value =
            serde_json::to_value(self).map_err(|e| DetectError::State(e.to_string()))?;
        sort_keys(&mut value);
        serde_json::to_string(&value).map_err(|e| DetectError::State(e.to_string()))
    }

    /// Reads a baseline written by [`Baseline::to_json`] (or assembled from the store's
    /// columns). The kind and format version are checked first, so a file from a newer kanary
    /// says so instead of failing on some field; field errors name the field's path; then
    /// [`Baseline::check`].
    pub fn from_json(text: &str) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| DetectError::State(format!("not JSON: {e}")))?;
        Self::from_value(value)
    }

    /// [`Baseline::from_json`] on parsed JSON.
    pub fn from_value(value: serde_json::Value) -> Result<Self> {
        let Some(object) = value.as_object() else {
            return Err(DetectError::State(
                "not a kanary baseline: the document is not a JSON object".into(),
            ));
        };
        if object.get("kind").and_then(serde_json::Value::as_str) != Some(KIND) {
            return Err(DetectError::State(format!(
                "not a kanary baseline: no \"kind\": \"{KIND}\""
            )));
        }
        let writer = object
            .get("kanary_version")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("(unknown)")
            .to_string();
        match object
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
        {
            Some(version) if version == u64::from(FORMAT_VERSION) => {}
            Some(version) => return Err(DetectError::State(version_message(version, &writer))),
            None => {
                return Err(DetectError::State(
                    "format_version is missing or not a number".into(),
                ))
            }
        }
        let baseline: Baseline = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            DetectError::State(format!("{path}: {}", e.into_inner()))
        })?;
        baseline.check()?;
        Ok(baseline)
    }
}

/// `detector` fitted on `windows`, or `None` when they hold nothing it learns from.
fn optional<D: Detector + Clone>(
    mut detector: D,
    windows: &[FeatureWindow],
    calibration: &Calibration,
) -> Result<Option<D>> {
    match detector.fit(windows, calibration) {
        Ok(_) => Ok(Some(detector)),
        Err(DetectError::EmptyTraining(_)) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Sorts every object's keys. Objects are already sorted unless some crate of the build turns on
/// serde_json's `preserve_order`; this keeps the output canonical either way.
fn sort_keys(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.sort_keys();
            map.values_mut().for_each(sort_keys);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

/// Why a baseline of format `version`, written by kanary `writer`, cannot be read (for readers of
/// the envelope's fields, such as the store, that check the version before decoding the rest).
pub fn version_message(version: u64, writer: &str) -> String {
    let supported = FORMAT_VERSION;
    if version > u64::from(supported) {
        format!(
            "format version {version} is newer than this kanary reads (version {supported}); it \
             was written by kanary {writer}: upgrade kanary, or let the baseline be relearnt"
        )
    } else {
        format!(
            "format version {version} is older than this kanary reads (version {supported}); it \
             was written by kanary {writer}: let the baseline be relearnt"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::windows_of_threads;

    const T0: u64 = 1_700_000_000;

    use crate::synthetic::normal_trace;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + seconds)
    }

    fn windows() -> Vec<FeatureWindow> {
        windows_of_threads(3, &[normal_trace(7, 1500)], Some(200)).unwrap()
    }

    fn config() -> BaselineConfig {
        BaselineConfig {
            learn_for: Duration::from_secs(60),
            min_windows: 5,
            ..BaselineConfig::default()
        }
    }

    fn key() -> BaselineKey {
        BaselineKey::new(Some("sha256:0123456789abcdef"), "nginx:1")
    }

    fn learnt() -> Baseline {
        let config = config();
        let mut baseline = Baseline::new(key(), &config, at(0)).unwrap();
        for (i, window) in windows().iter().enumerate() {
            baseline.observe(window, at(i as u64)).unwrap();
        }
        baseline.finish_learning(&config, at(100)).unwrap();
        baseline
    }

    #[test]
    fn the_key_is_the_image_id_else_the_name() {
        let key = key();
        assert_eq!(key.id(), "sha256:0123456789abcdef");
        assert_eq!(BaselineKey::new(None, "nginx:1").id(), "nginx:1");
        assert_eq!(BaselineKey::new(Some("  "), "nginx:1").image_id, None);
        for selector in ["nginx:1", "sha256:0123456789abcdef", "0123", "sha256:0123"] {
            assert!(key.matches(selector), "{selector}");
        }
        for selector in ["nginx", "012", "sha256:", "abcdef", "nginx:2"] {
            assert!(!key.matches(selector), "{selector}");
        }
        assert!(!BaselineKey::new(None, "nginx:1").matches("0123"));
        assert_eq!(key.to_string(), "nginx:1 (sha256:0123456789abcdef)");
    }

    #[test]
    fn learns_for_the_period_and_enough_windows_then_detects() {
        let config = config();
        let mut baseline = Baseline::new(key(), &config, at(0)).unwrap();
        let windows = windows();
        assert!(windows.len() > 10);
        // Empty windows (an idle container) are not counted.
        baseline.observe(&FeatureWindow::default(), at(1)).unwrap();
        assert_eq!(baseline.progress(at(1)).windows, 0);
        for window in &windows[..3] {
            baseline.observe(window, at(10)).unwrap();
        }
        let progress = baseline.progress(at(10));
        assert_eq!(progress.windows, 3);
        assert_eq!(
            progress.events,
            windows[..3].iter().map(|w| w.syscall_total()).sum::<u64>()
        );
        assert_eq!(progress.time_left, Duration::from_secs(50));
        assert_eq!(progress.windows_missing, 2);
        assert!(progress.learning && !progress.done());
        // The time is over but two windows are missing: not yet.
        assert!(!baseline.ready(at(61)));
        assert_eq!(baseline.progress(at(61)).time_left, Duration::ZERO);
        for window in &windows[3..] {
            baseline.observe(window, at(20)).unwrap();
        }
        // Enough windows, but the time is not over.
        assert!(!baseline.ready(at(59)));
        assert!(baseline.ready(at(60)));
        // A clock that went backwards is no time elapsed, not a panic.
        assert_eq!(
            baseline.progress(SystemTime::UNIX_EPOCH).time_left,
            config.learn_for
        );

        let threshold = baseline.finish_learning(&config, at(61)).unwrap();
        assert!(threshold.is_finite());
        assert_eq!(
            baseline.state,
            State::Detecting {
                since: at(61),
                windows_learnt: windows.len() as u64,
                events_learnt: windows.iter().map(|w| w.syscall_total()).sum(),
            }
        );
        assert!(baseline.models.sample.windows.is_empty());
        assert!(!baseline.ready(at(1000)));
        assert_eq!(baseline.updated_at, at(61));
        let detector = baseline.detector().unwrap();
        assert_eq!(detector.threshold(), Some(threshold));
        let normal = FeatureWindow::from_threads(3, &[normal_trace(99, 40)]).unwrap();
        assert!(!detector.score(&normal).unwrap().anomalous);
        let mut shell = normal_trace(5, 20);
        shell.extend_from_slice(&[56, 59, 33, 33, 33, 59, 257, 217, 0, 1, 231]);
        let shell = FeatureWindow::from_threads(3, &[shell]).unwrap();
        assert!(detector.score(&shell).unwrap().anomalous);

        // Detecting: no more learning, no second finish.
        assert!(matches!(
            baseline.observe(&windows[0], at(70)),
            Err(DetectError::State(_))
        ));
        assert!(matches!(
            baseline.finish_learning(&config, at(70)),
            Err(DetectError::State(_))
        ));
    }

    #[test]
    fn a_failed_finish_leaves_the_baseline_learning() {
        let config = config();
        let mut baseline = Baseline::new(key(), &config, at(0)).unwrap();
        // Syscall counts only, no n-gram: the sequence model has nothing to learn.
        let window = FeatureWindow {
            ngram_len: 0,
            syscalls: vec![(0, 10), (1, 5)],
            ..FeatureWindow::default()
        };
        for _ in 0..6 {
            baseline.observe(&window, at(1)).unwrap();
        }
        let before = baseline.clone();
        assert!(matches!(
            baseline.finish_learning(&config, at(100)),
            Err(DetectError::EmptyTraining(_))
        ));
        assert_eq!(baseline, before);
    }

    #[test]
    fn a_changed_ngram_length_is_refused() {
        let mut baseline = Baseline::new(key(), &config(), at(0)).unwrap();
        baseline.observe(&windows()[0], at(1)).unwrap();
        let other = windows_of_threads(5, &[normal_trace(1, 50)], None).unwrap();
        let error = baseline.observe(&other[0], at(2)).unwrap_err();
        assert!(error.to_string().contains("reset"), "{error}");
        assert_eq!(baseline.progress(at(2)).windows, 1);
    }

    #[test]
    fn the_sample_is_bounded_and_spans_the_whole_period() {
        let config = BaselineConfig {
            max_windows: 8,
            min_windows: 2,
            ..config()
        };
        let mut baseline = Baseline::new(key(), &config, at(0)).unwrap();
        // Windows told apart by their syscall count: window i has i + 1 syscalls of number 0.
        for i in 0..40u64 {
            let window = FeatureWindow {
                ngram_len: 0,
                syscalls: vec![(0, i + 1)],
                ..FeatureWindow::default()
            };
            baseline.observe(&window, at(i)).unwrap();
        }
        let sample = &baseline.models.sample;
        assert!(sample.windows.len() <= 8);
        assert_eq!(sample.stride, 8);
        let kept: Vec<u64> = sample
            .windows
            .iter()
            .map(|w| w.syscall_total() - 1)
            .collect();
        assert_eq!(kept, vec![0, 8, 16, 24, 32]);
        assert_eq!(baseline.progress(at(40)).windows, 40);
    }

    #[test]
    fn settings_are_checked() {
        for bad in [
            BaselineConfig {
                min_windows: 1,
                ..BaselineConfig::default()
            },
            BaselineConfig {
                max_windows: 3,
                min_windows: 4,
                ..BaselineConfig::default()
            },
        ] {
            assert!(matches!(
                Baseline::new(key(), &bad, at(0)),
                Err(DetectError::Config(_))
            ));
        }
    }

    #[test]
    fn json_is_canonical_and_round_trips_exactly() {
        let baseline = learnt();
        let text = baseline.to_json().unwrap();
        let back = Baseline::from_json(&text).unwrap();
        assert_eq!(back, baseline);
        assert_eq!(back.to_json().unwrap(), text);
        // A learning baseline with its sample round-trips too, sub-second times included.
        let mut learning =
            Baseline::new(key(), &config(), at(0) + Duration::from_nanos(123_456_789)).unwrap();
        learning.observe(&windows()[1], at(3)).unwrap();
        let text = learning.to_json().unwrap();
        assert!(text.contains("\"phase\":\"learning\""), "{text}");
        assert!(text.contains("\"learn_for\":\"1m\""), "{text}");
        assert_eq!(Baseline::from_json(&text).unwrap(), learning);
    }

    /// Rewrites `baseline`'s JSON with `edit` and returns the error reading it back.
    fn error_after(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut value = serde_json::to_value(learnt()).unwrap();
        edit(&mut value);
        Baseline::from_json(&value.to_string())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_documents_are_refused_with_the_reason() {
        assert!(Baseline::from_json("{\"kind\": \"kanary-basel")
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
        assert!(Baseline::from_json("[1, 2]")
            .unwrap_err()
            .to_string()
            .contains("not a kanary baseline"));
        assert!(Baseline::from_json("{\"hello\": 1}")
            .unwrap_err()
            .to_string()
            .contains("not a kanary baseline"));
        let newer = error_after(|v| v["format_version"] = 99.into());
        assert!(
            newer.contains("format version 99 is newer")
                && newer.contains(&format!("version {FORMAT_VERSION}")),
            "{newer}"
        );
        let older = error_after(|v| v["format_version"] = 0.into());
        assert!(older.contains("older"), "{older}");
        let missing = error_after(|v| {
            v.as_object_mut().unwrap().remove("format_version");
        });
        assert!(missing.contains("format_version is missing"), "{missing}");
        let detector = error_after(|v| v["models"]["combined"]["format_version"] = 7.into());
        assert!(
            detector.contains("models.combined has detector format version 7"),
            "{detector}"
        );
        let field = error_after(|v| v["state"]["windows_learnt"] = "many".into());
        assert!(field.contains("state"), "{field}");
        let scales = error_after(|v| v["models"]["combined"]["scales"] = 3.into());
        assert!(scales.contains("models.combined.scales"), "{scales}");
        let no_detector = error_after(|v| v["models"]["combined"] = serde_json::Value::Null);
        assert!(
            no_detector.contains("models.combined is missing"),
            "{no_detector}"
        );
        let phase = error_after(|v| v["state"]["phase"] = "dreaming".into());
        assert!(phase.contains("dreaming"), "{phase}");
        let image = error_after(|v| v["key"]["image"] = "".into());
        assert!(image.contains("key.image is empty"), "{image}");
        let unit = error_after(|v| v["models"]["combined"]["scales"][0]["unit"] = 0.0.into());
        assert!(unit.contains("positive finite"), "{unit}");
        let n = error_after(|v| v["models"]["combined"]["sequence"]["model"]["n"] = 12.into());
        assert!(n.contains("12 is not 0 or between 2 and 7"), "{n}");
        let stride = error_after(|v| v["models"]["sample"]["stride"] = 3.into());
        assert!(stride.contains("power of two"), "{stride}");
    }
}
