//! Fetching a user's image URL (`image_type=2`) without becoming a proxy into the private
//! network (SSRF).
//!
//! The rules, all enforced here:
//! - http and https only;
//! - every address a host name resolves to is checked, and the connection goes to the checked
//!   addresses only (our resolver is the one the client connects with, so a DNS answer cannot
//!   change between the check and the connect); IP literals, which skip DNS, are checked from the
//!   URL itself (the URL parser has already turned decimal, octal and hex spellings into
//!   addresses);
//! - refused: loopback, private, shared (CGNAT), link-local (cloud metadata lives there),
//!   multicast, broadcast, unspecified, documentation and reserved ranges, unique-local and
//!   site-local IPv6, and IPv4-mapped / NAT64 / 6to4 forms of any of those;
//! - the same checks on every redirect, at most `max_redirects` of them;
//! - connect and total timeouts; the body is capped while it streams, not after;
//! - no proxy from the environment (it would bypass the address checks).
//!
//! Networks in `allow` are exempt, so that tests and on-premises set-ups can serve images from
//! their own hosts.

use bytes::BytesMut;
use facelens_core::ErrorCode;
use facelens_core::error::FaceError;
use facelens_core::net::IpNet;
use futures_util::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Settings of the fetcher.
#[derive(Debug, Clone, Default)]
pub struct FetchConfig {
    pub allow: Vec<IpNet>,
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
    pub max_redirects: usize,
    pub max_bytes: usize,
    /// Resolve host names with this instead of the system resolver. The service never sets
    /// it; the SSRF suite does, to play a DNS server whose answers change between lookups.
    pub lookup: Option<Lookup>,
}

/// A host-name resolver function: the addresses of a name, or an error message.
pub type LookupFn = dyn Fn(&str) -> Result<Vec<IpAddr>, String> + Send + Sync;

/// A host-name resolver replacing the system's.
#[derive(Clone)]
pub struct Lookup(pub Arc<LookupFn>);

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lookup(..)")
    }
}

/// An address refused by the policy (carried through reqwest's error chain).
#[derive(Debug, thiserror::Error)]
#[error("address {0} is not allowed")]
struct Refused(String);

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let seg = ip.segments();
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) embed an IPv4 address: judge that one.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        let v4 = Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        );
        return is_public_v4(v4);
    }
    if seg[0] == 0x2002 {
        let v4 = Ipv4Addr::new(
            (seg[1] >> 8) as u8,
            seg[1] as u8,
            (seg[2] >> 8) as u8,
            seg[2] as u8,
        );
        return is_public_v4(v4);
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local
        || (seg[0] & 0xffc0) == 0xfe80 // link local
        || (seg[0] & 0xffc0) == 0xfec0 // site local (deprecated)
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || (seg[0] == 0 && seg[1..6] == [0, 0, 0, 0, 0])) // IPv4-compatible, ::/96
}

/// The policy: public, or inside an allowed network.
#[derive(Debug, Clone)]
struct Policy {
    allow: Arc<Vec<IpNet>>,
}

impl Policy {
    fn permits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        is_public(ip) || self.allow.iter().any(|n| n.contains(ip))
    }

    /// Check a URL before it is requested: scheme and, for IP literals, the address.
    fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        match url.scheme() {
            "http" | "https" => {}
            s => return Err(format!("scheme {s:?} is not allowed (http and https only)")),
        }
        match url.host() {
            None => Err("the URL has no host".into()),
            Some(url::Host::Ipv4(ip)) if !self.permits(IpAddr::V4(ip)) => {
                Err(format!("address {ip} is not public"))
            }
            Some(url::Host::Ipv6(ip)) if !self.permits(IpAddr::V6(ip)) => {
                Err(format!("address {ip} is not public"))
            }
            Some(_) => Ok(()),
        }
    }
}

/// The resolver the client connects through: resolves, then keeps only permitted addresses.
struct CheckingResolver {
    policy: Policy,
    lookup: Option<Lookup>,
}

