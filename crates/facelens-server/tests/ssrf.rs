//! SSRF suite for `image_type=2`: every way of naming a non-public address is refused (200212)
//! unless allowlisted, before any byte is sent to it; redirects are checked hop by hop; a DNS
//! server whose answers change between lookups cannot steer a connection to an address that was
//! not checked. Runs without network access: refused addresses are never connected to, and the
//! hosts that are reached live on loopback addresses the tests allowlist.

mod common;

use axum::Router;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use common::*;
use facelens_core::ErrorCode;
use facelens_server::fetch::{FetchConfig, Fetcher, Lookup};
use facelens_store::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Every spelling of a non-public address we know of. The URL parser normalises the IPv4
/// spellings (decimal, octal, hex, short forms) before our check sees them.
const REFUSED: &[&str] = &[
    // loopback
    "http://127.0.0.1/x.jpg",
    "http://127.1/x.jpg",
    "http://127.0.0.1:8080/x.jpg",
    "http://2130706433/x.jpg",
    "http://0x7f000001/x.jpg",
    "http://0177.0.0.1/x.jpg",
    "http://0x7f.0.0.1/x.jpg",
    "http://017700000001/x.jpg",
    "http://127.000.000.001/x.jpg",
    "http://[::1]/x.jpg",
    "http://[0:0:0:0:0:0:0:1]/x.jpg",
    "http://[::ffff:127.0.0.1]/x.jpg",
    "http://[::ffff:7f00:1]/x.jpg",
    "http://[::127.0.0.1]/x.jpg",
    "http://localhost/x.jpg",
    "http://user:pass@127.0.0.1/x.jpg",
    "http://example.com@127.0.0.1/x.jpg",
    // unspecified / this network
    "http://0.0.0.0/x.jpg",
    "http://0/x.jpg",
    "http://[::]/x.jpg",
    // private
    "http://10.0.0.1/x.jpg",
    "http://10.255.255.255/x.jpg",
    "http://172.16.0.1/x.jpg",
    "http://172.31.255.254/x.jpg",
    "http://192.168.1.1/x.jpg",
    "http://167772161/x.jpg",
    "http://0xc0a80101/x.jpg",
    "http://[::ffff:10.0.0.1]/x.jpg",
    "http://[::ffff:192.168.0.1]/x.jpg",
    // shared address space (CGNAT)
    "http://100.64.0.1/x.jpg",
    // link-local and cloud metadata
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.170.2/v2/credentials",
    "http://2852039166/latest/meta-data/",
    "http://0xa9fea9fe/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://[fe80::1]/x.jpg",
    "http://[fd00:ec2::254]/latest/meta-data/",
    // unique-local and site-local IPv6
    "http://[fc00::1]/x.jpg",
    "http://[fec0::1]/x.jpg",
    // NAT64 and 6to4 forms of private addresses
    "http://[64:ff9b::7f00:1]/x.jpg",
    "http://[64:ff9b::a9fe:a9fe]/x.jpg",
    "http://[2002:7f00:1::]/x.jpg",
    "http://[2002:c0a8:101::]/x.jpg",
    // multicast, broadcast, reserved, documentation, benchmarking
    "http://224.0.0.1/x.jpg",
    "http://255.255.255.255/x.jpg",
    "http://240.0.0.1/x.jpg",
    "http://192.0.2.1/x.jpg",
    "http://198.18.0.1/x.jpg",
    "http://[ff02::1]/x.jpg",
    "http://[2001:db8::1]/x.jpg",
    // other schemes
    "file:///etc/passwd",
    "ftp://127.0.0.1/x.jpg",
    "gopher://127.0.0.1:6379/_INFO",
    "dict://127.0.0.1:6379/info",
    "data:image/png;base64,iVBORw0KGgo=",
    "javascript:alert(1)",
];

