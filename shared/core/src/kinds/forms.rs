//! Field forms that several families share (host, port, URL, non-empty text), and the one way to
//! read a text field out of a JSON map.

use crate::kinds::ConnectorType;
use crate::vendor;
use serde_json::{Map, Value};
use std::net::IpAddr;

/// A field's text, trimmed, if it is a non-blank string. Config values and tokens are read this
/// way: no space is part of a host, a name or a token.
pub fn text<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A field's text as given, if it is not blank: a password may begin or end with a space.
pub fn untrimmed<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// `must be a non-empty string` unless it is one.
pub fn non_empty(value: &Value) -> Option<String> {
    value
        .as_str()
        .is_none_or(|s| s.trim().is_empty())
        .then(|| "must be a non-empty string".into())
}

/// `authConfig.privateKey`, checked by `check` (its KDF read from the structure, unread).
pub fn private_key(
    auth: &Map<String, Value>,
    check: fn(&str) -> Result<(), String>,
) -> Vec<crate::error::FieldProblem> {
    auth.get("privateKey")
        .and_then(Value::as_str)
        .and_then(|pem| check(pem).err())
        .map(|problem| crate::error::FieldProblem::new("authConfig.privateKey", problem))
        .into_iter()
        .collect()
}

/// A TCP port.
pub fn port(value: &Value) -> Option<String> {
    match value.as_u64() {
        Some(1..=65535) => None,
        _ => Some("must be an integer from 1 to 65535".into()),
    }
}

/// A port from config, its default when absent.
pub fn port_or(config: &Map<String, Value>, default: u16) -> Result<u16, String> {
    match config.get("port") {
        Some(v) => v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| "config.port must be an integer from 1 to 65535".into()),
        None => Ok(default),
    }
}

/// A host name or address (and, for vendor-bound types, one of the vendor's).
pub fn host(kind: ConnectorType, value: &Value) -> Option<String> {
    match value.as_str() {
        Some(h) if is_host(h) && vendor::is_bound(kind) && !vendor::is_allowed(kind, h) => {
            Some(vendor::refusal(kind, h))
        }
        Some(h) if is_host(h) => None,
        _ => Some(
            "must be a hostname or an IP address (no scheme, port, path, spaces or credentials)"
                .into(),
        ),
    }
}

/// A DNS hostname (letters, digits, `-`, `_`; labels of 1–63; not all-numeric at the end) or an
/// IP literal.
pub fn is_host(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    let h = s.strip_suffix('.').unwrap_or(s);
    let labels_ok = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    // An all-numeric last label would make `127.1` or `2130706433` pass as a "name".
    labels_ok
        && !h
            .rsplit('.')
            .next()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

/// An absolute http(s) URL with a host and no user info.
pub fn url(s: &str) -> Option<String> {
    match url::Url::parse(s) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            Some("must be an http or https URL".into())
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Some("must name a host".into()),
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            Some("must not hold credentials; put them in authConfig".into())
        }
        Ok(_) => None,
        Err(_) => Some("must be an absolute http or https URL".into()),
    }
}

/// A string holding an http(s) URL.
pub fn url_value(value: &Value) -> Option<String> {
    value.as_str().map_or(Some("must be a string".into()), url)
}

/// An https URL on one of the vendor's hosts (the connector's credentials are sent there).
pub fn vendor_url(kind: ConnectorType, value: &Value) -> Option<String> {
    let s = value.as_str()?;
    if let Some(problem) = url(s) {
        return Some(problem);
    }
    let url = url::Url::parse(s).ok()?;
    let host = url.host_str().unwrap_or_default();
    if !vendor::is_allowed(kind, host) {
        return Some(vendor::refusal(kind, host));
    }
    (url.scheme() != "https").then(|| "must be an https URL (credentials are sent to it)".into())
}

/// Parses an http(s) URL for a probe, or names the field that does not hold one.
pub fn probe_url(s: &str, field: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s).map_err(|_| format!("{field} is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("{field} must be an http or https URL"));
    }
    Ok(url)
}

/// `https://{host}/`, refusing a host that would not stay the URL's host (`evil.com/x#`).
pub fn https_base(host: &str, field: &str) -> Result<url::Url, String> {
    if !is_host(host) {
        return Err(format!("{field} does not make a host name"));
    }
    probe_url(&format!("https://{host}/"), field)
}

/// `host:port` (IPv6 in brackets) into its parts.
pub fn host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not host:port"))?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{s:?} has no valid port"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn passwords_keep_their_spaces_and_names_do_not() {
        let m = json!({"password": " pw ", "host": " db ", "blank": "  "});
        let m = m.as_object().unwrap();
        assert_eq!(untrimmed(m, "password"), Some(" pw "));
        assert_eq!(text(m, "host"), Some("db"));
        assert_eq!(text(m, "blank"), None);
        assert_eq!(untrimmed(m, "blank"), None);
    }

    #[test]
    fn host_port_pairs() {
        assert_eq!(host_port("[::1]:9094").unwrap(), ("::1".into(), 9094));
        assert!(host_port("a:0").is_err() && host_port("a").is_err());
    }

    #[test]
    fn hosts() {
        for good in [
            "db.example.com",
            "localhost",
            "10.0.0.1",
            "::1",
            "2001:db8::1",
            "my_host.internal",
            "a.b.c.",
            "xn--bcher-kva.example",
        ] {
            assert!(is_host(good), "{good}");
        }
        for bad in [
            "",
            "https://db.example.com",
            "db.example.com:5432",
            "db.example.com/x",
            "user@db",
            "db example",
            "-a.com",
            "a-.com",
            "127.1",
            "2130706433",
            "[::1]",
            "a..b",
            &"a".repeat(64),
            "ex\u{0430}mple.com",
        ] {
            assert!(!is_host(bad), "{bad}");
        }
    }

    #[test]
    fn urls() {
        for good in ["https://api.example.com", "http://10.0.0.1:8080/hook?x=1"] {
            assert_eq!(url(good), None, "{good}");
        }
        for bad in [
            "ftp://example.com",
            "example.com",
            "/relative",
            "https://user:pw@example.com",
            "https://",
            "mailto:a@b.c",
            "file:///etc/passwd",
        ] {
            assert!(url(bad).is_some(), "{bad}");
        }
    }
}
