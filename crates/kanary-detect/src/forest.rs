//! The window model: an isolation forest over a whole window, for combinations of figures and
//! syscall mix that no single figure betrays.
//!
//! **Features.** One vector per timed window (one that carries metrics, see [`crate::resource`]):
//! `log1p` of every figure the learning windows carried ([`resource::metric_names`]: the
//! collectors' figures and the syscall rate), then the shares of the `syscalls` syscalls with the
//! largest mean share over the learning windows, then the share of all other syscalls together
//! (where a syscall never learnt lands). `log1p` because figures span orders of magnitude (bytes,
//! counts) and their changes are relative; shares are already on one scale. Each feature is then
//! standardised to a robust z against the learning windows: `(x − median) / spread`, the spread
//! being 1.4826 × MAD floored on the log scale at 0.1 (about a 10% change) or at the figure's
//! absolute floor ([`resource::absolute_floor`]) if larger, and at 0.01 for a share, so that one unit means "a typical deviation" whatever the feature. A figure a window
//! lacks (its collector was off) gets z = 0, the learnt median, which isolates least: a missing
//! figure never makes a window odd. A window with neither metrics nor syscalls scores 0. Learning
//! uses the timed windows only, and needs at least 2 of them.
//!
//! **Model.** An isolation forest (Liu, Ting & Zhou, "Isolation Forest", ICDM 2008): `trees` trees,
//! each grown on a subsample of ψ = min(`sample`, n) learning windows drawn without replacement,
//! split at a uniformly drawn value between the node's minimum and maximum, down to one window or
//! the height limit ⌈log2 ψ⌉. An anomaly is isolated in few splits: the score is `2^(−E[h(x)] /
//! c(ψ))`, `h` the depth where the window leaves the tree (plus `c(size)` for a leaf it still
//! shares with `size` learning windows), `c(m) = 2 H(m−1) − 2 (m−1)/m` the mean depth of an
//! unsuccessful search among m keys. About 0.5 is ordinary, near 1 isolated at once. With few
//! learning windows the forest still fits, with ψ = n (8 windows give trees of height 3; 2 give
//! stumps under which every window scores 0.5), but coarsely: the largest score it can give, for a
//! window cut off at every root, is `2^(−1/c(n))` (0.74 for 5 windows, 0.83 for 10, 0.93 for 256),
//! and the calibrated threshold comes from the held-out scores of models learnt on fewer windows
//! still. On the tests' synthetic workload it separates gross departures from normal windows from
//! about 12 learning windows on; with 5 its threshold sits about at its largest score (it stays
//! silent), with 10 some normal windows exceed the threshold. A window with a rate the forest
//! cannot separate is still judged by the resource model, which needs no minimum.
//!
//! Two changes to the 2008 algorithm, because with it a window whose CPU went from 4% to 97% (z ≈
//! 29, every other figure normal) scored 0.47 among normal held-out windows scoring 0.39 to 0.64:
//! with ~25 features and trees 5 to 8 splits deep, the CPU feature is on a window's path in one
//! tree out of five, and even there a value far above every learnt one just follows the largest
//! learnt ones down.
//! * Splits are random hyperplanes, as in the Extended Isolation Forest (Hariri, Kind & Brunner,
//!   IEEE TKDE 2021): a node cuts the projection `Σ w_i z_i` of the standardised vector on a random
//!   direction (weights uniform in [−1, 1]), so every split sees every feature, and a window far
//!   out in one feature is far out in nearly every projection. This is also what lets the forest
//!   see broken correlations (CPU up while traffic is not), which axis-parallel cuts see poorly.
//!   The directions are not stored: they are drawn again from [`WindowConfig::seed`], the tree and
//!   the node's index.
//! * Each node keeps the range of its learning windows' projections, and a scored window beyond it
//!   by more than its width (outside the range tripled about its middle) is isolated at that node,
//!   after the range test of SCiForest (Liu, Ting & Zhou, 2010). The width was chosen on the
//!   synthetic workload of the tests, learning from 5 to 60 windows: half the width cut ordinary
//!   held-out windows early too often at deep nodes (whose ranges are narrow), which raised the
//!   calibrated threshold above the gross departures with 12 to 15 learning windows; two widths and
//!   more let departures slip further down the trees and lowered their scores. A node whose windows
//!   all project alike sends them all one way and only tests the range: that is how a container
//!   idle in every learning window still notices activity.
//!
//! Everything is deterministic: subsamples, thresholds and directions come from a [`SplitMix64`]
//! seeded by [`WindowConfig::seed`], so two fits on the same windows give the same forest.
//!
//! **Size.** A node is 20 bytes in memory (threshold and range as `f32`, the index of the right
//! child; the left child follows its parent; directions are not stored), a tree of height 8 (ψ =
//! 256) has at most 511 nodes, so 100 trees hold at most 51,100 nodes, 1.0 MB; fewer in practice,
//! since a node with one window left is a leaf and random cuts leave uneven trees: learning from
//! 300 windows of the tests' workload (25 features) gave 11,950 nodes, 242 KB in memory and 232 KB
//! of JSON. Projections are rounded to `f32` when learning and scoring alike, and `f32` is exact in
//! JSON and back. Scoring costs one projection (a multiply-add per feature) per node on each tree's
//! path.
//!
//! **Explanation.** The forest says how odd a window is, not why; its features with the largest |z|
//! do, and they are the very coordinates the forest projects. A figure is reported as `cpu_percent`
//! etc. with `baseline` = its learnt median and `observed` = the window's value, class
//! [`AlertClass::ResourceAnomaly`]; a syscall share as `syscall share: clone` (or `syscall share:
//! other syscalls`) with `baseline` = the learnt median share and `observed` = the window's share,
//! class [`AlertClass::SequenceAnomaly`].

