//! Default levels and the per-file rate limit.

use memnotify_proto::{DefaultClient, Level, Levels};
use proptest::prelude::*;

const LEVELS: Levels = Levels {
    low: 1000,
    critical: 500,
    hysteresis: 100,
};

const MS: u64 = 1_000_000;

#[test]
fn level_numbers_names_and_order() {
    assert_eq!(Level::default(), Level::Normal);
    assert_eq!(
        [Level::Normal, Level::Low, Level::Critical].map(Level::as_u8),
        [0, 1, 2]
    );
    assert_eq!(
        [Level::Normal, Level::Low, Level::Critical].map(Level::name),
        ["normal", "low", "critical"]
    );
    assert!(Level::Normal < Level::Low && Level::Low < Level::Critical);
}

#[test]
fn entering_low_and_critical() {
    assert_eq!(LEVELS.level(5000, Level::Normal), Level::Normal);
    assert_eq!(LEVELS.level(1000, Level::Normal), Level::Normal);
    assert_eq!(LEVELS.level(999, Level::Normal), Level::Low);
    assert_eq!(LEVELS.level(500, Level::Normal), Level::Low);
    assert_eq!(LEVELS.level(499, Level::Normal), Level::Critical);
    assert_eq!(LEVELS.level(0, Level::Normal), Level::Critical);
    assert_eq!(LEVELS.level(499, Level::Low), Level::Critical);
    assert_eq!(LEVELS.level(500, Level::Low), Level::Low);
}

#[test]
fn leaving_needs_the_hysteresis() {
    // Low is left at low + hysteresis.
    assert_eq!(LEVELS.level(1000, Level::Low), Level::Low);
    assert_eq!(LEVELS.level(1099, Level::Low), Level::Low);
    assert_eq!(LEVELS.level(1100, Level::Low), Level::Normal);
    // Critical is left at critical + hysteresis, to low (or straight to normal).
    assert_eq!(LEVELS.level(500, Level::Critical), Level::Critical);
    assert_eq!(LEVELS.level(599, Level::Critical), Level::Critical);
    assert_eq!(LEVELS.level(600, Level::Critical), Level::Low);
    assert_eq!(LEVELS.level(1099, Level::Critical), Level::Low);
    assert_eq!(LEVELS.level(1100, Level::Critical), Level::Normal);
}

#[test]
fn disabled_levels() {
    let no_low = Levels { low: 0, ..LEVELS };
    assert_eq!(no_low.level(700, Level::Normal), Level::Normal);
    assert_eq!(no_low.level(400, Level::Normal), Level::Critical);
    assert_eq!(no_low.level(550, Level::Critical), Level::Critical);
    assert_eq!(no_low.level(600, Level::Critical), Level::Normal);

    let no_critical = Levels {
        critical: 0,
        ..LEVELS
    };
    assert_eq!(no_critical.level(0, Level::Normal), Level::Low);
    assert_eq!(no_critical.level(0, Level::Critical), Level::Low);

    let off = Levels {
        low: 0,
        critical: 0,
        hysteresis: 100,
    };
    assert_eq!(off.level(0, Level::Critical), Level::Normal);
}

#[test]
fn huge_hysteresis_saturates() {
    let sticky = Levels {
        hysteresis: u64::MAX,
        ..LEVELS
    };
    assert_eq!(sticky.level(u64::MAX - 1, Level::Low), Level::Low);
    assert_eq!(sticky.level(u64::MAX, Level::Low), Level::Normal);
}

#[test]
fn a_new_client_hears_nothing_about_its_starting_level() {
    let mut client = DefaultClient::new(Level::Low);
    assert!(!client.offer(Level::Low, 5 * MS, 200 * MS));
    assert!(!client.lagging(Level::Low));
    assert_eq!(client.delivered, Level::Low);
}

#[test]
fn enter_low_then_critical_then_leave() {
    let mut client = DefaultClient::new(Level::Normal);
    let mut previous = Level::Normal;
    let mut delivered = Vec::new();
    // One evaluation every 500 ms, well beyond the 200 ms rate limit.
    for (step, available) in [2000u64, 900, 800, 450, 550, 650, 1050, 1200]
        .into_iter()
        .enumerate()
    {
        let level = LEVELS.level(available, previous);
        previous = level;
        let now = (step as u64 + 1) * 500 * MS;
        if client.offer(level, now, 200 * MS) {
            delivered.push(level);
        }
        assert!(!client.lagging(level));
    }
    assert_eq!(
        delivered,
        [Level::Low, Level::Critical, Level::Low, Level::Normal]
    );
}

