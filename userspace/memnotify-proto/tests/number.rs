//! `div_u64` and `mul_div` against the host's own 64- and 128-bit arithmetic.

use memnotify_proto::div_u64;
use memnotify_proto::number::mul_div;
use proptest::prelude::*;

#[test]
fn div_u64_matches_the_operator_on_edge_cases() {
    let values = [
        0,
        1,
        2,
        3,
        7,
        9,
        10,
        11,
        100,
        4095,
        4096,
        u64::from(u32::MAX),
        u64::from(u32::MAX) + 1,
        (1 << 63) - 1,
        1 << 63,
        (1 << 63) + 1,
        u64::MAX - 1,
        u64::MAX,
    ];
    for n in values {
        for d in values.into_iter().filter(|&d| d != 0) {
            assert_eq!(div_u64(n, d), n / d, "{n} / {d}");
        }
    }
}

#[test]
fn div_u64_by_zero_is_max() {
    assert_eq!(div_u64(0, 0), u64::MAX);
    assert_eq!(div_u64(12345, 0), u64::MAX);
}

#[test]
fn mul_div_is_exact_when_the_product_fits() {
    assert_eq!(mul_div(262_144, 10, 100), 26_214);
    assert_eq!(mul_div(1001, 10, 100), 100);
    assert_eq!(mul_div(7, 0, 3), 0);
    assert_eq!(mul_div(0, 7, 3), 0);
}

#[test]
fn mul_div_is_exact_when_only_the_product_overflows() {
    // The product needs more than 64 bits but the quotient does not.
    let value = u64::MAX / 3;
    assert_eq!(
        mul_div(value, 1000, 1001),
        expected_mul_div(value, 1000, 1001)
    );
    assert_eq!(mul_div(u64::MAX, u64::MAX, u64::MAX), u64::MAX);
    assert_eq!(
        mul_div(u64::MAX, 99, 100),
        expected_mul_div(u64::MAX, 99, 100)
    );
    assert_eq!(mul_div(1 << 40, 1 << 40, 1 << 50), 1 << 30);
    assert_eq!(mul_div(990, 1 << 62, (1 << 62) + 1), 989);
}

#[test]
fn mul_div_saturates() {
    assert_eq!(mul_div(u64::MAX, 2, 1), u64::MAX);
    assert_eq!(mul_div(u64::MAX, u64::MAX, 2), u64::MAX);
    assert_eq!(mul_div(1, 1, 0), u64::MAX);
}

fn expected_mul_div(value: u64, mul: u64, div: u64) -> u64 {
    let exact = u128::from(value) * u128::from(mul) / u128::from(div);
    u64::try_from(exact).unwrap_or(u64::MAX)
}

proptest! {
    #[test]
    fn div_u64_equals_the_operator(n in any::<u64>(), d in 1..=u64::MAX) {
        prop_assert_eq!(div_u64(n, d), n / d);
    }

    #[test]
    fn div_u64_equals_the_operator_for_small_divisors(n in any::<u64>(), d in 1u64..1000) {
        prop_assert_eq!(div_u64(n, d), n / d);
    }

    #[test]
    fn div_u64_equals_the_operator_for_huge_divisors(n in any::<u64>(), d in (1u64 << 62)..=u64::MAX) {
        prop_assert_eq!(div_u64(n, d), n / d);
    }

    #[test]
    fn mul_div_equals_128_bit_arithmetic(value in any::<u64>(), mul in any::<u64>(), div in 1..=u64::MAX) {
        prop_assert_eq!(mul_div(value, mul, div), expected_mul_div(value, mul, div));
    }

    #[test]
    fn mul_div_equals_128_bit_arithmetic_for_shares(value in any::<u64>(), div in 1..=u64::MAX, share in 0u64..=1000) {
        // `mul <= div`: the sampling interpolation and percentages.
        let mul = expected_mul_div(div, share, 1000);
        prop_assert_eq!(mul_div(value, mul, div), expected_mul_div(value, mul, div));
    }
}
