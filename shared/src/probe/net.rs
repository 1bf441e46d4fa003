//! Name resolution through the SSRF guard, and the pins that make HTTP connect only to checked addresses.

use super::report::{Failure, ProbeCode};
use super::ssrf::{literal_bare_host, Guard};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `PROBE_RESOLVE` (tests and local use only, never set in the template): `host:port` → the
/// address to use instead of a lookup, like curl's `--resolve` / `--connect-to`. The address
/// still goes through the guard.
#[derive(Debug, Clone, Default)]
pub struct Overrides(HashMap<(String, u16), SocketAddr>);

impl Overrides {
    /// `host:port:address[:port],…`; an IPv6 address in brackets (`[::1]:8443`).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut map = HashMap::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || format!("{entry:?} is not host:port:address[:port]");
            let (host, rest) = entry.split_once(':').ok_or_else(bad)?;
            let (port, to) = rest.split_once(':').ok_or_else(bad)?;
            let port: u16 = port.parse().map_err(|_| bad())?;
            let (ip, to_port) = match to.strip_prefix('[') {
                Some(v6) => {
                    let (ip, after) = v6.split_once(']').ok_or_else(bad)?;
                    (ip, after.strip_prefix(':'))
                }
                None => match to.split_once(':') {
                    Some((ip, p)) => (ip, Some(p)),
                    None => (to, None),
                },
            };
            let ip: IpAddr = ip.parse().map_err(|_| bad())?;
            let to_port = match to_port {
                Some(p) => p.parse().map_err(|_| bad())?,
                None => port,
            };
            map.insert(
                (host.to_ascii_lowercase(), port),
                SocketAddr::new(ip, to_port),
            );
        }
        Ok(Self(map))
    }

    fn get(&self, host: &str, port: u16) -> Option<SocketAddr> {
        if self.0.is_empty() {
            return None;
        }
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        self.0.get(&(host, port)).copied()
    }
}

/// Resolves `host:port` and checks every address; the caller connects only to what this returns.
pub async fn resolve_checked(
    guard: &Guard,
    overrides: &Overrides,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<(Vec<SocketAddr>, String), Failure> {
    if let Some(addr) = overrides.get(host, port) {
        return check_resolved(guard, host, vec![addr]);
    }
    let addrs: Vec<SocketAddr> = match literal_bare_host(host) {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        // Both loopback addresses, narrowed to those the allow-list lets in (if it lets any in):
        // a fixed answer, so no rebinding risk, and `PROBE_ALLOW_CIDRS=127.0.0.1` keeps working.
        None if is_loopback_name(host) => {
            let all = LOOPBACK.map(|ip| SocketAddr::new(ip, port));
            let allowed: Vec<_> = all
                .iter()
                .filter(|a| guard.check(a.ip()).is_ok())
                .copied()
                .collect();
            if allowed.is_empty() {
                all.to_vec()
            } else {
                allowed
            }
        }
        None => {
            let lookup = tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await;
            let mut addrs: Vec<SocketAddr> = match lookup {
                Err(_) => {
                    return Err(Failure::new(
                        ProbeCode::Timeout,
                        format!("resolving {host} timed out"),
                    ))
                }
                Ok(Err(_)) => {
                    return Err(Failure::new(
                        ProbeCode::DnsFailed,
                        format!("{host} does not resolve"),
                    ))
                }
                Ok(Ok(addrs)) => addrs.collect(),
            };
            addrs.dedup();
            addrs
        }
    };
    check_resolved(guard, host, addrs)
}

/// What a loopback name stands for, without asking DNS (whose answer for it we cannot trust).
const LOOPBACK: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// `localhost` and every `*.localhost` name (RFC 6761 §6.3), with or without the root dot, and
/// the loopback aliases common `/etc/hosts` files carry.
pub fn is_loopback_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || matches!(
            name.as_str(),
            "localhost.localdomain" | "ip6-localhost" | "ip6-loopback"
        )
}

/// Judges every address a name resolved to: one blocked address blocks the whole destination.
pub fn check_resolved(
    guard: &Guard,
    host: &str,
    addrs: Vec<SocketAddr>,
) -> Result<(Vec<SocketAddr>, String), Failure> {
    if addrs.is_empty() {
        return Err(Failure::new(
            ProbeCode::DnsFailed,
            format!("{host} has no address"),
        ));
    }
    let ips: Vec<_> = addrs.iter().map(SocketAddr::ip).collect();
    guard.check_all(&ips).map_err(|b| {
        Failure::new(
            ProbeCode::DestinationBlocked,
            format!("destination blocked: {host} resolves to {b}"),
        )
    })?;
    let list: Vec<String> = ips.iter().map(ToString::to_string).collect();
    Ok((addrs, format!("{host} → {}", list.join(", "))))
}

/// Host → checked addresses, read by the HTTP client instead of a DNS lookup of its own.
/// A host that was not checked does not resolve at all.
#[derive(Clone, Default)]
pub struct Pins(Arc<Mutex<HashMap<String, Pin>>>);

/// Checked addresses and when they were checked.
type Pin = (Vec<SocketAddr>, Instant);

/// How long a pin stays; longer than any probe.
const PIN_TTL: Duration = Duration::from_secs(120);

