//! The sampling period planner.

use memnotify_proto::{next_interval_ms, Sampling};
use proptest::prelude::*;

const DEFAULT: Sampling = Sampling {
    fast_ms: 10,
    slow_ms: 1000,
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
    };
    assert_eq!(next_interval_ms(zero, Some(0), TOTAL, 0), 1);
    assert_eq!(next_interval_ms(zero, None, TOTAL, 0), 1);
    let inverted = Sampling {
        fast_ms: 500,
        slow_ms: 100,
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
        (0u64..100, 0u64..5000).prop_map(|(fast_ms, slow_ms)| Sampling { fast_ms, slow_ms }),
        (any::<u64>(), any::<u64>()).prop_map(|(fast_ms, slow_ms)| Sampling { fast_ms, slow_ms }),
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
