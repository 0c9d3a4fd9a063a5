//! Figures and their derivation from the kernel's counters.

use memnotify_proto::{Counters, Figure, Figures, FIGURE_COUNT};
use proptest::prelude::*;

#[test]
fn figure_names_indices_and_order() {
    let names: Vec<&str> = Figure::ALL.iter().map(|f| f.name()).collect();
    assert_eq!(
        names,
        [
            "used",
            "active",
            "total",
            "free",
            "available",
            "swap_total",
            "swap_free"
        ]
    );
    assert_eq!(Figure::ALL.len(), FIGURE_COUNT);
    for (index, figure) in Figure::ALL.iter().enumerate() {
        assert_eq!(figure.index(), index);
        assert_eq!(Figure::from_name(figure.name().as_bytes()), Some(*figure));
    }
    assert_eq!(Figure::from_name(b"Used"), None);
    assert_eq!(Figure::from_name(b""), None);
    assert_eq!(Figure::from_name(b"hysteresis"), None);
}

fn sample() -> Counters {
    Counters {
        total_ram: 1000,
        free_ram: 100,
        file_pages: 300,
        active_anon: 250,
        active_file: 150,
        available: 380,
        swap_total: 500,
        swap_free: 200,
    }
}

#[test]
fn from_counters_follows_the_umm_formula() {
    let figures = Figures::from_counters(&sample());
    // 1000 total - 100 free - 300 file pages + (500 - 200) swapped out.
    assert_eq!(figures.get(Figure::Used), 900);
    assert_eq!(figures.get(Figure::Active), 400);
    assert_eq!(figures.get(Figure::Total), 1000);
    assert_eq!(figures.get(Figure::Free), 100);
    assert_eq!(figures.get(Figure::Available), 380);
    assert_eq!(figures.get(Figure::SwapTotal), 500);
    assert_eq!(figures.get(Figure::SwapFree), 200);
}

#[test]
fn a_growing_page_cache_does_not_raise_used() {
    let before = sample();
    // The page cache takes 90 more pages from free memory.
    let after = Counters {
        free_ram: 10,
        file_pages: 390,
        ..before
    };
    let used = |c: &Counters| Figures::from_counters(c).get(Figure::Used);
    assert_eq!(used(&after), used(&before));

    // Anonymous memory taking the same pages does raise it.
    let anon = Counters {
        free_ram: 10,
        ..before
    };
    assert_eq!(used(&anon), used(&before) + 90);
}

#[test]
fn without_swap_used_is_resident_memory() {
    let counters = Counters {
        swap_total: 0,
        swap_free: 0,
        ..sample()
    };
    assert_eq!(
        Figures::from_counters(&counters).get(Figure::Used),
        1000 - 100 - 300
    );
}

#[test]
fn inconsistent_counters_saturate() {
    let odd = Counters {
        total_ram: 100,
        free_ram: 200,
        file_pages: 300,
        swap_total: 10,
        swap_free: 50,
        ..Counters::default()
    };
    assert_eq!(Figures::from_counters(&odd).get(Figure::Used), 0);

    let max = Counters {
        total_ram: u64::MAX,
        free_ram: 0,
        file_pages: 0,
        active_anon: u64::MAX,
        active_file: u64::MAX,
        available: u64::MAX,
        swap_total: u64::MAX,
        swap_free: 0,
    };
    let figures = Figures::from_counters(&max);
    assert_eq!(figures.get(Figure::Used), u64::MAX);
    assert_eq!(figures.get(Figure::Active), u64::MAX);
}

#[test]
fn get_and_set() {
    let mut figures = Figures::default();
    for (value, figure) in (10..).zip(Figure::ALL) {
        figures.set(figure, value);
    }
    assert_eq!(figures.values, [10, 11, 12, 13, 14, 15, 16]);
    assert_eq!(figures.get(Figure::SwapFree), 16);
}

fn counters_strategy() -> impl Strategy<Value = Counters> {
    prop::array::uniform8(prop_oneof![0u64..10_000, any::<u64>()]).prop_map(|v| Counters {
        total_ram: v[0],
        free_ram: v[1],
        file_pages: v[2],
        active_anon: v[3],
        active_file: v[4],
        available: v[5],
        swap_total: v[6],
        swap_free: v[7],
    })
}

proptest! {
    #[test]
    fn from_counters_matches_wide_arithmetic(c in counters_strategy()) {
        let figures = Figures::from_counters(&c);
        let wide = |v: u64| i128::from(v);
        let resident = (wide(c.total_ram) - wide(c.free_ram) - wide(c.file_pages)).max(0);
        let swapped = (wide(c.swap_total) - wide(c.swap_free)).max(0);
        let used = u64::try_from(resident + swapped).unwrap_or(u64::MAX);
        prop_assert_eq!(figures.get(Figure::Used), used);
        let active = u64::try_from(u128::from(c.active_anon) + u128::from(c.active_file)).unwrap_or(u64::MAX);
        prop_assert_eq!(figures.get(Figure::Active), active);
        prop_assert_eq!(figures.get(Figure::Total), c.total_ram);
        prop_assert_eq!(figures.get(Figure::Free), c.free_ram);
        prop_assert_eq!(figures.get(Figure::Available), c.available);
        prop_assert_eq!(figures.get(Figure::SwapTotal), c.swap_total);
        prop_assert_eq!(figures.get(Figure::SwapFree), c.swap_free);
    }
}
