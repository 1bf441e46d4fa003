//! Metrics as CloudWatch Embedded Metric Format lines on stdout: CloudWatch Logs turns them into
//! metrics, so counting costs no API call and no latency. One line per request (or per probe group
//! of a sweep), written when the invocation ends. Dimensions are low-cardinality only (function,
//! status class, connector type, probe code and depth, service); tenant and connector ids are plain
//! members of the line, searchable in the logs but never a dimension.

use serde_json::{Map, Value};
use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The namespace when `METRICS_NAMESPACE` is unset or unusable.
pub const DEFAULT_NAMESPACE: &str = "ConnectorsApi";
/// The `service` dimension: the metrics that are totals over the whole API.
pub const SERVICE: &str = "connectors-api";

/// `METRICS_NAMESPACE`, read once.
pub fn namespace() -> &'static str {
    static NAMESPACE: OnceLock<String> = OnceLock::new();
    NAMESPACE.get_or_init(|| namespace_from(std::env::var("METRICS_NAMESPACE").ok()))
}

/// A namespace CloudWatch takes (1–255 characters, not `AWS/…`), else the default.
fn namespace_from(raw: Option<String>) -> String {
    match raw.map(|s| s.trim().to_string()) {
        Some(ns) if (1..=255).contains(&ns.len()) && !ns.starts_with("AWS/") && ns.is_ascii() => ns,
        Some(ns) if !ns.is_empty() => {
            eprintln!(
                "METRICS_NAMESPACE is not a usable CloudWatch namespace; using {DEFAULT_NAMESPACE}"
            );
            DEFAULT_NAMESPACE.to_string()
        }
        _ => DEFAULT_NAMESPACE.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
        }
    }
}

/// One EMF document under construction: root members, then directives naming some of them as
/// dimensions and metrics.
#[derive(Debug, Default)]
pub struct Line {
    root: Map<String, Value>,
    directives: Vec<Value>,
}

impl Line {
    pub fn new() -> Self {
        Self::default()
    }

    /// A plain member (a dimension's value, or context such as the tenant id for the logs).
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.root.insert(key.to_string(), value.into());
        self
    }

    /// Metrics under each of `dimension_sets` (their keys must be set as string members).
    pub fn metrics(
        &mut self,
        dimension_sets: &[&[&str]],
        metrics: &[(&str, Unit, Value)],
    ) -> &mut Self {
        let definitions: Vec<Value> = metrics
            .iter()
            .map(|(name, unit, value)| {
                self.root.insert((*name).to_string(), value.clone());
                serde_json::json!({"Name": name, "Unit": unit.as_str()})
            })
            .collect();
        self.directives.push(serde_json::json!({
            "Namespace": namespace(),
            "Dimensions": dimension_sets,
            "Metrics": definitions,
        }));
        self
    }

    pub fn has_metrics(&self) -> bool {
        !self.directives.is_empty()
    }

    /// The line's text (a single JSON object, no newline); without a metric it is a plain log line.
    pub fn render(mut self, at: SystemTime) -> String {
        if self.has_metrics() {
            let timestamp = at
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64;
            self.root.insert(
                "_aws".to_string(),
                serde_json::json!({"Timestamp": timestamp, "CloudWatchMetrics": self.directives}),
            );
        }
        Value::Object(self.root).to_string()
    }

    /// Writes the line to the metrics sink: stdout, as Lambda ships it.
    pub fn emit(self) {
        write_line(&self.render(SystemTime::now()));
    }
}

type Sink = Box<dyn Fn(&str) + Send + Sync>;
static SINK: OnceLock<Sink> = OnceLock::new();

/// Sends metric lines somewhere other than stdout (tests capture them); the first call wins.
pub fn set_sink(sink: impl Fn(&str) + Send + Sync + 'static) -> bool {
    SINK.set(Box::new(sink)).is_ok()
}

fn write_line(line: &str) {
    match SINK.get() {
        Some(sink) => sink(line),
        None => {
            // One write per line, so lines from the log subscriber never interleave inside it.
            let mut text = String::with_capacity(line.len() + 1);
            text.push_str(line);
            text.push('\n');
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emf;
    use serde_json::json;

    #[test]
    fn a_line_passes_the_emf_check_with_its_values() {
        let mut line = Line::new();
        line.set("function", "create")
            .set("statusClass", "4xx")
            .set("tenant", "acme")
            .metrics(
                &[&["function", "statusClass"]],
                &[("Requests", Unit::Count, json!(1))],
            );
        line.set("service", SERVICE).metrics(
            &[&["service"]],
            &[("ProbeLatency", Unit::Milliseconds, json!([12, 30]))],
        );
        let text = line.render(SystemTime::now());
        let data = emf::check(&text).unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data[0].dimensions["statusClass"], "4xx");
        assert_eq!(data[1].values, vec![12.0, 30.0]);
        assert_eq!(data[1].namespace, DEFAULT_NAMESPACE);
        // The tenant is on the line, not a dimension.
        assert!(data.iter().all(|d| !d.dimensions.contains_key("tenant")));
    }

    #[test]
    fn unusable_namespaces_fall_back_to_the_default() {
        assert_eq!(namespace_from(None), DEFAULT_NAMESPACE);
        assert_eq!(
            namespace_from(Some("Team/Connectors".into())),
            "Team/Connectors"
        );
        for bad in ["", "AWS/Lambda", &"x".repeat(256)] {
            assert_eq!(
                namespace_from(Some(bad.to_string())),
                DEFAULT_NAMESPACE,
                "{bad}"
            );
        }
    }
}