#[tokio::test]
async fn non_public_addresses_are_refused_in_every_spelling() {
    let s = start(|_| {}).await;
    for u in REFUSED {
        let v = s.juhe(&[("image", u), ("image_type", "2")]).await;
        assert_eq!(code(&v), 200212, "{u} must be refused");
    }
    // Nothing refused counts against the key.
    let usage = s
        .store
        .quota_usage(1, facelens_store::unix_now())
        .await
        .expect("usage");
    assert_eq!(usage.total, 0, "{usage:?}");
}

/// A host that counts its requests and answers `body` (or redirects when `redirect` is set).
async fn counting_host(
    addr: SocketAddr,
    body: Vec<u8>,
    redirect: Option<String>,
) -> Option<(SocketAddr, Arc<AtomicUsize>)> {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    let app = Router::new().fallback(get(move || {
        h.fetch_add(1, Ordering::SeqCst);
        let body = body.clone();
        let redirect = redirect.clone();
        async move {
            // No keep-alive: every fetch resolves the name again.
            let close = [(axum::http::header::CONNECTION, "close")];
            match redirect {
                Some(to) => (close, Redirect::temporary(&to)).into_response(),
                None => (close, body).into_response(),
            }
        }
    }));
    let l = tokio::net::TcpListener::bind(addr).await.ok()?;
    let bound = l.local_addr().ok()?;
    tokio::spawn(async move { axum::serve(l, app).await });
    Some((bound, hits))
}

/// An allowed host on 127.0.0.2 and a forbidden one on 127.0.0.1, on the same port, so that a
/// URL naming a host name reaches one or the other only by what the name resolves to.
async fn two_hosts(
    allowed_body: Vec<u8>,
    forbidden_redirect: Option<String>,
) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    for _ in 0..20 {
        let Some((a, allowed_hits)) = counting_host(
            "127.0.0.2:0".parse().expect("addr"),
            allowed_body.clone(),
            None,
        )
        .await
        else {
            continue;
        };
        let f_addr = SocketAddr::new("127.0.0.1".parse().expect("ip"), a.port());
        if let Some((_, forbidden_hits)) =
            counting_host(f_addr, b"secret".to_vec(), forbidden_redirect.clone()).await
        {
            return (a.port(), allowed_hits, forbidden_hits);
        }
    }
    panic!("could not bind one port on both 127.0.0.1 and 127.0.0.2");
}

