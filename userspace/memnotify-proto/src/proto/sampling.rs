//! How long to wait before the next evaluation.
//!
//! Close to a threshold the module samples fast, far from all of them slowly;
//! and when the figures move, never slower than half the time they would need
//! to reach the nearest threshold at their last speed.

use super::figures::{Figure, Figures};
use super::levels::Levels;
use super::number::{div_u64, mul_div};

/// The sampling bounds, in milliseconds (module parameters).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Sampling {
    /// The shortest period, used close to a threshold.
    pub fast_ms: u64,
    /// The longest period, used far from every threshold.
    pub slow_ms: u64,
    /// The shortest period that the thresholds of unprivileged files can ask for
    /// (PSI's precedent: unprivileged triggers get coarse windows), so that no user can
    /// make the module sample flat out.
    pub limited_ms: u64,
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

/// How fast the figures moved between two evaluations `elapsed_ns` apart: the largest
/// change of any figure, in pages per second (0 when no time passed).
pub fn speed_pages_per_s(previous: &Figures, now: &Figures, elapsed_ns: u64) -> u64 {
    if elapsed_ns == 0 {
        return 0;
    }
    let moved = Figure::ALL
        .iter()
        .map(|&figure| now.get(figure).abs_diff(previous.get(figure)))
        .max()
        .unwrap_or(0);
    mul_div(moved, 1_000_000_000, elapsed_ns)
}

/// What an evaluation observed, from which the sampler plans the next one.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    /// The figures this evaluation used.
    pub figures: &'a Figures,
    /// Their speed since the previous evaluation ([`speed_pages_per_s`]).
    pub speed_pages_per_s: u64,
    /// How many pages the nearest armed trigger of a privileged file is away.
    pub nearest_trigger: Option<u64>,
    /// How many pages the nearest armed trigger of an unprivileged file is away: it
    /// cannot bring the period below [`Sampling::limited_ms`].
    pub nearest_limited: Option<u64>,
    /// The default levels, when some files rely on them (their bounds on `available`
    /// count as triggers).
    pub default_levels: Option<Levels>,
    /// A kick (an open, a write, reclaim starting) arrived during this evaluation.
    pub kicked: bool,
}

impl Sampling {
    /// The period until the next evaluation, in milliseconds: at once after a kick,
    /// otherwise [`next_interval_ms`] for the nearest armed trigger or default level,
    /// where an unprivileged file's trigger counts for no less than `limited_ms`.
    pub fn plan(self, observed: &Observation<'_>) -> u64 {
        if observed.kicked {
            return 0;
        }
        let available = observed.figures.get(Figure::Available);
        let levels = observed.default_levels.iter().flat_map(|levels| {
            [levels.low, levels.critical]
                .into_iter()
                .filter(|&bound| bound != 0)
                .map(|bound| available.abs_diff(bound))
        });
        let nearest = observed.nearest_trigger.into_iter().chain(levels).min();
        let total = observed.figures.get(Figure::Total);
        let speed = observed.speed_pages_per_s;
        let privileged = next_interval_ms(self, nearest, total, speed);
        match observed.nearest_limited {
            Some(distance) => privileged
                .min(next_interval_ms(self, Some(distance), total, speed).max(self.limited_ms)),
            None => privileged,
        }
    }
}