#[test]
fn rate_limit_holds_back_and_later_delivers() {
    let mut client = DefaultClient::new(Level::Normal);
    assert!(client.offer(Level::Low, 1000 * MS, 200 * MS));
    assert_eq!(client.last_event_ns, 1000 * MS);

    // 100 ms later: held back, and known to be waiting.
    assert!(!client.offer(Level::Critical, 1100 * MS, 200 * MS));
    assert!(client.lagging(Level::Critical));
    assert_eq!(client.delivered, Level::Low);
    assert!(!client.offer(Level::Critical, 1199 * MS, 200 * MS));

    // Once the interval has passed it is delivered.
    assert!(client.offer(Level::Critical, 1200 * MS, 200 * MS));
    assert!(!client.lagging(Level::Critical));
    assert_eq!(client.delivered, Level::Critical);

    // A change that reverts before the limit expires is simply never sent.
    assert!(!client.offer(Level::Low, 1250 * MS, 200 * MS));
    assert!(!client.offer(Level::Critical, 1300 * MS, 200 * MS));
    assert!(!client.lagging(Level::Critical));
}

#[test]
fn first_event_is_never_rate_limited() {
    let mut client = DefaultClient::new(Level::Normal);
    assert!(client.offer(Level::Low, 1, u64::MAX));
    // An event at time 0 still starts the rate limit.
    let mut client = DefaultClient::new(Level::Normal);
    assert!(client.offer(Level::Low, 0, 200 * MS));
    assert!(!client.offer(Level::Normal, 100 * MS, 200 * MS));
    assert!(client.offer(Level::Normal, 201 * MS, 200 * MS));
}

#[test]
fn a_clock_going_backwards_holds_events() {
    let mut client = DefaultClient::new(Level::Normal);
    assert!(client.offer(Level::Low, 1000 * MS, 200 * MS));
    assert!(!client.offer(Level::Normal, 10 * MS, 200 * MS));
    assert!(client.offer(Level::Normal, 1200 * MS, 200 * MS));
}

fn level_strategy() -> impl Strategy<Value = Level> {
    prop::sample::select(vec![Level::Normal, Level::Low, Level::Critical])
}

fn levels_strategy() -> impl Strategy<Value = Levels> {
    let bound = prop_oneof![Just(0u64), 0u64..10_000, any::<u64>()];
    (bound.clone(), bound.clone(), bound).prop_map(|(low, critical, hysteresis)| Levels {
        low,
        critical,
        hysteresis,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn less_available_is_never_a_better_level(
        levels in levels_strategy(),
        previous in level_strategy(),
        a in prop_oneof![0u64..20_000, any::<u64>()],
        b in prop_oneof![0u64..20_000, any::<u64>()],
    ) {
        let (less, more) = (a.min(b), a.max(b));
        prop_assert!(levels.level(less, previous) >= levels.level(more, previous));
    }

    #[test]
    fn hysteresis_only_ever_keeps_a_worse_level(
        levels in levels_strategy(),
        available in any::<u64>(),
    ) {
        // A worse previous level never gives a better level now.
        let from_normal = levels.level(available, Level::Normal);
        let from_low = levels.level(available, Level::Low);
        let from_critical = levels.level(available, Level::Critical);
        prop_assert!(from_normal <= from_low && from_low <= from_critical);
        // Without hysteresis the previous level does not matter.
        let plain = Levels { hysteresis: 0, ..levels };
        prop_assert_eq!(plain.level(available, Level::Normal), plain.level(available, Level::Critical));
    }

    #[test]
    fn rate_limited_client_keeps_its_promises(
        steps in prop::collection::vec((level_strategy(), 0u64..300), 1..80),
        interval_ms in 0u64..250,
    ) {
        let interval = interval_ms * MS;
        let mut client = DefaultClient::new(Level::Normal);
        let mut now = 0;
        let mut last_sent: Option<u64> = None;
        for (level, gap_ms) in steps {
            now += gap_ms * MS;
            let before = client.delivered;
            let sent = client.offer(level, now, interval);
            if sent {
                prop_assert_ne!(before, level);
                if let Some(last) = last_sent {
                    prop_assert!(now - last >= interval);
                }
                last_sent = Some(now);
                prop_assert_eq!(client.delivered, level);
            } else {
                prop_assert_eq!(client.delivered, before);
                let allowed = last_sent.is_none_or(|last| now - last >= interval);
                prop_assert!(level == before || !allowed);
            }
            prop_assert_eq!(client.lagging(level), client.delivered != level);
        }
    }
}

#[test]
fn from_percent_matches_the_module_defaults() {
    use memnotify_proto::{Levels, DEFAULT_CRITICAL_PCT, DEFAULT_LOW_PCT};
    let levels = Levels::from_percent(61_923, DEFAULT_LOW_PCT, DEFAULT_CRITICAL_PCT);
    assert_eq!(levels.low, 6_192);
    assert_eq!(levels.critical, 3_096);
    assert_eq!(levels.hysteresis, 61_923 >> 7);
    // Percentages over 100 are clamped, 0 disables.
    let clamped = Levels::from_percent(1000, 250, 0);
    assert_eq!((clamped.low, clamped.critical), (1000, 0));
}
