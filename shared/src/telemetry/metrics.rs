//! Metrics as CloudWatch Embedded Metric Format lines on stdout: CloudWatch Logs turns them into
//! metrics, so counting costs no API call and no latency. One line per request (or per probe group
//! of a sweep), written when the invocation ends. Dimensions are low-cardinality only (function,
//! status class, connector type, probe code and depth, service); tenant and connector ids are plain
//! members of the line, searchable in the logs but never a dimension.

use serde::Serialize;
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

/// The namespace as a JSON string, escaped once.
fn namespace_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| serde_json::Value::from(namespace()).to_string())
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

/// A metric's value: one number, or several (e.g. the latencies of a group of probes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure<'a> {
    One(f64),
    Many(&'a [u64]),
}

/// One EMF document under construction, written straight into its text: root members, then
/// directives naming some of them as dimensions and metrics. Built once per request on the warm
/// path, so no map and no intermediate JSON values. Keys are the code's own literals (no
/// escaping needed); a key set twice keeps its first value.
#[derive(Debug, Default)]
pub struct Line {
    /// `"key":value,` members.
    root: Vec<u8>,
    keys: Vec<&'static str>,
    /// Directive objects, comma-separated.
    directives: String,
}

impl Line {
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, key: &'static str) -> bool {
        if self.keys.contains(&key) {
            return false;
        }
        self.keys.push(key);
        self.root.push(b'"');
        self.root.extend_from_slice(key.as_bytes());
        self.root.extend_from_slice(b"\":");
        true
    }

    /// A plain member (a dimension's value, or context such as the tenant id for the logs).
    pub fn set(&mut self, key: &'static str, value: impl Serialize) -> &mut Self {
        if self.key(key) {
            if serde_json::to_writer(&mut self.root, &value).is_err() {
                self.root.extend_from_slice(b"null");
            }
            self.root.push(b',');
        }
        self
    }

    /// Metrics under each of `dimension_sets` (their keys must be set as string members).
    pub fn metrics(
        &mut self,
        dimension_sets: &[&[&str]],
        metrics: &[(&'static str, Unit, Measure)],
    ) -> &mut Self {
        if !self.directives.is_empty() {
            self.directives.push(',');
        }
        let d = &mut self.directives;
        d.push_str("{\"Namespace\":");
        d.push_str(namespace_json());
        d.push_str(",\"Dimensions\":[");
        for (i, set) in dimension_sets.iter().enumerate() {
            d.push_str(if i == 0 { "[" } else { ",[" });
            for (j, key) in set.iter().enumerate() {
                d.push_str(if j == 0 { "\"" } else { ",\"" });
                d.push_str(key);
                d.push('"');
            }
            d.push(']');
        }
        d.push_str("],\"Metrics\":[");
        for (i, (name, unit, _)) in metrics.iter().enumerate() {
            d.push_str(if i == 0 {
                "{\"Name\":\""
            } else {
                ",{\"Name\":\""
            });
            d.push_str(name);
            d.push_str("\",\"Unit\":\"");
            d.push_str(unit.as_str());
            d.push_str("\"}");
        }
        d.push_str("]}");
        for (name, _, value) in metrics {
            match value {
                Measure::One(v) => self.set(name, v),
                Measure::Many(vs) => self.set(name, vs),
            };
        }
        self
    }

    pub fn has_metrics(&self) -> bool {
        !self.directives.is_empty()
    }

    /// The line's text (a single JSON object, no newline); without a metric it is a plain log line.
    pub fn render(mut self, at: SystemTime) -> String {
        let mut text = Vec::with_capacity(self.root.len() + self.directives.len() + 64);
        text.push(b'{');
        if self.has_metrics() {
            let timestamp = at
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64;
            text.append(&mut self.root);
            text.extend_from_slice(b"\"_aws\":{\"Timestamp\":");
            text.extend_from_slice(timestamp.to_string().as_bytes());
            text.extend_from_slice(b",\"CloudWatchMetrics\":[");
            text.extend_from_slice(self.directives.as_bytes());
            text.extend_from_slice(b"]}");
        } else {
            self.root.pop(); // the last member's comma
            text.append(&mut self.root);
        }
        text.push(b'}');
        // Only JSON written by serde_json and our ASCII literals: valid UTF-8.
        String::from_utf8(text)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
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
    use serde_json::Value;

    #[test]
    fn a_line_passes_the_emf_check_with_its_values() {
        let mut line = Line::new();
        line.set("function", "create")
            .set("statusClass", "4xx")
            .set("tenant", "acme")
            .metrics(
                &[&["function", "statusClass"]],
                &[("Requests", Unit::Count, Measure::One(1.0))],
            );
        line.set("service", SERVICE)
            .set("service", "again")
            .metrics(
                &[&["service"]],
                &[("ProbeLatency", Unit::Milliseconds, Measure::Many(&[12, 30]))],
            );
        line.set("note", "quote \" and \\ and é");
        let text = line.render(SystemTime::now());
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["service"], SERVICE,
            "a key set twice keeps its first value"
        );
        assert_eq!(v["note"], "quote \" and \\ and é");
        assert_eq!(text.matches("\"service\":").count(), 1);
        let data = emf::check(&text).unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data[0].dimensions["statusClass"], "4xx");
        assert_eq!(data[1].values, vec![12.0, 30.0]);
        assert_eq!(data[1].namespace, DEFAULT_NAMESPACE);
        // The tenant is on the line, not a dimension.
        assert!(data.iter().all(|d| !d.dimensions.contains_key("tenant")));
    }

    #[test]
    fn a_line_without_metrics_is_a_plain_log_line() {
        let mut line = Line::new();
        line.set("message", "request").set("status", 200);
        let v: Value = serde_json::from_str(&line.render(SystemTime::now())).unwrap();
        assert_eq!(v, serde_json::json!({"message": "request", "status": 200}));
        assert_eq!(Line::new().render(SystemTime::now()), "{}");
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