use std::collections::BTreeMap;

use kanary_model::record::AlertClass;
use serde::{Deserialize, Serialize};

use crate::detector::{Contribution, Detector, Versioned, FORMAT_VERSION};
use crate::error::{DetectError, Result};
use crate::names::SyscallNames;
use crate::resource::{self, median_and_sigma, metric_value};
use crate::window::FeatureWindow;

/// Smallest spread of a `log1p` figure (about a 10% change).
const LOG_FLOOR: f64 = 0.1;
/// Smallest spread of a syscall share (one percentage point).
const SHARE_FLOOR: f64 = 0.01;
/// The Euler–Mascheroni constant, for harmonic numbers.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// SplitMix64 (Steele, Lea & Flood, 2014): a tiny seeded generator with good statistical quality,
/// enough to draw subsamples, splits and directions reproducibly without a dependency.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0), by multiply-shift: the bias is below n / 2^64.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A number in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Settings of the window model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowConfig {
    /// Trees in the forest.
    pub trees: usize,
    /// Subsample size ψ per tree (at most the learning windows); 2 to 65,536.
    pub sample: usize,
    /// How many syscalls get a share feature of their own (the most common while learning), at
    /// most 512.
    pub syscalls: usize,
    /// Seed of the random draws.
    pub seed: u64,
    /// How many features a finding explains.
    pub top: usize,
    /// How syscall numbers are named in explanations.
    pub names: SyscallNames,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            trees: 100,
            sample: 256,
            syscalls: 32,
            seed: 0x6b61_6e61_7279,
            top: 5,
            names: SyscallNames::default(),
        }
    }
}

impl WindowConfig {
    fn check(&self) -> Result<()> {
        if self.trees == 0 || !(2..=1 << 16).contains(&self.sample) || self.syscalls > 512 {
            return Err(DetectError::Config(format!(
                "window model: trees must be at least 1 (got {}), sample within 2..=65536 \
                 (got {}), syscalls at most 512 (got {})",
                self.trees, self.sample, self.syscalls
            )));
        }
        Ok(())
    }
}

