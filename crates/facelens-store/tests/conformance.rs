//! One conformance suite for every [`Store`] backend.
//!
//! Each case is a plain async function over an [`Env`] (one or more handles on the same
//! database, each with its own connection pool, like separate processes or replicas). The
//! `conformance!` macro instantiates every case for SQLite (always, in a temp dir) and for
//! PostgreSQL (when `FACELENS_TEST_POSTGRES_URL` is set, each test in a schema of its own that
//! is dropped afterwards; otherwise the test prints that it was skipped and passes).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use facelens_core::error::ErrorCode;
use facelens_store::*;

/// A fixed "now": 2027-01-15 12:00:00 UTC.
const NOW: UnixTime = 1_800_014_400;
const DAY: i64 = 86_400;

fn options() -> StoreOptions {
    StoreOptions {
        day_offset_secs: 8 * 3600,
        test_daily_limit: Some(5),
        test_total_limit: Some(8),
        max_connections: 8,
        ..StoreOptions::default()
    }
}

struct Env {
    /// Handles on one database; `stores[0]` is the main one.
    stores: Vec<Arc<dyn Store>>,
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: (url, schema) to drop afterwards.
    pg: Option<(String, String)>,
}

impl Env {
    fn store(&self) -> &dyn Store {
        self.stores[0].as_ref()
    }

    async fn cleanup(&self) {
        for s in &self.stores {
            s.close().await;
        }
        if let Some((url, schema)) = &self.pg {
            use sqlx::Connection;
            match sqlx::PgConnection::connect(url).await {
                Ok(mut c) => {
                    let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                    if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut c).await {
                        eprintln!("could not drop test schema {schema}: {e}");
                    }
                }
                Err(e) => eprintln!("could not drop test schema {schema}: {e}"),
            }
        }
    }
}

async fn sqlite_env(handles: usize) -> Env {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    // Open the handles concurrently: migrations must cope with racing openers.
    let opens = (0..handles).map(|_| {
        let path = path.clone();
        tokio::spawn(async move { SqliteStore::open_dir(&path, options()).await })
    });
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for o in opens {
        stores.push(Arc::new(o.await.expect("join").expect("open sqlite")));
    }
    Env {
        stores,
        _dir: Some(dir),
        pg: None,
    }
}

fn pg_url() -> Option<String> {
    std::env::var("FACELENS_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

async fn pg_env(handles: usize) -> Option<Env> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let url = pg_url()?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let schema = format!(
        "facelens_test_{}_{}_{}",
        std::process::id(),
        nanos,
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let opens = (0..handles).map(|_| {
        let url = url.clone();
        let opts = StoreOptions {
            pg_schema: Some(schema.clone()),
            ..options()
        };
        tokio::spawn(async move { PostgresStore::connect(&url, opts).await })
    });
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for o in opens {
        stores.push(Arc::new(o.await.expect("join").expect("connect postgres")));
    }
    Some(Env {
        stores,
        _dir: None,
        pg: Some((url, schema)),
    })
}

macro_rules! conformance {
    ($($name:ident: $handles:expr),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let env = Arc::new(super::sqlite_env($handles).await);
                    let run = tokio::spawn({
                        let env = env.clone();
                        async move { super::$name(&env).await }
                    })
                    .await;
                    env.cleanup().await;
                    if let Err(e) = run {
                        std::panic::resume_unwind(e.into_panic());
                    }
                }
            )*
            use std::sync::Arc;
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(env) = super::pg_env($handles).await else {
                        facelens_testkit::skip("FACELENS_TEST_POSTGRES_URL is not set");
                        return;
                    };
                    let env = Arc::new(env);
                    let run = tokio::spawn({
                        let env = env.clone();
                        async move { super::$name(&env).await }
                    })
                    .await;
                    env.cleanup().await;
                    if let Err(e) = run {
                        std::panic::resume_unwind(e.into_panic());
                    }
                }
            )*
            use std::sync::Arc;
        }
    };
}

conformance! {
    keys_lifecycle: 1,
    key_updates_and_validation: 1,
    key_check_codes: 1,
    key_check_order: 1,
    banned_ips: 1,
    api_switches: 1,
    quota_daily_and_total: 1,
    quota_test_keys: 1,
    quota_release_and_finish: 1,
    quota_exact_under_concurrency: 4,
    abandoned_reservations_are_reclaimed: 2,
    usage_report: 1,
    face_tokens: 1,
    reopen_is_idempotent: 2,
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect(s)
}

fn net(s: &str) -> IpNet {
    s.parse().expect(s)
}

async fn create(store: &dyn Store, new: NewKey) -> (ApiKey, String) {
    let c = store.create_key(new, NOW).await.expect("create key");
    (c.key, c.secret.expose().to_string())
}

fn granted(r: Reservation) -> Ticket {
    match r {
        Reservation::Granted(t) => t,
        Reservation::Denied(hit) => panic!("expected a grant, got {hit:?}"),
    }
}

fn denied(r: Reservation) -> LimitHit {
    match r {
        Reservation::Denied(hit) => hit,
        Reservation::Granted(t) => panic!("expected a denial, got {t:?}"),
    }
}

// ---------------------------------------------------------------------------------------------

