//! The SSRF guard: which addresses a probe may connect to. Pure functions, no I/O.
//!
//! Every address a destination resolves to is judged; one blocked address blocks the destination.
//! Blocked are the IANA special-purpose ranges that are not globally reachable, and IPv6 forms that
//! embed an IPv4 address are judged by that address. `PROBE_ALLOW_CIDRS` is the only way in.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A destination refused by the guard, naming the range that refused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub addr: IpAddr,
    pub range: &'static str,
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is in a blocked range ({})", self.addr, self.range)
    }
}

/// The guard with its allow-list (empty by default).
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allow: Vec<IpNet>,
}

impl Guard {
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// Parses a comma list of CIDRs or single addresses (`PROBE_ALLOW_CIDRS`).
    pub fn from_allow_list(list: &str) -> Result<Self, String> {
        let allow = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{s:?} is not a CIDR or an IP address"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { allow })
    }

    /// Allows or blocks one address.
    pub fn check(&self, addr: IpAddr) -> Result<(), Blocked> {
        let canonical = canonical(addr);
        if self
            .allow
            .iter()
            .any(|net| net.contains(&addr) || net.contains(&canonical))
        {
            return Ok(());
        }
        match blocked_range(addr) {
            Some(range) => Err(Blocked { addr, range }),
            None => Ok(()),
        }
    }

    /// Allows a destination only when every one of its addresses is allowed.
    pub fn check_all(&self, addrs: &[IpAddr]) -> Result<(), Blocked> {
        addrs.iter().try_for_each(|a| self.check(*a))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is; anything else unchanged.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// The name of the non-global range holding `addr`, if any.
pub fn blocked_range(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

const V4_BLOCKED: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "0.0.0.0/8 this network"),
    ([10, 0, 0, 0], 8, "10.0.0.0/8 private"),
    (
        [100, 64, 0, 0],
        10,
        "100.64.0.0/10 shared address space (CGNAT)",
    ),
    ([127, 0, 0, 0], 8, "127.0.0.0/8 loopback"),
    (
        [169, 254, 0, 0],
        16,
        "169.254.0.0/16 link-local (cloud metadata)",
    ),
    ([172, 16, 0, 0], 12, "172.16.0.0/12 private"),
    ([192, 0, 0, 0], 24, "192.0.0.0/24 IETF protocol assignments"),
    (
        [192, 0, 2, 0],
        24,
        "192.0.2.0/24 documentation (TEST-NET-1)",
    ),
    ([192, 88, 99, 0], 24, "192.88.99.0/24 6to4 relay anycast"),
    ([192, 168, 0, 0], 16, "192.168.0.0/16 private"),
    ([198, 18, 0, 0], 15, "198.18.0.0/15 benchmarking"),
    (
        [198, 51, 100, 0],
        24,
        "198.51.100.0/24 documentation (TEST-NET-2)",
    ),
    (
        [203, 0, 113, 0],
        24,
        "203.0.113.0/24 documentation (TEST-NET-3)",
    ),
    ([224, 0, 0, 0], 4, "224.0.0.0/4 multicast"),
    (
        [255, 255, 255, 255],
        32,
        "255.255.255.255/32 limited broadcast",
    ),
    ([240, 0, 0, 0], 4, "240.0.0.0/4 reserved"),
];

fn blocked_v4(addr: Ipv4Addr) -> Option<&'static str> {
    let bits = u32::from(addr);
    V4_BLOCKED
        .iter()
        .find(|(net, len, _)| prefix_match32(bits, u32::from_be_bytes(*net), *len))
        .map(|(_, _, name)| *name)
}

fn prefix_match32(addr: u32, net: u32, len: u8) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    addr & mask == net & mask
}

fn prefix_match128(addr: u128, net: u128, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    addr & mask == net & mask
}

const fn v6(segments: [u16; 8]) -> u128 {
    let mut out = 0u128;
    let mut i = 0;
    while i < 8 {
        out = (out << 16) | segments[i] as u128;
        i += 1;
    }
    out
}

