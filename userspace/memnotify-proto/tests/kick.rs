//! A kick is never pushed back by the sampler re-arming itself (hardening item 4): a kick
//! landing at any point of an evaluation leaves the work due at once, unless the evaluation
//! started sampling after it.

use std::cell::Cell;

use memnotify_proto::{Figures, KickFlag, Observation, Sampling, Timer};

const SAMPLING: Sampling = Sampling {
    fast_ms: 10,
    slow_ms: 1000,
    limited_ms: 1000,
};

/// The points of one evaluation where a kick from another CPU can land.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Point {
    BeforeBegin,
    BeforePlan,
    /// After the plan read the flag, before the re-arm: the race item 4 is about.
    BeforeRearm,
    /// Inside the re-arm, after it scheduled the planned period.
    AfterSchedule,
    AfterRearm,
}

const POINTS: [Point; 5] = [
    Point::BeforeBegin,
    Point::BeforePlan,
    Point::BeforeRearm,
    Point::AfterSchedule,
    Point::AfterRearm,
];

/// The delayed work: its pending delay, and a kick to land after its first `schedule`.
struct Work<'a> {
    pending: Cell<Option<u64>>,
    schedules: Cell<usize>,
    kick_after_first: Cell<bool>,
    flag: &'a KickFlag,
}

impl<'a> Work<'a> {
    /// Work with `pending` as its delay; `kick_after_first` lands a kick on `flag` right
    /// after its first `schedule`.
    fn new(flag: &'a KickFlag, pending: Option<u64>, kick_after_first: bool) -> Work<'a> {
        Work {
            pending: Cell::new(pending),
            schedules: Cell::new(0),
            kick_after_first: Cell::new(kick_after_first),
            flag,
        }
    }
}

impl Timer for Work<'_> {
    fn schedule(&self, delay_ms: u64) {
        self.pending.set(Some(delay_ms));
        self.schedules.set(self.schedules.get() + 1);
        if self.schedules.get() == 1 && self.kick_after_first.replace(false) {
            self.flag.kick(self);
        }
    }
}

/// One evaluation far from every threshold, with a kick landing at `point`; returns the
/// delay pending at its end.
fn evaluate_with_kick_at(point: Point) -> Option<u64> {
    let flag = KickFlag::new();
    let work = Work::new(&flag, None, point == Point::AfterSchedule);
    let kick_at = |here: Point| {
        if point == here {
            flag.kick(&work);
        }
    };
    kick_at(Point::BeforeBegin);
    flag.begin();
    kick_at(Point::BeforePlan);
    let figures = Figures::default();
    let interval = SAMPLING.plan(&Observation {
        figures: &figures,
        speed_pages_per_s: 0,
        nearest_trigger: None,
        nearest_limited: None,
        default_levels: None,
        kicked: flag.is_set(),
    });
    kick_at(Point::BeforeRearm);
    work.schedules.set(0);
    flag.rearm(&work, interval);
    kick_at(Point::AfterRearm);
    work.pending.get()
}

#[test]
fn a_kick_during_an_evaluation_runs_it_again_at_once() {
    for point in POINTS {
        let pending = evaluate_with_kick_at(point);
        if point == Point::BeforeBegin {
            // The evaluation samples after this kick: it serves it, and plans its period.
            assert_eq!(pending, Some(1000), "kick {point:?}");
        } else {
            assert_eq!(pending, Some(0), "kick {point:?}: pushed back");
        }
    }
}

#[test]
fn without_a_kick_the_planned_period_stands() {
    let flag = KickFlag::new();
    let work = Work::new(&flag, None, false);
    flag.begin();
    flag.rearm(&work, 1000);
    assert_eq!(work.pending.get(), Some(1000));
    assert_eq!(work.schedules.get(), 1);
}

#[test]
fn a_kick_runs_the_work_at_once() {
    let flag = KickFlag::new();
    let work = Work::new(&flag, Some(1000), false);
    flag.kick(&work);
    assert!(flag.is_set());
    assert_eq!(work.pending.get(), Some(0));
}
