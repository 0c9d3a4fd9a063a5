//! `Deserialize` for [`Amount`]: a whole number (pages) or a string in the device's
//! syntax (`64M`, `10%`, `0x100`). Outside `src/proto/`, so the kernel never sees it.

use core::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::Amount;

const EXPECTED: &str = "an amount (1234, 64M, 10%)";

struct AmountVisitor;

impl AmountVisitor {
    fn found<E: de::Error>(what: &str) -> E {
        E::custom(format_args!("expected {EXPECTED}, found {what}"))
    }
}

impl<'de> Visitor<'de> for AmountVisitor {
    type Value = Amount;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_u64<E: de::Error>(self, pages: u64) -> Result<Amount, E> {
        Ok(Amount::Pages(pages))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Amount, E> {
        u64::try_from(value)
            .map(Amount::Pages)
            .map_err(|_| Self::found("a negative or fractional number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Amount, E> {
        Err(Self::found("a negative or fractional number"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Amount, E> {
        Err(Self::found("a boolean"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Amount, E> {
        Err(Self::found("nothing"))
    }

    fn visit_none<E: de::Error>(self) -> Result<Amount, E> {
        Err(Self::found("nothing"))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Amount, A::Error> {
        Err(Self::found("a list"))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Amount, A::Error> {
        Err(Self::found("a mapping"))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<Amount, A::Error> {
        Err(Self::found("a tagged value"))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Amount, E> {
        let text = text.trim();
        Amount::parse(text.as_bytes()).map_err(|error| {
            E::custom(format_args!(
                "'{text}': {}: expected pages (1234), bytes with K, M or G (64M) or a percentage (10%)",
                error.as_str()
            ))
        })
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AmountVisitor)
    }
}