fn fetcher(lookup: Lookup) -> Fetcher {
    Fetcher::new(FetchConfig {
        allow: vec!["127.0.0.2/32".parse::<IpNet>().expect("net")],
        connect_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_secs(5),
        max_redirects: 3,
        max_bytes: 1 << 20,
        lookup: Some(lookup),
    })
    .expect("fetcher")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[tokio::test]
async fn dns_answers_that_change_cannot_reach_an_unchecked_address() {
    let (port, allowed_hits, forbidden_hits) = two_hosts(b"image".to_vec(), None).await;
    // A rebinding DNS server: the answer alternates between the allowed and the forbidden
    // address on every lookup.
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let f = fetcher(Lookup(Arc::new(move |host: &str| {
        assert_eq!(host, "rebind.test");
        let n = c.fetch_add(1, Ordering::SeqCst);
        Ok(vec![if n.is_multiple_of(2) {
            ip("127.0.0.2")
        } else {
            ip("127.0.0.1")
        }])
    })));
    let url = format!("http://rebind.test:{port}/x.jpg");
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..12 {
        match f.fetch(&url).await {
            Ok(body) => {
                assert_eq!(body, b"image", "only the allowed host answers");
                ok += 1;
            }
            Err(e) => {
                assert_eq!(e.code, ErrorCode::UrlNotAllowed, "{e:?}");
                refused += 1;
            }
        }
    }
    assert!(ok >= 1, "the allowed answer was fetched");
    assert!(refused >= 1, "the changed answer was seen and refused");
    assert!(allowed_hits.load(Ordering::SeqCst) >= 1);
    assert_eq!(
        forbidden_hits.load(Ordering::SeqCst),
        0,
        "no connection ever reached the forbidden address ({ok} fetched, {refused} refused, {} lookups)",
        calls.load(Ordering::SeqCst)
    );

    // One answer out of several pointing inside is enough to refuse the name.
    let mixed = fetcher(Lookup(Arc::new(|_: &str| {
        Ok(vec![ip("127.0.0.2"), ip("127.0.0.1")])
    })));
    let e = mixed.fetch(&url).await.expect_err("mixed answers refused");
    assert_eq!(e.code, ErrorCode::UrlNotAllowed);
    // So is a name whose only answers are metadata or IPv4-mapped loopback.
    for bad in ["169.254.169.254", "::ffff:127.0.0.1", "::1", "10.1.2.3"] {
        let f = fetcher(Lookup(Arc::new(move |_: &str| Ok(vec![ip(bad)]))));
        let e = f
            .fetch(&format!("http://name.test:{port}/x.jpg"))
            .await
            .expect_err("refused");
        assert_eq!(e.code, ErrorCode::UrlNotAllowed, "{bad}");
    }
    assert_eq!(forbidden_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn redirects_into_private_space_are_refused_at_every_hop() {
    // The allowed host redirects; every target below is non-public and not allowlisted.
    let (port, _allowed_hits, forbidden_hits) = two_hosts(Vec::new(), None).await;
    let f = fetcher(Lookup(Arc::new(|host: &str| match host {
        "public.test" => Ok(vec![ip("127.0.0.2")]),
        "private.test" => Ok(vec![ip("127.0.0.1")]),
        other => Err(format!("{other}: no such host")),
    })));
    for target in [
        format!("http://127.0.0.1:{port}/x.jpg"),
        format!("http://private.test:{port}/x.jpg"),
        format!("http://[::ffff:127.0.0.1]:{port}/x.jpg"),
        format!("http://2130706433:{port}/x.jpg"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "file:///etc/passwd".to_string(),
    ] {
        let (rport, rhits) = {
            // A redirecting host on 127.0.0.2 (allowlisted), one per target.
            let (a, hits) = counting_host(
                "127.0.0.2:0".parse().expect("addr"),
                Vec::new(),
                Some(target.clone()),
            )
            .await
            .expect("bind");
            (a.port(), hits)
        };
        let e = f
            .fetch(&format!("http://public.test:{rport}/start"))
            .await
            .expect_err("redirect refused");
        assert_eq!(
            e.code,
            ErrorCode::UrlNotAllowed,
            "redirect to {target}: {}",
            e.detail
        );
        assert_eq!(rhits.load(Ordering::SeqCst), 1, "the first hop was fetched");
    }
    assert_eq!(forbidden_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn allowlisted_networks_are_reachable_and_nothing_else() {
    let face = flat_png(64, 64);
    let (port, allowed_hits, forbidden_hits) = two_hosts(face, None).await;
    let s = start(|c| c.url_allow = vec!["127.0.0.2/32".into()]).await;
    let v = s
        .juhe(&[
            ("image", &format!("http://127.0.0.2:{port}/x.png")),
            ("image_type", "2"),
        ])
        .await;
    assert_eq!(
        code(&v),
        200216,
        "fetched and decoded (a flat image has no face)"
    );
    assert_eq!(allowed_hits.load(Ordering::SeqCst), 1);
    let v = s
        .juhe(&[
            ("image", &format!("http://127.0.0.1:{port}/x.png")),
            ("image_type", "2"),
        ])
        .await;
    assert_eq!(code(&v), 200212, "127.0.0.1 is not in 127.0.0.2/32");
    assert_eq!(forbidden_hits.load(Ordering::SeqCst), 0);
    // URL fetching switched off refuses every URL.
    let off = start(|c| c.url_fetch = false).await;
    let v = off
        .juhe(&[
            ("image", &format!("http://127.0.0.2:{port}/x.png")),
            ("image_type", "2"),
        ])
        .await;
    assert_eq!(code(&v), 200212);
    assert_eq!(allowed_hits.load(Ordering::SeqCst), 1);
}