impl Resolve for CheckingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let lookup = self.lookup.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = match lookup {
                Some(Lookup(f)) => f(&host)?
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, 0))
                    .collect(),
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            if addrs.is_empty() {
                return Err(format!("{host} has no address").into());
            }
            // Refuse the name if any answer is refused: a name that points into private space
            // at all is not one we fetch from.
            if let Some(bad) = addrs.iter().find(|a| !policy.permits(a.ip())) {
                return Err(Box::new(Refused(format!("{} (of {host})", bad.ip())))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            let it: Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

/// Install the process-wide TLS crypto provider (ring) that HTTP clients built with this
/// crate's reqwest need; installing twice is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The URL fetcher.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: Policy,
    cfg: FetchConfig,
}

impl Fetcher {
    pub fn new(cfg: FetchConfig) -> Result<Self, String> {
        install_crypto_provider();
        let policy = Policy {
            allow: Arc::new(cfg.allow.clone()),
        };
        let redirect_policy = {
            let policy = policy.clone();
            let max = cfg.max_redirects;
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > max {
                    return attempt.error(Refused(format!("more than {max} redirects")));
                }
                match policy.check_url(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(why) => attempt.error(Refused(why)),
                }
            })
        };
        let client = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(Arc::new(CheckingResolver {
                policy: policy.clone(),
                lookup: cfg.lookup.clone(),
            }))
            .redirect(redirect_policy)
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.total_timeout)
            .user_agent(concat!("facelens/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            policy,
            cfg,
        })
    }

    /// Download `url` under the policy; the error codes are the contract's 200211..200214.
    pub async fn fetch(&self, url: &str) -> Result<Vec<u8>, FaceError> {
        let parsed = reqwest::Url::parse(url.trim()).map_err(|e| {
            FaceError::new(
                ErrorCode::UrlDownloadFailed,
                format!("not a valid URL: {e}"),
            )
        })?;
        self.policy
            .check_url(&parsed)
            .map_err(|why| FaceError::new(ErrorCode::UrlNotAllowed, why))?;
        let deadline = tokio::time::Instant::now() + self.cfg.total_timeout;
        let resp = self
            .client
            .get(parsed)
            .send()
            .await
            .map_err(|e| map_error(&e))?;
        let status = resp.status();
        // A redirect reqwest did not follow: its target is not http(s) (file:, ftp:, ...), which
        // the client never fetches. A refusal, not a failed download.
        if status.is_redirection() && resp.headers().contains_key(reqwest::header::LOCATION) {
            return Err(FaceError::new(
                ErrorCode::UrlNotAllowed,
                format!(
                    "HTTP {} redirects to a URL that is not http or https",
                    status.as_u16()
                ),
            ));
        }
        if !status.is_success() {
            return Err(FaceError::new(
                ErrorCode::UrlDownloadFailed,
                format!("the server answered HTTP {}", status.as_u16()),
            ));
        }
        let max = self.cfg.max_bytes;
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(FaceError::new(
                ErrorCode::UrlTooLarge,
                format!("Content-Length is over {max} bytes"),
            ));
        }
        let mut body = BytesMut::new();
        let mut stream = resp.bytes_stream();
        loop {
            let next = tokio::time::timeout_at(deadline, stream.next())
                .await
                .map_err(|_| FaceError::new(ErrorCode::UrlTimeout, "the download took too long"))?;
            match next {
                None => break,
                Some(Ok(chunk)) => {
                    if body.len() + chunk.len() > max {
                        return Err(FaceError::new(
                            ErrorCode::UrlTooLarge,
                            format!("the body is over {max} bytes"),
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                Some(Err(e)) => return Err(map_error(&e)),
            }
        }
        Ok(body.to_vec())
    }
}

fn map_error(e: &reqwest::Error) -> FaceError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return FaceError::new(ErrorCode::UrlNotAllowed, r.to_string());
        }
        source = s.source();
    }
    if e.is_timeout() {
        return FaceError::new(ErrorCode::UrlTimeout, "the download timed out");
    }
    if e.is_redirect() {
        return FaceError::new(ErrorCode::UrlNotAllowed, "too many redirects");
    }
    // The full chain names the cause (DNS failure, refused connection, TLS...).
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    FaceError::new(ErrorCode::UrlDownloadFailed, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn public_and_not() {
        for s in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(ip(s)), "{s} is public");
        }
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::127.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip(s)), "{s} is not public");
        }
    }

    fn policy(allow: &[&str]) -> Policy {
        Policy {
            allow: Arc::new(allow.iter().map(|a| a.parse().expect("net")).collect()),
        }
    }

    #[test]
    fn url_spellings_of_loopback_are_refused() {
        let p = policy(&[]);
        for u in [
            "http://127.0.0.1/a.jpg",
            "http://2130706433/a.jpg",
            "http://0x7f000001/a.jpg",
            "http://0177.0.0.1/a.jpg",
            "http://127.1/a.jpg",
            "http://[::1]/a.jpg",
            "http://[::ffff:127.0.0.1]/a.jpg",
            "http://[::ffff:7f00:1]/a.jpg",
            "http://169.254.169.254/latest/meta-data/",
            "ftp://8.8.8.8/a.jpg",
            "file:///etc/passwd",
            "gopher://8.8.8.8/",
        ] {
            let url = reqwest::Url::parse(u).expect("parse");
            assert!(p.check_url(&url).is_err(), "{u} must be refused");
        }
        let url = reqwest::Url::parse("https://8.8.8.8/a.jpg").expect("parse");
        assert!(p.check_url(&url).is_ok());
    }

    #[test]
    fn allowlist_exempts() {
        let p = policy(&["127.0.0.1/32"]);
        assert!(p.permits(ip("127.0.0.1")));
        assert!(p.permits(ip("::ffff:127.0.0.1")));
        assert!(!p.permits(ip("127.0.0.2")));
        assert!(!p.permits(ip("10.0.0.1")));
    }
}
