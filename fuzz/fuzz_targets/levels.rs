//! Default levels and the per-file rate limit over a sequence of samples: the level is
//! the documented function of `available` (with hysteresis only on the way out), an event
//! is offered only for a change of level and never within the rate limit of the previous
//! one, and a change held back by the rate limit is reported as lagging.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use memnotify_proto::{DefaultClient, Level, Levels};

#[derive(Arbitrary, Debug)]
struct Step {
    available: u64,
    /// Nanoseconds since the previous step.
    elapsed_ns: u32,
}

#[derive(Arbitrary, Debug)]
struct Input {
    low: u64,
    critical: u64,
    hysteresis: u64,
    min_interval_ns: u32,
    start_ns: u64,
    steps: Vec<Step>,
}

fn rank(level: Level) -> u8 {
    level.as_u8()
}

fuzz_target!(|input: Input| {
    let levels = Levels {
        low: input.low,
        critical: input.critical,
        hysteresis: input.hysteresis,
    };
    let min_interval_ns = u64::from(input.min_interval_ns);
    let mut level = Level::Normal;
    let mut client = DefaultClient::new(level);
    let mut now_ns = input.start_ns;
    for step in input.steps.iter().take(256) {
        now_ns = now_ns.saturating_add(u64::from(step.elapsed_ns));
        let next = levels.level(step.available, level);
        // Without hysteresis in play the level is a plain function of `available`.
        let plain = levels.level(step.available, Level::Normal);
        assert!(rank(next) >= rank(plain), "hysteresis only holds a level");
        let worst = levels.level(step.available, Level::Critical);
        assert!(rank(next) <= rank(worst));
        if levels.critical != 0 && step.available < levels.critical {
            assert_eq!(next, Level::Critical);
        }
        if levels.low == 0 && levels.critical == 0 {
            assert_eq!(next, Level::Normal);
        }
        level = next;

        let before = client;
        let offered = client.offer(level, now_ns, min_interval_ns);
        if offered {
            assert_ne!(before.delivered, level, "an event without a change");
            assert!(
                before.last_event_ns == 0
                    || now_ns.saturating_sub(before.last_event_ns) >= min_interval_ns,
                "an event within the rate limit"
            );
            assert_eq!(client.delivered, level);
            assert_ne!(client.last_event_ns, 0);
        } else {
            assert_eq!(client, before, "no event, no change");
        }
        assert_eq!(client.lagging(level), client.delivered != level);
    }
});
