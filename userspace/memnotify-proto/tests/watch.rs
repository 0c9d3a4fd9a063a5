//! The per-file crossing state machine.

use memnotify_proto::{
    arming_figures, Crossings, Figure, Figures, SingleWatch, Snapshot, Thresholds, Trigger, Watch,
    FIGURE_COUNT, WATCH_PAGES_MAX,
};
use proptest::prelude::*;

fn bit(figure: Figure) -> u8 {
    1 << figure.index()
}

fn with(figure: Figure, value: u64) -> Figures {
    let mut figures = Figures::default();
    figures.set(figure, value);
    figures
}

fn thresholds(figure: Figure, threshold: u64, hysteresis: u64) -> Thresholds {
    let mut thresholds = Thresholds {
        hysteresis,
        ..Thresholds::default()
    };
    thresholds.values[figure.index()] = threshold;
    thresholds
}

fn up(figure: Figure) -> Crossings {
    Crossings {
        up: bit(figure),
        down: 0,
    }
}

fn down(figure: Figure) -> Crossings {
    Crossings {
        up: 0,
        down: bit(figure),
    }
}

const NONE: Crossings = Crossings { up: 0, down: 0 };

#[test]
fn sides_are_taken_at_write_time() {
    let armed = thresholds(Figure::Used, 100, 0);
    assert!(Watch::new(armed, &with(Figure::Used, 150)).is_above(Figure::Used));
    assert!(Watch::new(armed, &with(Figure::Used, 100)).is_above(Figure::Used));
    assert!(!Watch::new(armed, &with(Figure::Used, 99)).is_above(Figure::Used));
    // Unarmed figures are never above.
    assert!(!Watch::new(armed, &with(Figure::Free, 1000)).is_above(Figure::Free));
    assert_eq!(
        Watch::new(armed, &with(Figure::Used, 5)).thresholds(),
        armed
    );
}

#[test]
fn a_write_is_not_an_event() {
    for value in [0, 99, 100, 101] {
        let now = with(Figure::Used, value);
        let mut watch = Watch::new(thresholds(Figure::Used, 100, 10), &now);
        assert_eq!(watch.evaluate(&now), NONE, "at {value}");
    }
}

#[test]
fn crossing_up() {
    let mut watch = Watch::new(thresholds(Figure::Used, 100, 0), &with(Figure::Used, 50));
    assert_eq!(watch.evaluate(&with(Figure::Used, 99)), NONE);
    let crossed = watch.evaluate(&with(Figure::Used, 100));
    assert_eq!(crossed, up(Figure::Used));
    assert!(crossed.any());
    assert!(watch.is_above(Figure::Used));
}

#[test]
fn crossing_down_without_hysteresis() {
    let mut watch = Watch::new(thresholds(Figure::Used, 100, 0), &with(Figure::Used, 150));
    assert_eq!(watch.evaluate(&with(Figure::Used, 100)), NONE);
    assert_eq!(watch.evaluate(&with(Figure::Used, 99)), down(Figure::Used));
    assert!(!watch.is_above(Figure::Used));
}

#[test]
fn crossing_down_with_hysteresis() {
    let mut watch = Watch::new(thresholds(Figure::Used, 100, 10), &with(Figure::Used, 150));
    assert_eq!(watch.evaluate(&with(Figure::Used, 99)), NONE);
    assert_eq!(watch.evaluate(&with(Figure::Used, 90)), NONE);
    assert_eq!(watch.evaluate(&with(Figure::Used, 89)), down(Figure::Used));
    // Going up again needs the threshold itself, not threshold - hysteresis.
    assert_eq!(watch.evaluate(&with(Figure::Used, 95)), NONE);
    assert_eq!(watch.evaluate(&with(Figure::Used, 100)), up(Figure::Used));
}

