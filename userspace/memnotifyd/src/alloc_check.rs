//! Checks that the hot path does not allocate, with a counting allocator (tests only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts allocations made by the current thread.
pub struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is thread-local and const-initialized,
// so counting never allocates itself.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// How many allocations `f` made on this thread.
pub fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

mod tests {
    use super::*;
    use crate::config::{self, Action};
    use crate::json::{self, Report, JSON_BUF};
    use crate::levels::{self, Machine, Totals};
    use crate::log::Logger;
    use crate::schedule::Schedule;
    use memnotify_proto::{Figure, Figures};

    #[test]
    fn the_counter_counts() {
        assert!(allocations_in(|| drop(std::hint::black_box(vec![1u8; 16]))) >= 1);
    }

    #[test]
    fn the_hot_path_does_not_allocate() {
        let config = config::parse(include_str!("../dist/memnotifyd.yaml")).unwrap();
        let mut figures = Figures::default();
        figures.set(Figure::Total, 65536);
        figures.set(Figure::Available, 40000);
        let totals = Totals::of(&figures, 12);
        let mut machine = Machine::new(levels::resolve(&config.levels, totals));
        let stages = &config.levels[1].stages;
        assert_eq!(stages[1].action, Action::Kill);
        let mut schedule = Schedule::with_capacity(8);
        let mut logger = Logger::discard();
        let mut line = [0u8; JSON_BUF];
        let count = allocations_in(|| {
            for available in [40000u64, 9000, 3000, 5000, 8000, 20000, 40000] {
                figures.set(Figure::Available, available);
                if let Some(change) = machine.update(&figures) {
                    if change.to > change.from {
                        schedule.enter(&config.levels[change.to - 1].stages, available);
                    }
                    let report = Report {
                        event: "change",
                        level: "critical",
                        previous: "warning",
                        severity: change.to,
                        time_ns: available,
                        figures: &figures,
                        page_size: 4096,
                        backend: "device",
                        dry_run: false,
                    };
                    let len = json::format(&report, &mut line);
                    assert!(len > 0);
                    crate::log!(
                        logger,
                        crate::log::Severity::Info,
                        "level {} -> {}: {}",
                        change.from,
                        change.to,
                        available
                    );
                }
                let _ = machine.wake_thresholds(&figures);
                while schedule.pop_due(stages, available + 100_000).is_some() {}
            }
        });
        assert_eq!(count, 0, "allocations on the hot path");
    }
}
