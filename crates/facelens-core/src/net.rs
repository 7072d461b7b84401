//! IP networks: key allow-lists and bans (the store), trusted proxies and the URL fetcher's
//! allow-list (the server).
//!
//! In core because both the store and the URL fetcher need it and neither should depend on the
//! other. Written here rather than pulled from a crate because the needs are small: parse `a.b.c.d`,
//! `a.b.c.d/n`, `v6` and `v6/n`; test membership; and map a network to a 16-byte range so that
//! a ban can be looked up with one indexed range query in either database (both SQLite `BLOB`
//! and PostgreSQL `bytea` compare bytewise, so IPv4 networks stored as IPv4-mapped IPv6 ranges
//! sort and compare correctly next to real IPv6 ones).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Text that is not an IP address or CIDR network, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetParseError(pub String);

impl fmt::Display for NetParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NetParseError {}

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
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, NetParseError> {
        let addr = addr.to_canonical();
        let max = max_prefix(addr);
        // An IPv4-mapped IPv6 network like ::ffff:10.0.0.0/104 is the IPv4 network 10.0.0.0/8.
        if prefix > max {
            return Err(NetParseError(format!(
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
    type Err = NetParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || NetParseError(format!("not an IP address or CIDR network: {s:?}"));
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
}
