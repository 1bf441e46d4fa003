//! Masking of authConfig values for display, and restoring masked values sent back by clients.

use serde_json::{Map, Value};

const SHORT_MASK: &str = "****";

/// Masks one string: 8+ characters keep the first 2 and last 2, shorter ones become `****`.
pub fn mask_str(s: &str) -> String {
    let count = s.chars().count();
    if count < 8 {
        return SHORT_MASK.to_string();
    }
    let head: String = s.chars().take(2).collect();
    let tail: String = s.chars().skip(count - 2).collect();
    format!("{head}***{tail}")
}

/// Masks a value leaf by leaf: objects keep their keys, everything else that is not a string
/// (numbers, booleans, null, arrays) becomes `****`.
pub fn mask(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), mask(v))).collect())
        }
        Value::String(s) => Value::String(mask_str(s)),
        _ => Value::String(SHORT_MASK.to_string()),
    }
}

/// True when some leaf of `value` could be a mask; only then is the stored secret worth decrypting.
pub fn may_hold_masks(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.values().any(may_hold_masks),
        Value::String(s) => s.contains("***"),
        _ => false,
    }
}

/// Replaces every leaf of `incoming` that equals the mask of the stored leaf at the same path
/// with the stored value, so a client can send back what it was shown without erasing secrets.
pub fn restore_masked(
    incoming: Map<String, Value>,
    stored: &Map<String, Value>,
) -> Map<String, Value> {
    incoming
        .into_iter()
        .map(|(key, new)| {
            let restored = match (new, stored.get(&key)) {
                (Value::Object(new_map), Some(Value::Object(old_map))) => {
                    Value::Object(restore_masked(new_map, old_map))
                }
                (Value::String(s), Some(old))
                    if !old.is_object() && mask(old) == Value::String(s.clone()) =>
                {
                    old.clone()
                }
                (new, _) => new,
            };
            (key, restored)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_are_masked_by_characters_not_bytes() {
        assert_eq!(mask_str("svc_kaireon"), "sv***on");
        assert_eq!(mask_str("12345678"), "12***78");
        assert_eq!(mask_str("1234567"), "****");
        assert_eq!(mask_str(""), "****");
        assert_eq!(mask_str("пароль-секрет"), "па***ет");
        assert_eq!(mask_str("🔑🔑abcd🔒🔒"), "🔑🔑***🔒🔒");
        assert_eq!(
            mask_str("ééééééé"),
            "****",
            "7 characters (14 bytes) is short"
        );
    }

    #[test]
    fn nested_values_are_masked_leaf_by_leaf() {
        let v = json!({"user": "svc_kaireon", "port": 5432, "tls": {"key": "-----BEGIN KEY-----", "on": true}, "list": ["a"]});
        assert_eq!(
            mask(&v),
            json!({"user": "sv***on", "port": "****", "tls": {"key": "--***--", "on": "****"}, "list": "****"})
        );
    }

    #[test]
    fn masked_values_sent_back_keep_the_stored_secret() {
        let stored = json!({"username": "svc_kaireon", "password": "hunter2", "pin": 1234, "nested": {"token": "abcdefghij"}});
        let stored = stored.as_object().unwrap();
        let incoming = json!({"username": "sv***on", "password": "****", "pin": "****", "nested": {"token": "ab***ij"}, "extra": "x"});
        let restored = restore_masked(incoming.as_object().unwrap().clone(), stored);
        assert_eq!(
            Value::Object(restored),
            json!({"username": "svc_kaireon", "password": "hunter2", "pin": 1234, "nested": {"token": "abcdefghij"}, "extra": "x"})
        );
    }

    #[test]
    fn new_values_and_non_matching_masks_are_taken_as_given() {
        let stored = json!({"password": "supersecret"});
        let incoming = json!({"password": "su***XX", "other": "****"});
        let restored = restore_masked(
            incoming.as_object().unwrap().clone(),
            stored.as_object().unwrap(),
        );
        assert_eq!(
            Value::Object(restored),
            json!({"password": "su***XX", "other": "****"})
        );
    }

    #[test]
    fn mask_detection() {
        assert!(may_hold_masks(&json!({"a": {"b": "****"}})));
        assert!(may_hold_masks(&json!({"a": "xy***zw"})));
        assert!(!may_hold_masks(&json!({"a": "plain", "b": 1})));
    }
}
