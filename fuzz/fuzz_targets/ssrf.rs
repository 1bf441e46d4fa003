//! Any URL or host spelling through the SSRF classifier: never a panic, and whatever address a
//! spelling denotes, a blocked range is reported the same for the URL and the bare address.
#![no_main]

use libfuzzer_sys::fuzz_target;
use connectors_core::ssrf::{blocked_range, literal_bare_host, literal_host, Guard};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let guard = Guard::new(Vec::new());
    if let Some(ip) = literal_bare_host(text) {
        assert_eq!(guard.check(ip).is_err(), blocked_range(ip).is_some());
    }
    if let Ok(url) = url::Url::parse(text) {
        if let Some(ip) = literal_host(&url) {
            let verdict = guard.check(ip);
            assert_eq!(verdict.is_err(), blocked_range(ip).is_some());
            if let Some(host) = url.host_str() {
                // The URL's host, read on its own, is the same address.
                if let Some(again) = literal_bare_host(host.trim_start_matches('[').trim_end_matches(']')) {
                    assert_eq!(guard.check(again).is_err(), verdict.is_err(), "{text}");
                }
            }
        }
    }
});
