//! Referer patterns of a key's allow-list. (IP networks are [`facelens_core::net::IpNet`].)

use crate::error::StoreError;

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
