//! The sampling period planner.

use memnotify_proto::{next_interval_ms, Sampling};
use proptest::prelude::*;

const DEFAULT: Sampling = Sampling {
    fast_ms: 10,
    slow_ms: 1000,
    limited_ms: 1000,
};

/// 1 GiB of 4 KiB pages: near is 4096 pages (1/64), far is 65536 (1/4).
const TOTAL: u64 = 262_144;

fn interval(distance: u64) -> u64 {
    next_interval_ms(DEFAULT, Some(distance), TOTAL, 0)
}

#[test]
fn nothing_armed_samples_slowly() {
    assert_eq!(next_interval_ms(DEFAULT, None, TOTAL, 0), 1000);
    assert_eq!(next_interval_ms(DEFAULT, None, TOTAL, u64::MAX), 1000);
}

#[test]
fn near_a_threshold_samples_fast() {
    assert_eq!(interval(0), 10);
    assert_eq!(interval(1), 10);
    assert_eq!(interval(4096), 10);
}

#[test]
fn far_from_every_threshold_samples_slowly() {
    assert_eq!(interval(65_536), 1000);
    assert_eq!(interval(200_000), 1000);
    assert_eq!(interval(u64::MAX), 1000);
}

#[test]
fn in_between_interpolates() {
    // Halfway between near and far.
    let middle = 4096 + (65_536 - 4096) / 2;
    assert_eq!(interval(middle), 10 + 990 / 2);
    let inside = interval(4097);
    assert!((10..=11).contains(&inside), "{inside}");
    let almost_far = interval(65_535);
    assert!((999..1000).contains(&almost_far), "{almost_far}");
}

#[test]
fn speed_shortens_the_interval() {
    let resting = next_interval_ms(DEFAULT, Some(30_000), TOTAL, 0);
    // 30000 pages away at 100000 pages/s: 300 ms to reach it, sample in 150 ms.
    let moving = next_interval_ms(DEFAULT, Some(30_000), TOTAL, 100_000);
    assert_eq!(moving, 150);
    assert!(moving < resting);
    // Fast enough to get there in no time: the fast period.
    assert_eq!(next_interval_ms(DEFAULT, Some(30_000), TOTAL, u64::MAX), 10);
    // Slow movement does not lengthen it.
    assert_eq!(next_interval_ms(DEFAULT, Some(30_000), TOTAL, 1), resting);
}

#[test]
fn odd_parameters_are_tamed() {
    let zero = Sampling {
        fast_ms: 0,
        slow_ms: 0,
        limited_ms: 0,
    };
    assert_eq!(next_interval_ms(zero, Some(0), TOTAL, 0), 1);
    assert_eq!(next_interval_ms(zero, None, TOTAL, 0), 1);
    let inverted = Sampling {
        fast_ms: 500,
        slow_ms: 100,
        limited_ms: 0,
    };
    assert_eq!(next_interval_ms(inverted, Some(u64::MAX), TOTAL, 0), 500);
    assert_eq!(next_interval_ms(inverted, Some(0), TOTAL, 0), 500);
    // No RAM figure yet: everything is far... except distance 0.
    assert_eq!(next_interval_ms(DEFAULT, Some(0), 0, 0), 10);
    assert_eq!(next_interval_ms(DEFAULT, Some(1), 0, 0), 1000);
}

#[test]
fn large_parameters_still_interpolate() {
    // Products of the parameters overflow 64 bits; the result must not collapse.
    let long = Sampling {
        fast_ms: 10,
        slow_ms: 1 << 40,
        limited_ms: 10,
    };
    let total = 1u64 << 40;
    let near = total >> 6;
    let far = total >> 2;
    let middle = near + (far - near) / 2;
    let expected = 10 + ((1u64 << 40) - 10) / 2;
    assert_eq!(next_interval_ms(long, Some(middle), total, 0), expected);
    assert!(
        next_interval_ms(long, Some(middle), total, 0)
            <= next_interval_ms(long, Some(middle + 1), total, 0)
    );
}

fn sampling_strategy() -> impl Strategy<Value = Sampling> {
    prop_oneof![
        Just(DEFAULT),
        (0u64..100, 0u64..5000, 0u64..5000).prop_map(|(fast_ms, slow_ms, limited_ms)| Sampling {
            fast_ms,
            slow_ms,
            limited_ms
        }),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(fast_ms, slow_ms, limited_ms)| {
            Sampling {
                fast_ms,
                slow_ms,
                limited_ms,
            }
        }),
    ]
}

fn pages() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..1000, 0u64..(1 << 24), any::<u64>()]
}