impl Pins {
    pub fn pin(&self, host: &str, addrs: Vec<SocketAddr>) {
        if let Ok(mut map) = self.0.lock() {
            let now = Instant::now();
            map.retain(|_, (_, at)| now.duration_since(*at) < PIN_TTL);
            map.insert(host.to_ascii_lowercase(), (addrs, now));
        }
    }

    fn get(&self, host: &str) -> Option<Vec<SocketAddr>> {
        self.0
            .lock()
            .ok()?
            .get(&host.to_ascii_lowercase())
            .map(|(a, _)| a.clone())
    }
}

impl reqwest::dns::Resolve for Pins {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let found = self.get(name.as_str());
        Box::pin(async move {
            match found {
                Some(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                None => Err("host was not checked by the SSRF guard".into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter()
            .map(|a| SocketAddr::new(a.parse().unwrap(), 443))
            .collect()
    }

    #[test]
    fn a_name_with_any_private_address_is_blocked() {
        let guard = Guard::default();
        assert!(check_resolved(
            &guard,
            "public.example",
            addrs(&["93.184.215.14", "2606:4700::1"])
        )
        .is_ok());
        let mixed = check_resolved(
            &guard,
            "rebind.example",
            addrs(&["93.184.215.14", "10.0.0.7"]),
        )
        .unwrap_err();
        assert_eq!(mixed.code, ProbeCode::DestinationBlocked);
        assert!(mixed.message.contains("10.0.0.0/8"), "{}", mixed.message);
        let private =
            check_resolved(&guard, "internal.example", addrs(&["192.168.1.1"])).unwrap_err();
        assert_eq!(private.code, ProbeCode::DestinationBlocked);
        assert_eq!(
            check_resolved(&guard, "empty.example", vec![])
                .unwrap_err()
                .code,
            ProbeCode::DnsFailed
        );
    }

    #[test]
    fn loopback_names_resolve_to_loopback_without_dns_and_are_blocked() {
        for name in [
            "localhost",
            "localhost.",
            "LocalHost",
            "foo.localhost",
            "a.b.localhost.",
            "localhost.localdomain",
            "ip6-localhost",
            "ip6-loopback",
        ] {
            assert!(is_loopback_name(name), "{name}");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let blocked = rt
                .block_on(resolve_checked(
                    &Guard::default(),
                    &Overrides::default(),
                    name,
                    80,
                    Duration::from_secs(1),
                ))
                .unwrap_err();
            assert_eq!(blocked.code, ProbeCode::DestinationBlocked, "{name}");
            let both = Guard::from_allow_list("127.0.0.0/8,::1/128").unwrap();
            let (addrs, _) = rt
                .block_on(resolve_checked(
                    &both,
                    &Overrides::default(),
                    name,
                    80,
                    Duration::from_secs(1),
                ))
                .unwrap();
            assert_eq!(addrs, addrs_port(&["127.0.0.1", "::1"], 80), "{name}");
            let v4 = Guard::from_allow_list("127.0.0.1").unwrap();
            let (addrs, _) = rt
                .block_on(resolve_checked(
                    &v4,
                    &Overrides::default(),
                    name,
                    80,
                    Duration::from_secs(1),
                ))
                .unwrap();
            assert_eq!(addrs, addrs_port(&["127.0.0.1"], 80), "{name}");
        }
        for name in [
            "localhostx",
            "notlocalhost",
            "localhost.example.com",
            "example.com",
        ] {
            assert!(!is_loopback_name(name), "{name}");
        }
    }

    fn addrs_port(list: &[&str], port: u16) -> Vec<SocketAddr> {
        list.iter()
            .map(|a| SocketAddr::new(a.parse().unwrap(), port))
            .collect()
    }

    #[test]
    fn unpinned_hosts_do_not_resolve() {
        use reqwest::dns::Resolve;
        let pins = Pins::default();
        pins.pin("Api.Example.com", addrs(&["93.184.215.14"]));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let found = rt
            .block_on(pins.resolve("api.example.com".parse().unwrap()))
            .map(|a| a.collect::<Vec<_>>());
        assert_eq!(found.unwrap(), addrs(&["93.184.215.14"]));
        assert!(rt
            .block_on(pins.resolve("other.example.com".parse().unwrap()))
            .is_err());
    }

    #[test]
    fn overrides_parse_like_curl_resolve() {
        let o = Overrides::parse("api.hubapi.com:443:127.0.0.1:18443, x.example:80:[::1]").unwrap();
        assert_eq!(
            o.get("API.hubapi.com.", 443),
            Some("127.0.0.1:18443".parse().unwrap())
        );
        assert_eq!(o.get("x.example", 80), Some("[::1]:80".parse().unwrap()));
        assert_eq!(o.get("api.hubapi.com", 80), None);
        for bad in [
            "a.example",
            "a.example:443",
            "a.example:x:1.2.3.4",
            "a:1:nope",
            "a:1:[::1",
        ] {
            assert!(Overrides::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_override_still_goes_through_the_guard() {
        let o = Overrides::parse("db.example:5432:10.0.0.5").unwrap();
        let r = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(resolve_checked(
                &Guard::default(),
                &o,
                "db.example",
                5432,
                Duration::from_secs(1),
            ));
        assert_eq!(r.unwrap_err().code, ProbeCode::DestinationBlocked);
    }
}