/// Ranges blocked outright (after the embedded-IPv4 forms are handled).
const V6_BLOCKED: &[(u128, u8, &str)] = &[
    (
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0]),
        48,
        "64:ff9b:1::/48 local-use NAT64",
    ),
    (
        v6([0x100, 0, 0, 0, 0, 0, 0, 0]),
        64,
        "100::/64 discard-only",
    ),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]),
        32,
        "2001:db8::/32 documentation",
    ),
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0]),
        23,
        "2001::/23 IETF protocol assignments",
    ),
    (
        v6([0x3fff, 0, 0, 0, 0, 0, 0, 0]),
        20,
        "3fff::/20 documentation",
    ),
    (
        v6([0x5f00, 0, 0, 0, 0, 0, 0, 0]),
        16,
        "5f00::/16 segment routing SIDs",
    ),
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0]),
        7,
        "fc00::/7 unique local",
    ),
    (
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0]),
        10,
        "fe80::/10 link-local",
    ),
    (
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0]),
        10,
        "fec0::/10 site-local",
    ),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0]), 8, "ff00::/8 multicast"),
];

fn blocked_v6(addr: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(addr);
    if addr.is_unspecified() {
        return Some("::/128 unspecified");
    }
    if addr.is_loopback() {
        return Some("::1/128 loopback");
    }
    if let Some(embedded) = embedded_v4(bits) {
        return embedded.into_iter().find_map(blocked_v4);
    }
    V6_BLOCKED
        .iter()
        .find(|(net, len, _)| prefix_match128(bits, *net, *len))
        .map(|(_, _, name)| *name)
}

/// The IPv4 addresses an IPv6 address carries, for the forms that carry one:
/// IPv4-mapped (::ffff:0:0/96), IPv4-translated (::ffff:0:0:0/96, SIIT: RFC 2765/6145),
/// IPv4-compatible (::/96), NAT64 (64:ff9b::/96), 6to4 (2002::/16) and Teredo (2001::/32: server
/// and de-obfuscated client).
fn embedded_v4(bits: u128) -> Option<Vec<Ipv4Addr>> {
    let low32 = Ipv4Addr::from(bits as u32);
    if prefix_match128(bits, v6([0, 0, 0, 0, 0, 0xffff, 0, 0]), 96)
        || prefix_match128(bits, v6([0, 0, 0, 0, 0xffff, 0, 0, 0]), 96)
        || prefix_match128(bits, 0, 96)
        || prefix_match128(bits, v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0]), 96)
    {
        return Some(vec![low32]);
    }
    if prefix_match128(bits, v6([0x2002, 0, 0, 0, 0, 0, 0, 0]), 16) {
        return Some(vec![Ipv4Addr::from((bits >> 80) as u32)]);
    }
    if prefix_match128(bits, v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 32) {
        let server = Ipv4Addr::from((bits >> 64) as u32);
        let client = Ipv4Addr::from(!(bits as u32));
        return Some(vec![server, client]);
    }
    None
}

