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

/// `value * mul / div`, exact for every input (the product is kept in 128 bits),
/// saturating at `u64::MAX` when the quotient does not fit or `div` is 0.
pub fn mul_div(value: u64, mul: u64, div: u64) -> u64 {
    if div == 0 {
        return u64::MAX;
    }
    let (high, low) = mul_wide(value, mul);
    if high == 0 {
        return div_u64(low, div);
    }
    if high >= div {
        return u64::MAX;
    }
    // Long division of `high:low` by `div`; the remainder starts as `high < div`
    // and may need a 65th bit, kept in `carry`.
    let mut remainder = high;
    let mut quotient = 0u64;
    let mut bit = 64;
    while bit > 0 {
        bit -= 1;
        let carry = remainder >> 63 != 0;
        remainder = (remainder << 1) | ((low >> bit) & 1);
        if carry || remainder >= div {
            remainder = remainder.wrapping_sub(div);
            quotient |= 1 << bit;
        }
    }
    quotient
}

/// The 128-bit product `a * b` as `(high, low)`, from 32-bit halves so that no
/// 128-bit arithmetic (a libcall on 32-bit targets) is needed.
fn mul_wide(a: u64, b: u64) -> (u64, u64) {
    const HALF: u64 = 0xffff_ffff;
    let (a_high, a_low) = (a >> 32, a & HALF);
    let (b_high, b_low) = (b >> 32, b & HALF);
    let low_low = a_low * b_low;
    let high_low = a_high * b_low;
    let low_high = a_low * b_high;
    let high_high = a_high * b_high;
    // At most (2^32 - 1) * 2 + (2^32 - 1)^2 = 2^64 - 1: no overflow.
    let middle = (low_low >> 32) + (high_low & HALF) + low_high;
    let high = high_high + (high_low >> 32) + (middle >> 32);
    let low = (middle << 32) | (low_low & HALF);
    (high, low)
}