#[test]
fn staying_on_one_side_is_quiet() {
    let mut watch = Watch::new(thresholds(Figure::Free, 100, 0), &with(Figure::Free, 0));
    for value in [0, 1, 50, 99, 10, 99] {
        assert_eq!(watch.evaluate(&with(Figure::Free, value)), NONE);
    }
    let mut watch = Watch::new(thresholds(Figure::Free, 100, 0), &with(Figure::Free, 100));
    for value in [100, 1000, u64::MAX, 100] {
        assert_eq!(watch.evaluate(&with(Figure::Free, value)), NONE);
    }
}

#[test]
fn hysteresis_stops_flapping() {
    let mut watch = Watch::new(
        thresholds(Figure::Available, 100, 5),
        &with(Figure::Available, 90),
    );
    let mut events = 0;
    for value in [100, 99, 100, 98, 101, 96, 100, 95, 99, 100] {
        if watch.evaluate(&with(Figure::Available, value)).any() {
            events += 1;
        }
    }
    assert_eq!(events, 1);
    assert!(watch.is_above(Figure::Available));

    // Without hysteresis the same walk flaps.
    let mut watch = Watch::new(
        thresholds(Figure::Available, 100, 0),
        &with(Figure::Available, 90),
    );
    let events = [100, 99, 100, 98]
        .into_iter()
        .filter(|&value| watch.evaluate(&with(Figure::Available, value)).any())
        .count();
    assert_eq!(events, 4);
}

#[test]
fn hysteresis_larger_than_the_threshold_still_lets_zero_go_below() {
    let mut watch = Watch::new(
        thresholds(Figure::SwapFree, 10, 50),
        &with(Figure::SwapFree, 20),
    );
    assert_eq!(watch.trigger(Figure::SwapFree), Some(Trigger::DownBelow(1)));
    assert_eq!(watch.evaluate(&with(Figure::SwapFree, 1)), NONE);
    assert_eq!(
        watch.evaluate(&with(Figure::SwapFree, 0)),
        down(Figure::SwapFree)
    );
}

#[test]
fn several_figures_cross_in_one_evaluation() {
    let mut armed = Thresholds::default();
    armed.values[Figure::Used.index()] = 100;
    armed.values[Figure::Free.index()] = 50;
    armed.values[Figure::Active.index()] = 10;
    let mut start = Figures::default();
    start.set(Figure::Used, 10);
    start.set(Figure::Free, 80);
    start.set(Figure::Active, 5);
    let mut watch = Watch::new(armed, &start);

    let mut now = start;
    now.set(Figure::Used, 200);
    now.set(Figure::Free, 20);
    now.set(Figure::Total, 1_000_000);
    let crossed = watch.evaluate(&now);
    assert_eq!(
        crossed,
        Crossings {
            up: bit(Figure::Used),
            down: bit(Figure::Free),
        }
    );
}

#[test]
fn unarmed_figures_never_cross() {
    let mut watch = Watch::new(Thresholds::default(), &Figures::default());
    assert_eq!(watch.triggers(), [None; FIGURE_COUNT]);
    assert_eq!(watch.nearest(&Figures::default()), None);
    let busy = Figures {
        values: [u64::MAX; FIGURE_COUNT],
    };
    assert_eq!(watch.evaluate(&busy), NONE);
    assert!(!NONE.any());
}

#[test]
fn triggers_and_distances() {
    let below = Watch::new(thresholds(Figure::Used, 100, 10), &with(Figure::Used, 40));
    assert_eq!(below.trigger(Figure::Used), Some(Trigger::UpAt(100)));
    assert_eq!(below.trigger(Figure::Free), None);
    assert_eq!(below.nearest(&with(Figure::Used, 40)), Some(60));

    let above = Watch::new(
        thresholds(Figure::Used, 100, 10),
        &with(Figure::Used, 95 + 10),
    );
    assert_eq!(above.trigger(Figure::Used), Some(Trigger::DownBelow(90)));
    assert_eq!(above.nearest(&with(Figure::Used, 95)), Some(6));
    assert_eq!(above.nearest(&with(Figure::Used, 90)), Some(1));
    assert_eq!(above.nearest(&with(Figure::Used, 89)), Some(0));

    let mut triggers = [None; FIGURE_COUNT];
    triggers[Figure::Used.index()] = Some(Trigger::DownBelow(90));
    assert_eq!(above.triggers(), triggers);
}

