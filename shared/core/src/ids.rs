//! Connector ids, tenant ids and timestamps: the strings that become parts of keys.

use std::sync::Mutex;
use std::time::SystemTime;
use ulid::{Generator, Ulid};

const PREFIX: &str = "conn_";

/// A new ULID; a monotonic generator keeps those made in the same millisecond by this process in
/// order.
fn new_ulid() -> Ulid {
    static GENERATOR: Mutex<Option<Generator>> = Mutex::new(None);
    GENERATOR
        .lock()
        .ok()
        .and_then(|mut g| g.get_or_insert_with(Generator::new).generate().ok())
        .unwrap_or_else(|| Ulid::from_datetime(SystemTime::now()))
}

/// A new connector id: `conn_` + a ULID, so ids sort in creation order.
pub fn new_connector_id() -> String {
    format!("{PREFIX}{}", new_ulid())
}

/// A new test result id: a bare ULID, so a connector's results sort in time order.
pub fn new_result_id() -> String {
    new_ulid().to_string()
}

/// True when `s` is a result id in canonical form (a cursor of the history).
pub fn is_result_id(s: &str) -> bool {
    s.len() == 26 && Ulid::from_string(s).is_ok_and(|u| u.to_string() == s)
}

/// The smallest result id of a result made at `t` or later: history older than that sorts below.
pub fn result_id_floor(t: SystemTime) -> String {
    Ulid::from_parts(
        t.duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64,
        0,
    )
    .to_string()
}

/// True when `s` is a connector id in canonical form (uppercase ULID).
pub fn is_connector_id(s: &str) -> bool {
    s.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == 26 && Ulid::from_string(rest).is_ok_and(|u| u.to_string() == rest)
    })
}

/// The longest id a request may name (detail, update, delete, test).
pub const MAX_REQUESTED_ID_CHARS: usize = 128;

/// True when `s` may be asked for: any non-empty string of at most 128 characters. Only ids we
/// issued can exist, so the others are simply not found (404, as the spec's `conn_001` expects).
pub fn is_requested_id(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= MAX_REQUESTED_ID_CHARS
}

/// True when `s` may be used as a tenant id (and so inside a key).
pub fn is_tenant_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Now as RFC 3339 UTC with milliseconds, e.g. `2026-03-15T10:30:00.000Z`.
pub fn now_rfc3339() -> String {
    format_rfc3339(SystemTime::now())
}

pub fn format_rfc3339(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    )
}

/// An RFC 3339 timestamp (as `format_rfc3339` writes them), or None.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let dt = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some(SystemTime::from(dt))
}

/// Now in whole Unix seconds (TTL attributes).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_read_back_as_written() {
        let t = std::time::UNIX_EPOCH + Duration::from_millis(1_795_000_123_456);
        assert_eq!(parse_rfc3339(&format_rfc3339(t)), Some(t));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn new_ids_are_valid_unique_and_ordered() {
        let ids: Vec<String> = (0..1000).map(|_| new_connector_id()).collect();
        assert!(ids.iter().all(|id| is_connector_id(id)));
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids, "ids must be unique and in creation order");
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "",
            "conn_",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "conn_01arz3ndektsv4rrffq69g5fav",
            "conn_01ARZ3NDEKTSV4RRFFQ69G5FA",
            "conn_01ARZ3NDEKTSV4RRFFQ69G5FAVX",
            "conn_01ARZ3NDEKTSV4RRFFQ69G5FA!",
            "conn_81ARZ3NDEKTSV4RRFFQ69G5FAV",
            "CONN_01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "conn_001",
        ] {
            assert!(!is_connector_id(bad), "{bad:?} accepted");
        }
        assert!(is_connector_id("conn_01ARZ3NDEKTSV4RRFFQ69G5FAV"));
    }

    #[test]
    fn tenant_ids() {
        assert!(is_tenant_id("acme"));
        assert!(is_tenant_id("Acme_co-1"));
        assert!(is_tenant_id(&"a".repeat(64)));
        for bad in ["", "a#b", "a b", "ténant", "a/b", &"a".repeat(65)] {
            assert!(!is_tenant_id(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn timestamps_have_milliseconds_and_zulu() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_773_570_600_007);
        assert_eq!(format_rfc3339(t), "2026-03-15T10:30:00.007Z");
    }
}
