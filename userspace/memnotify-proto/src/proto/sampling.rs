//! How long to wait before the next evaluation.
//!
//! Close to a threshold the module samples fast, far from all of them slowly;
//! and when the figures move, never slower than half the time they would need
//! to reach the nearest threshold at their last speed.

use super::number::{div_u64, mul_div};

/// The sampling bounds, in milliseconds (module parameters).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Sampling {
    /// The shortest period, used close to a threshold.
    pub fast_ms: u64,
    /// The longest period, used far from every threshold.
    pub slow_ms: u64,
}

/// Near this share of RAM (1/64) from a threshold, sample at the fast period.
const NEAR_SHIFT: u32 = 6;
/// Beyond this share of RAM (1/4) from every threshold, sample at the slow period.
const FAR_SHIFT: u32 = 2;

/// The period until the next evaluation.
///
/// `distance` is how many pages the nearest armed trigger is away (`None`: nothing
/// armed, which still samples at the slow period while files are open, for the
/// default levels); `speed` is how many pages per second the figures moved
/// between the last two evaluations.
pub fn next_interval_ms(
    sampling: Sampling,
    distance: Option<u64>,
    total_pages: u64,
    speed_pages_per_s: u64,
) -> u64 {
    let fast = sampling.fast_ms.max(1);
    let slow = sampling.slow_ms.max(fast);
    let Some(distance) = distance else {
        return slow;
    };
    let near = total_pages >> NEAR_SHIFT;
    let far = (total_pages >> FAR_SHIFT).max(near + 1);
    let by_distance = if distance <= near {
        fast
    } else if distance >= far {
        slow
    } else {
        fast + mul_div(slow - fast, distance - near, far - near)
    };
    let by_speed = if speed_pages_per_s == 0 {
        slow
    } else {
        // Half the time to reach the nearest trigger at the current speed.
        div_u64(distance.saturating_mul(500), speed_pages_per_s)
    };
    by_distance.min(by_speed).clamp(fast, slow)
}