/// What one coordinate of a window's vector measures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Feature {
    /// `log1p` of a figure ([`resource::metric_names`]).
    Metric(String),
    /// Share of one syscall among the window's syscalls.
    Share(u32),
    /// Share of the syscalls without a feature of their own.
    OtherShares,
}

/// A feature and its robust statistics over the learning windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Column {
    feature: Feature,
    median: f64,
    /// Floored 1.4826 × MAD.
    spread: f64,
}

impl Column {
    fn z(&self, value: f32) -> f32 {
        ((f64::from(value) - self.median) / self.spread) as f32
    }
}

/// One node of a tree, in pre-order: a split's left child is the node after it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Node {
    /// How many subsample windows ended here.
    Leaf(u32),
    /// Threshold on the node's projection (left: below it), range of the node's windows'
    /// projections (low, high), index of the right child.
    Split(f32, f32, f32, u32),
}

/// The learnt forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Forest {
    columns: Vec<Column>,
    /// ψ, the subsample size every tree was grown on.
    sample: u32,
    trees: Vec<Vec<Node>>,
}

/// Mean depth of an unsuccessful search among `m` keys, `c(m)` of the paper (0 for one key).
fn average_path(m: usize) -> f64 {
    match m {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let m = m as f64;
            2.0 * ((m - 1.0).ln() + EULER_GAMMA) - 2.0 * (m - 1.0) / m
        }
    }
}

fn share(count: u64, total: u64) -> f32 {
    if total == 0 {
        0.0
    } else {
        (count as f64 / total as f64) as f32
    }
}

/// Smallest spread of figure `name` on the log scale around the learnt `median` (itself on the
/// log scale): 10%, or the figure's absolute floor ([`resource::absolute_floor`]) when that is
/// more. Without the absolute floor a figure that was always 0 while learning (no block IO) would
/// make a single 4 KiB read an extreme outlier, though it is far below what the resource model
/// calls worth attention.
fn log_floor(name: &str, median: f64) -> f64 {
    let level = median.exp_m1().max(0.0);
    let absolute =
        resource::absolute_floor(name).map_or(0.0, |floor| (level + floor).ln_1p() - level.ln_1p());
    absolute.max(LOG_FLOOR)
}

fn log_figure(value: f64) -> f32 {
    value.max(0.0).ln_1p() as f32
}

/// The projection of `z` on the direction of node `at` of tree `tree`: weights uniform in
/// `[−1, 1)`, 16 bits each, drawn from the seed, the tree and the node. Uniform rather than random
/// signs so that two features departing together rarely cancel out (±1 weights cancel a fork
/// storm's forks and execs in half the nodes).
fn project(z: &[f32], seed: u64, tree: usize, at: usize) -> f32 {
    let key = seed ^ ((tree as u64) << 32 | at as u64);
    let mut weights = SplitMix64::new(SplitMix64::new(key).next_u64());
    let mut bits = 0;
    let mut sum = 0.0f64;
    for (i, &value) in z.iter().enumerate() {
        if i % 4 == 0 {
            bits = weights.next_u64();
        }
        let weight = f64::from((bits >> (16 * (i % 4))) as u16) / 32768.0 - 1.0;
        sum += weight * f64::from(value);
    }
    sum as f32
}

impl Forest {
    /// The raw features of `window` (`log1p` figures, shares); `None` for a figure it lacks.
    fn features(columns: &[Column], window: &FeatureWindow) -> Vec<Option<f32>> {
        let total = window.syscall_total();
        let mut with_feature = 0;
        let mut out = Vec::with_capacity(columns.len());
        for column in columns {
            out.push(match &column.feature {
                Feature::Metric(name) => metric_value(window, name).map(log_figure),
                Feature::Share(nr) => {
                    let count: u64 = window
                        .syscalls
                        .iter()
                        .filter(|e| e.0 == *nr)
                        .map(|e| e.1)
                        .sum();
                    with_feature += count;
                    Some(share(count, total))
                }
                // Last column: every share column was summed before it.
                Feature::OtherShares => Some(share(total.saturating_sub(with_feature), total)),
            });
        }
        out
    }

