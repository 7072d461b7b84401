//! Per-client rate limiting (10011, 当前IP请求超过限制).
//!
//! Both limiters implement GCRA (the generic cell rate algorithm), a token bucket stored as a
//! single number per client: the *theoretical arrival time* (TAT) of the next request. With an
//! emission interval `T = period / rate` and a burst of `B` requests, a request at `now` is
//! allowed when `max(TAT, now) - now <= (B - 1) * T`, and then TAT advances by `T`. One number
//! per client (instead of a bucket level plus a timestamp) is what makes it cheap in memory and
//! trivially atomic in Redis.
//!
//! - [`MemoryRateLimiter`]: per process, sharded mutex-protected maps; idle clients are
//!   dropped lazily. Right for one replica.
//! - [`RedisRateLimiter`]: one Lua script evaluated atomically by Redis, using Redis's own
//!   clock (`TIME`), so replicas with skewed clocks still share one exact limit. Right for
//!   several replicas.
//!
//! Clients are keyed by [`ip_bucket`]: the full address for IPv4, the /64 prefix for IPv6
//! (one IPv6 subscriber usually holds a whole /64 and could otherwise rotate addresses).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::StoreError;

/// The answer of a rate limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    /// Refuse with 10011; the client may retry after this long.
    Limited {
        retry_after: Duration,
    },
}

impl RateDecision {
    pub fn is_allowed(self) -> bool {
        matches!(self, RateDecision::Allowed)
    }
}

/// GCRA parameters, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    emission_us: u64,
    tolerance_us: u64,
}

impl Gcra {
    /// `rate` requests per `period` on average, with bursts of up to `burst` requests at once.
    pub fn new(rate: u32, period: Duration, burst: u32) -> Result<Self, StoreError> {
        if rate == 0 || burst == 0 {
            return Err(StoreError::invalid("rate and burst must be at least 1"));
        }
        let period_us = u64::try_from(period.as_micros()).unwrap_or(u64::MAX);
        let emission_us = (period_us / u64::from(rate)).max(1);
        Ok(Self {
            emission_us,
            tolerance_us: emission_us.saturating_mul(u64::from(burst - 1)),
        })
    }

    /// `rate` requests per second, bursts of `burst`.
    pub fn per_second(rate: u32, burst: u32) -> Result<Self, StoreError> {
        Self::new(rate, Duration::from_secs(1), burst)
    }

    /// Time between two requests at the sustained rate.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_micros(self.emission_us)
    }

    /// Decide a request at `now_us` given the stored TAT; returns the decision and the TAT to
    /// store (unchanged when refused).
    pub fn decide(&self, tat: Option<u64>, now_us: u64) -> (RateDecision, Option<u64>) {
        let tat_now = tat.map_or(now_us, |t| t.max(now_us));
        let ahead = tat_now - now_us;
        if ahead > self.tolerance_us {
            let retry_after = Duration::from_micros(ahead - self.tolerance_us);
            (RateDecision::Limited { retry_after }, tat)
        } else {
            (
                RateDecision::Allowed,
                Some(tat_now.saturating_add(self.emission_us)),
            )
        }
    }
}

/// The rate-limit key of a client address: IPv4 address, or IPv6 /64 prefix.
pub fn ip_bucket(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => {
            let s = a.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// A rate limiter shared by all requests of a process (or of all replicas).
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Count one request of client `key`.
    async fn check(&self, key: &str) -> Result<RateDecision, StoreError>;

    /// Count one request from `ip` (keyed by [`ip_bucket`]).
    async fn check_ip(&self, ip: IpAddr) -> Result<RateDecision, StoreError> {
        self.check(&ip_bucket(ip)).await
    }
}

const SHARDS: usize = 16;
/// A shard is swept of idle clients when it grows past this many entries.
const SWEEP_AT: usize = 4096;

struct Shard {
    tats: HashMap<String, u64>,
    sweep_at: usize,
}

/// GCRA in process memory.
pub struct MemoryRateLimiter {
    gcra: Gcra,
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
    epoch: Instant,
}

impl MemoryRateLimiter {
    pub fn new(gcra: Gcra) -> Self {
        Self {
            gcra,
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        tats: HashMap::new(),
                        sweep_at: SWEEP_AT,
                    })
                })
                .collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            epoch: Instant::now(),
        }
    }

    /// Decide a request of `key` at `now_us` microseconds on this limiter's clock (for tests
    /// and for callers with their own clock).
    pub fn check_at(&self, key: &str, now_us: u64) -> RateDecision {
        let i = (self.hasher.hash_one(key) as usize) % self.shards.len();
        // A poisoned lock only means another thread panicked mid-update of a plain map of
        // numbers: the data is still usable.
        let mut shard = self.shards[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if shard.tats.len() >= shard.sweep_at {
            // Clients whose TAT is in the past are indistinguishable from new ones: drop them.
            shard.tats.retain(|_, tat| *tat > now_us);
            shard.sweep_at = (shard.tats.len() * 2).max(SWEEP_AT);
        }
        let (decision, new_tat) = self.gcra.decide(shard.tats.get(key).copied(), now_us);
        if let (RateDecision::Allowed, Some(t)) = (decision, new_tat) {
            shard.tats.insert(key.to_string(), t);
        }
        decision
    }

    /// Clients currently tracked (for metrics and tests).
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .tats
                    .len()
            })
            .sum()
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, key: &str) -> Result<RateDecision, StoreError> {
        let now_us = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        Ok(self.check_at(key, now_us))
    }
}

