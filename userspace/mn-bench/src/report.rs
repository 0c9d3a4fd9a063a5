//! The benchmark's result: one figure per measured quantity, printed as one JSON line
//! behind [`MARKER`] so the host can pick it out of the serial console.

use serde_json::{json, Map, Value};

use crate::contract::{MARKER, REQUIRED};

/// One measured quantity.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub key: String,
    /// `None` when it could not be measured; `note` then says why.
    pub value: Option<f64>,
    pub unit: &'static str,
    /// How many trials (or samples) the value summarises.
    pub trials: usize,
    pub note: String,
    /// The individual trials' values, when they are worth seeing (few and noisy).
    pub samples: Vec<f64>,
}

impl Figure {
    pub fn new(
        key: &str,
        value: Option<f64>,
        unit: &'static str,
        trials: usize,
        note: String,
    ) -> Figure {
        Figure {
            key: key.to_string(),
            value,
            unit,
            trials,
            note,
            samples: Vec::new(),
        }
    }

    /// The same figure with the trials' values attached, in the order measured.
    pub fn with_samples(mut self, samples: &[f64]) -> Figure {
        self.samples = samples.to_vec();
        self
    }

    /// A figure that could not be measured, with the reason.
    pub fn missing(key: &str, unit: &'static str, reason: impl Into<String>) -> Figure {
        Figure::new(key, None, unit, 0, reason.into())
    }
}

/// How many decimals a value in `unit` keeps in the report.
fn decimals(unit: &str) -> i32 {
    match unit {
        "ns" | "bytes" | "KiB" => 0,
        "per_s" | "ratio" => 2,
        _ => 1,
    }
}

/// A value rounded for its unit, as a JSON number (integers without a fraction).
pub fn number(value: f64, unit: &str) -> Value {
    let places = decimals(unit);
    if places == 0 {
        return json!(value.round() as i64);
    }
    let scale = 10f64.powi(places);
    json!((value * scale).round() / scale)
}

/// The whole report: `meta` (what was measured where, how) and every figure.
pub fn to_json(meta: Map<String, Value>, figures: &[Figure]) -> Value {
    let figures: Vec<Value> = figures
        .iter()
        .map(|figure| {
            let mut entry = json!({
                "key": figure.key,
                "value": figure.value.map_or(Value::Null, |v| number(v, figure.unit)),
                "unit": figure.unit,
                "trials": figure.trials,
                "note": figure.note,
            });
            if !figure.samples.is_empty() {
                let samples: Vec<Value> = figure
                    .samples
                    .iter()
                    .map(|&v| number(v, figure.unit))
                    .collect();
                entry["samples"] = Value::Array(samples);
            }
            entry
        })
        .collect();
    json!({ "meta": meta, "figures": figures })
}

/// Adds a `null` figure for every required key the run did not produce, so a
/// measurement that failed before it could say so still shows up with a reason.
pub fn complete(figures: &mut Vec<Figure>) {
    for &key in REQUIRED {
        if !figures.iter().any(|figure| figure.key == key) {
            figures.push(Figure::missing(key, "", "not produced by this run"));
        }
    }
}

/// The console line carrying `report`.
pub fn line(report: &Value) -> String {
    format!("{MARKER}{report}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_rounded_by_unit() {
        assert_eq!(number(1234.6, "ns"), json!(1235));
        assert_eq!(number(12.345, "us"), json!(12.3));
        assert_eq!(number(0.999, "per_s"), json!(1.0));
        assert_eq!(number(-3.4, "KiB"), json!(-3));
    }

    #[test]
    fn report_has_meta_and_figures_with_nulls() {
        let mut meta = Map::new();
        meta.insert("arch".into(), json!("x86_64"));
        let figures = vec![
            Figure::new("eval_ns_1", Some(1500.4), "ns", 100, "median".into()),
            Figure::missing("overshoot_kib_psi", "KiB", "PSI never fired"),
        ];
        let report = to_json(meta, &figures);
        assert_eq!(report["meta"]["arch"], "x86_64");
        assert_eq!(report["figures"][0]["key"], "eval_ns_1");
        assert_eq!(report["figures"][0]["value"], 1500);
        assert_eq!(report["figures"][0]["trials"], 100);
        assert_eq!(report["figures"][1]["value"], Value::Null);
        assert!(report["figures"][0].get("samples").is_none());
        assert_eq!(report["figures"][1]["note"], "PSI never fired");
    }

    #[test]
    fn samples_are_listed_rounded_when_attached() {
        let figure = Figure::new(
            "overshoot_kib_memnotify",
            Some(3.0),
            "KiB",
            2,
            String::new(),
        )
        .with_samples(&[2.6, 3.4]);
        let report = to_json(Map::new(), &[figure]);
        assert_eq!(report["figures"][0]["samples"], json!([3, 3]));
    }

    #[test]
    fn complete_adds_every_missing_required_key_once() {
        let mut figures = vec![Figure::new("eval_ns_1", Some(1.0), "ns", 1, String::new())];
        complete(&mut figures);
        assert_eq!(figures.len(), REQUIRED.len());
        for key in REQUIRED {
            assert_eq!(figures.iter().filter(|f| f.key == *key).count(), 1, "{key}");
        }
        assert_eq!(figures[0].value, Some(1.0));
        complete(&mut figures);
        assert_eq!(figures.len(), REQUIRED.len());
    }

    #[test]
    fn line_is_one_line_behind_the_marker() {
        let report = to_json(Map::new(), &[Figure::missing("x", "ns", "a\nb")]);
        let text = line(&report);
        assert!(text.starts_with(MARKER));
        assert!(!text.contains('\n'));
        let parsed: Value = serde_json::from_str(&text[MARKER.len()..]).unwrap();
        assert_eq!(parsed, report);
    }
}