    /// The standardised vector of `window` (0 for a figure it lacks).
    fn standardised(&self, window: &FeatureWindow) -> Vec<f32> {
        Forest::features(&self.columns, window)
            .into_iter()
            .zip(&self.columns)
            .map(|(value, column)| value.map_or(0.0, |v| column.z(v)))
            .collect()
    }

    /// Depth at which `z` leaves `tree`, tree number `index`, with the expected depth below a
    /// leaf it reaches.
    fn depth(tree: &[Node], index: usize, z: &[f32], seed: u64) -> Result<f64> {
        let broken =
            |what: String| DetectError::State(format!("window model tree {index}: {what}"));
        let (mut at, mut depth) = (0, 0.0);
        loop {
            match tree.get(at) {
                None => return Err(broken(format!("node {at} is missing"))),
                Some(&Node::Leaf(size)) => return Ok(depth + average_path(size as usize)),
                Some(&Node::Split(threshold, lo, hi, right)) => {
                    depth += 1.0;
                    let value = project(z, seed, index, at);
                    let width = hi - lo;
                    if value < lo - width || value > hi + width {
                        return Ok(depth);
                    }
                    let next = if value < threshold {
                        at + 1
                    } else {
                        right as usize
                    };
                    // Children follow their parent, which also rules out cycles.
                    if next <= at {
                        return Err(broken(format!("node {at} points back to {next}")));
                    }
                    at = next;
                }
            }
        }
    }
}

/// What growing a tree needs besides the windows it splits.
struct Grower<'a> {
    rows: &'a [Vec<f32>],
    limit: u32,
    seed: u64,
    tree: usize,
    rng: SplitMix64,
    nodes: Vec<Node>,
}

impl Grower<'_> {
    /// Grows the subtree over `points` (indices into `rows`) in pre-order.
    fn grow(&mut self, points: &mut [usize], depth: u32) {
        if depth >= self.limit || points.len() <= 1 {
            self.nodes.push(Node::Leaf(points.len() as u32));
            return;
        }
        let at = self.nodes.len();
        let projected: Vec<f32> = points
            .iter()
            .map(|&p| project(&self.rows[p], self.seed, self.tree, at))
            .collect();
        let (lo, hi) = projected
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |r, &v| {
                (r.0.min(v), r.1.max(v))
            });
        // Windows that all project alike all go right: the node only tests the range.
        let mut threshold = lo;
        if hi > lo {
            threshold = (f64::from(lo) + self.rng.unit() * f64::from(hi - lo)) as f32;
            // Rounding to f32 may land on the minimum, which would split nothing off.
            if threshold <= lo {
                threshold = hi;
            }
        }
        let mut left = 0;
        for (i, &value) in projected.iter().enumerate() {
            if value < threshold {
                points.swap(i, left);
                left += 1;
            }
        }
        self.nodes.push(Node::Leaf(0));
        let (below, above) = points.split_at_mut(left);
        self.grow(below, depth + 1);
        let right = self.nodes.len() as u32;
        self.grow(above, depth + 1);
        self.nodes[at] = Node::Split(threshold, lo, hi, right);
    }
}

/// The window model (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowModel {
    /// [`FORMAT_VERSION`] of this state.
    pub format_version: u32,
    /// Settings.
    pub config: WindowConfig,
    forest: Option<Forest>,
    threshold: Option<f64>,
}

impl WindowModel {
    /// A model that has learnt nothing yet.
    pub fn new(config: WindowConfig) -> Self {
        WindowModel {
            format_version: FORMAT_VERSION,
            config,
            forest: None,
            threshold: None,
        }
    }

