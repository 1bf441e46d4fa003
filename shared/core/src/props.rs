//! Property tests (proptest) for masking and validation: arbitrary JSON in, invariants out.

use crate::masking::{mask, mask_str, may_hold_masks, restore_masked};
use crate::validate::{is_invisible, parse_create, parse_update};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(any::<String>(), json_value(), 0..6)
        .prop_map(|m| m.into_iter().collect())
}

/// Every string leaf of a value.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(m) => m.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_mask_shows_at_most_four_characters(s in any::<String>()) {
        let m = mask_str(&s);
        let kept: usize = m.chars().filter(|c| *c != '*').count();
        prop_assert!(kept <= 4);
        if s.chars().count() >= 8 {
            prop_assert!(!m.contains(&s));
            prop_assert!(m.starts_with(&s.chars().take(2).collect::<String>()));
        } else {
            prop_assert_eq!(m, "****");
        }
    }

    #[test]
    fn masking_keeps_keys_and_hides_long_secrets(secret in json_object()) {
        let masked = mask(&Value::Object(secret.clone()));
        let Value::Object(m) = &masked else { panic!("an object masks to an object") };
        prop_assert_eq!(m.keys().collect::<Vec<_>>(), secret.keys().collect::<Vec<_>>());
        let mut originals = Vec::new();
        strings(&Value::Object(secret), &mut originals);
        let mut shown = Vec::new();
        strings(&masked, &mut shown);
        for s in originals.iter().filter(|s| s.chars().count() >= 8) {
            prop_assert!(shown.iter().all(|m| !m.contains(s.as_str())), "{s:?} leaked in {masked}");
        }
    }

    #[test]
    fn what_was_shown_restores_what_was_stored(stored in json_object()) {
        let Value::Object(shown) = mask(&Value::Object(stored.clone())) else { unreachable!() };
        prop_assert_eq!(restore_masked(shown, &stored), stored);
    }

    #[test]
    fn new_values_without_masks_are_kept_as_sent(incoming in json_object(), stored in json_object()) {
        prop_assume!(!may_hold_masks(&Value::Object(incoming.clone())));
        let mut leaves = Vec::new();
        strings(&Value::Object(incoming.clone()), &mut leaves);
        prop_assume!(!leaves.iter().any(|s| s == "****"));
        prop_assert_eq!(restore_masked(incoming.clone(), &stored), incoming);
    }

    #[test]
    fn any_create_body_is_accepted_or_refused_with_named_fields(body in json_object()) {
        if let Err(e) = parse_create(body) {
            prop_assert!(e.status == 400);
            prop_assert!(!e.details.is_empty(), "{e:?}");
        }
    }

    #[test]
    fn any_update_body_is_accepted_or_refused_cleanly(body in json_object(), id_ok in any::<bool>()) {
        let mut body = body;
        if id_ok {
            body.insert("id".into(), json!("conn_01JDX6B3N0Q4Z8M7K2V5T9R1SA"));
        }
        if let Err(e) = parse_update(body) {
            prop_assert!(e.status == 400, "{e:?}");
        }
    }

    #[test]
    fn valid_names_are_kept_trimmed(name in "[\\p{L}\\p{N} _.-]{1,100}") {
        prop_assume!(!name.trim().is_empty());
        // Letters that render as nothing (U+115F, U+3164, …) are refused on purpose.
        prop_assume!(!name.chars().any(is_invisible));
        let body = json!({"name": format!("  {name} "), "type": "postgresql",
                          "config": {"host": "db.example.com", "port": 5432, "database": "d"}});
        let created = parse_create(body.as_object().unwrap().clone());
        prop_assert!(created.is_ok(), "{created:?}");
        let kept = created.unwrap().name;
        prop_assert_eq!(kept.trim(), kept.as_str());
    }

    #[test]
    fn names_with_control_characters_are_refused(head in "[a-z]{1,10}", c in prop_oneof![0u32..0x20, 0x7fu32..0xa0].prop_map(|n| char::from_u32(n).unwrap_or('\0')), tail in "[a-z]{1,10}") {
        let body = json!({"name": format!("{head}{c}{tail}"), "type": "mysql",
                          "config": {"host": "db.example.com", "port": 3306, "database": "d"}});
        let e = parse_create(body.as_object().unwrap().clone()).unwrap_err();
        prop_assert_eq!(e.details[0].field.as_str(), "name");
    }

    #[test]
    fn ports_outside_the_range_are_refused(port in prop_oneof![i64::MIN..=0i64, 65536i64..=i64::MAX]) {
        let body = json!({"name": "n", "type": "mysql", "config": {"host": "db.example.com", "port": port, "database": "d"}});
        let e = parse_create(body.as_object().unwrap().clone()).unwrap_err();
        prop_assert_eq!(e.details[0].field.as_str(), "config.port");
    }
}
