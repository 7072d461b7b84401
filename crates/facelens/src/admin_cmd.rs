//! Administration on the store: `facelens keys ...`, `facelens ips ...`, `facelens api ...`,
//! `facelens usage`.
//!
//! Every command opens the same store `facelens serve` uses (`--data-dir` / FACELENS_DATA_DIR
//! for SQLite, or `--database-url` / FACELENS_DATABASE_URL for PostgreSQL), so it works on a
//! running service: changes are seen by the next request. Output is a human table, or one JSON
//! document with `--json`. A key's secret is printed once, at creation.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use facelens_store::{
    ApiKey, ApiState, IpNet, KeyStatus, KeyUpdate, NewKey, Store, StoreOptions, UnixTime,
    day_to_date, unix_now,
};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Where the store is.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Folder of the embedded store (SQLite).
    #[arg(
        long,
        env = "FACELENS_DATA_DIR",
        default_value = "facelens-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// postgres://... (takes precedence over --data-dir).
    #[arg(long, env = "FACELENS_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// PostgreSQL schema of the tables (as `database_schema` of the service).
    #[arg(long, env = "FACELENS_DATABASE_SCHEMA", global = true)]
    pub database_schema: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

impl StoreArgs {
    async fn open(&self) -> Result<Arc<dyn Store>> {
        let location = match &self.database_url {
            Some(u) if !u.is_empty() => u.clone(),
            _ => self.data_dir.display().to_string(),
        };
        let opts = StoreOptions {
            pg_schema: self.database_schema.clone().filter(|s| !s.is_empty()),
            ..StoreOptions::default()
        };
        facelens_store::open(&location, opts)
            .await
            .context("opening the store")
    }
}

/// Settings of a key, for create and update.
#[derive(Args, Debug, Clone, Default)]
pub struct KeySettings {
    /// A name to recognise the key by.
    #[arg(long)]
    pub name: Option<String>,
    /// Expiry: `YYYY-MM-DD`, `+30d`, unix seconds, or `never`.
    #[arg(long)]
    pub expires: Option<String>,
    /// Requests per day (`none` = unlimited).
    #[arg(long)]
    pub daily_quota: Option<String>,
    /// Requests over the key's life (`none` = unlimited).
    #[arg(long)]
    pub total_quota: Option<String>,
    /// A test key (also bound by the service's test limits).
    #[arg(long)]
    pub test: Option<bool>,
    /// Allowed source IPs / CIDRs, comma-separated (empty = any).
    #[arg(long, value_delimiter = ',')]
    pub allow_ip: Option<Vec<String>>,
    /// Allowed referers, comma-separated (empty = any).
    #[arg(long, value_delimiter = ',')]
    pub allow_referer: Option<Vec<String>>,
    /// Allowed APIs (faceDetect, detect), comma-separated (empty = all).
    #[arg(long, value_delimiter = ',')]
    pub allow_api: Option<Vec<String>>,
    /// Require this openid on every request (`none` to clear).
    #[arg(long)]
    pub openid: Option<String>,
    /// pending, active or banned.
    #[arg(long)]
    pub status: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create(KeySettings),
    /// List keys.
    List,
    /// Show one key and its counters.
    Show { id: i64 },
    /// Change a key's settings.
    Update {
        id: i64,
        #[command(flatten)]
        settings: KeySettings,
    },
    /// Ban a key (10009).
    Ban { id: i64 },
    /// Lift a ban.
    Unban { id: i64 },
    /// Delete a key.
    Delete { id: i64 },
}

#[derive(Subcommand, Debug)]
pub enum IpsCommand {
    /// Ban an address or network (10008).
    Ban {
        net: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a ban.
    Unban { net: String },
    /// List banned networks.
    List,
}

#[derive(Subcommand, Debug)]
pub enum ApiCommand {
    /// Maintenance switch (10020 while on).
    Maintenance {
        #[arg(value_parser = ["on", "off"])]
        state: String,
        /// The API (faceDetect or detect).
        #[arg(long, default_value = "faceDetect")]
        api: String,
    },
    /// Disable an API (10021) or enable it again.
    Disable {
        #[arg(value_parser = ["on", "off"])]
        state: String,
        #[arg(long, default_value = "faceDetect")]
        api: String,
    },
    /// Show the switches.
    Status,
}

#[derive(Args, Debug)]
pub struct UsageArgs {
    /// Only this key id.
    #[arg(long)]
    pub key: Option<i64>,
    /// Days up to today.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn opt_i64(s: &str) -> Result<Option<i64>> {
    match s {
        "none" | "unlimited" | "" => Ok(None),
        _ => {
            let n: i64 = s
                .parse()
                .with_context(|| format!("{s:?} is not a number"))?;
            if n < 0 {
                bail!("a quota cannot be negative");
            }
            Ok(Some(n))
        }
    }
}

/// Parse an expiry: `never`, unix seconds, `+Nd` / `+Nh`, or `YYYY-MM-DD` (UTC midnight).
pub fn parse_expiry(s: &str, now: UnixTime) -> Result<Option<UnixTime>> {
    let s = s.trim();
    if s == "never" || s == "none" {
        return Ok(None);
    }
    if let Some(rel) = s.strip_prefix('+') {
        let (num, unit) = rel.split_at(rel.len().saturating_sub(1));
        let n: i64 = num.parse().with_context(|| format!("bad expiry {s:?}"))?;
        let secs = match unit {
            "d" => 86_400,
            "h" => 3_600,
            _ => bail!("bad expiry {s:?}: use +Nd or +Nh"),
        };
        return Ok(Some(now + n * secs));
    }
    if let Ok(n) = s.parse::<i64>() {
        return Ok(Some(n));
    }
    let parts: Vec<&str> = s.split('-').collect();
    if let [y, m, d] = parts[..] {
        let (y, m, d): (i64, i64, i64) = (y.parse()?, m.parse()?, d.parse()?);
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            bail!("bad date {s:?}");
        }
        // Days from civil (Howard Hinnant's algorithm).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        return Ok(Some(days * 86_400));
    }
    bail!("bad expiry {s:?}: use YYYY-MM-DD, +Nd, +Nh, unix seconds or never")
}

