//! IP networks (for allow-lists and bans) and referer patterns.
//!
//! Written here rather than pulled from a crate because the needs are small: parse `a.b.c.d`,
//! `a.b.c.d/n`, `v6` and `v6/n`; test membership; and map a network to a 16-byte range so that
//! a ban can be looked up with one indexed range query in either database (both SQLite `BLOB`
//! and PostgreSQL `bytea` compare bytewise, so IPv4 networks stored as IPv4-mapped IPv6 ranges
//! sort and compare correctly next to real IPv6 ones).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::StoreError;

/// An IP network: an address and a prefix length, host bits cleared. A single address is a
/// network with a full-length prefix (`/32` or `/128`) and displays without the suffix.
/// IPv4-mapped IPv6 input (`::ffff:1.2.3.4`) is normalised to IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// A network from an address and a prefix length; host bits are cleared.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, StoreError> {
        let addr = addr.to_canonical();
        let max = max_prefix(addr);
        // An IPv4-mapped IPv6 network like ::ffff:10.0.0.0/104 is the IPv4 network 10.0.0.0/8.
        if prefix > max {
            return Err(StoreError::invalid(format!(
                "prefix /{prefix} is longer than /{max} for {addr}"
            )));
        }
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = mask32(prefix);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = mask128(prefix);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Ok(Self { addr, prefix })
    }

    /// The network holding exactly `ip`.
    pub fn host(ip: IpAddr) -> Self {
        let addr = ip.to_canonical();
        Self {
            addr,
            prefix: max_prefix(addr),
        }
    }

    /// The network address (host bits cleared).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in this network. IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask32(self.prefix);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask128(self.prefix);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }

    /// First and last address of the network as 16 bytes (IPv4 as IPv4-mapped IPv6). A range
    /// query on these finds candidate networks; [`IpNet::contains`] has the last word (an IPv6
    /// network such as `::/0` spans the IPv4-mapped block in byte space but holds no IPv4 address).
    pub fn range16(&self) -> ([u8; 16], [u8; 16]) {
        let (lo, mask) = match self.addr {
            IpAddr::V4(a) => (u128::from(a.to_ipv6_mapped()), mask128(96 + self.prefix)),
            IpAddr::V6(a) => (u128::from(a), mask128(self.prefix)),
        };
        let hi = lo | !mask;
        (lo.to_be_bytes(), hi.to_be_bytes())
    }
}