/// A distance between 0 and half of RAM, where the interpolation happens.
fn share_of(total: u64, per_1024: u64) -> u64 {
    (u128::from(total) * u128::from(per_1024) / 1024) as u64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn monotonic_in_distance_between_near_and_far(
        sampling in sampling_strategy(),
        total in pages(),
        a in 0u64..512,
        b in 0u64..512,
        speed in pages(),
    ) {
        let (near, far) = (share_of(total, a.min(b)), share_of(total, a.max(b)));
        let near_interval = next_interval_ms(sampling, Some(near), total, speed);
        let far_interval = next_interval_ms(sampling, Some(far), total, speed);
        prop_assert!(near_interval <= far_interval, "{} > {}", near_interval, far_interval);
    }

    #[test]
    fn interpolation_is_linear_between_near_and_far(
        sampling in sampling_strategy(),
        total in pages(),
        per_1024 in 16u64..=256,
    ) {
        // With no movement, the interval is fast + (slow - fast) * (d - near) / (far - near).
        let fast = u128::from(sampling.fast_ms.max(1));
        let slow = u128::from(sampling.slow_ms).max(fast);
        let near = u128::from(total >> 6);
        let far = u128::from(total >> 2).max(near + 1);
        let distance = share_of(total, per_1024);
        let wide = u128::from(distance);
        let expected = if wide <= near {
            fast
        } else if wide >= far {
            slow
        } else {
            fast + (slow - fast) * (wide - near) / (far - near)
        };
        prop_assert_eq!(u128::from(next_interval_ms(sampling, Some(distance), total, 0)), expected);
    }

    #[test]
    fn always_within_fast_and_slow(
        sampling in sampling_strategy(),
        distance in prop::option::of(pages()),
        total in pages(),
        speed in pages(),
    ) {
        let fast = sampling.fast_ms.max(1);
        let slow = sampling.slow_ms.max(fast);
        let interval = next_interval_ms(sampling, distance, total, speed);
        prop_assert!(fast <= interval && interval <= slow, "{} not in [{}, {}]", interval, fast, slow);
    }

    #[test]
    fn monotonic_in_distance(
        sampling in sampling_strategy(),
        a in pages(),
        b in pages(),
        total in pages(),
        speed in pages(),
    ) {
        let (near, far) = (a.min(b), a.max(b));
        prop_assert!(
            next_interval_ms(sampling, Some(near), total, speed)
                <= next_interval_ms(sampling, Some(far), total, speed)
        );
    }

    #[test]
    fn faster_movement_never_lengthens_it(
        sampling in sampling_strategy(),
        distance in prop::option::of(pages()),
        total in pages(),
        a in pages(),
        b in pages(),
    ) {
        let (slower, faster) = (a.min(b), a.max(b));
        prop_assert!(
            next_interval_ms(sampling, distance, total, faster)
                <= next_interval_ms(sampling, distance, total, slower)
        );
    }

    #[test]
    fn nothing_armed_is_the_slowest(
        sampling in sampling_strategy(),
        distance in pages(),
        total in pages(),
        speed in pages(),
    ) {
        prop_assert!(
            next_interval_ms(sampling, Some(distance), total, speed)
                <= next_interval_ms(sampling, None, total, speed)
        );
    }
}

// ---- the plan: what an evaluation observed -> the next period ----

use memnotify_proto::{speed_pages_per_s, Figure, Figures, Levels, Observation};

fn figures(available: u64) -> Figures {
    let mut figures = Figures::default();
    figures.set(Figure::Total, TOTAL);
    figures.set(Figure::Available, available);
    figures
}

fn observe(figures: &Figures) -> Observation<'_> {
    Observation {
        figures,
        speed_pages_per_s: 0,
        nearest_trigger: None,
        nearest_limited: None,
        default_levels: None,
        kicked: false,
    }
}

#[test]
fn plan_without_triggers_or_levels_samples_slowly() {
    let now = figures(100_000);
    assert_eq!(DEFAULT.plan(&observe(&now)), 1000);
}

#[test]
fn plan_after_a_kick_samples_at_once() {
    let now = figures(100_000);
    let observed = Observation {
        kicked: true,
        nearest_trigger: Some(u64::MAX),
        ..observe(&now)
    };
    assert_eq!(DEFAULT.plan(&observed), 0);
}

#[test]
fn plan_uses_the_nearest_trigger() {
    let now = figures(100_000);
    let observed = Observation {
        nearest_trigger: Some(4096),
        ..observe(&now)
    };
    assert_eq!(DEFAULT.plan(&observed), 10);
}

#[test]
fn plan_counts_default_levels_only_when_files_rely_on_them() {
    // `available` 100 pages above the low level: fast, but only with default files.
    let levels = Levels {
        low: 99_900,
        critical: 10_000,
        hysteresis: 2048,
    };
    let now = figures(100_000);
    let with_defaults = Observation {
        default_levels: Some(levels),
        ..observe(&now)
    };
    assert_eq!(DEFAULT.plan(&with_defaults), 10);
    assert_eq!(DEFAULT.plan(&observe(&now)), 1000);
    // A disabled level (0) is no trigger: far from the critical level, slow.
    let low_disabled = Observation {
        default_levels: Some(Levels { low: 0, ..levels }),
        ..observe(&now)
    };
    assert_eq!(DEFAULT.plan(&low_disabled), 1000);
    // The nearer of a trigger and a level wins, either way round.
    let both = Observation {
        nearest_trigger: Some(60_000),
        ..with_defaults
    };
    assert_eq!(DEFAULT.plan(&both), 10);
}

