//! JSON parsing that refuses duplicate object keys. serde_json keeps the last of two equal keys
//! silently; when two readers of one body disagree on which one counts, checks get bypassed.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// A `serde_json::Value` whose objects had no duplicate keys (serde_json's depth limit still applies).
pub struct Strict(pub Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Strict::deserialize(d).map(|s| s.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // The key itself is not repeated in the message: it may sit inside authConfig.
            if object.contains_key(&key) {
                return Err(de::Error::custom("an object has the same key twice"));
            }
            let Strict(v) = map.next_value()?;
            object.insert(key, v);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Value, String> {
        serde_json::from_str::<Strict>(s)
            .map(|s| s.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn same_values_as_serde_json_without_duplicates() {
        let text =
            r#"{"a": [1, -2, 3.5, true, null, "x"], "b": {"c": {"d": 18446744073709551615}}}"#;
        assert_eq!(
            parse(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth_without_echoing_them() {
        let e = parse(r#"{"a": 1, "a": 2}"#).unwrap_err();
        assert!(e.contains("same key twice"), "{e}");
        let e = parse(r#"{"x": {"secret-key": 1, "secret-key": 2}}"#).unwrap_err();
        assert!(!e.contains("secret-key"), "{e}");
        assert!(
            parse(r#"[{"a": 1}, {"a": 2}]"#).is_ok(),
            "equal keys in different objects"
        );
    }

    #[test]
    fn depth_and_range_limits_still_hold() {
        assert!(parse(&format!("{}{}", "[".repeat(1000), "]".repeat(1000))).is_err());
        assert!(parse("1e400").is_err());
    }
}
