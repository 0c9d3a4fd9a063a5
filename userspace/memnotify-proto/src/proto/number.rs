//! Integer helpers that compile to plain shifts and adds on every target.
//!
//! The kernel forbids 64-bit division helpers on 32-bit ARM (`__aeabi_uldivmod`),
//! so no `u64 / u64` appears anywhere in the shared code: [`div_u64`] does it by hand.

/// `n / d` by binary long division, or `u64::MAX` when `d` is 0.
///
/// Used only off the hot path (parsing a write, planning the next sample).
pub fn div_u64(n: u64, d: u64) -> u64 {
    if d == 0 {
        return u64::MAX;
    }
    if d.is_power_of_two() {
        return n >> d.trailing_zeros();
    }
    let mut quotient = 0u64;
    let mut remainder = 0u64;
    let mut bit = 64;
    while bit > 0 {
        bit -= 1;
        remainder = (remainder << 1) | ((n >> bit) & 1);
        if remainder >= d {
            remainder -= d;
            quotient |= 1 << bit;
        }
    }
    quotient
}

/// `value * mul / div` without intermediate overflow for the magnitudes used here
/// (page counts and percentages), saturating at `u64::MAX`.
pub fn mul_div(value: u64, mul: u64, div: u64) -> u64 {
    match value.checked_mul(mul) {
        Some(product) => div_u64(product, div),
        None => div_u64(value, div).saturating_mul(mul),
    }
}
