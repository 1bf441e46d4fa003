//! `emf-check <log file>`: every line of the log that claims to be an Embedded Metric Format
//! document (`_aws` at its root) is checked against the specification (`connectors_core::emf`);
//! prints `{"emfLines": n, "invalid": [...], "metrics": [{name, namespace, dimensions, sum,
//! values}]}` (metrics summed per name and dimension set) and exits 1 when a line is invalid.
//! Lines may carry a prefix before the JSON (a runtime's own tag): the JSON starts at the first `{`.

use connectors_core::emf;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: emf-check <log file>");
        std::process::exit(2);
    };
    let text = match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    let mut lines = 0;
    let mut invalid = Vec::new();
    let mut sums: BTreeMap<(String, String, String), (f64, usize)> = BTreeMap::new();
    for line in text.lines() {
        let Some(start) = line.find('{') else {
            continue;
        };
        let doc = &line[start..];
        if !emf::is_emf(doc) {
            continue;
        }
        lines += 1;
        match emf::check(doc) {
            Ok(data) => {
                for d in data {
                    let dims = serde_json::to_string(&d.dimensions).unwrap_or_default();
                    let entry = sums
                        .entry((d.name.clone(), d.namespace.clone(), dims))
                        .or_default();
                    entry.0 += d.sum();
                    entry.1 += d.values.len();
                }
            }
            Err(e) => invalid.push(json!({"line": doc, "problem": e})),
        }
    }
    let metrics: Vec<Value> = sums
        .into_iter()
        .map(|((name, namespace, dims), (sum, values))| {
            json!({"name": name, "namespace": namespace,
                   "dimensions": serde_json::from_str::<Value>(&dims).unwrap_or(Value::Null),
                   "sum": sum, "values": values})
        })
        .collect();
    let ok = invalid.is_empty();
    println!(
        "{}",
        json!({"emfLines": lines, "invalid": invalid, "metrics": metrics})
    );
    std::process::exit(if ok { 0 } else { 1 });
}