    /// Nodes over all trees.
    pub fn nodes(&self) -> usize {
        self.forest
            .as_ref()
            .map_or(0, |f| f.trees.iter().map(Vec::len).sum())
    }

    /// Estimated heap bytes of the learnt forest.
    pub fn table_bytes(&self) -> usize {
        self.forest.as_ref().map_or(0, |forest| {
            forest.columns.capacity() * std::mem::size_of::<Column>()
                + forest.trees.capacity() * std::mem::size_of::<Vec<Node>>()
                + forest
                    .trees
                    .iter()
                    .map(|t| t.capacity() * std::mem::size_of::<Node>())
                    .sum::<usize>()
        })
    }

    fn learnt(&self) -> Result<&Forest> {
        let forest = self
            .forest
            .as_ref()
            .ok_or(DetectError::NotTrained("window"))?;
        if forest.sample < 2 || forest.trees.is_empty() {
            return Err(DetectError::State(format!(
                "window model: {} trees over subsamples of {} (needs at least 1 tree and 2)",
                forest.trees.len(),
                forest.sample
            )));
        }
        if let Some(column) = forest
            .columns
            .iter()
            .find(|c| !(c.median.is_finite() && c.spread > 0.0 && c.spread.is_finite()))
        {
            return Err(DetectError::State(format!(
                "window model feature {:?}: median {} and spread {} must be finite, the spread \
                 positive",
                column.feature, column.median, column.spread
            )));
        }
        Ok(forest)
    }

    /// The contribution of `column`, whose raw value in `window` is `value`.
    fn contribution(&self, column: &Column, window: &FeatureWindow, value: f32) -> Contribution {
        let z = column.z(value);
        let (feature, baseline, observed, class, detail) = match &column.feature {
            Feature::Metric(name) => {
                let baseline = column.median.exp_m1();
                let observed = metric_value(window, name).unwrap_or(baseline);
                let detail = format!(
                    "z={z:+.1} on a log scale (learnt median {}, typical spread ×{:.2})",
                    resource::shown(name, baseline),
                    column.spread.exp()
                );
                (
                    name.clone(),
                    baseline,
                    observed,
                    AlertClass::ResourceAnomaly,
                    detail,
                )
            }
            share @ (Feature::Share(_) | Feature::OtherShares) => {
                let name = match share {
                    Feature::Share(nr) => self.config.names.name(*nr),
                    _ => "other syscalls".to_string(),
                };
                let detail = format!(
                    "z={z:+.1} (learnt median share {:.3}, spread {:.3})",
                    column.median, column.spread
                );
                (
                    format!("syscall share: {name}"),
                    column.median,
                    f64::from(value),
                    AlertClass::SequenceAnomaly,
                    detail,
                )
            }
        };
        let mut contribution = Contribution::new(feature, baseline, observed);
        contribution.class = Some(class);
        contribution.detail = Some(detail);
        contribution
    }
}

impl Versioned for WindowModel {
    fn format_version(&self) -> u32 {
        self.format_version
    }
}

