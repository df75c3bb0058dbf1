//! Deterministic synthetic workloads, so tests and examples across crates learn baselines from
//! the same known-normal behaviour without a data set.

/// A web-server-like loop of `requests` requests, each one of three x86_64 syscall paths
/// (epoll_wait, accept, read, openat, fstat, ... close) chosen deterministically from `seed`,
/// unevenly, by a 64-bit linear congruential generator.
pub fn normal_trace(seed: u64, requests: usize) -> Vec<u32> {
    let paths: [&[u32]; 3] = [
        &[232, 43, 0, 257, 5, 0, 3, 1, 3],
        &[232, 43, 0, 4, 1, 3],
        &[232, 0, 1, 20, 3],
    ];
    let mut state = seed;
    let mut seq = Vec::new();
    for _ in 0..requests {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seq.extend_from_slice(paths[((state >> 33) % 3) as usize]);
    }
    seq
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_same_seed_gives_the_same_trace() {
        let a = super::normal_trace(7, 100);
        assert_eq!(a, super::normal_trace(7, 100));
        assert_ne!(a, super::normal_trace(8, 100));
        assert!(a.len() >= 500 && a.len() <= 900);
    }
}
