//! The per-file fields packed into one byte.

use memnotify_proto::{Figure, FileFlags, Level};
use proptest::prelude::*;

fn level(n: u8) -> Level {
    [Level::Normal, Level::Low, Level::Critical][usize::from(n % 3)]
}

fn figure(n: u8) -> Option<Figure> {
    Figure::ALL.get(usize::from(n % 8)).copied()
}

#[test]
fn a_new_file_is_unconfigured_with_a_read_due() {
    for level in [Level::Normal, Level::Low, Level::Critical] {
        let flags = FileFlags::new(level);
        assert_eq!(flags.figure(), None);
        assert!(!flags.above());
        assert!(!flags.configured());
        assert!(flags.read_ready());
        assert_eq!(flags.delivered(), level);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]
    /// Any sequence of setters leaves exactly what was set last in each field.
    #[test]
    fn every_field_keeps_what_was_set(start in 0u8..3, steps in prop::collection::vec((0u8..5, any::<u8>(), any::<bool>()), 0..40)) {
        let mut flags = FileFlags::new(level(start));
        let mut model = (None, false, false, true, level(start));
        for (field, value, on) in steps {
            match field {
                0 => {
                    flags = flags.with_figure(figure(value), on);
                    model.0 = figure(value);
                    model.1 = on;
                }
                1 => {
                    flags = flags.with_configured(on);
                    model.2 = on;
                }
                2 => {
                    flags = flags.with_read_ready(on);
                    model.3 = on;
                }
                _ => {
                    flags = flags.with_delivered(level(value));
                    model.4 = level(value);
                }
            }
            prop_assert_eq!(
                (flags.figure(), flags.above(), flags.configured(), flags.read_ready(), flags.delivered()),
                model
            );
        }
    }
}