#[test]
fn trigger_distance_at_the_extremes() {
    assert_eq!(Trigger::UpAt(100).distance(0), 100);
    assert_eq!(Trigger::UpAt(100).distance(u64::MAX), 0);
    assert_eq!(Trigger::UpAt(u64::MAX).distance(0), u64::MAX);
    assert_eq!(Trigger::DownBelow(1).distance(0), 0);
    assert_eq!(Trigger::DownBelow(1).distance(u64::MAX), u64::MAX);
    assert_eq!(Trigger::DownBelow(u64::MAX).distance(u64::MAX), 1);
    assert!(Trigger::DownBelow(u64::MAX).crossed_by(u64::MAX - 1));
    assert!(!Trigger::DownBelow(0).crossed_by(0));
    assert_eq!(Trigger::DownBelow(0).distance(u64::MAX), u64::MAX);
}

#[test]
fn nearest_with_a_figure_at_its_maximum() {
    let watch = Watch::new(
        thresholds(Figure::Total, 10, 0),
        &with(Figure::Total, u64::MAX),
    );
    assert_eq!(
        watch.nearest(&with(Figure::Total, u64::MAX)),
        Some(u64::MAX - 9)
    );
}

/// The documented rule, written independently: at or above the threshold is
/// above; an above figure goes below once under `threshold - hysteresis`
/// (and at 0 in any case, so a large hysteresis cannot pin it above).
fn model_above(was_above: bool, value: u64, threshold: u64, hysteresis: u64) -> bool {
    if was_above {
        let below =
            u128::from(value) + u128::from(hysteresis) < u128::from(threshold) || value == 0;
        !below
    } else {
        value >= threshold
    }
}

