//! The small per-file fields the kernel module packs into one byte.
//!
//! With 10,000 files open, every byte of the per-file object counts; these five
//! fields (the inline watch's figure and side, whether thresholds were written,
//! whether a read is due, the default level last delivered) fit in eight bits.

use super::figures::{Figure, FIGURE_COUNT};
use super::levels::Level;

/// The packed fields. Bits 0–2: the inline watch's figure index ([`FIGURE_COUNT`]:
/// none); bit 3: above; bit 4: configured; bit 5: read ready; bits 6–7: the level.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FileFlags(u8);

const FIGURE_MASK: u8 = 0b111;
const ABOVE: u8 = 1 << 3;
const CONFIGURED: u8 = 1 << 4;
const READ_READY: u8 = 1 << 5;
const LEVEL_SHIFT: u32 = 6;

// A figure index and "none" must fit in the three figure bits.
const _: () = assert!(FIGURE_COUNT < FIGURE_MASK as usize + 1);

impl FileFlags {
    /// A file just opened while the default level is `level`: no figure, not
    /// configured, a read due (the first read returns a line).
    pub const fn new(level: Level) -> FileFlags {
        FileFlags(FIGURE_COUNT as u8 | READ_READY | (level.as_u8() << LEVEL_SHIFT))
    }

    /// The inline watch's figure, if it arms one.
    pub const fn figure(self) -> Option<Figure> {
        let index = (self.0 & FIGURE_MASK) as usize;
        if index < FIGURE_COUNT {
            Some(Figure::ALL[index])
        } else {
            None
        }
    }

    /// Whether the inline watch's figure was above its threshold.
    pub const fn above(self) -> bool {
        self.0 & ABOVE != 0
    }

    /// Sets the inline watch's figure and side.
    pub const fn with_figure(self, figure: Option<Figure>, above: bool) -> FileFlags {
        let index = match figure {
            Some(figure) => figure.index() as u8,
            None => FIGURE_COUNT as u8,
        };
        let side = if above { ABOVE } else { 0 };
        FileFlags((self.0 & !(FIGURE_MASK | ABOVE)) | index | side)
    }

    /// Whether thresholds were written (the file no longer gets default levels).
    pub const fn configured(self) -> bool {
        self.0 & CONFIGURED != 0
    }

    /// Sets [`FileFlags::configured`].
    pub const fn with_configured(self, configured: bool) -> FileFlags {
        self.with_bit(CONFIGURED, configured)
    }

    /// Whether the next read returns a line (a write or an event since the last read).
    pub const fn read_ready(self) -> bool {
        self.0 & READ_READY != 0
    }

    /// Sets [`FileFlags::read_ready`].
    pub const fn with_read_ready(self, ready: bool) -> FileFlags {
        self.with_bit(READ_READY, ready)
    }

    /// The default level this file was last told about.
    pub const fn delivered(self) -> Level {
        match self.0 >> LEVEL_SHIFT {
            0 => Level::Normal,
            1 => Level::Low,
            _ => Level::Critical,
        }
    }

    const fn with_bit(self, bit: u8, on: bool) -> FileFlags {
        FileFlags(if on { self.0 | bit } else { self.0 & !bit })
    }

    /// Sets [`FileFlags::delivered`].
    pub const fn with_delivered(self, level: Level) -> FileFlags {
        FileFlags((self.0 & !(0b11 << LEVEL_SHIFT)) | (level.as_u8() << LEVEL_SHIFT))
    }
}
