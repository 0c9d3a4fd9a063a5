//! The per-file crossing state machine.
//!
//! For each armed threshold a file remembers on which side of it the figure was
//! at the last evaluation (set when the thresholds are written). A figure at or
//! above the threshold is above it; an above figure goes back below only once it
//! is under `threshold - hysteresis` (or at 0, so a hysteresis as large as the
//! threshold cannot pin it above), so a figure hovering at the threshold does
//! not flap. Crossing in either direction is an event.
//!
//! A [`Watch`] keeps its thresholds as 32-bit page counts (the kernel keeps one per
//! open file, so its size is per-file memory): 2^32 - 1 pages is 16 TiB of 4 KiB pages,
//! more than any figure of the systems memnotify is for, 32-bit or not. A threshold
//! written above that is clamped to it, which changes nothing while the figure stays
//! below 2^32 - 1 pages.

use super::figures::{Figure, Figures, FIGURE_COUNT};
use super::line::Snapshot;
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

/// The largest threshold (and hysteresis) a [`Watch`] keeps, in pages.
pub const WATCH_PAGES_MAX: u64 = u32::MAX as u64;

/// `pages` as kept by a [`Watch`]: clamped to [`WATCH_PAGES_MAX`].
const fn clamp_pages(pages: u64) -> u32 {
    if pages > WATCH_PAGES_MAX {
        u32::MAX
    } else {
        pages as u32
    }
}

/// A [`Watch`] with at most one armed figure, as the kernel module keeps it inline in
/// every open file (most files arm one figure; a watch of several lives out of line).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct SingleWatch {
    /// The armed figure, if any.
    pub figure: Option<Figure>,
    /// Its threshold in pages (0 with no figure).
    pub value: u32,
    /// See [`Thresholds::hysteresis`].
    pub hysteresis: u32,
    /// Whether the figure was above its threshold at the last evaluation.
    pub above: bool,
}

/// One file's thresholds and the side each figure was on.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Watch {
    /// Threshold per figure in pages, by [`Figure::index`] (0: not armed).
    values: [u32; FIGURE_COUNT],
    /// See [`Thresholds::hysteresis`].
    hysteresis: u32,
    /// Bit `i` set: figure `i` was above its threshold at the last evaluation.
    above: u8,
}

impl Watch {
    /// Arms `thresholds` (each clamped to [`WATCH_PAGES_MAX`]), taking the sides from
    /// `now` (a write is not an event).
    pub fn new(thresholds: Thresholds, now: &Figures) -> Watch {
        let mut watch = Watch {
            values: thresholds.values.map(clamp_pages),
            hysteresis: clamp_pages(thresholds.hysteresis),
            above: 0,
        };
        for figure in Figure::ALL {
            if let Some(threshold) = watch.threshold(figure) {
                if now.get(figure) >= threshold {
                    watch.above |= 1 << figure.index();
                }
            }
        }
        watch
    }

    /// The thresholds in force (as clamped by [`Watch::new`]).
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            values: self.values.map(u64::from),
            hysteresis: u64::from(self.hysteresis),
        }
    }

    /// The threshold on `figure`, if armed.
    pub const fn threshold(&self, figure: Figure) -> Option<u64> {
        match self.values[figure.index()] {
            0 => None,
            value => Some(value as u64),
        }
    }

    /// The same watch as a [`SingleWatch`], if at most one figure is armed.
    pub fn single(&self) -> Option<SingleWatch> {
        if self.armed() > 1 {
            return None;
        }
        let figure = Figure::ALL
            .into_iter()
            .find(|figure| self.threshold(*figure).is_some());
        Some(SingleWatch {
            figure,
            value: figure.map_or(0, |figure| self.values[figure.index()]),
            hysteresis: self.hysteresis,
            above: figure.is_some_and(|figure| self.is_above(figure)),
        })
    }

    /// The watch a [`SingleWatch`] stands for: `Watch::from_single(w.single()?) == w`.
    pub fn from_single(single: SingleWatch) -> Watch {
        let mut watch = Watch {
            hysteresis: single.hysteresis,
            ..Watch::default()
        };
        if let Some(figure) = single.figure {
            watch.values[figure.index()] = single.value;
            if single.value != 0 && single.above {
                watch.above = 1 << figure.index();
            }
        }
        watch
    }

    /// How many figures are armed.
    pub fn armed(&self) -> usize {
        self.values.iter().filter(|&&value| value != 0).count()
    }

    /// Whether `figure` was above its threshold at the last evaluation.
    pub const fn is_above(&self, figure: Figure) -> bool {
        self.above & (1 << figure.index()) != 0
    }

    /// Where `figure` must go for this file to get an event, if it is armed.
    pub fn trigger(&self, figure: Figure) -> Option<Trigger> {
        let threshold = self.threshold(figure)?;
        Some(if self.is_above(figure) {
            Trigger::DownBelow(threshold.saturating_sub(u64::from(self.hysteresis)).max(1))
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

/// The figures a write arms its thresholds against ([`Watch::new`]), given its own sample
/// (`own`, taken at `own_ns` before the registry's lock), the last evaluation's sample
/// (`last`) and whether that evaluation is still delivering its crossings.
///
/// While an evaluation delivers in batches, the write arms against its figures: the rest of
/// its delivery then cannot find the new triggers crossed; the next evaluation compares them
/// with a new sample as usual. Otherwise the newer of the two samples: arming against an
/// older one could put the watch on the wrong side of a threshold the figures have already
/// crossed, for a spurious crossing at the next evaluation and its reverse after it.
pub fn arming_figures<'a>(
    own: &'a Figures,
    own_ns: u64,
    last: &'a Snapshot,
    delivering: bool,
) -> &'a Figures {
    if delivering || last.time_ns >= own_ns {
        &last.figures
    } else {
        own
    }
}