fn walk_strategy() -> impl Strategy<Value = ([u64; 7], u64, [u64; 7], Vec<[i16; 7]>)> {
    (
        prop::array::uniform7(prop_oneof![Just(0u64), 1u64..60, Just(u64::MAX)]),
        prop_oneof![Just(0u64), 0u64..20, Just(u64::MAX)],
        prop::array::uniform7(0u64..70),
        prop::collection::vec(prop::array::uniform7(-8i16..=8), 1..60),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_walk_matches_the_model((limits, hysteresis, start, steps) in walk_strategy()) {
        let armed = Thresholds { values: limits, hysteresis };
        let mut now = Figures { values: start };
        let mut watch = Watch::new(armed, &now);
        let mut model: [bool; 7] =
            std::array::from_fn(|i| limits[i] != 0 && start[i] >= limits[i]);
        for figure in Figure::ALL {
            prop_assert_eq!(watch.is_above(figure), model[figure.index()]);
        }
        for step in steps {
            for (value, delta) in now.values.iter_mut().zip(step) {
                *value = value.saturating_add_signed(i64::from(delta));
            }
            let crossed = watch.evaluate(&now);
            prop_assert_eq!(crossed.up & crossed.down, 0);
            for figure in Figure::ALL {
                let i = figure.index();
                let was = model[i];
                let is = limits[i] != 0 && model_above(was, now.values[i], limits[i], hysteresis);
                model[i] = is;
                prop_assert_eq!(watch.is_above(figure), is);
                prop_assert_eq!(crossed.up & bit(figure) != 0, !was && is);
                prop_assert_eq!(crossed.down & bit(figure) != 0, was && !is);
            }
            prop_assert_eq!(crossed.any(), crossed.up != 0 || crossed.down != 0);
            // After an evaluation every trigger points away from the current value.
            let nearest = watch.nearest(&now);
            prop_assert_ne!(nearest, Some(0));
            let min = Figure::ALL
                .iter()
                .filter_map(|&f| watch.trigger(f).map(|t| t.distance(now.get(f))))
                .min();
            prop_assert_eq!(nearest, min);
        }
    }

    #[test]
    fn distance_is_zero_exactly_when_crossed(at in any::<u64>(), value in any::<u64>()) {
        for trigger in [Trigger::UpAt(at), Trigger::DownBelow(at)] {
            prop_assert_eq!(trigger.distance(value) == 0, trigger.crossed_by(value));
        }
        // And it is the exact number of pages to move.
        let up = u128::from(at).saturating_sub(u128::from(value));
        prop_assert_eq!(u128::from(Trigger::UpAt(at).distance(value)), up);
        let down = (u128::from(value) + 1)
            .saturating_sub(u128::from(at))
            .min(u128::from(u64::MAX));
        prop_assert_eq!(u128::from(Trigger::DownBelow(at).distance(value)), down);
    }

    #[test]
    fn evaluate_and_nearest_never_panic(
        limits in prop::array::uniform7(any::<u64>()),
        hysteresis in any::<u64>(),
        first in prop::array::uniform7(any::<u64>()),
        second in prop::array::uniform7(any::<u64>()),
    ) {
        let mut watch = Watch::new(Thresholds { values: limits, hysteresis }, &Figures { values: first });
        let second = Figures { values: second };
        let _ = watch.nearest(&second);
        let _ = watch.evaluate(&second);
        let _ = watch.nearest(&second);
    }
}

#[test]
fn thresholds_beyond_32_bits_of_pages_are_clamped() {
    let big = WATCH_PAGES_MAX + 1;
    let watch = Watch::new(
        thresholds(Figure::Used, big, u64::MAX),
        &with(Figure::Used, 5),
    );
    assert_eq!(watch.threshold(Figure::Used), Some(WATCH_PAGES_MAX));
    assert_eq!(watch.thresholds().hysteresis, WATCH_PAGES_MAX);
    assert_eq!(
        watch.trigger(Figure::Used),
        Some(Trigger::UpAt(WATCH_PAGES_MAX))
    );
    assert_eq!(watch.armed(), 1);
    // Below 2^32 - 1 pages the clamped threshold behaves as the one written.
    let mut watch = Watch::new(
        thresholds(Figure::Free, u64::MAX, 0),
        &with(Figure::Free, 7),
    );
    assert!(!watch.is_above(Figure::Free));
    assert_eq!(
        watch.evaluate(&with(Figure::Free, WATCH_PAGES_MAX - 1)),
        NONE
    );
    assert_eq!(
        watch.evaluate(&with(Figure::Free, WATCH_PAGES_MAX)),
        up(Figure::Free)
    );
    // Values that fit are kept exactly.
    let exact = thresholds(Figure::Active, WATCH_PAGES_MAX, WATCH_PAGES_MAX - 1);
    assert_eq!(Watch::new(exact, &Figures::default()).thresholds(), exact);
}

proptest! {
    #[test]
    fn armed_counts_the_triggers(limits in prop::array::uniform7(prop_oneof![Just(0u64), any::<u64>()])) {
        let watch = Watch::new(Thresholds { values: limits, hysteresis: 0 }, &Figures::default());
        prop_assert_eq!(watch.armed(), watch.triggers().iter().flatten().count());
        prop_assert_eq!(watch.armed(), limits.iter().filter(|&&v| v != 0).count());
        for figure in Figure::ALL {
            prop_assert_eq!(watch.threshold(figure), watch.thresholds().get(figure));
            let limit = limits[figure.index()];
            prop_assert_eq!(watch.threshold(figure), (limit != 0).then(|| limit.min(WATCH_PAGES_MAX)));
        }
    }
}

#[test]
fn a_single_figure_watch_fits_inline() {
    let armed = thresholds(Figure::Free, 300, 20);
    let mut watch = Watch::new(armed, &with(Figure::Free, 500));
    let single = watch.single().expect("one figure armed");
    assert_eq!(
        single,
        SingleWatch {
            figure: Some(Figure::Free),
            value: 300,
            hysteresis: 20,
            above: true,
        }
    );
    assert_eq!(Watch::from_single(single), watch);
    // After a crossing the side changes, and the inline form follows.
    assert_eq!(watch.evaluate(&with(Figure::Free, 10)), down(Figure::Free));
    assert!(!watch.single().expect("still one").above);
    // Nothing armed is a single watch too; two figures are not.
    assert_eq!(Watch::default().single(), Some(SingleWatch::default()));
    let mut two = armed;
    two.values[Figure::Used.index()] = 7;
    assert_eq!(Watch::new(two, &Figures::default()).single(), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]
    #[test]
    fn single_watches_round_trip(
        limits in prop::array::uniform7(prop_oneof![4 => Just(0u64), 1 => any::<u64>()]),
        hysteresis in any::<u64>(),
        first in prop::array::uniform7(any::<u64>()),
        second in prop::array::uniform7(any::<u64>()),
    ) {
        let mut watch = Watch::new(Thresholds { values: limits, hysteresis }, &Figures { values: first });
        match watch.single() {
            Some(single) => {
                prop_assert!(watch.armed() <= 1);
                prop_assert_eq!(Watch::from_single(single), watch);
                // Evaluating either form gives the same crossings and the same state.
                let mut inline = Watch::from_single(single);
                let now = Figures { values: second };
                prop_assert_eq!(inline.evaluate(&now), watch.evaluate(&now));
                prop_assert_eq!(inline.single(), watch.single());
            }
            None => prop_assert!(watch.armed() > 1),
        }
    }
}

/// The last evaluation's sample: `figures`, taken at `time_ns`.
fn evaluated(figures: Figures, time_ns: u64) -> Snapshot {
    Snapshot {
        figures,
        time_ns,
        ..Snapshot::default()
    }
}

/// A write sampled `used` below its new threshold, then an evaluation sampled it above and
/// was done before the write took the lock: arming against the write's own, older sample
/// would report a crossing up at the next evaluation (and down at a later one) although the
/// figure crossed before the thresholds existed.
#[test]
fn a_write_arms_against_the_newer_sample() {
    let own = with(Figure::Used, 90);
    let last = evaluated(with(Figure::Used, 110), 2_000);
    let next = with(Figure::Used, 110);
    let armed = arming_figures(&own, 1_000, &last, false);
    assert_eq!(armed, &last.figures);
    let mut watch = Watch::new(thresholds(Figure::Used, 100, 0), armed);
    assert_eq!(watch.evaluate(&next), Crossings::default());

    // The write's own sample is the newer: it counts, not the evaluation's.
    assert_eq!(arming_figures(&own, 3_000, &last, false), &own);
    // Equal times: the evaluation's, which the sampler has delivered against.
    assert_eq!(arming_figures(&own, 2_000, &last, false), &last.figures);
}

/// While an evaluation delivers in batches, a write arms against that evaluation's figures
/// even when its own sample is newer: the rest of the delivery must not find the new
/// trigger crossed.
#[test]
fn a_write_during_a_delivery_arms_against_its_figures() {
    let own = with(Figure::Used, 90);
    let last = evaluated(with(Figure::Used, 110), 2_000);
    assert_eq!(arming_figures(&own, 3_000, &last, true), &last.figures);
}

proptest! {
    /// Whatever the two samples, a write armed by `arming_figures` reports no crossing at
    /// an evaluation that sees the same figures as the newer sample (or the delivering one).
    #[test]
    fn no_spurious_crossing_after_a_write(
        own_used in 0u64..200,
        last_used in 0u64..200,
        own_ns in 0u64..10,
        last_ns in 0u64..10,
        delivering: bool,
        threshold in 1u64..200,
        hysteresis in 0u64..50,
    ) {
        let own = with(Figure::Used, own_used);
        let last = evaluated(with(Figure::Used, last_used), last_ns);
        let current = if delivering || last_ns >= own_ns { &last.figures } else { &own };
        let mut watch = Watch::new(
            thresholds(Figure::Used, threshold, hysteresis),
            arming_figures(&own, own_ns, &last, delivering),
        );
        prop_assert_eq!(watch.evaluate(current), Crossings::default());
    }
}
