//! Converts the kernel's boot-time stamps (`bpf_ktime_get_boot_ns`) to wall-clock time.

use std::time::{Duration, SystemTime};

use kanary_collectors::kernel::boottime_now;

/// The current offset between CLOCK_REALTIME and CLOCK_BOOTTIME.
#[derive(Debug, Clone, Copy)]
pub struct BootClock {
    boot_epoch: SystemTime,
}

impl BootClock {
    /// Measures the offset now; call again each interval to follow clock adjustments.
    pub fn now() -> Self {
        let boot = boottime_now();
        BootClock {
            boot_epoch: SystemTime::now() - boot,
        }
    }

    /// Wall-clock time of a boot-time stamp.
    pub fn wall(&self, boot_ns: u64) -> SystemTime {
        self.boot_epoch + Duration::from_nanos(boot_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_taken_now_maps_to_now() {
        let clock = BootClock::now();
        let stamp = boottime_now().as_nanos() as u64;
        let skew = SystemTime::now()
            .duration_since(clock.wall(stamp))
            .unwrap_or_else(|e| e.duration());
        assert!(skew < Duration::from_secs(1), "{skew:?}");
    }
}
