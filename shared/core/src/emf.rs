//! Checks a log line against CloudWatch's Embedded Metric Format specification (the structure
//! CloudWatch Logs needs before it extracts a metric), and reads the metrics out of it. The
//! functions' own writer is in `shared::telemetry::metrics`; this is the independent check the
//! tests (and `emf-check` over `make local`'s log) hold every emitted line to.
//!
//! The rules, from the specification: the root is an object whose `_aws` member holds a numeric
//! `Timestamp` (ms since the epoch) and a non-empty `CloudWatchMetrics` array of directives; a
//! directive has a `Namespace` (1–255 characters), `Dimensions` (an array of dimension sets, each
//! of at most 30 keys naming string members of the root) and `Metrics` (at most 100 definitions,
//! each a `Name` naming a root member that is a number or an array of at most 100 numbers, an
//! optional `Unit` from CloudWatch's list and an optional `StorageResolution` of 1 or 60).

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// CloudWatch's metric units (`MetricDatum.Unit`).
pub const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

const MAX_DIMENSIONS: usize = 30;
const MAX_METRICS: usize = 100;
const MAX_VALUES: usize = 100;

/// One metric a line defines: where it goes and the values it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    pub namespace: String,
    pub name: String,
    pub unit: Option<String>,
    /// One dimension set's keys and their values.
    pub dimensions: BTreeMap<String, String>,
    pub values: Vec<f64>,
}

impl Datum {
    /// The sum of its values (a count's value).
    pub fn sum(&self) -> f64 {
        self.values.iter().sum()
    }
}

/// The sum of metric `name` under exactly the dimension set `dims` across `data`.
pub fn total(data: &[Datum], name: &str, dims: &[(&str, &str)]) -> f64 {
    data.iter()
        .filter(|d| d.name == name && d.dimensions.len() == dims.len())
        .filter(|d| {
            dims.iter()
                .all(|(k, v)| d.dimensions.get(*k).map(String::as_str) == Some(*v))
        })
        .map(Datum::sum)
        .sum()
}

/// True when the line claims to be an EMF document (its root has `_aws`); such a line must pass
/// [`check`].
pub fn is_emf(line: &str) -> bool {
    serde_json::from_str::<Value>(line)
        .ok()
        .and_then(|v| v.get("_aws").cloned())
        .is_some()
}

