//! The memory figures memnotify reports and watches, all in pages.

/// How many figures there are.
pub const FIGURE_COUNT: usize = 7;

/// One memory figure. The discriminant is the figure's index in [`Figures`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum Figure {
    /// Memory that cannot simply be dropped (the UMM formula).
    Used = 0,
    /// Active anonymous plus active file pages.
    Active = 1,
    /// Total RAM.
    Total = 2,
    /// Free pages.
    Free = 3,
    /// The kernel's `MemAvailable` estimate.
    Available = 4,
    /// Total swap (0 without `CONFIG_SWAP` or without active swap).
    SwapTotal = 5,
    /// Free swap.
    SwapFree = 6,
}

impl Figure {
    /// Every figure, in line order.
    pub const ALL: [Figure; FIGURE_COUNT] = [
        Figure::Used,
        Figure::Active,
        Figure::Total,
        Figure::Free,
        Figure::Available,
        Figure::SwapTotal,
        Figure::SwapFree,
    ];

    /// The key used for this figure on the device and in configuration.
    pub const fn name(self) -> &'static str {
        match self {
            Figure::Used => "used",
            Figure::Active => "active",
            Figure::Total => "total",
            Figure::Free => "free",
            Figure::Available => "available",
            Figure::SwapTotal => "swap_total",
            Figure::SwapFree => "swap_free",
        }
    }

    /// The figure whose key is `name`, if any.
    pub fn from_name(name: &[u8]) -> Option<Figure> {
        Figure::ALL
            .iter()
            .copied()
            .find(|figure| figure.name().as_bytes() == name)
    }

    /// The index of this figure in arrays indexed by figure.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// The raw counters the kernel provides, in pages.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Counters {
    /// `totalram` from `si_meminfo`.
    pub total_ram: u64,
    /// `freeram` from `si_meminfo`.
    pub free_ram: u64,
    /// `NR_FILE_PAGES`: page cache, buffers and swap cache together.
    pub file_pages: u64,
    /// `NR_ACTIVE_ANON`.
    pub active_anon: u64,
    /// `NR_ACTIVE_FILE`.
    pub active_file: u64,
    /// `si_mem_available()`.
    pub available: u64,
    /// `totalswap` from `si_swapinfo` (0 without swap).
    pub swap_total: u64,
    /// `freeswap` from `si_swapinfo` (0 without swap).
    pub swap_free: u64,
}

/// A sample of every figure, in pages.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Figures {
    /// Values indexed by [`Figure::index`].
    pub values: [u64; FIGURE_COUNT],
}

impl Figures {
    /// Derives the figures from the kernel's counters.
    ///
    /// `used` is UMM's `MemTotal - MemFree - Buffers - Cached - SwapCached + SwapTotal - SwapFree`.
    /// `/proc/meminfo`'s Cached is `NR_FILE_PAGES - SwapCached - Buffers`, so the
    /// buffer and swap-cache terms cancel and `used` is
    /// `MemTotal - MemFree - NR_FILE_PAGES + (SwapTotal - SwapFree)`: a full page cache
    /// does not raise it (the early-firing case from the mem_notify review).
    pub fn from_counters(c: &Counters) -> Figures {
        let resident = c
            .total_ram
            .saturating_sub(c.free_ram)
            .saturating_sub(c.file_pages);
        let swapped = c.swap_total.saturating_sub(c.swap_free);
        let mut figures = Figures::default();
        figures.set(Figure::Used, resident.saturating_add(swapped));
        figures.set(Figure::Active, c.active_anon.saturating_add(c.active_file));
        figures.set(Figure::Total, c.total_ram);
        figures.set(Figure::Free, c.free_ram);
        figures.set(Figure::Available, c.available);
        figures.set(Figure::SwapTotal, c.swap_total);
        figures.set(Figure::SwapFree, c.swap_free);
        figures
    }

    /// The value of one figure.
    pub const fn get(&self, figure: Figure) -> u64 {
        self.values[figure.index()]
    }

    /// Sets the value of one figure.
    pub fn set(&mut self, figure: Figure, value: u64) {
        self.values[figure.index()] = value;
    }
}
