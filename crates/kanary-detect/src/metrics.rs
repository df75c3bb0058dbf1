//! Trace-level evaluation metrics, as pure functions of normal and attack scores (higher is more
//! anomalous).

/// Area under the ROC curve: the probability that a random attack scores above a random normal
/// trace, ties counting one half (the Mann-Whitney U statistic with mid-ranks). `None` when either
/// side is empty.
pub fn auc(normal: &[f64], attack: &[f64]) -> Option<f64> {
    if normal.is_empty() || attack.is_empty() {
        return None;
    }
    let mut all: Vec<(f64, bool)> = normal
        .iter()
        .map(|&s| (s, false))
        .chain(attack.iter().map(|&s| (s, true)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the attacks' ranks (1-based), tied scores sharing the mean of their ranks.
    let mut attack_ranks = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0.total_cmp(&all[i].0).is_eq() {
            j += 1;
        }
        let mid_rank = (i + 1 + j) as f64 / 2.0;
        let attacks = all[i..j].iter().filter(|e| e.1).count();
        attack_ranks += mid_rank * attacks as f64;
        i = j;
    }
    let (n_attack, n_normal) = (attack.len() as f64, normal.len() as f64);
    let u = attack_ranks - n_attack * (n_attack + 1.0) / 2.0;
    Some(u / (n_attack * n_normal))
}

/// An operating point: alarms are scores strictly above `threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OperatingPoint {
    /// The threshold.
    pub threshold: f64,
    /// Share of normal traces above it.
    pub false_alarm_rate: f64,
    /// Share of attack traces above it.
    pub detection_rate: f64,
}

/// The operating point with alarms on scores above `threshold`. `None` when either side is empty.
pub fn at_threshold(normal: &[f64], attack: &[f64], threshold: f64) -> Option<OperatingPoint> {
    if normal.is_empty() || attack.is_empty() {
        return None;
    }
    let above = |scores: &[f64]| {
        scores.iter().filter(|&&s| s > threshold).count() as f64 / scores.len() as f64
    };
    Some(OperatingPoint {
        threshold,
        false_alarm_rate: above(normal),
        detection_rate: above(attack),
    })
}

/// Detection rate at a false-alarm rate of at most `far`: the threshold is the lowest that lets
/// no more than `floor(far × normals)` normal traces above it (ties at the threshold do not
/// alarm, so the rate is never exceeded). `None` when either side is empty.
pub fn detection_at_far(normal: &[f64], attack: &[f64], far: f64) -> Option<OperatingPoint> {
    if normal.is_empty() {
        return None;
    }
    let mut sorted = normal.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let allowed = (far.clamp(0.0, 1.0) * sorted.len() as f64 + 1e-9).floor() as usize;
    let threshold = sorted.get(allowed).copied().unwrap_or(f64::NEG_INFINITY);
    at_threshold(normal, attack, threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_as_half() {
        // Pairs: 2 vs (1, 2, 3) = 1 + 0.5 + 0; 4 vs all = 3. 4.5 / 6.
        assert_eq!(auc(&[1.0, 2.0, 3.0], &[2.0, 4.0]), Some(0.75));
        assert_eq!(auc(&[1.0, 2.0], &[3.0, 4.0]), Some(1.0));
        assert_eq!(auc(&[3.0, 4.0], &[1.0, 2.0]), Some(0.0));
        assert_eq!(auc(&[1.0; 4], &[1.0; 3]), Some(0.5));
        assert_eq!(auc(&[], &[1.0]), None);
    }

    #[test]
    fn detection_never_exceeds_the_false_alarm_rate() {
        let normal: Vec<f64> = (1..=10).map(f64::from).collect();
        let point = detection_at_far(&normal, &[5.5, 10.0, 11.0], 0.1).unwrap();
        assert_eq!(point.threshold, 9.0);
        assert_eq!(point.false_alarm_rate, 0.1);
        assert!((point.detection_rate - 2.0 / 3.0).abs() < 1e-12);
        // 5% of 10 normal traces is none: the threshold is the highest normal score.
        let point = detection_at_far(&normal, &[10.0, 11.0], 0.05).unwrap();
        assert_eq!(point.threshold, 10.0);
        assert_eq!(point.false_alarm_rate, 0.0);
        assert_eq!(point.detection_rate, 0.5);
        // Ties at the threshold stay below it.
        let point = detection_at_far(&[1.0, 2.0, 2.0, 2.0], &[2.0, 3.0], 0.25).unwrap();
        assert_eq!(point.threshold, 2.0);
        assert_eq!(point.false_alarm_rate, 0.0);
        assert_eq!(point.detection_rate, 0.5);
        let all = detection_at_far(&normal, &[0.0], 1.0).unwrap();
        assert_eq!(all.detection_rate, 1.0);
        assert!(detection_at_far(&[], &[1.0], 0.01).is_none());
    }
}