fn nets(v: &[String]) -> Result<Vec<IpNet>> {
    v.iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse::<IpNet>()
                .map_err(|e| anyhow::anyhow!("{s:?}: {e}"))
        })
        .collect()
}

fn status(s: &str) -> Result<KeyStatus> {
    s.parse::<KeyStatus>().map_err(|e| anyhow::anyhow!("{e}"))
}

fn update_from(s: &KeySettings, now: UnixTime) -> Result<KeyUpdate> {
    Ok(KeyUpdate {
        name: s.name.clone(),
        expires_at: s
            .expires
            .as_deref()
            .map(|e| parse_expiry(e, now))
            .transpose()?,
        daily_quota: s.daily_quota.as_deref().map(opt_i64).transpose()?,
        total_quota: s.total_quota.as_deref().map(opt_i64).transpose()?,
        test: s.test,
        allowed_ips: s.allow_ip.as_deref().map(nets).transpose()?,
        allowed_referers: s.allow_referer.clone(),
        allowed_apis: s.allow_api.clone(),
        openid: s.openid.as_ref().map(|o| (o != "none").then(|| o.clone())),
        status: s.status.as_deref().map(status).transpose()?,
    })
}

fn key_json(k: &ApiKey) -> serde_json::Value {
    let mut v = serde_json::to_value(k).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.insert(
            "expires".into(),
            json!(k.expires_at.map(|t| day_to_date(t.div_euclid(86_400)))),
        );
    }
    v
}

fn print_keys(keys: &[ApiKey]) {
    println!(
        "{:>4}  {:<6} {:<8} {:<5} {:>10} {:>10} {:>10}  {:<10}  name",
        "id", "hint", "status", "test", "daily", "total", "used", "expires"
    );
    for k in keys {
        let q = |v: Option<i64>| v.map_or("-".to_string(), |n| n.to_string());
        println!(
            "{:>4}  {:<6} {:<8} {:<5} {:>10} {:>10} {:>10}  {:<10}  {}",
            k.id,
            k.hint,
            k.status.as_str(),
            k.test,
            q(k.daily_quota),
            q(k.total_quota),
            k.total_used,
            k.expires_at
                .map_or("never".to_string(), |t| day_to_date(t.div_euclid(86_400))),
            k.name
        );
    }
}