/// The IP address a URL names literally, after WHATWG host parsing (so `0x7f.1`, `2130706433`,
/// `0177.0.0.1` and `%31%32%37.0.0.1` are all 127.0.0.1), or None for a domain name.
pub fn literal_host(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// The same for a bare host (the `host` config field), parsed as a URL host would be.
pub fn literal_bare_host(host: &str) -> Option<IpAddr> {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    match url::Host::parse(host).ok()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// (address, blocked?) — every special-purpose range, both edges where it matters, and public neighbours.
    const ADDRESSES: &[(&str, bool)] = &[
        ("0.0.0.0", true),
        ("0.255.255.255", true),
        ("10.0.0.1", true),
        ("10.255.255.255", true),
        ("11.0.0.1", false),
        ("100.63.255.255", false),
        ("100.64.0.1", true),
        ("100.127.255.255", true),
        ("100.128.0.0", false),
        ("127.0.0.1", true),
        ("127.255.255.254", true),
        ("169.254.169.254", true),
        ("169.254.0.1", true),
        ("169.255.0.1", false),
        ("172.15.255.255", false),
        ("172.16.0.1", true),
        ("172.31.255.255", true),
        ("172.32.0.0", false),
        ("192.0.0.1", true),
        ("192.0.0.255", true),
        ("192.0.1.1", false),
        ("192.0.2.1", true),
        ("192.88.99.1", true),
        ("192.167.255.255", false),
        ("192.168.0.1", true),
        ("192.168.255.255", true),
        ("192.169.0.0", false),
        ("198.17.255.255", false),
        ("198.18.0.1", true),
        ("198.19.255.255", true),
        ("198.20.0.0", false),
        ("198.51.100.7", true),
        ("203.0.113.9", true),
        ("203.0.114.1", false),
        ("224.0.0.1", true),
        ("239.255.255.255", true),
        ("240.0.0.1", true),
        ("255.255.255.255", true),
        ("8.8.8.8", false),
        ("1.1.1.1", false),
        ("93.184.215.14", false),
        ("223.255.255.255", false),
        ("::", true),
        ("::1", true),
        ("::ffff:127.0.0.1", true),
        ("::ffff:10.1.2.3", true),
        ("::ffff:169.254.169.254", true),
        ("::ffff:8.8.8.8", false),
        ("::ffff:0:7f00:1", true),
        ("::ffff:0:a00:1", true),
        ("::ffff:0:a9fe:a9fe", true),
        ("::ffff:0:808:808", false),
        ("::127.0.0.1", true),
        ("::8.8.8.8", false),
        ("::2", true),
        ("64:ff9b::7f00:1", true),
        ("64:ff9b::a9fe:a9fe", true),
        ("64:ff9b::808:808", false),
        ("64:ff9b:1::808:808", true),
        ("100::1", true),
        ("2001:db8::1", true),
        ("2001:db8:ffff::1", true),
        ("2001:2::1", true),
        ("2001:10::1", true),
        ("2002:7f00:1::1", true),
        ("2002:a00:1::", true),
        ("2002:808:808::1", false),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", true),
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", false),
        ("2001:0:7f00:1:8000:63bf:f7f7:f7f7", true),
        ("3fff::1", true),
        ("5f00::1", true),
        ("fc00::1", true),
        ("fd12:3456:789a::1", true),
        ("fe80::1", true),
        ("febf::1", true),
        ("fec0::1", true),
        ("ff02::1", true),
        ("ff05::2", true),
        ("2606:4700:4700::1111", false),
        ("2001:4860:4860::8888", false),
        ("2a00:1450:4001::1", false),
    ];

    #[test]
    fn address_table() {
        let guard = Guard::default();
        for (addr, blocked) in ADDRESSES {
            let result = guard.check(ip(addr));
            assert_eq!(result.is_err(), *blocked, "{addr}: {result:?}");
        }
    }

    /// (url, literal address after normalization, blocked?) — the spellings attackers use.
    const URLS: &[(&str, Option<&str>, bool)] = &[
        ("http://127.0.0.1/", Some("127.0.0.1"), true),
        ("http://2130706433/", Some("127.0.0.1"), true),
        ("http://0x7f000001/", Some("127.0.0.1"), true),
        ("http://0x7f.0x0.0x0.0x1/", Some("127.0.0.1"), true),
        ("http://0177.0.0.1/", Some("127.0.0.1"), true),
        ("http://0177.1/", Some("127.0.0.1"), true),
        ("http://127.1/", Some("127.0.0.1"), true),
        ("http://127.0.1/", Some("127.0.0.1"), true),
        ("http://%31%32%37.0.0.1/", Some("127.0.0.1"), true),
        ("http://0/", Some("0.0.0.0"), true),
        ("http://0x0/", Some("0.0.0.0"), true),
        (
            "http://169.254.169.254/latest/meta-data/",
            Some("169.254.169.254"),
            true,
        ),
        ("http://0xa9fea9fe/", Some("169.254.169.254"), true),
        ("http://2852039166/", Some("169.254.169.254"), true),
        ("http://0251.0376.0251.0376/", Some("169.254.169.254"), true),
        (
            "http://[::ffff:169.254.169.254]/",
            Some("::ffff:a9fe:a9fe"),
            true,
        ),
        ("http://[::ffff:a9fe:a9fe]/", Some("::ffff:a9fe:a9fe"), true),
        ("http://[::1]:8080/", Some("::1"), true),
        ("http://[0:0:0:0:0:0:0:1]/", Some("::1"), true),
        ("http://[fd00::1]/", Some("fd00::1"), true),
        ("http://[fe80::1%25eth0]/", None, true),
        ("http://10.0.0.1:8080/x", Some("10.0.0.1"), true),
        ("http://012.0.0.1/", Some("10.0.0.1"), true),
        ("http://192.168.1.1/", Some("192.168.1.1"), true),
        ("http://3232235777/", Some("192.168.1.1"), true),
        ("http://0xc0.0xa8.1.1/", Some("192.168.1.1"), true),
        ("http://100.100.100.200/", Some("100.100.100.200"), true),
        (
            "http://[64:ff9b::a9fe:a9fe]/",
            Some("64:ff9b::a9fe:a9fe"),
            true,
        ),
        ("http://[2002:a9fe:a9fe::]/", Some("2002:a9fe:a9fe::"), true),
        ("http://8.8.8.8/", Some("8.8.8.8"), false),
        ("http://134744072/", Some("8.8.8.8"), false),
        ("http://0x8.0x8.0x8.0x8/", Some("8.8.8.8"), false),
        (
            "https://[2606:4700:4700::1111]/",
            Some("2606:4700:4700::1111"),
            false,
        ),
        ("https://example.com/", None, false),
        ("https://xn--nxasmq6b.example/", None, false),
        ("https://ⓔⓧⓐⓜⓟⓛⓔ.com/", None, false),
        ("http://１２７.０.０.１/", Some("127.0.0.1"), true),
        ("http://127。0。0。1/", Some("127.0.0.1"), true),
    ];

    #[test]
    fn url_spellings_are_normalized_before_checking() {
        let guard = Guard::default();
        for (raw, literal, blocked) in URLS {
            let parsed = url::Url::parse(raw);
            let Ok(parsed) = parsed else {
                // Unparseable URLs never reach the network; the zone-id form is one of them.
                assert!(
                    *blocked,
                    "{raw} does not parse but was expected to be allowed"
                );
                continue;
            };
            let host = literal_host(&parsed);
            assert_eq!(host, literal.map(ip), "{raw}");
            if let Some(addr) = host {
                assert_eq!(guard.check(addr).is_err(), *blocked, "{raw}");
            }
        }
    }

    #[test]
    fn bare_hosts_use_the_same_parser() {
        assert_eq!(literal_bare_host("0x7f.1"), Some(ip("127.0.0.1")));
        assert_eq!(literal_bare_host("2130706433"), Some(ip("127.0.0.1")));
        assert_eq!(literal_bare_host("[::1]"), Some(ip("::1")));
        assert_eq!(
            literal_bare_host("::ffff:10.0.0.1"),
            Some(ip("::ffff:10.0.0.1"))
        );
        assert_eq!(literal_bare_host("db.example.com"), None);
    }

    #[test]
    fn one_blocked_address_blocks_the_destination() {
        let guard = Guard::default();
        assert!(guard.check_all(&[ip("8.8.8.8"), ip("1.1.1.1")]).is_ok());
        let e = guard
            .check_all(&[ip("8.8.8.8"), ip("10.0.0.5")])
            .unwrap_err();
        assert_eq!(e.addr, ip("10.0.0.5"));
        assert!(e.to_string().contains("10.0.0.0/8 private"), "{e}");
    }

    #[test]
    fn the_allow_list_is_the_only_way_in() {
        let guard = Guard::from_allow_list("127.0.0.2, 10.1.0.0/16").unwrap();
        assert!(guard.check(ip("127.0.0.2")).is_ok());
        assert!(
            guard.check(ip("::ffff:127.0.0.2")).is_ok(),
            "mapped form of an allowed address"
        );
        assert!(guard.check(ip("127.0.0.1")).is_err());
        assert!(guard.check(ip("10.1.200.3")).is_ok());
        assert!(guard.check(ip("10.2.0.1")).is_err());
        assert!(Guard::from_allow_list("")
            .unwrap()
            .check(ip("127.0.0.1"))
            .is_err());
        assert!(Guard::from_allow_list("not-a-cidr").is_err());
    }
}
