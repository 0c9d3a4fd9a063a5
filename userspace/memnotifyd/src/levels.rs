//! The level state machine with hysteresis, and the thresholds that wake us (pure).
//!
//! Level 0 is the implicit `normal`; level `k` is `config.levels[k - 1]`. A
//! level is *entered* when any of its enter bounds is passed, and *held* while
//! any figure is still on the bad side of its leave bound. Since every leave
//! bound is at least as mild as its enter bound, an entered level is held, so
//! evaluating the same figures twice never changes the level, and a figure
//! moving back and forth between the two bounds does not make it flap.

use memnotify_proto::{Figure, Figures, Thresholds};

use crate::config::{LevelConfig, Metric};

/// At most this many bounds per level (one per metric).
const METRICS: usize = Metric::ALL.len();

/// A bound resolved to pages.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PageBound {
    /// The metric.
    pub metric: Metric,
    /// Entered beyond this.
    pub enter: u64,
    /// Held beyond this.
    pub leave: u64,
}

/// The value of `metric` in `figures`, in pages.
pub fn metric_value(metric: Metric, figures: &Figures) -> u64 {
    match metric {
        Metric::Available => figures.get(Figure::Available),
        Metric::Free => figures.get(Figure::Free),
        Metric::Used => figures.get(Figure::Used),
        Metric::Swap => figures
            .get(Figure::SwapTotal)
            .saturating_sub(figures.get(Figure::SwapFree)),
    }
}

impl PageBound {
    /// Whether `value` is on the bad side of `bound`.
    fn beyond(&self, value: u64, bound: u64) -> bool {
        if self.metric.higher_is_worse() {
            value >= bound
        } else {
            value < bound
        }
    }

    fn entered(&self, figures: &Figures) -> bool {
        self.beyond(metric_value(self.metric, figures), self.enter)
    }

    fn held(&self, figures: &Figures) -> bool {
        self.beyond(metric_value(self.metric, figures), self.leave)
    }
}

/// One level's bounds in pages.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ResolvedLevel {
    bounds: [Option<PageBound>; METRICS],
}

impl ResolvedLevel {
    /// Builds a level from page bounds (a leave bound worse than its enter bound
    /// is clamped to it, so the level can always be left).
    pub fn new(bounds: &[PageBound]) -> ResolvedLevel {
        let mut level = ResolvedLevel::default();
        for (slot, bound) in level.bounds.iter_mut().zip(bounds) {
            let mut bound = *bound;
            bound.leave = if bound.metric.higher_is_worse() {
                bound.leave.min(bound.enter)
            } else {
                bound.leave.max(bound.enter)
            };
            *slot = Some(bound);
        }
        level
    }

    /// The bounds.
    pub fn bounds(&self) -> impl Iterator<Item = &PageBound> {
        self.bounds.iter().flatten()
    }

    fn entered(&self, figures: &Figures) -> bool {
        self.bounds().any(|bound| bound.entered(figures))
    }

    fn held(&self, figures: &Figures) -> bool {
        self.bounds().any(|bound| bound.held(figures))
    }
}

/// What the configuration's amounts are relative to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Totals {
    /// `log2(PAGE_SIZE)`.
    pub page_shift: u32,
    /// RAM in pages (`%` of RAM).
    pub ram_pages: u64,
    /// Swap in pages (`%` of swap).
    pub swap_pages: u64,
}

impl Totals {
    /// The totals in a sample.
    pub fn of(figures: &Figures, page_shift: u32) -> Totals {
        Totals {
            page_shift,
            ram_pages: figures.get(Figure::Total),
            swap_pages: figures.get(Figure::SwapTotal),
        }
    }
}

