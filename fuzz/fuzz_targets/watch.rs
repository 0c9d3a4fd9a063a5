//! The crossing state machine over a sequence of samples, against a plain model of the
//! documented rule (above at or over the threshold, back below only under
//! `threshold - hysteresis`, never under 1); the triggers' distances and `nearest` agree
//! with `crossed_by`; a watch of one figure kept inline is the same watch; the sampling
//! period stays within its bounds; `div_u64` and `mul_div` agree with 128-bit arithmetic.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use memnotify_proto::number::mul_div;
use memnotify_proto::{
    div_u64, next_interval_ms, Figure, Figures, Sampling, Thresholds, Watch, FIGURE_COUNT,
    WATCH_PAGES_MAX,
};

/// A figure's value: anything, or close to its threshold (where the interesting cases are).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Value {
    Raw(u64),
    Near(i16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    thresholds: [u64; FIGURE_COUNT],
    hysteresis: u64,
    start: [Value; FIGURE_COUNT],
    steps: Vec<[Value; FIGURE_COUNT]>,
    fast_ms: u64,
    slow_ms: u64,
    total_pages: u64,
    speed: u64,
}

fn figures(values: &[Value; FIGURE_COUNT], thresholds: &[u64; FIGURE_COUNT]) -> Figures {
    let mut figures = Figures::default();
    for figure in Figure::ALL {
        let threshold = thresholds[figure.index()];
        let value = match values[figure.index()] {
            Value::Raw(value) => value,
            Value::Near(delta) => threshold.saturating_add_signed(i64::from(delta)),
        };
        figures.set(figure, value);
    }
    figures
}

fn check_arithmetic(a: u64, b: u64, c: u64) {
    if c != 0 {
        assert_eq!(div_u64(a, c), a / c);
        let exact = u128::from(a) * u128::from(b) / u128::from(c);
        assert_eq!(mul_div(a, b, c), u64::try_from(exact).unwrap_or(u64::MAX));
    } else {
        assert_eq!(div_u64(a, c), u64::MAX);
        assert_eq!(mul_div(a, b, c), u64::MAX);
    }
}

fuzz_target!(|input: Input| {
    let thresholds = Thresholds {
        values: input.thresholds,
        hysteresis: input.hysteresis,
    };
    let now = figures(&input.start, &input.thresholds);
    let mut watch = Watch::new(thresholds, &now);
    // A watch keeps thresholds and hysteresis as 32-bit page counts, clamped.
    let limits = input
        .thresholds
        .map(|threshold| threshold.min(WATCH_PAGES_MAX));
    let hysteresis = input.hysteresis.min(WATCH_PAGES_MAX);
    // The model: per armed figure, whether it is above.
    let mut above = [false; FIGURE_COUNT];
    for figure in Figure::ALL {
        let threshold = limits[figure.index()];
        above[figure.index()] = threshold != 0 && now.get(figure) >= threshold;
        assert_eq!(watch.is_above(figure), above[figure.index()]);
    }
    let sampling = Sampling {
        fast_ms: input.fast_ms,
        slow_ms: input.slow_ms,
        limited_ms: input.fast_ms,
    };
    for step in input.steps.iter().take(64) {
        let now = figures(step, &input.thresholds);
        // Distances from the triggers armed before this sample.
        let mut nearest: Option<u64> = None;
        for figure in Figure::ALL {
            if let Some(trigger) = watch.trigger(figure) {
                let value = now.get(figure);
                assert_eq!(trigger.distance(value) == 0, trigger.crossed_by(value));
                let distance = trigger.distance(value);
                nearest = Some(nearest.map_or(distance, |n| n.min(distance)));
            } else {
                assert_eq!(input.thresholds[figure.index()], 0);
            }
        }
        assert_eq!(watch.nearest(&now), nearest);
        let interval = next_interval_ms(sampling, nearest, input.total_pages, input.speed);
        let fast = input.fast_ms.max(1);
        assert!(
            interval >= fast && interval <= input.slow_ms.max(fast),
            "{interval} ms"
        );

        let crossings = watch.evaluate(&now);
        assert_eq!(crossings.up & crossings.down, 0);
        for figure in Figure::ALL {
            let index = figure.index();
            let bit = 1u8 << index;
            let threshold = limits[index];
            let value = now.get(figure);
            let (mut up, mut down) = (false, false);
            if threshold != 0 {
                let below = threshold.saturating_sub(hysteresis).max(1);
                if !above[index] && value >= threshold {
                    above[index] = true;
                    up = true;
                } else if above[index] && value < below {
                    above[index] = false;
                    down = true;
                }
            }
            assert_eq!(crossings.up & bit != 0, up, "{figure:?} up");
            assert_eq!(crossings.down & bit != 0, down, "{figure:?} down");
            assert_eq!(watch.is_above(figure), above[index], "{figure:?} side");
        }
        assert_eq!(crossings.any(), crossings.up | crossings.down != 0);
        // The module keeps a watch of at most one figure inline: the same watch.
        match watch.single() {
            Some(single) => assert_eq!(Watch::from_single(single), watch),
            None => assert!(watch.armed() > 1),
        }
    }
    check_arithmetic(input.total_pages, input.speed, input.fast_ms);
    check_arithmetic(input.hysteresis, input.slow_ms, input.speed);
});
