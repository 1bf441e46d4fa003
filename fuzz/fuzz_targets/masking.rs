//! Any authConfig object: masking never shows more than four characters of a value, and what a
//! client was shown, sent back, restores exactly what was stored.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use connectors_core::masking::{mask, restore_masked};

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Object(stored)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Value::Object(shown) = mask(&Value::Object(stored.clone())) else {
        panic!("an object masks to an object");
    };
    for v in shown.values() {
        if let Value::String(s) = v {
            assert!(s.chars().filter(|c| *c != '*').count() <= 4, "{s}");
        }
    }
    assert_eq!(restore_masked(shown, &stored), stored);
});
