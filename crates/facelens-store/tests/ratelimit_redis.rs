//! The Redis rate limiter against a real Redis (`FACELENS_TEST_REDIS_URL`, e.g.
//! `redis://127.0.0.1:6379`); skipped (and passing) when the variable is unset.

use std::sync::Arc;
use std::time::Duration;

use facelens_store::{Gcra, MemoryRateLimiter, RateDecision, RateLimiter, RedisRateLimiter};

fn redis_url() -> Option<String> {
    std::env::var("FACELENS_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// A key prefix of its own per test run, so parallel runs never share buckets.
fn prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("facelens:test:{}:{nanos}:{test}:", std::process::id())
}

/// Several limiters (replicas) share one burst exactly, under concurrency.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_one_exact_burst() {
    let Some(url) = redis_url() else {
        facelens_testkit::skip("FACELENS_TEST_REDIS_URL is not set");
        return;
    };
    // 1 per hour sustained, burst 5: within the test only the burst can pass.
    let gcra = Gcra::new(1, Duration::from_secs(3600), 5).expect("gcra");
    let p = prefix("burst");
    let mut replicas: Vec<Arc<dyn RateLimiter>> = Vec::new();
    for _ in 0..3 {
        replicas.push(Arc::new(
            RedisRateLimiter::connect(&url, gcra, &p)
                .await
                .expect("redis"),
        ));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let l = replicas[i % replicas.len()].clone();
        tasks.spawn(async move { l.check_ip("198.51.100.1".parse().expect("ip")).await });
    }
    let mut allowed = 0;
    let mut limited = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r.expect("task").expect("redis check") {
            RateDecision::Allowed => allowed += 1,
            RateDecision::Limited { retry_after } => limited.push(retry_after),
        }
    }
    assert_eq!(allowed, 5);
    assert_eq!(limited.len(), 55);
    // The next request is one emission interval (an hour) away, give or take the test's time.
    assert!(
        limited
            .iter()
            .all(|d| *d > Duration::from_secs(3500) && *d <= Duration::from_secs(3600))
    );
    // Another client has its own bucket.
    assert!(
        replicas[0]
            .check("other-client")
            .await
            .expect("check")
            .is_allowed()
    );
    cleanup(&url, &p).await;
}

/// Delete this run's keys (they would expire by themselves, within the hour).
async fn cleanup(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    for k in ["198.51.100.1", "other-client"] {
        let _: Result<i64, _> = redis::cmd("DEL")
            .arg(format!("{prefix}{k}"))
            .query_async(&mut conn)
            .await;
    }
}

/// The sustained rate: after one emission interval, one more request passes.
#[tokio::test]
async fn refills_at_the_rate() {
    let Some(url) = redis_url() else {
        facelens_testkit::skip("FACELENS_TEST_REDIS_URL is not set");
        return;
    };
    // 5 per second, burst 1: one request per 200 ms.
    let gcra = Gcra::per_second(5, 1).expect("gcra");
    let l = RedisRateLimiter::connect(&url, gcra, &prefix("refill"))
        .await
        .expect("redis");
    assert!(l.check("c").await.expect("check").is_allowed());
    match l.check("c").await.expect("check") {
        RateDecision::Limited { retry_after } => {
            assert!(retry_after <= Duration::from_millis(200), "{retry_after:?}");
            tokio::time::sleep(retry_after + Duration::from_millis(20)).await;
        }
        RateDecision::Allowed => panic!("second request within 200 ms allowed"),
    }
    assert!(l.check("c").await.expect("check").is_allowed());
    assert!(!l.check("c").await.expect("check").is_allowed());
}

/// The in-process limiter behaves the same through the trait (no Redis needed).
#[tokio::test]
async fn memory_limiter_through_the_trait() {
    let l: Arc<dyn RateLimiter> = Arc::new(MemoryRateLimiter::new(
        Gcra::new(1, Duration::from_secs(3600), 3).expect("gcra"),
    ));
    let ip = "2001:db8::1".parse().expect("ip");
    let same_64 = "2001:db8::ffff".parse().expect("ip");
    let mut allowed = 0;
    for i in 0..10 {
        let addr = if i % 2 == 0 { ip } else { same_64 };
        if l.check_ip(addr).await.expect("check").is_allowed() {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3, "one /64 shares one bucket");
}