/// The 16-byte form of an address used for range lookups (see [`IpNet::range16`]).
pub fn ip16(ip: IpAddr) -> [u8; 16] {
    match ip.to_canonical() {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

fn mask128(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

impl FromStr for IpNet {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || StoreError::invalid(format!("not an IP address or CIDR network: {s:?}"));
        match s.split_once('/') {
            None => s.parse::<IpAddr>().map(IpNet::host).map_err(|_| bad()),
            Some((a, p)) => {
                let addr: IpAddr = a.parse().map_err(|_| bad())?;
                let mut prefix: u8 = p.parse().map_err(|_| bad())?;
                // ::ffff:a.b.c.d/n with n >= 96 means the IPv4 network a.b.c.d/(n-96).
                if let IpAddr::V6(v6) = addr
                    && v6.to_ipv4_mapped().is_some()
                    && (96..=128).contains(&prefix)
                {
                    prefix -= 96;
                }
                IpNet::new(addr, prefix)
            }
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == max_prefix(self.addr) {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Validate a referer pattern for a key's allow-list. Accepted forms:
/// - `example.com`: that host exactly (any scheme, port and path);
/// - `*.example.com`: any subdomain of example.com (not example.com itself);
/// - `https://example.com/app/`: a URL prefix (compared case-insensitively on scheme and host).
pub fn validate_referer_pattern(p: &str) -> Result<String, StoreError> {
    let p = p.trim();
    let bad = |why: &str| StoreError::invalid(format!("bad referer pattern {p:?}: {why}"));
    if p.is_empty() {
        return Err(bad("empty"));
    }
    if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace"));
    }
    if p.contains("://") {
        return Ok(p.to_string());
    }
    let host = p.strip_prefix("*.").unwrap_or(p);
    if host.is_empty() || host.contains(['/', '*', '?', '#', '@']) {
        return Err(bad("expected a host, *.host or a URL prefix"));
    }
    Ok(p.to_ascii_lowercase())
}

/// The host of a referer URL, lowercased, without userinfo and port; `None` if there is none.
pub fn referer_host(referer: &str) -> Option<String> {
    let rest = referer.trim();
    let rest = match rest.find("://") {
        Some(i) => &rest[i + 3..],
        None => rest.strip_prefix("//").unwrap_or(rest),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split_once(']').map(|(h, _)| h)?
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    let host = host.trim_end_matches('.');
    if host.is_empty() {
        None
    } else {
        Some(host.to_ascii_lowercase())
    }
}

/// Whether a request's referer passes a key's referer allow-list. An empty list allows
/// everything, including no referer; a non-empty list requires a referer that matches one
/// pattern (see [`validate_referer_pattern`]).
pub fn referer_allowed(patterns: &[String], referer: Option<&str>) -> bool {
    if patterns.is_empty() {
        return true;
    }
    let Some(referer) = referer.map(str::trim).filter(|r| !r.is_empty()) else {
        return false;
    };
    let host = referer_host(referer);
    patterns.iter().any(|p| {
        if p.contains("://") {
            url_prefix_matches(p, referer)
        } else if let Some(suffix) = p.strip_prefix("*.") {
            host.as_deref().is_some_and(|h| {
                h.len() > suffix.len() + 1
                    && h.ends_with(suffix)
                    && h.as_bytes()[h.len() - suffix.len() - 1] == b'.'
            })
        } else {
            host.as_deref() == Some(p.as_str())
        }
    })
}

/// `referer` starts with `prefix`, scheme and host compared case-insensitively, path exactly.
fn url_prefix_matches(prefix: &str, referer: &str) -> bool {
    fn split(u: &str) -> (String, &str) {
        let after_scheme = u.find("://").map_or(0, |i| i + 3);
        let path_start = u[after_scheme..]
            .find(['/', '?', '#'])
            .map_or(u.len(), |i| after_scheme + i);
        (u[..path_start].to_ascii_lowercase(), &u[path_start..])
    }
    let (p_origin, p_path) = split(prefix);
    let (r_origin, r_path) = split(referer);
    p_origin == r_origin && r_path.starts_with(p_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect(s)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect(s)
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(net("1.2.3.4").to_string(), "1.2.3.4");
        assert_eq!(net("1.2.3.4/24").to_string(), "1.2.3.0/24");
        assert_eq!(net("1.2.3.4/32").to_string(), "1.2.3.4");
        assert_eq!(net("::ffff:1.2.3.4").to_string(), "1.2.3.4");
        assert_eq!(net("::ffff:10.1.2.3/104").to_string(), "10.0.0.0/8");
        assert_eq!(net("2001:db8::1/32").to_string(), "2001:db8::/32");
        assert_eq!(net("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert!("1.2.3.4/33".parse::<IpNet>().is_err());
        assert!("1.2.3/8".parse::<IpNet>().is_err());
        assert!("2001:db8::/129".parse::<IpNet>().is_err());
        assert!("".parse::<IpNet>().is_err());
        assert!("x/1".parse::<IpNet>().is_err());
    }

    #[test]
    fn contains() {
        assert!(net("10.0.0.0/8").contains(ip("10.200.3.4")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(net("10.0.0.0/8").contains(ip("::ffff:10.0.0.1")));
        assert!(net("1.2.3.4").contains(ip("1.2.3.4")));
        assert!(!net("1.2.3.4").contains(ip("1.2.3.5")));
        assert!(net("2001:db8::/32").contains(ip("2001:db8:1::1")));
        assert!(!net("2001:db8::/32").contains(ip("2001:db9::1")));
        assert!(!net("0.0.0.0/0").contains(ip("::1")));
        assert!(net("0.0.0.0/0").contains(ip("255.255.255.255")));
    }

    #[test]
    fn ranges_are_consistent_with_contains() {
        for (n, inside, outside) in [
            ("10.0.0.0/8", "10.1.2.3", "11.0.0.0"),
            ("1.2.3.4", "1.2.3.4", "1.2.3.5"),
            ("0.0.0.0/0", "200.1.1.1", "::1"),
            ("2001:db8::/32", "2001:db8:ffff::", "2001:db9::"),
            ("::/0", "::1", "1.1.1.1"),
        ] {
            let (lo, hi) = net(n).range16();
            let a = ip16(ip(inside));
            let b = ip16(ip(outside));
            assert!(lo <= a && a <= hi, "{n} {inside}");
            // In byte space ::/0 also spans the IPv4-mapped range: a range lookup only finds
            // candidates, and the store confirms each with contains().
            if n != "::/0" {
                assert!(!(lo <= b && b <= hi), "{n} {outside}");
            }
        }
    }

    #[test]
    fn referers() {
        let pats: Vec<String> = ["example.com", "*.example.org", "https://app.test/path/"]
            .iter()
            .map(|p| validate_referer_pattern(p).expect(p))
            .collect();
        let ok = |r: &str| referer_allowed(&pats, Some(r));
        assert!(ok("https://example.com/x"));
        assert!(ok("http://EXAMPLE.com:8080"));
        assert!(ok("https://user@example.com/"));
        assert!(!ok("https://example.com.evil.net/"));
        assert!(!ok("https://notexample.com/"));
        assert!(ok("https://a.example.org/"));
        assert!(ok("https://a.b.example.org/"));
        assert!(!ok("https://example.org/"));
        assert!(!ok("https://evilexample.org/"));
        assert!(ok("https://APP.test/path/page?q=1"));
        assert!(!ok("https://app.test/other"));
        assert!(!ok("http://app.test/path/"));
        assert!(!ok(""));
        assert!(!referer_allowed(&pats, None));
        assert!(referer_allowed(&[], None));
        assert!(validate_referer_pattern("").is_err());
        assert!(validate_referer_pattern("a b").is_err());
        assert!(validate_referer_pattern("*.").is_err());
        assert!(validate_referer_pattern("ex.com/path").is_err());
        assert_eq!(referer_host("https://[::1]:80/x").as_deref(), Some("::1"));
        assert_eq!(
            referer_host("example.com/x").as_deref(),
            Some("example.com")
        );
        assert_eq!(referer_host("https:///x"), None);
    }
}
