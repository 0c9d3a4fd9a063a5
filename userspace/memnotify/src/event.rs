//! What a backend reports when thresholds are crossed.

use std::fmt;

use memnotify_proto::{Crossings, Figure, Snapshot, Thresholds, Watch};

/// Which way a figure crossed its threshold.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    /// From below to at-or-above the threshold.
    Up,
    /// From above to below the threshold (minus hysteresis).
    Down,
}

impl Direction {
    /// `up` or `down`.
    pub const fn name(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One figure crossing one threshold.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Crossing {
    /// The figure.
    pub figure: Figure,
    /// Which way it went.
    pub direction: Direction,
    /// Its value, in pages.
    pub value: u64,
    /// The threshold it crossed, in pages.
    pub threshold: u64,
}

/// The figures at an evaluation where at least one threshold was crossed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Event {
    /// The figures that caused the event.
    pub snapshot: Snapshot,
    /// What crossed, as masks by figure index.
    pub crossings: Crossings,
    /// The thresholds in force.
    pub thresholds: Thresholds,
}

impl Event {
    /// Runs `watch` (the module's crossing state machine, kept by each backend) on
    /// `snapshot`: the event, with the thresholds in force, when anything crossed.
    pub(crate) fn from_watch(watch: &mut Watch, snapshot: Snapshot) -> Option<Event> {
        let crossings = watch.evaluate(&snapshot.figures);
        if !crossings.any() {
            return None;
        }
        Some(Event {
            snapshot,
            crossings,
            thresholds: watch.thresholds(),
        })
    }

    /// Each crossing, in figure order.
    pub fn crossings(&self) -> impl Iterator<Item = Crossing> + '_ {
        Figure::ALL.into_iter().filter_map(move |figure| {
            let bit = 1u8 << figure.index();
            let direction = if self.crossings.up & bit != 0 {
                Direction::Up
            } else if self.crossings.down & bit != 0 {
                Direction::Down
            } else {
                return None;
            };
            Some(Crossing {
                figure,
                direction,
                value: self.snapshot.figures.get(figure),
                threshold: self.thresholds.values[figure.index()],
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memnotify_proto::Figures;

    #[test]
    fn crossings_follow_the_watch() {
        let mut thresholds = Thresholds::default();
        thresholds.values[Figure::Used.index()] = 100;
        thresholds.values[Figure::Available.index()] = 50;
        let mut before = Figures::default();
        before.set(Figure::Used, 90);
        before.set(Figure::Available, 40);
        let mut watch = Watch::new(thresholds, &before);
        let mut after = before;
        after.set(Figure::Used, 120);
        after.set(Figure::Available, 60);
        let snapshot = Snapshot {
            figures: after,
            ..Snapshot::default()
        };
        let event = Event::from_watch(&mut watch, snapshot).expect("both crossed");
        assert_eq!(event.snapshot, snapshot);
        assert_eq!(event.thresholds, thresholds);
        assert!(
            Event::from_watch(&mut watch, snapshot).is_none(),
            "nothing crosses again"
        );
        let seen: Vec<_> = event.crossings().collect();
        assert_eq!(
            seen,
            vec![
                Crossing {
                    figure: Figure::Used,
                    direction: Direction::Up,
                    value: 120,
                    threshold: 100
                },
                Crossing {
                    figure: Figure::Available,
                    direction: Direction::Up,
                    value: 60,
                    threshold: 50
                },
            ]
        );
    }
}
