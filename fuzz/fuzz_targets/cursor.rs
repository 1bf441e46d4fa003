//! Any query string's `limit` and `cursor`: never a panic; what is accepted is a page size from 1
//! to 100 and a well-formed connector id (it becomes a DynamoDB ExclusiveStartKey).
#![no_main]

use libfuzzer_sys::fuzz_target;
use connectors_core::paging::{parse_cursor, parse_limit};
use connectors_core::ids::is_connector_id;

fuzz_target!(|data: &[u8]| {
    for (k, v) in url::form_urlencoded::parse(data) {
        match k.as_ref() {
            "limit" => {
                if let Ok(n) = parse_limit(Some(&v)) {
                    assert!((1..=100).contains(&n));
                }
            }
            _ => match parse_cursor(Some(v.to_string())) {
                Ok(Some(c)) => assert!(is_connector_id(&c) && c.len() == 31, "{c:?}"),
                Ok(None) => unreachable!(),
                Err(e) => assert_eq!(e.code, "invalid_cursor"),
            },
        }
    }
});
