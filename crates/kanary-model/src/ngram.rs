//! Syscall n-grams packed into one `u64`, exactly as `bpf/syscalls.bpf.c` builds them.
//!
//! Each syscall number takes [`BITS_PER_SYSCALL`] bits, the newest in the low bits, so an n-gram
//! of up to [`MAX_LEN`] syscalls is its own perfect hash: the kernel counts it in a map keyed by
//! the packed value and user space unpacks it back into syscall names for explanations.

/// Bits per syscall number (every x86_64 and arm64 syscall number is below 512).
pub const BITS_PER_SYSCALL: u32 = 9;
/// The longest n-gram that fits in 64 bits.
pub const MAX_LEN: u32 = 7;
/// The shortest n-gram that is a sequence.
pub const MIN_LEN: u32 = 2;

/// The mask keeping the last `len` syscalls of a packed window.
pub fn mask(len: u32) -> u64 {
    debug_assert!((MIN_LEN..=MAX_LEN).contains(&len));
    (1u64 << (BITS_PER_SYSCALL * len)) - 1
}

/// Appends syscall `nr` to a packed window, as the kernel does on every syscall.
pub fn push(window: u64, nr: u32) -> u64 {
    (window << BITS_PER_SYSCALL) | u64::from(nr & ((1 << BITS_PER_SYSCALL) - 1))
}

/// Packs `seq` (oldest first) into an n-gram.
pub fn pack(seq: &[u32]) -> u64 {
    seq.iter().fold(0, |window, &nr| push(window, nr))
}

/// Unpacks an n-gram of length `len` into syscall numbers, oldest first.
pub fn unpack(ngram: u64, len: u32) -> Vec<u32> {
    (0..len)
        .rev()
        .map(|i| ((ngram >> (i * BITS_PER_SYSCALL)) & ((1 << BITS_PER_SYSCALL) - 1)) as u32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack_round_trip() {
        let seq = [0, 1, 257, 511, 3, 59, 60];
        assert_eq!(unpack(pack(&seq), 7), seq);
        assert_eq!(unpack(pack(&seq[4..]), 3), [3, 59, 60]);
    }

    #[test]
    fn sliding_window_masks_to_the_last_n() {
        let mut window = 0;
        for nr in [1, 2, 3, 4, 5] {
            window = push(window, nr);
        }
        assert_eq!(unpack(window & mask(3), 3), [3, 4, 5]);
        assert_eq!(mask(7), (1u64 << 63) - 1);
    }
}
