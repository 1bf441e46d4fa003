//! Any request body through the create and update parsers: never a panic, and every refusal is a
//! 4xx that names a field or the body.
#![no_main]

use lambda_http::{Body, Request};
use libfuzzer_sys::fuzz_target;
use connectors_core::http::json_object;
use connectors_core::kinds::check_config;
use connectors_core::validate::{parse_create, parse_update};

fuzz_target!(|data: &[u8]| {
    let req = Request::new(Body::Binary(data.to_vec()));
    let body = match json_object(&req) {
        Ok(body) => body,
        Err(e) => {
            assert!(matches!(e.status, 400 | 413), "{e:?}");
            return;
        }
    };
    match parse_create(body.clone()) {
        Ok(new) => assert!(check_config(new.kind, &new.config, &[]).len() < 64),
        Err(e) => assert!(e.status == 400 && !e.details.is_empty(), "{e:?}"),
    }
    if let Err(e) = parse_update(body) {
        assert_eq!(e.status, 400, "{e:?}");
    }
});