async fn keys_lifecycle(env: &Env) {
    let s = env.store();
    let (k, secret) = create(
        s,
        NewKey {
            name: "alpha".into(),
            daily_quota: Some(10),
            ..NewKey::default()
        },
    )
    .await;
    assert!(k.id > 0);
    assert_eq!(secret.len(), 32);
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(k.hint, &secret[..4]);
    assert_eq!(k.created_at, NOW);
    assert_eq!(k.status, KeyStatus::Active);
    assert_eq!(k.total_used, 0);

    // Found by its secret, also uppercased or padded; not by anything else.
    assert_eq!(s.find_key(&secret).await.expect("find"), Some(k.clone()));
    let shouted = format!("  {}\n", secret.to_ascii_uppercase());
    assert_eq!(s.find_key(&shouted).await.expect("find"), Some(k.clone()));
    let mut other = secret.clone().into_bytes();
    other[31] = if other[31] == b'0' { b'1' } else { b'0' };
    let other = String::from_utf8(other).expect("ascii");
    assert_eq!(s.find_key(&other).await.expect("find"), None);
    assert_eq!(s.find_key("").await.expect("find"), None);
    assert_eq!(s.find_key("not a key").await.expect("find"), None);
    assert_eq!(s.find_key(&secret[..31]).await.expect("find"), None);

    let (k2, secret2) = create(
        s,
        NewKey {
            name: "beta".into(),
            test: true,
            status: KeyStatus::Pending,
            ..NewKey::default()
        },
    )
    .await;
    assert_ne!(secret, secret2);
    assert!(k2.id > k.id);
    let all = s.list_keys().await.expect("list");
    assert_eq!(
        all.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![k.id, k2.id]
    );
    assert_eq!(s.get_key(k2.id).await.expect("get"), Some(k2.clone()));
    assert_eq!(s.get_key(9_999_999).await.expect("get"), None);
    assert_eq!(
        s.key_with_hash(k2.id).await.expect("with hash"),
        Some((k2.clone(), secret::hash_key(&secret2).to_vec()))
    );
    assert_eq!(s.key_with_hash(9_999_999).await.expect("with hash"), None);

    // Ban, unban.
    let banned = s.ban_key(k.id, NOW + 1).await.expect("ban");
    assert_eq!(banned.status, KeyStatus::Banned);
    assert_eq!(banned.updated_at, NOW + 1);
    assert_eq!(
        s.find_key(&secret).await.expect("find").map(|k| k.status),
        Some(KeyStatus::Banned)
    );
    let active = s.unban_key(k.id, NOW + 2).await.expect("unban");
    assert_eq!(active.status, KeyStatus::Active);
    assert!(matches!(
        s.ban_key(9_999_999, NOW).await,
        Err(StoreError::NotFound(_))
    ));

    // Delete: gone by id and by secret; ids are not reused.
    assert!(s.delete_key(k.id).await.expect("delete"));
    assert!(!s.delete_key(k.id).await.expect("delete again"));
    assert_eq!(s.get_key(k.id).await.expect("get"), None);
    assert_eq!(s.key_with_hash(k.id).await.expect("with hash"), None);
    assert_eq!(s.find_key(&secret).await.expect("find"), None);
    let (k3, _) = create(s, NewKey::default()).await;
    assert!(k3.id > k2.id);
    assert!(matches!(
        s.reserve(k.id, NOW).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn key_updates_and_validation(env: &Env) {
    let s = env.store();
    let (k, secret) = create(
        s,
        NewKey {
            name: "gamma".into(),
            expires_at: Some(NOW + DAY),
            daily_quota: Some(5),
            total_quota: Some(50),
            allowed_ips: vec![net("10.0.0.0/8")],
            allowed_referers: vec!["Example.COM".into()],
            allowed_apis: vec![" faceDetect ".into()],
            openid: Some("oid-1".into()),
            ..NewKey::default()
        },
    )
    .await;
    // Normalised on the way in.
    assert_eq!(k.allowed_referers, vec!["example.com".to_string()]);
    assert_eq!(k.allowed_apis, vec!["faceDetect".to_string()]);
    assert_eq!(s.get_key(k.id).await.expect("get"), Some(k.clone()));

    // Partial update: only the named fields change; Some(None) clears.
    let u = KeyUpdate {
        name: Some("gamma2".into()),
        expires_at: Some(None),
        daily_quota: Some(Some(7)),
        total_quota: Some(None),
        allowed_ips: Some(vec![net("192.168.1.0/24"), net("2001:db8::/32")]),
        openid: Some(None),
        test: Some(true),
        ..KeyUpdate::default()
    };
    let k2 = s.update_key(k.id, &u, NOW + 10).await.expect("update");
    assert_eq!(k2.name, "gamma2");
    assert_eq!(k2.expires_at, None);
    assert_eq!(k2.daily_quota, Some(7));
    assert_eq!(k2.total_quota, None);
    assert!(k2.test);
    assert_eq!(k2.allowed_ips.len(), 2);
    assert_eq!(k2.allowed_referers, k.allowed_referers);
    assert_eq!(k2.allowed_apis, k.allowed_apis);
    assert_eq!(k2.openid, None);
    assert_eq!(k2.created_at, NOW);
    assert_eq!(k2.updated_at, NOW + 10);
    assert_eq!(s.get_key(k.id).await.expect("get"), Some(k2.clone()));
    assert_eq!(s.find_key(&secret).await.expect("find"), Some(k2.clone()));

    // Refused values change nothing.
    for bad in [
        KeyUpdate {
            daily_quota: Some(Some(-1)),
            ..KeyUpdate::default()
        },
        KeyUpdate {
            allowed_referers: Some(vec!["bad pattern".into()]),
            ..KeyUpdate::default()
        },
        KeyUpdate {
            allowed_apis: Some(vec!["  ".into()]),
            ..KeyUpdate::default()
        },
    ] {
        assert!(
            matches!(
                s.update_key(k.id, &bad, NOW).await,
                Err(StoreError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
    assert_eq!(s.get_key(k.id).await.expect("get"), Some(k2));
    assert!(matches!(
        s.create_key(
            NewKey {
                total_quota: Some(-5),
                ..NewKey::default()
            },
            NOW
        )
        .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.update_key(9_999_999, &KeyUpdate::default(), NOW).await,
        Err(StoreError::NotFound(_))
    ));
}

/// A request at the door: the key it presents and what the key check reads.
#[derive(Clone, Copy)]
struct Req<'a> {
    key: &'a str,
    api: &'a str,
    ip: IpAddr,
    referer: Option<&'a str>,
    openid: Option<&'a str>,
    now: UnixTime,
}

impl<'a> Req<'a> {
    fn check(&self) -> KeyCheck<'a> {
        KeyCheck {
            api: self.api,
            ip: self.ip,
            referer: self.referer,
            openid: self.openid,
            now: self.now,
        }
    }
}

fn req<'a>(key: &'a str, ip: &str) -> Req<'a> {
    Req {
        key,
        api: "faceDetect",
        ip: self::ip(ip),
        referer: None,
        openid: None,
        now: NOW,
    }
}

/// The gate the service runs, over this environment's main store.
fn gate(env: &Env, limiter: Option<Arc<dyn RateLimiter>>) -> Gate {
    Gate {
        store: Arc::clone(&env.stores[0]),
        limiter,
        require_key: true,
    }
}

/// Run the service's admission for `r`: `None` when admitted (the unit reserved is released
/// again), else the code it was refused with.
async fn admit_code(g: &Gate, r: &Req<'_>) -> Option<ErrorCode> {
    match g.admit(Some(r.key), &r.check()).await {
        Ok(Some(ticket)) => {
            g.store.release(ticket).await.expect("release");
            None
        }
        Ok(None) => panic!("a gate that requires keys admitted without a ticket"),
        Err(Refusal::Store(e)) => panic!("store failure: {e}"),
        Err(refusal) => Some(refusal.code()),
    }
}

async fn code_of(env: &Env, r: &Req<'_>) -> Option<ErrorCode> {
    admit_code(&gate(env, None), r).await
}

async fn key_check_codes(env: &Env) {
    let s = env.store();
    let (plain, plain_s) = create(s, NewKey::default()).await;
    let g = gate(env, None);
    let r = req(&plain_s, "1.1.1.1");
    let ticket = g.admit(Some(&plain_s), &r.check()).await.expect("passes");
    let ticket = ticket.expect("a ticket");
    assert_eq!(ticket.key_id, plain.id);
    s.release(ticket).await.expect("release");

    // 10012: the daily and the total limit are told apart (the Baidu API answers 17 / 19).
    for (quota, hit) in [
        (
            NewKey {
                daily_quota: Some(1),
                ..NewKey::default()
            },
            LimitHit::Daily,
        ),
        (
            NewKey {
                total_quota: Some(1),
                ..NewKey::default()
            },
            LimitHit::Total,
        ),
    ] {
        let (_, k) = create(s, quota).await;
        let r = req(&k, "1.1.1.1");
        let t = g.admit(Some(&k), &r.check()).await.expect("first");
        s.finish(t.expect("a ticket"), NOW, None)
            .await
            .expect("finish");
        match g.admit(Some(&k), &r.check()).await {
            Err(Refusal::Limit(h)) => assert_eq!(h, hit),
            other => panic!("expected {hit:?}, got {other:?}"),
        }
    }

    // 10001: unknown or malformed key.
    assert_eq!(
        code_of(env, &req("0123456789abcdef0123456789abcdef", "1.1.1.1")).await,
        Some(ErrorCode::UnknownKey)
    );
    assert_eq!(
        code_of(env, &req("", "1.1.1.1")).await,
        Some(ErrorCode::UnknownKey)
    );
    assert_eq!(
        code_of(env, &req("x'; --", "1.1.1.1")).await,
        Some(ErrorCode::UnknownKey)
    );

    // 10002: API not in the key's list.
    let (_, only_other) = create(
        s,
        NewKey {
            allowed_apis: vec!["otherApi".into()],
            ..NewKey::default()
        },
    )
    .await;
    assert_eq!(
        code_of(env, &req(&only_other, "1.1.1.1")).await,
        Some(ErrorCode::KeyNotAllowed)
    );
    let (_, listed) = create(
        s,
        NewKey {
            allowed_apis: vec!["otherApi".into(), "faceDetect".into()],
            ..NewKey::default()
        },
    )
    .await;
    assert_eq!(code_of(env, &req(&listed, "1.1.1.1")).await, None);

    // 10003: expired at exactly expires_at, not a second before.
    let (_, expiring) = create(
        s,
        NewKey {
            expires_at: Some(NOW + 100),
            ..NewKey::default()
        },
    )
    .await;
    let mut r = req(&expiring, "1.1.1.1");
    r.now = NOW + 99;
    assert_eq!(code_of(env, &r).await, None);
    r.now = NOW + 100;
    assert_eq!(code_of(env, &r).await, Some(ErrorCode::KeyExpired));

    // 10004: openid required and compared exactly.
    let (_, with_openid) = create(
        s,
        NewKey {
            openid: Some("JH-openid-42".into()),
            ..NewKey::default()
        },
    )
    .await;
    let mut r = req(&with_openid, "1.1.1.1");
    assert_eq!(code_of(env, &r).await, Some(ErrorCode::WrongOpenid));
    r.openid = Some("JH-openid-4");
    assert_eq!(code_of(env, &r).await, Some(ErrorCode::WrongOpenid));
    r.openid = Some("jh-openid-42");
    assert_eq!(code_of(env, &r).await, Some(ErrorCode::WrongOpenid));
    r.openid = Some("JH-openid-42");
    assert_eq!(code_of(env, &r).await, None);
    // A key without openid ignores one that is sent.
    let mut r = req(&plain_s, "1.1.1.1");
    r.openid = Some("whatever");
    assert_eq!(code_of(env, &r).await, None);

    // 10005: pending.
    let (_, pending) = create(
        s,
        NewKey {
            status: KeyStatus::Pending,
            ..NewKey::default()
        },
    )
    .await;
    assert_eq!(
        code_of(env, &req(&pending, "1.1.1.1")).await,
        Some(ErrorCode::KeyPending)
    );

    // 10007: source IP and referer allow-lists.
    let (_, ip_limited) = create(
        s,
        NewKey {
            allowed_ips: vec![net("10.0.0.0/8"), net("2001:db8::1")],
            ..NewKey::default()
        },
    )
    .await;
    assert_eq!(code_of(env, &req(&ip_limited, "10.9.8.7")).await, None);
    assert_eq!(
        code_of(env, &req(&ip_limited, "::ffff:10.9.8.7")).await,
        None
    );
    assert_eq!(code_of(env, &req(&ip_limited, "2001:db8::1")).await, None);
    assert_eq!(
        code_of(env, &req(&ip_limited, "11.0.0.1")).await,
        Some(ErrorCode::SourceNotAllowed)
    );
    assert_eq!(
        code_of(env, &req(&ip_limited, "2001:db8::2")).await,
        Some(ErrorCode::SourceNotAllowed)
    );
    let (_, ref_limited) = create(
        s,
        NewKey {
            allowed_referers: vec!["*.example.com".into()],
            ..NewKey::default()
        },
    )
    .await;
    let mut r = req(&ref_limited, "1.1.1.1");
    assert_eq!(code_of(env, &r).await, Some(ErrorCode::SourceNotAllowed));
    r.referer = Some("https://app.example.com/page");
    assert_eq!(code_of(env, &r).await, None);
    r.referer = Some("https://example.com.attacker.net/");
    assert_eq!(code_of(env, &r).await, Some(ErrorCode::SourceNotAllowed));

    // 10008: banned IP, whatever the key.
    s.ban_ip(net("203.0.113.0/24"), Some("abuse"), NOW)
        .await
        .expect("ban");
    assert_eq!(
        code_of(env, &req(&plain_s, "203.0.113.9")).await,
        Some(ErrorCode::BannedIp)
    );

    // 10009: banned key.
    s.ban_key(plain.id, NOW).await.expect("ban key");
    assert_eq!(
        code_of(env, &req(&plain_s, "1.1.1.1")).await,
        Some(ErrorCode::BannedKey)
    );

    // 10020 / 10021: API switches.
    s.set_api_state("faceDetect", ApiState::Maintenance, NOW)
        .await
        .expect("set");
    assert_eq!(
        code_of(env, &req(&listed, "1.1.1.1")).await,
        Some(ErrorCode::Maintenance)
    );
    s.set_api_state("faceDetect", ApiState::Disabled, NOW)
        .await
        .expect("set");
    assert_eq!(
        code_of(env, &req(&listed, "1.1.1.1")).await,
        Some(ErrorCode::ApiDisabled)
    );
    // Other APIs are unaffected.
    let mut r = req(&listed, "1.1.1.1");
    r.api = "otherApi";
    assert_eq!(code_of(env, &r).await, None);
}

async fn key_check_order(env: &Env) {
    let s = env.store();
    // A key that fails every key-level check at once.
    let (worst, worst_s) = create(
        s,
        NewKey {
            expires_at: Some(NOW - 1),
            allowed_apis: vec!["otherApi".into()],
            allowed_ips: vec![net("10.0.0.1")],
            allowed_referers: vec!["example.com".into()],
            openid: Some("o".into()),
            status: KeyStatus::Banned,
            ..NewKey::default()
        },
    )
    .await;
    let r = req(&worst_s, "198.51.100.7");
    s.ban_ip(net("198.51.100.7"), None, NOW).await.expect("ban");
    s.set_api_state("faceDetect", ApiState::Maintenance, NOW)
        .await
        .expect("set");

    // 0: the per-IP rate comes before everything else, maintenance included.
    let limited = gate(
        env,
        Some(Arc::new(MemoryRateLimiter::new(
            Gcra::per_second(1, 1).expect("gcra"),
        ))),
    );
    assert_eq!(admit_code(&limited, &r).await, Some(ErrorCode::Maintenance));
    assert_eq!(
        admit_code(&limited, &r).await,
        Some(ErrorCode::IpRateLimited)
    );

    // Peel the failures off one by one, in the documented order.
    let mut expected = vec![ErrorCode::Maintenance];
    let mut seen = vec![code_of(env, &r).await];
    s.set_api_state("faceDetect", ApiState::Normal, NOW)
        .await
        .expect("set");
    expected.push(ErrorCode::BannedIp);
    seen.push(code_of(env, &r).await);
    assert!(s.unban_ip(net("198.51.100.7")).await.expect("unban"));
    // An unknown key is reported after platform checks, before any key check.
    assert_eq!(
        code_of(
            env,
            &req("ffffffffffffffffffffffffffffffff", "198.51.100.7")
        )
        .await,
        Some(ErrorCode::UnknownKey)
    );
    expected.push(ErrorCode::BannedKey);
    seen.push(code_of(env, &r).await);
    let step = |u: KeyUpdate| async move {
        s.update_key(worst.id, &u, NOW).await.expect("update");
    };
    step(KeyUpdate {
        status: Some(KeyStatus::Pending),
        ..KeyUpdate::default()
    })
    .await;
    expected.push(ErrorCode::KeyPending);
    seen.push(code_of(env, &r).await);
    step(KeyUpdate {
        status: Some(KeyStatus::Active),
        ..KeyUpdate::default()
    })
    .await;
    expected.push(ErrorCode::KeyExpired);
    seen.push(code_of(env, &r).await);
    step(KeyUpdate {
        expires_at: Some(None),
        ..KeyUpdate::default()
    })
    .await;
    expected.push(ErrorCode::KeyNotAllowed);
    seen.push(code_of(env, &r).await);
    step(KeyUpdate {
        allowed_apis: Some(vec![]),
        ..KeyUpdate::default()
    })
    .await;
    expected.push(ErrorCode::SourceNotAllowed); // IP
    seen.push(code_of(env, &r).await);
    step(KeyUpdate {
        allowed_ips: Some(vec![]),
        ..KeyUpdate::default()
    })
    .await;
    expected.push(ErrorCode::SourceNotAllowed); // referer
    seen.push(code_of(env, &r).await);
    step(KeyUpdate {
        allowed_referers: Some(vec![]),
        ..KeyUpdate::default()
    })
    .await;
    expected.push(ErrorCode::WrongOpenid);
    seen.push(code_of(env, &r).await);
    step(KeyUpdate {
        openid: Some(None),
        ..KeyUpdate::default()
    })
    .await;
    seen.push(code_of(env, &r).await);
    let expected: Vec<Option<ErrorCode>> = expected
        .into_iter()
        .map(Some)
        .chain(std::iter::once(None))
        .collect();
    assert_eq!(seen, expected);
}

async fn banned_ips(env: &Env) {
    let s = env.store();
    assert!(!s.is_ip_banned(ip("1.2.3.4")).await.expect("q"));
    s.ban_ip(net("1.2.3.4"), Some("scraper"), NOW)
        .await
        .expect("ban");
    s.ban_ip(net("10.20.0.0/16"), None, NOW).await.expect("ban");
    s.ban_ip(net("2001:db8:abcd::/48"), Some("v6"), NOW)
        .await
        .expect("ban");
    s.ban_ip(net("::/0"), Some("all v6?"), NOW)
        .await
        .expect("ban");
    for (addr, banned) in [
        ("1.2.3.4", true),
        ("::ffff:1.2.3.4", true),
        ("1.2.3.5", false),
        ("10.20.255.1", true),
        ("10.21.0.1", false),
        ("2001:db8:abcd:1::1", true),
        ("2001:db8:abce::1", true), // by ::/0
        ("8.8.8.8", false),         // ::/0 is IPv6 only
    ] {
        assert_eq!(s.is_ip_banned(ip(addr)).await.expect("q"), banned, "{addr}");
    }
    assert!(s.unban_ip(net("::/0")).await.expect("unban"));
    assert!(!s.unban_ip(net("::/0")).await.expect("unban again"));
    assert!(!s.is_ip_banned(ip("2001:db8:abce::1")).await.expect("q"));

    // Banning again is idempotent and updates the reason.
    s.ban_ip(net("1.2.3.4/32"), Some("still scraping"), NOW + 5)
        .await
        .expect("ban");
    let list = s.list_banned_ips().await.expect("list");
    let by_net: BTreeMap<String, &BannedIp> = list.iter().map(|b| (b.net.to_string(), b)).collect();
    assert_eq!(by_net.len(), 3, "{list:?}");
    assert_eq!(by_net["1.2.3.4"].reason.as_deref(), Some("still scraping"));
    assert_eq!(by_net["1.2.3.4"].created_at, NOW);
    assert_eq!(by_net["10.20.0.0/16"].reason, None);
    assert!(by_net.contains_key("2001:db8:abcd::/48"));
    // Unbanning needs the exact network.
    assert!(!s.unban_ip(net("10.20.1.0/24")).await.expect("unban"));
    assert!(s.unban_ip(net("10.20.9.9/16")).await.expect("unban"));
    assert!(!s.is_ip_banned(ip("10.20.1.1")).await.expect("q"));
}

async fn api_switches(env: &Env) {
    let s = env.store();
    assert_eq!(
        s.api_state("faceDetect").await.expect("q"),
        ApiState::Normal
    );
    assert!(s.list_api_states().await.expect("list").is_empty());
    s.set_api_state("faceDetect", ApiState::Maintenance, NOW)
        .await
        .expect("set");
    s.set_api_state("faceCompare", ApiState::Disabled, NOW)
        .await
        .expect("set");
    assert_eq!(
        s.api_state("faceDetect").await.expect("q"),
        ApiState::Maintenance
    );
    s.set_api_state("faceDetect", ApiState::Normal, NOW)
        .await
        .expect("set");
    assert_eq!(
        s.list_api_states().await.expect("list"),
        vec![
            ("faceCompare".to_string(), ApiState::Disabled),
            ("faceDetect".to_string(), ApiState::Normal)
        ]
    );
    assert!(matches!(
        s.set_api_state(" ", ApiState::Disabled, NOW).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn quota_daily_and_total(env: &Env) {
    let s = env.store();
    let (k, _) = create(
        s,
        NewKey {
            daily_quota: Some(3),
            total_quota: Some(5),
            ..NewKey::default()
        },
    )
    .await;
    for _ in 0..3 {
        let _ = granted(s.reserve(k.id, NOW).await.expect("reserve"));
    }
    // A denial changes no counter.
    for _ in 0..3 {
        assert_eq!(
            denied(s.reserve(k.id, NOW).await.expect("reserve")),
            LimitHit::Daily
        );
    }
    assert_eq!(
        s.quota_usage(k.id, NOW).await.expect("usage"),
        QuotaUsage { today: 3, total: 3 }
    );
    assert_eq!(
        s.get_key(k.id).await.expect("get").map(|k| k.total_used),
        Some(3)
    );
    // The next accounting day (UTC+8 midnight is 16:00 UTC; NOW is 12:00 UTC).
    let tomorrow = NOW + 4 * 3600;
    assert_eq!(s.day_of(tomorrow), s.day_of(NOW) + 1);
    assert_eq!(s.day_of(tomorrow - 1), s.day_of(NOW));
    let _ = granted(s.reserve(k.id, tomorrow).await.expect("reserve"));
    let _ = granted(s.reserve(k.id, tomorrow).await.expect("reserve"));
    assert_eq!(
        denied(s.reserve(k.id, tomorrow).await.expect("reserve")),
        LimitHit::Total
    );
    assert_eq!(
        s.quota_usage(k.id, tomorrow).await.expect("usage"),
        QuotaUsage { today: 2, total: 5 }
    );
    // Raising the quota applies to the very next reservation.
    s.update_key(
        k.id,
        &KeyUpdate {
            total_quota: Some(Some(6)),
            ..KeyUpdate::default()
        },
        tomorrow,
    )
    .await
    .expect("update");
    let _ = granted(s.reserve(k.id, tomorrow).await.expect("reserve"));
    assert_eq!(
        denied(s.reserve(k.id, tomorrow).await.expect("reserve")),
        LimitHit::Total
    );
    // Unlimited keys are unlimited; a quota of 0 refuses everything.
    let (free, _) = create(s, NewKey::default()).await;
    for _ in 0..20 {
        let _ = granted(s.reserve(free.id, NOW).await.expect("reserve"));
    }
    let (zero, _) = create(
        s,
        NewKey {
            daily_quota: Some(0),
            ..NewKey::default()
        },
    )
    .await;
    assert_eq!(
        denied(s.reserve(zero.id, NOW).await.expect("reserve")),
        LimitHit::Daily
    );
    assert_eq!(
        s.quota_usage(zero.id, NOW).await.expect("usage"),
        QuotaUsage { today: 0, total: 0 }
    );
    assert!(matches!(
        s.quota_usage(9_999_999, NOW).await,
        Err(StoreError::NotFound(_))
    ));
    // Purging keeps today's and yesterday's counters.
    let d0 = s.day_of(NOW);
    let report = s.purge_expired(tomorrow).await.expect("purge");
    assert_eq!(report.quota_days, 0);
    // Day d0 held the counters of `k` and `free` (`zero` never got a row: its denial rolled
    // back).
    let report = s.purge_expired(NOW + 2 * DAY).await.expect("purge");
    assert_eq!(s.day_of(NOW + 2 * DAY), d0 + 2);
    assert_eq!(report.quota_days, 2, "{report:?}");
    assert_eq!(
        s.quota_usage(k.id, tomorrow).await.expect("usage"),
        QuotaUsage { today: 3, total: 6 }
    );
    let report = s.purge_expired(NOW + 3 * DAY).await.expect("purge");
    assert_eq!(report.quota_days, 1, "{report:?}");
    assert_eq!(
        s.quota_usage(k.id, tomorrow).await.expect("usage"),
        QuotaUsage { today: 0, total: 6 }
    );
}

async fn quota_test_keys(env: &Env) {
    let s = env.store();
    // Store test limits: 5 a day, 8 in all (see options()).
    let (t, _) = create(
        s,
        NewKey {
            test: true,
            ..NewKey::default()
        },
    )
    .await;
    for _ in 0..5 {
        let _ = granted(s.reserve(t.id, NOW).await.expect("reserve"));
    }
    let hit = denied(s.reserve(t.id, NOW).await.expect("reserve"));
    assert_eq!(hit, LimitHit::TestDaily);
    assert_eq!(hit.code(), ErrorCode::TestKeyLimit);
    for _ in 0..3 {
        let _ = granted(s.reserve(t.id, NOW + DAY).await.expect("reserve"));
    }
    let hit = denied(s.reserve(t.id, NOW + DAY).await.expect("reserve"));
    assert_eq!(hit, LimitHit::TestTotal);
    assert_eq!(hit.code(), ErrorCode::TestKeyLimit);
    // A test key's own lower quota applies, still reported as a test limit.
    let (t2, _) = create(
        s,
        NewKey {
            test: true,
            daily_quota: Some(2),
            ..NewKey::default()
        },
    )
    .await;
    let _ = granted(s.reserve(t2.id, NOW).await.expect("reserve"));
    let _ = granted(s.reserve(t2.id, NOW).await.expect("reserve"));
    assert_eq!(
        denied(s.reserve(t2.id, NOW).await.expect("reserve")),
        LimitHit::TestDaily
    );
    // Promoting the key to a real one lifts the test limits at once.
    s.update_key(
        t.id,
        &KeyUpdate {
            test: Some(false),
            ..KeyUpdate::default()
        },
        NOW,
    )
    .await
    .expect("update");
    let _ = granted(s.reserve(t.id, NOW + DAY).await.expect("reserve"));
    // A real key that hits its quota is answered 10012.
    assert_eq!(LimitHit::Daily.code(), ErrorCode::QuotaExceeded);
}

async fn quota_release_and_finish(env: &Env) {
    let s = env.store();
    let (k, _) = create(
        s,
        NewKey {
            daily_quota: Some(2),
            ..NewKey::default()
        },
    )
    .await;
    let a = granted(s.reserve(k.id, NOW).await.expect("reserve"));
    let b = granted(s.reserve(k.id, NOW).await.expect("reserve"));
    assert_eq!(a.day, s.day_of(NOW));
    denied(s.reserve(k.id, NOW).await.expect("reserve"));
    // A request that fails on its image gives its unit back...
    s.finish(a, NOW, Some(ErrorCode::CorruptImage))
        .await
        .expect("finish");
    assert_eq!(s.quota_usage(k.id, NOW).await.expect("u").today, 1);
    let c = granted(s.reserve(k.id, NOW).await.expect("reserve"));
    // ...one that found no face keeps it, like a success.
    s.finish(b, NOW, Some(ErrorCode::NoFace))
        .await
        .expect("finish");
    s.finish(c, NOW, None).await.expect("finish");
    assert_eq!(
        s.quota_usage(k.id, NOW).await.expect("u"),
        QuotaUsage { today: 2, total: 2 }
    );
    denied(s.reserve(k.id, NOW).await.expect("reserve"));
    // A unit reserved before midnight goes back to the day it came from.
    let late = NOW + 4 * 3600 - 1;
    let (k2, _) = create(
        s,
        NewKey {
            daily_quota: Some(1),
            ..NewKey::default()
        },
    )
    .await;
    let t = granted(s.reserve(k2.id, late).await.expect("reserve"));
    let _ = granted(s.reserve(k2.id, late + 2).await.expect("reserve")); // next day
    s.finish(t, late + 2, Some(ErrorCode::Busy))
        .await
        .expect("finish");
    assert_eq!(s.quota_usage(k2.id, late).await.expect("u").today, 0);
    assert_eq!(
        s.quota_usage(k2.id, late + 2).await.expect("u"),
        QuotaUsage { today: 1, total: 1 }
    );
    // Plain release never goes below zero.
    s.release(Ticket {
        key_id: k2.id,
        day: s.day_of(late),
        pending: 0,
    })
    .await
    .expect("release");
    assert_eq!(s.quota_usage(k2.id, late).await.expect("u").today, 0);
    // Usage by code: the outcomes recorded on the day they finished.
    let rows = s.usage_last_days(Some(k.id), 1, NOW).await.expect("usage");
    let by_code: BTreeMap<u32, i64> = rows.iter().map(|r| (r.code, r.count)).collect();
    assert_eq!(by_code, BTreeMap::from([(0, 1), (200205, 1), (200216, 1)]));
}

/// A process that dies between reserve and finish leaves its units taken; `reclaim_stale`
/// gives back exactly those older than the cut-off, once, and a late finish of a reclaimed
/// ticket neither releases twice nor loses a counting outcome.
async fn abandoned_reservations_are_reclaimed(env: &Env) {
    let (a, b) = (&env.stores[0], &env.stores[1]);
    let (k, _) = create(
        a.as_ref(),
        NewKey {
            name: "crashy".into(),
            total_quota: Some(10),
            ..NewKey::default()
        },
    )
    .await;
    // Three requests admitted by a process that then dies (its tickets are never finished).
    let mut lost = Vec::new();
    for i in 0..3 {
        lost.push(granted(a.reserve(k.id, NOW + i).await.expect("reserve")));
    }
    // One admitted later, still running in another process.
    let live = granted(b.reserve(k.id, NOW + 100).await.expect("reserve"));
    assert_eq!(a.quota_usage(k.id, NOW + 100).await.expect("u").total, 4);
    // Reclaim what is older than the live one: the three, once.
    assert_eq!(b.reclaim_stale(NOW + 50).await.expect("reclaim"), 3);
    assert_eq!(b.reclaim_stale(NOW + 50).await.expect("reclaim"), 0);
    assert_eq!(a.quota_usage(k.id, NOW + 100).await.expect("u").total, 1);
    // The live one finishes normally and counts.
    b.finish(live, NOW + 101, None).await.expect("finish");
    assert_eq!(a.quota_usage(k.id, NOW + 101).await.expect("u").total, 1);
    // Late finishes of reclaimed tickets: a refusal is not given back twice, a success is
    // taken again.
    let mut lost = lost.into_iter();
    let refused = lost.next().expect("ticket");
    a.finish(refused, NOW + 102, Some(ErrorCode::CorruptImage))
        .await
        .expect("finish");
    assert_eq!(a.quota_usage(k.id, NOW + 102).await.expect("u").total, 1);
    let succeeded = lost.next().expect("ticket");
    a.finish(succeeded, NOW + 103, None).await.expect("finish");
    assert_eq!(a.quota_usage(k.id, NOW + 103).await.expect("u").total, 2);
    let released = lost.next().expect("ticket");
    a.release(released).await.expect("release");
    assert_eq!(a.quota_usage(k.id, NOW + 103).await.expect("u").total, 2);
}

async fn quota_exact_under_concurrency(env: &Env) {
    const QUOTA: i64 = 50;
    const REQUESTS: usize = 400;
    let s = env.store();
    let (daily, _) = create(
        s,
        NewKey {
            daily_quota: Some(QUOTA),
            ..NewKey::default()
        },
    )
    .await;
    let (total, _) = create(
        s,
        NewKey {
            total_quota: Some(QUOTA),
            ..NewKey::default()
        },
    )
    .await;
    for key in [daily.id, total.id] {
        // 400 requests from tasks spread over every handle (separate pools: "replicas").
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..REQUESTS {
            let store = env.stores[i % env.stores.len()].clone();
            tasks.spawn(async move {
                match store.reserve(key, NOW).await.expect("reserve") {
                    Reservation::Granted(t) => {
                        store.finish(t, NOW, None).await.expect("finish");
                        true
                    }
                    Reservation::Denied(hit) => {
                        store
                            .record_usage(key, NOW, hit.code().code())
                            .await
                            .expect("record");
                        false
                    }
                }
            });
        }
        let mut ok = 0;
        while let Some(r) = tasks.join_next().await {
            if r.expect("task") {
                ok += 1;
            }
        }
        assert_eq!(ok, QUOTA, "granted reservations for key {key}");
        assert_eq!(
            s.quota_usage(key, NOW).await.expect("usage"),
            QuotaUsage {
                today: QUOTA,
                total: QUOTA
            }
        );
        let rows = s.usage_last_days(Some(key), 1, NOW).await.expect("usage");
        let by_code: BTreeMap<u32, i64> = rows.iter().map(|r| (r.code, r.count)).collect();
        assert_eq!(
            by_code,
            BTreeMap::from([(0, QUOTA), (10012, REQUESTS as i64 - QUOTA)])
        );
    }
}

async fn usage_report(env: &Env) {
    let s = env.store();
    let (a, _) = create(s, NewKey::default()).await;
    let (b, _) = create(s, NewKey::default()).await;
    let d0 = s.day_of(NOW);
    for (key, day, code, n) in [
        (a.id, 0, 0u32, 3),
        (a.id, 0, 200216, 1),
        (a.id, 1, 0, 2),
        (a.id, 5, 10012, 4),
        (b.id, 1, 200202, 1),
    ] {
        for _ in 0..n {
            s.record_usage(key, NOW + day * DAY, code)
                .await
                .expect("record");
        }
    }
    let rows = s
        .usage(UsageQuery {
            key_id: None,
            from_day: d0,
            to_day: d0 + 1,
        })
        .await
        .expect("usage");
    let got: Vec<(i64, i64, u32, i64)> = rows
        .iter()
        .map(|r| (r.key_id, r.day - d0, r.code, r.count))
        .collect();
    assert_eq!(
        got,
        vec![
            (a.id, 0, 0, 3),
            (a.id, 0, 200216, 1),
            (a.id, 1, 0, 2),
            (b.id, 1, 200202, 1),
        ]
    );
    let last7 = s
        .usage_last_days(Some(a.id), 7, NOW + 6 * DAY)
        .await
        .expect("usage");
    assert_eq!(last7.len(), 4);
    assert_eq!(last7[3].code, 10012);
    assert_eq!(last7[3].count, 4);
    assert_eq!(last7[0].date().len(), 10);
    let last1 = s
        .usage_last_days(Some(a.id), 1, NOW + 6 * DAY)
        .await
        .expect("usage");
    assert!(last1.is_empty());
    // History outlives the key.
    assert!(s.delete_key(a.id).await.expect("delete"));
    let rows = s
        .usage(UsageQuery {
            key_id: Some(a.id),
            from_day: d0,
            to_day: d0 + 10,
        })
        .await
        .expect("usage");
    assert_eq!(rows.len(), 4);
}

async fn face_tokens(env: &Env) {
    let s = env.store();
    let token = "bacd5ee65a735504aafc8119183c6568";
    let body = r#"{"face_probability":1,"age":26,"名":"中文"}"#;
    const TTL: i64 = 72 * 3600;
    assert_eq!(s.get_face_token(token, NOW).await.expect("get"), None);
    s.put_face_tokens(&[(token, body)], NOW, TTL)
        .await
        .expect("put");
    assert_eq!(
        s.get_face_token(token, NOW + TTL - 1)
            .await
            .expect("get")
            .as_deref(),
        Some(body)
    );
    assert_eq!(s.get_face_token(token, NOW + TTL).await.expect("get"), None);
    // Idempotent; a later put extends the expiry, an earlier one never shortens it.
    s.put_face_tokens(&[(token, body)], NOW + 100, TTL)
        .await
        .expect("put");
    s.put_face_tokens(&[(token, body)], NOW, TTL)
        .await
        .expect("put");
    assert_eq!(
        s.get_face_token(token, NOW + TTL + 50)
            .await
            .expect("get")
            .as_deref(),
        Some(body)
    );
    let other = "00000000000000000000000000000000";
    s.put_face_tokens(&[(other, "{}")], NOW, 10)
        .await
        .expect("put");
    let report = s.purge_expired(NOW + 10).await.expect("purge");
    assert_eq!(report.face_tokens, 1);
    assert_eq!(s.get_face_token(other, NOW).await.expect("get"), None);
    assert!(s.get_face_token(token, NOW).await.expect("get").is_some());
    let report = s.purge_expired(NOW + TTL + 100).await.expect("purge");
    assert_eq!(report.face_tokens, 1);
    assert_eq!(s.get_face_token(token, NOW).await.expect("get"), None);
    assert!(matches!(
        s.put_face_tokens(&[("", "{}")], NOW, TTL).await,
        Err(StoreError::Invalid(_))
    ));

    // The faces of one request are written together, or not at all: a bad id anywhere in
    // the batch writes nothing.
    let (a, b) = (
        "11111111111111111111111111111111",
        "22222222222222222222222222222222",
    );
    s.put_face_tokens(&[(a, "{\"n\":1}"), (b, "{\"n\":2}")], NOW, TTL)
        .await
        .expect("put two");
    assert_eq!(
        s.get_face_token(b, NOW).await.expect("get").as_deref(),
        Some("{\"n\":2}")
    );
    let c = "33333333333333333333333333333333";
    assert!(matches!(
        s.put_face_tokens(&[(c, "{}"), ("", "{}")], NOW, TTL).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.get_face_token(c, NOW).await.expect("get"), None);
    s.put_face_tokens(&[], NOW, TTL)
        .await
        .expect("nothing to put");
}

async fn reopen_is_idempotent(env: &Env) {
    // Both handles were opened concurrently; both work and see each other's writes.
    let (k, secret) = create(env.stores[0].as_ref(), NewKey::default()).await;
    assert_eq!(
        env.stores[1].find_key(&secret).await.expect("find"),
        Some(k)
    );
    env.stores[1]
        .set_api_state("faceDetect", ApiState::Maintenance, NOW)
        .await
        .expect("set");
    assert_eq!(
        env.stores[0].api_state("faceDetect").await.expect("q"),
        ApiState::Maintenance
    );
    assert!(matches!(
        env.stores[0].backend(),
        Backend::Sqlite | Backend::Postgres
    ));
}

// ---- backend-specific ----------------------------------------------------------------------

#[tokio::test]
async fn sqlite_file_holds_no_secret_and_open_parses_locations() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let store = open(data.to_str().expect("utf-8 path"), options())
        .await
        .expect("open dir");
    assert_eq!(store.backend(), Backend::Sqlite);
    let created = store
        .create_key(NewKey::default(), NOW)
        .await
        .expect("create");
    let secret = created.secret.expose().to_string();
    store.close().await;
    let db = data.join("facelens.db");
    assert!(db.is_file());
    // Neither the database nor its write-ahead log contains the key.
    for f in std::fs::read_dir(&data).expect("ls") {
        let bytes = std::fs::read(f.expect("entry").path()).expect("read");
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "secret found on disk"
        );
    }
    // The same file through a sqlite:// URL.
    let url = format!("sqlite://{}", db.display());
    let again = open(&url, options()).await.expect("open url");
    assert!(again.find_key(&secret).await.expect("find").is_some());
    again.close().await;
    // A file path.
    let file = dir.path().join("other.db");
    let s3 = open(file.to_str().expect("utf-8"), options())
        .await
        .expect("open file");
    s3.close().await;
    assert!(file.is_file());
    assert!(matches!(
        open("mysql://localhost/x", options()).await,
        Err(StoreError::InvalidLocation { .. })
    ));
    let direct = SqliteStore::open(&db, options()).await.expect("open");
    assert_eq!(direct.schema_version().await.expect("version"), 2);
}

#[tokio::test]
async fn postgres_open_by_url_and_bad_schema() {
    let Some(url) = pg_url() else {
        facelens_testkit::skip("FACELENS_TEST_POSTGRES_URL is not set");
        return;
    };
    let bad = StoreOptions {
        pg_schema: Some("Bad-Name".into()),
        ..options()
    };
    assert!(matches!(
        PostgresStore::connect(&url, bad).await,
        Err(StoreError::Invalid(_))
    ));
    let env = pg_env(1).await.expect("env");
    if let Some((_, schema)) = &env.pg {
        let store = PostgresStore::connect(
            &url,
            StoreOptions {
                pg_schema: Some(schema.clone()),
                ..options()
            },
        )
        .await
        .expect("connect");
        assert_eq!(store.schema_version().await.expect("version"), 2);
        assert_eq!(store.backend(), Backend::Postgres);
        store.close().await;
    }
    env.cleanup().await;
}