/// Resolves configured levels to pages.
pub fn resolve(levels: &[LevelConfig], totals: Totals) -> Vec<ResolvedLevel> {
    levels
        .iter()
        .map(|level| {
            let bounds: Vec<PageBound> = level
                .bounds()
                .map(|bound| {
                    let base = match bound.metric {
                        Metric::Swap => totals.swap_pages,
                        _ => totals.ram_pages,
                    };
                    let units = memnotify::Units {
                        page_shift: totals.page_shift,
                        total_pages: base,
                    };
                    PageBound {
                        metric: bound.metric,
                        enter: bound.enter.pages(units),
                        leave: bound.leave.pages(units),
                    }
                })
                .collect();
            ResolvedLevel::new(&bounds)
        })
        .collect()
}

/// A level change.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Change {
    /// The level before.
    pub from: usize,
    /// The level now.
    pub to: usize,
}

/// The current level and how to move between levels.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Machine {
    levels: Vec<ResolvedLevel>,
    current: usize,
}

impl Machine {
    /// A machine in `normal`.
    pub fn new(levels: Vec<ResolvedLevel>) -> Machine {
        Machine { levels, current: 0 }
    }

    /// The current level (0: normal).
    pub fn current(&self) -> usize {
        self.current
    }

    /// Forces the current level (after a reload).
    pub fn set_current(&mut self, level: usize) {
        self.current = level.min(self.levels.len());
    }

    /// Replaces the resolved bounds, keeping the current level (totals changed).
    pub fn set_levels(&mut self, levels: Vec<ResolvedLevel>) {
        self.levels = levels;
        self.current = self.current.min(self.levels.len());
    }

    /// The level the figures call for, given the current one.
    pub fn target(&self, figures: &Figures) -> usize {
        let current = self.current;
        // The most severe level entered above the current one wins.
        if let Some(higher) = (current + 1..=self.levels.len())
            .rev()
            .find(|&level| self.levels[level - 1].entered(figures))
        {
            return higher;
        }
        if current == 0 || self.levels[current - 1].held(figures) {
            return current;
        }
        // Left the current level: fall to the most severe level still held.
        (1..current)
            .rev()
            .find(|&level| self.levels[level - 1].held(figures))
            .unwrap_or(0)
    }

    /// Evaluates the figures; returns the change, if any. Allocation-free.
    pub fn update(&mut self, figures: &Figures) -> Option<Change> {
        let to = self.target(figures);
        let from = self.current;
        self.current = to;
        (to != from).then_some(Change { from, to })
    }

    /// The thresholds that wake us when any figure crosses a bound: `upper`
    /// fires when a figure rises to a cut point above it, `lower` when one
    /// falls below a cut point at or under it (both with the module's semantics,
    /// up at `>=` and down at `<`, hysteresis 0).
    pub fn wake_thresholds(&self, figures: &Figures) -> (Thresholds, Thresholds) {
        let mut upper = Thresholds::default();
        let mut lower = Thresholds::default();
        for bound in self.levels.iter().flat_map(ResolvedLevel::bounds) {
            for value in [bound.enter, bound.leave] {
                let Some((figure, cut)) = cut_point(bound.metric, value, figures) else {
                    continue;
                };
                let now = figures.get(figure);
                let slot = figure.index();
                if cut > now {
                    if upper.values[slot] == 0 || cut < upper.values[slot] {
                        upper.values[slot] = cut;
                    }
                } else if cut > 0 && cut > lower.values[slot] {
                    lower.values[slot] = cut;
                }
            }
        }
        (upper, lower)
    }
}