pub fn keys(store: StoreArgs, cmd: KeysCommand) -> Result<ExitCode> {
    runtime()?.block_on(async move {
        let st = store.open().await?;
        let now = unix_now();
        let shown: ApiKey = match cmd {
            KeysCommand::Create(s) => {
                let u = update_from(&s, now)?;
                let new = NewKey {
                    name: u.name.unwrap_or_default(),
                    expires_at: u.expires_at.flatten(),
                    daily_quota: u.daily_quota.flatten(),
                    total_quota: u.total_quota.flatten(),
                    test: u.test.unwrap_or(false),
                    allowed_ips: u.allowed_ips.unwrap_or_default(),
                    allowed_referers: u.allowed_referers.unwrap_or_default(),
                    allowed_apis: u.allowed_apis.unwrap_or_default(),
                    openid: u.openid.flatten(),
                    status: u.status.unwrap_or(KeyStatus::Active),
                };
                let created = st.create_key(new, now).await?;
                if store.json {
                    let mut v = key_json(&created.key);
                    if let Some(m) = v.as_object_mut() {
                        m.insert("key".into(), json!(created.secret.expose()));
                    }
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    println!(
                        "key: {}  (shown once; only its hash is stored)",
                        created.secret.expose()
                    );
                    print_keys(std::slice::from_ref(&created.key));
                }
                return Ok(ExitCode::SUCCESS);
            }
            KeysCommand::List => {
                let keys = st.list_keys().await?;
                if store.json {
                    let v: Vec<_> = keys.iter().map(key_json).collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    print_keys(&keys);
                }
                return Ok(ExitCode::SUCCESS);
            }
            KeysCommand::Show { id } => {
                let k = st
                    .get_key(id)
                    .await?
                    .with_context(|| format!("no key with id {id}"))?;
                let q = st.quota_usage(id, now).await?;
                if store.json {
                    let mut v = key_json(&k);
                    if let Some(m) = v.as_object_mut() {
                        m.insert("used_today".into(), json!(q.today));
                    }
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    print_keys(std::slice::from_ref(&k));
                    println!("used today: {}, over its life: {}", q.today, q.total);
                    println!(
                        "allowed ips: {:?}  referers: {:?}  apis: {:?}  openid: {}",
                        k.allowed_ips
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>(),
                        k.allowed_referers,
                        k.allowed_apis,
                        k.openid.as_deref().unwrap_or("-")
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            KeysCommand::Update { id, settings } => {
                st.update_key(id, &update_from(&settings, now)?, now)
                    .await?
            }
            KeysCommand::Ban { id } => st.ban_key(id, now).await?,
            KeysCommand::Unban { id } => st.unban_key(id, now).await?,
            KeysCommand::Delete { id } => {
                if !st.delete_key(id).await? {
                    bail!("no key with id {id}");
                }
                if store.json {
                    println!("{}", json!({"deleted": id}));
                } else {
                    println!("deleted key {id}");
                }
                return Ok(ExitCode::SUCCESS);
            }
        };
        if store.json {
            println!("{}", serde_json::to_string_pretty(&key_json(&shown))?);
        } else {
            print_keys(std::slice::from_ref(&shown));
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn ips(store: StoreArgs, cmd: IpsCommand) -> Result<ExitCode> {
    runtime()?.block_on(async move {
        let st = store.open().await?;
        match cmd {
            IpsCommand::Ban { net, reason } => {
                let n: IpNet = net.parse().map_err(|e| anyhow::anyhow!("{net:?}: {e}"))?;
                st.ban_ip(n, reason.as_deref(), unix_now()).await?;
                println!("banned {n}");
            }
            IpsCommand::Unban { net } => {
                let n: IpNet = net.parse().map_err(|e| anyhow::anyhow!("{net:?}: {e}"))?;
                if !st.unban_ip(n).await? {
                    bail!("{n} was not banned");
                }
                println!("unbanned {n}");
            }
            IpsCommand::List => {
                let list = st.list_banned_ips().await?;
                if store.json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else {
                    for b in list {
                        println!("{}\t{}", b.net, b.reason.unwrap_or_default());
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn api(store: StoreArgs, cmd: ApiCommand) -> Result<ExitCode> {
    runtime()?.block_on(async move {
        let st = store.open().await?;
        let now = unix_now();
        match cmd {
            ApiCommand::Maintenance { state, api } => {
                let s = if state == "on" {
                    ApiState::Maintenance
                } else {
                    ApiState::Normal
                };
                st.set_api_state(&api, s, now).await?;
                println!("{api}: {s}");
            }
            ApiCommand::Disable { state, api } => {
                let s = if state == "on" {
                    ApiState::Disabled
                } else {
                    ApiState::Normal
                };
                st.set_api_state(&api, s, now).await?;
                println!("{api}: {s}");
            }
            ApiCommand::Status => {
                let states = st.list_api_states().await?;
                if store.json {
                    let m: serde_json::Map<String, serde_json::Value> = states
                        .iter()
                        .map(|(a, s)| (a.clone(), json!(s.as_str())))
                        .collect();
                    println!("{}", serde_json::Value::Object(m));
                } else if states.is_empty() {
                    println!("every API is normal");
                } else {
                    for (a, s) in states {
                        println!("{a}: {s}");
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn usage(store: StoreArgs, args: UsageArgs) -> Result<ExitCode> {
    runtime()?.block_on(async move {
        let st = store.open().await?;
        let rows = st.usage_last_days(args.key, args.days, unix_now()).await?;
        if store.json {
            let v: Vec<_> = rows
                .iter()
                .map(|r| json!({"key_id": r.key_id, "date": r.date(), "code": r.code, "count": r.count}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!("{:>6}  {:<10}  {:>7}  {:>8}", "key", "date", "code", "count");
            for r in rows {
                println!("{:>6}  {:<10}  {:>7}  {:>8}", r.key_id, r.date(), r.code, r.count);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_forms() {
        assert_eq!(parse_expiry("never", 0).expect("never"), None);
        assert_eq!(
            parse_expiry("+2d", 100).expect("rel"),
            Some(100 + 2 * 86_400)
        );
        assert_eq!(
            parse_expiry("1700000000", 0).expect("unix"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_expiry("1970-01-02", 0).expect("date"), Some(86_400));
        assert_eq!(
            parse_expiry("2024-03-01", 0).expect("date"),
            Some(1_709_251_200)
        );
        assert!(parse_expiry("2024-13-01", 0).is_err());
        assert!(parse_expiry("+3w", 0).is_err());
    }
}