impl Detector for WindowModel {
    fn kind(&self) -> &'static str {
        "window"
    }

    fn class(&self) -> AlertClass {
        AlertClass::ResourceAnomaly
    }

    fn learn(&mut self, windows: &[FeatureWindow]) -> Result<()> {
        self.config.check()?;
        let timed: Vec<&FeatureWindow> = windows.iter().filter(|w| !w.metrics.is_empty()).collect();
        if timed.len() < 2 {
            return Err(DetectError::EmptyTraining(format!(
                "the window model needs at least 2 learning windows that carry resource or \
                 activity metrics; {} of {} do (were the collectors off?)",
                timed.len(),
                windows.len()
            )));
        }
        let mut features: Vec<Feature> = resource::metric_names()
            .filter(|name| timed.iter().any(|w| metric_value(w, name).is_some()))
            .map(|name| Feature::Metric(name.to_string()))
            .collect();
        let mut mean_share: BTreeMap<u32, f64> = BTreeMap::new();
        for window in &timed {
            let total = window.syscall_total();
            for &(nr, count) in &window.syscalls {
                *mean_share.entry(nr).or_default() += f64::from(share(count, total));
            }
        }
        let mut common: Vec<(u32, f64)> = mean_share.into_iter().collect();
        common.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        common.truncate(self.config.syscalls);
        common.sort_by_key(|e| e.0);
        features.extend(common.into_iter().map(|(nr, _)| Feature::Share(nr)));
        features.push(Feature::OtherShares);

        let mut columns: Vec<Column> = features
            .into_iter()
            .map(|feature| Column {
                feature,
                median: 0.0,
                spread: 1.0,
            })
            .collect();
        let raw: Vec<Vec<Option<f32>>> = timed
            .iter()
            .map(|w| Forest::features(&columns, w))
            .collect();
        for (i, column) in columns.iter_mut().enumerate() {
            let mut values: Vec<f64> = raw
                .iter()
                .filter_map(|row| row.get(i).copied().flatten())
                .map(f64::from)
                .collect();
            let (median, sigma) = median_and_sigma(&mut values);
            let floor = match &column.feature {
                Feature::Metric(name) => log_floor(name, median),
                _ => SHARE_FLOOR,
            };
            column.median = median;
            column.spread = sigma.max(floor);
        }
        let rows: Vec<Vec<f32>> = raw
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&columns)
                    .map(|(value, column)| value.map_or(0.0, |v| column.z(v)))
                    .collect()
            })
            .collect();

        let n = rows.len();
        let psi = self.config.sample.min(n);
        // ⌈log2 ψ⌉ for ψ ≥ 2.
        let limit = usize::BITS - (psi - 1).leading_zeros();
        let mut rng = SplitMix64::new(self.config.seed);
        let mut order: Vec<usize> = (0..n).collect();
        let mut trees = Vec::with_capacity(self.config.trees);
        for tree in 0..self.config.trees {
            // Partial Fisher–Yates: the first ψ entries become a uniform subsample.
            for i in 0..psi {
                let j = i + rng.below(n - i);
                order.swap(i, j);
            }
            let mut points = order[..psi].to_vec();
            let mut grower = Grower {
                rows: &rows,
                limit,
                seed: self.config.seed,
                tree,
                rng: SplitMix64::new(rng.next_u64()),
                nodes: Vec::new(),
            };
            grower.grow(&mut points, 0);
            grower.nodes.shrink_to_fit();
            trees.push(grower.nodes);
        }
        self.forest = Some(Forest {
            columns,
            sample: psi as u32,
            trees,
        });
        Ok(())
    }

    /// `2^(−E[h] / c(ψ))` over the trees; 0 for a window with neither metrics nor syscalls.
    fn raw_score(&self, window: &FeatureWindow) -> Result<f64> {
        let forest = self.learnt()?;
        if window.metrics.is_empty() && window.syscalls.is_empty() {
            return Ok(0.0);
        }
        let z = forest.standardised(window);
        let mut total = 0.0;
        for (index, tree) in forest.trees.iter().enumerate() {
            total += Forest::depth(tree, index, &z, self.config.seed)?;
        }
        let mean = total / forest.trees.len() as f64;
        Ok((-mean / average_path(forest.sample as usize)).exp2())
    }

    /// The features furthest from the learning windows, by |z| (see the module documentation);
    /// figures the window lacks are not reported.
    fn explain(&self, window: &FeatureWindow, top: usize) -> Result<Vec<Contribution>> {
        let forest = self.learnt()?;
        if window.metrics.is_empty() && window.syscalls.is_empty() {
            return Ok(Vec::new());
        }
        let features = Forest::features(&forest.columns, window);
        let mut ranked: Vec<(f32, &Column, f32)> = features
            .into_iter()
            .zip(&forest.columns)
            .filter_map(|(value, column)| Some((column.z(value?).abs(), column, value?)))
            .filter(|&(distance, _, _)| distance > 0.0)
            .collect();
        // Stable: equal |z| keep the order of the columns.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        Ok(ranked
            .into_iter()
            .take(top)
            .map(|(_, column, value)| self.contribution(column, window, value))
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
    use crate::resource::synthetic_window;
    use crate::resource::tests::{abuses, held_out, learning, with};

    fn fitted() -> WindowModel {
        let mut model = WindowModel::new(WindowConfig::default());
        model.fit(&learning(), &Calibration::default()).unwrap();
        model
    }

    #[test]
    fn the_generator_is_splitmix64() {
        // First outputs for seed 1234567 from the reference implementation.
        let mut rng = SplitMix64::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
        assert_eq!(rng.below(0), 0);
        assert!((0..1000).all(|_| rng.below(7) < 7));
        assert!((0..1000).all(|_| (0.0..1.0).contains(&rng.unit())));
    }

    #[test]
    fn path_lengths_follow_the_paper() {
        assert_eq!(average_path(1), 0.0);
        assert_eq!(average_path(2), 1.0);
        // c(256) = 2 H(255) − 2·255/256 ≈ 10.24.
        assert!((average_path(256) - 10.2448).abs() < 1e-3);
    }

    #[test]
    fn normal_windows_pass_and_each_abuse_alarms_with_its_figure_first() {
        let model = fitted();
        let threshold = model.threshold().unwrap();
        assert!(threshold > 0.3 && threshold < 1.0, "threshold {threshold}");
        for window in held_out() {
            let finding = model.score(&window).unwrap();
            assert!(!finding.anomalous, "normal window {finding:?}");
        }
        for (abuse, window, figure) in abuses() {
            let finding = model.score(&window).unwrap();
            assert!(finding.anomalous, "{abuse}: {finding:?}");
            let first = &finding.contributions[0];
            assert_eq!(first.feature, figure, "{abuse}: {finding:?}");
            assert_eq!(first.class, Some(AlertClass::ResourceAnomaly));
            assert_eq!(first.observed, window.metrics[figure]);
            assert!(first.detail.as_deref().unwrap().starts_with("z=+"));
        }
    }

    #[test]
    fn a_new_syscall_mix_is_a_sequence_anomaly() {
        let model = fitted();
        // A shell beside the server: clone, execve, dup2 and wait4, as many as the reads.
        let mut shell = with(&[]);
        shell
            .syscalls
            .extend([(56, 300), (59, 300), (33, 600), (61, 300)]);
        shell.syscalls.sort_unstable();
        let finding = model.score(&shell).unwrap();
        assert!(finding.anomalous, "{finding:?}");
        let first = &finding.contributions[0];
        assert_eq!(
            first.feature, "syscall share: other syscalls",
            "{finding:?}"
        );
        assert_eq!(first.class, Some(AlertClass::SequenceAnomaly));
        assert_eq!(first.baseline, 0.0);
        assert!(first.observed > 0.3, "{first:?}");
    }

    #[test]
    fn unmeasured_figures_do_not_alarm() {
        let model = fitted();
        let mut off = synthetic_window(0, 77).unwrap();
        off.metrics.clear();
        let finding = model.score(&off).unwrap();
        assert!(!finding.anomalous, "{finding:?}");
        assert!(finding
            .contributions
            .iter()
            .all(|c| c.feature.starts_with("syscall share: ")));
        let nothing = FeatureWindow::default();
        assert_eq!(model.raw_score(&nothing).unwrap(), 0.0);
        assert!(model.explain(&nothing, 5).unwrap().is_empty());
    }

    #[test]
    fn few_learning_windows_still_give_a_usable_forest() {
        for n in [12, 20] {
            let windows: Vec<FeatureWindow> = learning().into_iter().take(n).collect();
            let mut model = WindowModel::new(WindowConfig::default());
            let threshold = model.fit(&windows, &Calibration::default()).unwrap();
            for window in held_out() {
                let finding = model.score(&window).unwrap();
                assert!(!finding.anomalous, "n={n}: normal window {finding:?}");
            }
            for (abuse, window, _) in abuses() {
                let score = model.raw_score(&window).unwrap();
                assert!(
                    score > threshold,
                    "n={n}: {abuse} scores {score} <= {threshold}"
                );
            }
        }
        // Fewer: the forest still fits (ψ = n) and its scores stay within the bound of a window
        // cut off at every root.
        for n in [2, 3, 5] {
            let windows: Vec<FeatureWindow> = learning().into_iter().take(n).collect();
            let mut model = WindowModel::new(WindowConfig::default());
            model.learn(&windows).unwrap();
            let most = (1usize << (usize::BITS - (n - 1).leading_zeros() + 1)) - 1;
            assert!(
                model.nodes() <= 100 * most,
                "n={n}: {} nodes",
                model.nodes()
            );
            let bound = (-1.0 / average_path(n)).exp2();
            for (_, window, _) in abuses() {
                let score = model.raw_score(&window).unwrap();
                assert!(score <= bound + 1e-12, "n={n}: {score} vs {bound}");
                // Two windows give stumps under which every window scores 0.5.
                assert!(score > 0.5 || n == 2, "n={n}: {score}");
            }
        }
    }

    #[test]
    fn learning_needs_timed_windows() {
        let mut model = WindowModel::new(WindowConfig::default());
        assert!(matches!(
            model.raw_score(&with(&[])),
            Err(DetectError::NotTrained("window"))
        ));
        let mut offline = learning();
        for window in &mut offline {
            window.metrics.clear();
        }
        match model.learn(&offline) {
            Err(DetectError::EmptyTraining(message)) => {
                assert!(message.contains("0 of 30"), "{message}")
            }
            other => panic!("expected EmptyTraining, got {other:?}"),
        }
        let mut bad = WindowModel::new(WindowConfig {
            sample: 1,
            ..WindowConfig::default()
        });
        assert!(matches!(
            bad.learn(&learning()),
            Err(DetectError::Config(_))
        ));
    }

    #[test]
    fn state_round_trips_deterministically_and_bad_state_is_refused() {
        let model = fitted();
        assert!(model.nodes() > 100 && model.nodes() <= 100 * 511);
        let json = to_json(&model).unwrap();
        assert_eq!(json, to_json(&fitted()).unwrap(), "two fits, same forest");
        let back: WindowModel = from_json(&json).unwrap();
        assert_eq!(back, model);
        assert_eq!(to_json(&back).unwrap(), json);
        for (_, window, _) in abuses() {
            assert_eq!(back.score(&window).unwrap(), model.score(&window).unwrap());
        }

        let mut broken: serde_json::Value = serde_json::from_str(&json).unwrap();
        // A root sending every window right, to itself, would loop forever.
        broken["forest"]["trees"][0][0] = serde_json::json!([-1e30, -1e30, 1e30, 0]);
        let broken: WindowModel = from_json(&broken.to_string()).unwrap();
        assert!(matches!(
            broken.raw_score(&with(&[])),
            Err(DetectError::State(message)) if message.contains("points back")
        ));
        let mut broken: serde_json::Value = serde_json::from_str(&json).unwrap();
        broken["forest"]["columns"][0]["spread"] = 0.0.into();
        let broken: WindowModel = from_json(&broken.to_string()).unwrap();
        assert!(matches!(
            broken.score(&with(&[])),
            Err(DetectError::State(message)) if message.contains("cpu_percent")
        ));
    }
}
