//! The per-file crossing state machine.
//!
//! For each armed threshold a file remembers on which side of it the figure was
//! at the last evaluation (set when the thresholds are written). A figure at or
//! above the threshold is above it; an above figure goes back below only once it
//! is under `threshold - hysteresis` (or at 0, so a hysteresis as large as the
//! threshold cannot pin it above), so a figure hovering at the threshold does
//! not flap. Crossing in either direction is an event.

use super::figures::{Figure, Figures, FIGURE_COUNT};
use super::thresholds::Thresholds;

/// Where a figure has to go for a file's threshold on it to cross.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Trigger {
    /// The figure is below: it crosses once it is `>=` this value.
    UpAt(u64),
    /// The figure is above: it crosses once it is `<` this value.
    DownBelow(u64),
}

impl Trigger {
    /// Whether `value` crosses this trigger.
    pub const fn crossed_by(self, value: u64) -> bool {
        match self {
            Trigger::UpAt(at) => value >= at,
            Trigger::DownBelow(below) => value < below,
        }
    }

    /// How many pages `value` is away from crossing (0 when it crosses),
    /// saturating at `u64::MAX`.
    pub const fn distance(self, value: u64) -> u64 {
        match self {
            Trigger::UpAt(at) => at.saturating_sub(value),
            Trigger::DownBelow(below) if value < below => 0,
            // `value + 1 - below` without overflowing at `value == u64::MAX`.
            Trigger::DownBelow(below) => (value - below).saturating_add(1),
        }
    }
}

/// The figures that crossed at one evaluation, as bit masks by [`Figure::index`].
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Crossings {
    /// Figures that went from below to above their threshold.
    pub up: u8,
    /// Figures that went from above to below their threshold.
    pub down: u8,
}

impl Crossings {
    /// Whether anything crossed.
    pub const fn any(self) -> bool {
        self.up | self.down != 0
    }
}

/// One file's thresholds and the side each figure was on.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Watch {
    thresholds: Thresholds,
    /// Bit `i` set: figure `i` was above its threshold at the last evaluation.
    above: u8,
}

impl Watch {
    /// Arms `thresholds`, taking the sides from `now` (a write is not an event).
    pub fn new(thresholds: Thresholds, now: &Figures) -> Watch {
        let mut above = 0;
        for figure in Figure::ALL {
            if let Some(threshold) = thresholds.get(figure) {
                if now.get(figure) >= threshold {
                    above |= 1 << figure.index();
                }
            }
        }
        Watch { thresholds, above }
    }

    /// The thresholds in force.
    pub const fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Whether `figure` was above its threshold at the last evaluation.
    pub const fn is_above(&self, figure: Figure) -> bool {
        self.above & (1 << figure.index()) != 0
    }

    /// Where `figure` must go for this file to get an event, if it is armed.
    pub fn trigger(&self, figure: Figure) -> Option<Trigger> {
        let threshold = self.thresholds.get(figure)?;
        Some(if self.is_above(figure) {
            Trigger::DownBelow(threshold.saturating_sub(self.thresholds.hysteresis).max(1))
        } else {
            Trigger::UpAt(threshold)
        })
    }

    /// Every armed trigger, by figure index.
    pub fn triggers(&self) -> [Option<Trigger>; FIGURE_COUNT] {
        Figure::ALL.map(|figure| self.trigger(figure))
    }

    /// Takes a new sample into account and returns what crossed.
    pub fn evaluate(&mut self, now: &Figures) -> Crossings {
        let mut crossings = Crossings::default();
        for figure in Figure::ALL {
            let Some(trigger) = self.trigger(figure) else {
                continue;
            };
            if !trigger.crossed_by(now.get(figure)) {
                continue;
            }
            let bit = 1u8 << figure.index();
            self.above ^= bit;
            match trigger {
                Trigger::UpAt(_) => crossings.up |= bit,
                Trigger::DownBelow(_) => crossings.down |= bit,
            }
        }
        crossings
    }

    /// The smallest distance of any armed trigger from `now`, in pages.
    pub fn nearest(&self, now: &Figures) -> Option<u64> {
        Figure::ALL
            .iter()
            .filter_map(|&figure| Some(self.trigger(figure)?.distance(now.get(figure))))
            .min()
    }
}