/// Checks one line; on success, every (dimension set × metric) it defines.
pub fn check(line: &str) -> Result<Vec<Datum>, String> {
    let root: Value = serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let root = root.as_object().ok_or("the root is not an object")?;
    let aws = root
        .get("_aws")
        .and_then(Value::as_object)
        .ok_or("no _aws object")?;
    match aws.get("Timestamp") {
        Some(t) if t.as_u64().is_some() => {}
        _ => return Err("_aws.Timestamp is not a non-negative integer (ms)".into()),
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("_aws.CloudWatchMetrics is not an array")?;
    if directives.is_empty() {
        return Err("_aws.CloudWatchMetrics is empty".into());
    }
    let mut data = Vec::new();
    for (i, d) in directives.iter().enumerate() {
        directive(root, d, &mut data).map_err(|e| format!("CloudWatchMetrics[{i}]: {e}"))?;
    }
    Ok(data)
}

fn directive(root: &Map<String, Value>, d: &Value, out: &mut Vec<Datum>) -> Result<(), String> {
    let d = d.as_object().ok_or("not an object")?;
    let namespace = d
        .get("Namespace")
        .and_then(Value::as_str)
        .filter(|n| (1..=255).contains(&n.chars().count()))
        .ok_or("Namespace is not a string of 1 to 255 characters")?;
    let sets = d
        .get("Dimensions")
        .and_then(Value::as_array)
        .ok_or("Dimensions is not an array")?;
    let metrics = d
        .get("Metrics")
        .and_then(Value::as_array)
        .ok_or("Metrics is not an array")?;
    if metrics.is_empty() || metrics.len() > MAX_METRICS {
        return Err(format!(
            "Metrics holds {} definitions (1 to 100)",
            metrics.len()
        ));
    }
    let mut dimension_sets = Vec::new();
    for set in sets {
        let keys = set.as_array().ok_or("a dimension set is not an array")?;
        if keys.len() > MAX_DIMENSIONS {
            return Err(format!(
                "a dimension set has {} keys (at most 30)",
                keys.len()
            ));
        }
        let mut dims = BTreeMap::new();
        for key in keys {
            let key = key.as_str().ok_or("a dimension key is not a string")?;
            let value = root
                .get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("dimension {key} is not a string member of the root"))?;
            dims.insert(key.to_string(), value.to_string());
        }
        dimension_sets.push(dims);
    }
    if dimension_sets.is_empty() {
        dimension_sets.push(BTreeMap::new());
    }
    for m in metrics {
        let m = m
            .as_object()
            .ok_or("a metric definition is not an object")?;
        let name = m
            .get("Name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or("a metric definition has no Name")?;
        let unit = match m.get("Unit") {
            None => None,
            Some(Value::String(u)) if UNITS.contains(&u.as_str()) => Some(u.clone()),
            Some(u) => return Err(format!("metric {name}: unit {u} is not a CloudWatch unit")),
        };
        match m.get("StorageResolution") {
            None => {}
            Some(r) if r.as_u64() == Some(1) || r.as_u64() == Some(60) => {}
            Some(r) => {
                return Err(format!(
                    "metric {name}: StorageResolution {r} is not 1 or 60"
                ))
            }
        }
        let values = values(root.get(name)).map_err(|e| format!("metric {name}: {e}"))?;
        for dims in &dimension_sets {
            out.push(Datum {
                namespace: namespace.to_string(),
                name: name.to_string(),
                unit: unit.clone(),
                dimensions: dims.clone(),
                values: values.clone(),
            });
        }
    }
    Ok(())
}

fn values(member: Option<&Value>) -> Result<Vec<f64>, String> {
    match member {
        Some(Value::Number(n)) => Ok(vec![n.as_f64().ok_or("not a finite number")?]),
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_VALUES => items
            .iter()
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| "a value is not a number".to_string())
            })
            .collect(),
        Some(Value::Array(items)) => Err(format!("{} values (1 to 100)", items.len())),
        Some(_) => Err("its root member is not a number".into()),
        None => Err("no root member carries its value".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(v: Value) -> String {
        v.to_string()
    }

    fn good() -> Value {
        json!({
            "_aws": {"Timestamp": 1_700_000_000_000u64, "CloudWatchMetrics": [{
                "Namespace": "ConnectorsApi",
                "Dimensions": [["function", "statusClass"]],
                "Metrics": [{"Name": "Requests", "Unit": "Count"}]
            }]},
            "function": "list", "statusClass": "2xx", "Requests": 1
        })
    }

    #[test]
    fn a_valid_line_yields_its_metrics() {
        let data = check(&line(good())).unwrap();
        assert_eq!(data.len(), 1);
        assert_eq!(data[0].name, "Requests");
        assert_eq!(data[0].dimensions["function"], "list");
        assert_eq!(data[0].sum(), 1.0);
    }

    #[test]
    fn each_broken_rule_is_refused() {
        type Breaks = Box<dyn Fn(&mut Value)>;
        let breakers: Vec<(&str, Breaks)> = vec![
            (
                "no _aws",
                Box::new(|v| v.as_object_mut().unwrap().remove("_aws").map(drop).unwrap()),
            ),
            (
                "timestamp",
                Box::new(|v| v["_aws"]["Timestamp"] = json!("now")),
            ),
            (
                "empty directives",
                Box::new(|v| v["_aws"]["CloudWatchMetrics"] = json!([])),
            ),
            (
                "namespace",
                Box::new(|v| v["_aws"]["CloudWatchMetrics"][0]["Namespace"] = json!("")),
            ),
            (
                "dimension missing",
                Box::new(|v| {
                    v.as_object_mut()
                        .unwrap()
                        .remove("function")
                        .map(drop)
                        .unwrap()
                }),
            ),
            (
                "dimension not a string",
                Box::new(|v| v["function"] = json!(3)),
            ),
            (
                "unit",
                Box::new(|v| v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("ms")),
            ),
            (
                "value missing",
                Box::new(|v| {
                    v.as_object_mut()
                        .unwrap()
                        .remove("Requests")
                        .map(drop)
                        .unwrap()
                }),
            ),
            ("value a string", Box::new(|v| v["Requests"] = json!("1"))),
            (
                "resolution",
                Box::new(|v| {
                    v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["StorageResolution"] = json!(5)
                }),
            ),
            (
                "31 dimensions",
                Box::new(|v| {
                    let keys: Vec<String> = (0..31).map(|i| format!("d{i}")).collect();
                    for k in &keys {
                        v[k.as_str()] = json!("x");
                    }
                    v["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([keys]);
                }),
            ),
            (
                "101 values",
                Box::new(|v| v["Requests"] = json!(vec![1; 101])),
            ),
        ];
        for (what, breaks) in breakers {
            let mut v = good();
            breaks(&mut v);
            assert!(check(&line(v)).is_err(), "{what} passed");
        }
    }
}