#[test]
fn plan_speed_shortens_the_period() {
    let now = figures(100_000);
    let resting = Observation {
        nearest_trigger: Some(30_000),
        ..observe(&now)
    };
    let moving = Observation {
        speed_pages_per_s: 100_000,
        ..resting
    };
    assert!(DEFAULT.plan(&moving) < DEFAULT.plan(&resting));
}

#[test]
fn speed_is_the_fastest_figure_per_second() {
    let mut before = figures(100_000);
    before.set(Figure::Used, 5_000);
    let mut after = figures(99_000);
    after.set(Figure::Used, 8_000);
    // `used` moved 3000 pages in half a second, `available` 1000.
    assert_eq!(speed_pages_per_s(&before, &after, 500_000_000), 6_000);
    assert_eq!(speed_pages_per_s(&after, &before, 500_000_000), 6_000);
    assert_eq!(speed_pages_per_s(&before, &after, 0), 0);
    assert_eq!(speed_pages_per_s(&before, &before, 1), 0);
    // No overflow at the extremes.
    let mut top = Figures::default();
    top.set(Figure::Used, u64::MAX);
    assert_eq!(speed_pages_per_s(&Figures::default(), &top, 1), u64::MAX);
}

proptest! {
    /// The plan is `next_interval_ms` of the nearest of the trigger and the levels.
    #[test]
    fn plan_is_the_interval_of_the_nearest(
        sampling in sampling_strategy(),
        available in 0u64..=TOTAL,
        trigger in proptest::option::of(0u64..=TOTAL),
        low in 0u64..=TOTAL,
        critical in 0u64..=TOTAL,
        with_levels in any::<bool>(),
        speed in any::<u64>(),
    ) {
        let now = figures(available);
        let levels = Levels { low, critical, hysteresis: 0 };
        let observed = Observation {
            speed_pages_per_s: speed,
            nearest_trigger: trigger,
            default_levels: with_levels.then_some(levels),
            ..observe(&now)
        };
        let mut nearest = trigger;
        if with_levels {
            for bound in [low, critical].into_iter().filter(|&b| b != 0) {
                let d = available.abs_diff(bound);
                nearest = Some(nearest.map_or(d, |n| n.min(d)));
            }
        }
        prop_assert_eq!(
            sampling.plan(&observed),
            next_interval_ms(sampling, nearest, TOTAL, speed)
        );
    }
}

#[test]
fn an_unprivileged_trigger_cannot_bring_the_period_below_limited_ms() {
    let sampling = Sampling {
        fast_ms: 10,
        slow_ms: 1000,
        limited_ms: 250,
    };
    let now = figures(100_000);
    let limited_near = Observation {
        nearest_limited: Some(0),
        ..observe(&now)
    };
    assert_eq!(sampling.plan(&limited_near), 250);
    // Far away, the unprivileged trigger asks for no more than the slow period anyway.
    let limited_far = Observation {
        nearest_limited: Some(u64::MAX),
        ..observe(&now)
    };
    assert_eq!(sampling.plan(&limited_far), 1000);
    // A privileged trigger as near still gets the fast period.
    let both = Observation {
        nearest_trigger: Some(0),
        ..limited_near
    };
    assert_eq!(sampling.plan(&both), 10);
    // So do files on the default levels (set by root, through module parameters).
    let defaults = Observation {
        default_levels: Some(Levels {
            low: 100_000,
            critical: 0,
            hysteresis: 0,
        }),
        ..limited_near
    };
    assert_eq!(sampling.plan(&defaults), 10);
    // A kick still runs at once (the module rate-limits unprivileged kicks itself).
    let kicked = Observation {
        kicked: true,
        ..limited_near
    };
    assert_eq!(sampling.plan(&kicked), 0);
}

proptest! {
    /// Whatever the unprivileged files arm, the period is at least the smaller of
    /// `limited_ms` and what the privileged side alone would give.
    #[test]
    fn unprivileged_triggers_respect_the_floor(
        sampling in sampling_strategy(),
        available in 0u64..=TOTAL,
        limited in proptest::option::of(0u64..=TOTAL),
        trigger in proptest::option::of(0u64..=TOTAL),
        speed in any::<u64>(),
    ) {
        let now = figures(available);
        let privileged_only = Observation {
            speed_pages_per_s: speed,
            nearest_trigger: trigger,
            ..observe(&now)
        };
        let with_limited = Observation {
            nearest_limited: limited,
            ..privileged_only
        };
        let alone = sampling.plan(&privileged_only);
        let period = sampling.plan(&with_limited);
        prop_assert!(period <= alone);
        prop_assert!(period >= alone.min(sampling.limited_ms));
        if limited.is_none() {
            prop_assert_eq!(period, alone);
        }
    }
}