/// The device figure and value at which a condition on `metric` against `bound`
/// flips: for that figure, below the cut is one side and at or above it the other.
fn cut_point(metric: Metric, bound: u64, figures: &Figures) -> Option<(Figure, u64)> {
    match metric {
        Metric::Available => Some((Figure::Available, bound)),
        Metric::Free => Some((Figure::Free, bound)),
        Metric::Used => Some((Figure::Used, bound)),
        // swap_total - swap_free >= bound  <=>  swap_free < swap_total - bound + 1
        Metric::Swap => {
            let total = figures.get(Figure::SwapTotal);
            if bound == 0 || bound > total {
                return None;
            }
            Some((Figure::SwapFree, total - bound + 1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn figures(available: u64, used: u64) -> Figures {
        let mut figures = Figures::default();
        figures.set(Figure::Total, 10_000);
        figures.set(Figure::Available, available);
        figures.set(Figure::Used, used);
        figures
    }

    /// warning: available < 2000 (leave at 2500); critical: available < 1000 (leave at 1200)
    /// or used >= 9000 (leave below 8500).
    fn machine() -> Machine {
        Machine::new(vec![
            ResolvedLevel::new(&[PageBound {
                metric: Metric::Available,
                enter: 2000,
                leave: 2500,
            }]),
            ResolvedLevel::new(&[
                PageBound {
                    metric: Metric::Available,
                    enter: 1000,
                    leave: 1200,
                },
                PageBound {
                    metric: Metric::Used,
                    enter: 9000,
                    leave: 8500,
                },
            ]),
        ])
    }

    #[test]
    fn climbs_and_falls_with_hysteresis() {
        let mut machine = machine();
        let path = [
            (5000, 1), // normal
            (1999, 1), // warning
            (2200, 1), // still warning: under the leave bound
            (999, 1),  // critical
            (1100, 1), // still critical
            (1300, 1), // warning: left critical, still under warning's leave bound
            (2400, 1), // still warning
            (2500, 1), // normal
        ];
        let levels: Vec<usize> = path
            .iter()
            .map(|&(available, used)| {
                machine.update(&figures(available, used));
                machine.current()
            })
            .collect();
        assert_eq!(levels, [0, 1, 1, 2, 2, 1, 1, 0]);
    }

    #[test]
    fn jumps_straight_to_the_worst_level_and_back() {
        let mut machine = machine();
        assert_eq!(
            machine.update(&figures(500, 1)),
            Some(Change { from: 0, to: 2 })
        );
        assert_eq!(
            machine.update(&figures(9000, 1)),
            Some(Change { from: 2, to: 0 })
        );
    }

    #[test]
    fn any_figure_enters_and_every_figure_must_leave() {
        let mut machine = machine();
        machine.update(&figures(5000, 9500));
        assert_eq!(machine.current(), 2);
        // used under its enter bound but not under its leave bound: held.
        machine.update(&figures(5000, 8700));
        assert_eq!(machine.current(), 2);
        machine.update(&figures(5000, 8000));
        assert_eq!(machine.current(), 0);
    }

    #[test]
    fn swap_bounds_are_on_swap_in_use() {
        let mut machine = Machine::new(vec![ResolvedLevel::new(&[PageBound {
            metric: Metric::Swap,
            enter: 300,
            leave: 200,
        }])]);
        let mut sample = figures(5000, 1);
        sample.set(Figure::SwapTotal, 1000);
        sample.set(Figure::SwapFree, 750);
        assert_eq!(machine.update(&sample), None);
        let (upper, lower) = machine.wake_thresholds(&sample);
        // In use 250: entering at 300 in use is swap_free < 701 -> a lower threshold of 701;
        // the leave bound (200 in use) is swap_free >= 801 -> an upper threshold of 801.
        assert_eq!(lower.values[Figure::SwapFree.index()], 701);
        assert_eq!(upper.values[Figure::SwapFree.index()], 801);
        sample.set(Figure::SwapFree, 700);
        assert_eq!(machine.update(&sample), Some(Change { from: 0, to: 1 }));
        sample.set(Figure::SwapFree, 801);
        assert_eq!(machine.update(&sample), Some(Change { from: 1, to: 0 }));
    }

    #[test]
    fn wake_thresholds_bracket_the_figures() {
        let machine = machine();
        let (upper, lower) = machine.wake_thresholds(&figures(1500, 100));
        assert_eq!(upper.values[Figure::Available.index()], 2000);
        assert_eq!(lower.values[Figure::Available.index()], 1200);
        assert_eq!(upper.values[Figure::Used.index()], 8500);
        assert_eq!(lower.values[Figure::Used.index()], 0);
    }

    #[test]
    fn leave_bounds_worse_than_enter_are_clamped() {
        let level = ResolvedLevel::new(&[PageBound {
            metric: Metric::Available,
            enter: 2000,
            leave: 1000,
        }]);
        assert_eq!(level.bounds().next().unwrap().leave, 2000);
    }

    fn any_level() -> impl Strategy<Value = Vec<PageBound>> {
        proptest::collection::vec((0usize..4, 0u64..10_000, 0u64..2_000), 1..=4).prop_map(|raw| {
            let mut bounds: Vec<PageBound> = Vec::new();
            for (metric, enter, gap) in raw {
                let metric = Metric::ALL[metric];
                if bounds.iter().any(|bound| bound.metric == metric) {
                    continue;
                }
                let leave = if metric.higher_is_worse() {
                    enter.saturating_sub(gap)
                } else {
                    enter + gap
                };
                bounds.push(PageBound {
                    metric,
                    enter,
                    leave,
                });
            }
            bounds
        })
    }

    fn any_figures() -> impl Strategy<Value = Figures> {
        (
            0u64..12_000,
            0u64..12_000,
            0u64..12_000,
            0u64..3_000,
            0u64..3_000,
        )
            .prop_map(|(available, free, used, swap_total, swap_free)| {
                let mut figures = Figures::default();
                figures.set(Figure::Total, 10_000);
                figures.set(Figure::Available, available);
                figures.set(Figure::Free, free);
                figures.set(Figure::Used, used);
                figures.set(Figure::SwapTotal, swap_total);
                figures.set(Figure::SwapFree, swap_free.min(swap_total));
                figures
            })
    }

    proptest! {
        /// The same figures never move the level twice: no flapping at rest.
        #[test]
        fn evaluation_is_idempotent(
            levels in proptest::collection::vec(any_level(), 1..5),
            samples in proptest::collection::vec(any_figures(), 1..20),
        ) {
            let mut machine = Machine::new(levels.iter().map(|b| ResolvedLevel::new(b)).collect());
            for sample in samples {
                machine.update(&sample);
                prop_assert_eq!(machine.update(&sample), None);
            }
        }

        /// A figure wandering inside the hysteresis band of a single level never flaps.
        #[test]
        fn no_flapping_inside_the_band(
            enter in 1_000u64..5_000,
            gap in 1u64..1_000,
            wander in proptest::collection::vec(0u64..1_000, 1..50),
        ) {
            let mut machine = Machine::new(vec![ResolvedLevel::new(&[PageBound {
                metric: Metric::Available,
                enter,
                leave: enter + gap,
            }])]);
            machine.update(&figures(enter - 1, 0));
            prop_assert_eq!(machine.current(), 1);
            for step in wander {
                let available = enter + step % gap;
                prop_assert_eq!(machine.update(&figures(available, 0)), None);
            }
        }

        /// Nothing changes level unless a figure crossed one of the armed wake thresholds.
        #[test]
        fn level_changes_are_seen_by_the_wake_thresholds(
            levels in proptest::collection::vec(any_level(), 1..5),
            before in any_figures(),
            after in any_figures(),
        ) {
            let mut machine = Machine::new(levels.iter().map(|b| ResolvedLevel::new(b)).collect());
            machine.update(&before);
            let mut after = after;
            // Swap cut points depend on the swap total: keep it fixed between samples.
            after.set(Figure::SwapTotal, before.get(Figure::SwapTotal));
            after.set(Figure::SwapFree, after.get(Figure::SwapFree).min(before.get(Figure::SwapTotal)));
            let (upper, lower) = machine.wake_thresholds(&before);
            let woken = Figure::ALL.iter().any(|&figure| {
                let slot = figure.index();
                let now = after.get(figure);
                (upper.values[slot] != 0 && now >= upper.values[slot])
                    || (lower.values[slot] != 0 && now < lower.values[slot])
            });
            if machine.update(&after).is_some() {
                prop_assert!(woken);
            }
        }
    }
}