/// GCRA in Redis: `KEYS[1]` holds the TAT (µs since the epoch, Redis clock); `ARGV[1]` is the
/// emission interval, `ARGV[2]` the burst tolerance, both µs. Returns `{allowed, retry_us}`.
/// The key expires when its TAT has passed, so idle clients cost nothing.
const GCRA_LUA: &str = r"
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end
if tat - now > tolerance then
  return {0, tat - now - tolerance}
end
local new_tat = tat + emission
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
";

/// GCRA in Redis, shared by every replica that uses the same Redis and key prefix.
pub struct RedisRateLimiter {
    gcra: Gcra,
    conn: redis::aio::ConnectionManager,
    script: redis::Script,
    prefix: String,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("gcra", &self.gcra)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// Connect to `url` (`redis://host:6379/0`). Keys are `prefix` + client key, e.g. the
    /// prefix `facelens:rl:` gives `facelens:rl:1.2.3.4`. The connection reconnects by itself.
    pub async fn connect(url: &str, gcra: Gcra, prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let conn = client.get_connection_manager().await?;
        Ok(Self {
            gcra,
            conn,
            script: redis::Script::new(GCRA_LUA),
            prefix: prefix.to_string(),
        })
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str) -> Result<RateDecision, StoreError> {
        let mut conn = self.conn.clone();
        let (allowed, retry_us): (i64, i64) = self
            .script
            .key(format!("{}{}", self.prefix, key))
            .arg(self.gcra.emission_us)
            .arg(self.gcra.tolerance_us)
            .invoke_async(&mut conn)
            .await?;
        Ok(if allowed == 1 {
            RateDecision::Allowed
        } else {
            RateDecision::Limited {
                retry_after: Duration::from_micros(u64::try_from(retry_us).unwrap_or(0)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_burst_then_rate() {
        // 10 per second, bursts of 3.
        let g = Gcra::per_second(10, 3).expect("valid");
        let l = MemoryRateLimiter::new(g);
        let t0 = 1_000_000;
        for _ in 0..3 {
            assert!(l.check_at("a", t0).is_allowed());
        }
        match l.check_at("a", t0) {
            RateDecision::Limited { retry_after } => {
                assert_eq!(retry_after, Duration::from_millis(100))
            }
            RateDecision::Allowed => panic!("burst exceeded but allowed"),
        }
        // Other clients are independent.
        assert!(l.check_at("b", t0).is_allowed());
        // One emission interval later, exactly one more.
        assert!(l.check_at("a", t0 + 100_000).is_allowed());
        assert!(!l.check_at("a", t0 + 100_000).is_allowed());
        // After a long idle period the full burst is back.
        for _ in 0..3 {
            assert!(l.check_at("a", t0 + 10_000_000).is_allowed());
        }
        assert!(!l.check_at("a", t0 + 10_000_000).is_allowed());
    }

    #[test]
    fn sustained_rate_is_exact() {
        let g = Gcra::per_second(100, 1).expect("valid");
        let l = MemoryRateLimiter::new(g);
        // A request every 1 ms for one second: exactly 100 pass (every 10 ms).
        let allowed = (0..1000u64)
            .filter(|i| l.check_at("x", 5_000_000 + i * 1000).is_allowed())
            .count();
        assert_eq!(allowed, 100);
    }

    #[test]
    fn idle_clients_are_swept() {
        let g = Gcra::per_second(1000, 1).expect("valid");
        let l = MemoryRateLimiter::new(g);
        let n = SWEEP_AT * SHARDS * 2;
        for i in 0..n {
            l.check_at(&format!("c{i}"), 1_000_000);
        }
        assert_eq!(l.tracked(), n);
        // Much later every "c" client is idle; new traffic makes each shard sweep them away.
        for i in 0..2 * n {
            l.check_at(&format!("d{i}"), 100_000_000);
        }
        assert_eq!(l.tracked(), 2 * n);
    }

    #[test]
    fn bad_parameters() {
        assert!(Gcra::per_second(0, 1).is_err());
        assert!(Gcra::per_second(1, 0).is_err());
        let g = Gcra::new(3, Duration::from_secs(60), 1).expect("valid");
        assert_eq!(g.emission_interval(), Duration::from_secs(20));
    }

    #[test]
    fn buckets() {
        assert_eq!(ip_bucket("1.2.3.4".parse().expect("ip")), "1.2.3.4");
        assert_eq!(ip_bucket("::ffff:1.2.3.4".parse().expect("ip")), "1.2.3.4");
        assert_eq!(
            ip_bucket("2001:db8:1:2:3:4:5:6".parse().expect("ip")),
            "2001:db8:1:2::/64"
        );
    }
}
