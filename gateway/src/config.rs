//! Settings, from a TOML file, the environment and the command line (in rising order of
//! precedence), every one validated at start with an error that names it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Where state lives.
#[derive(Clone, Debug, PartialEq)]
pub enum Database {
    /// An SQLite file (one instance).
    Sqlite(String),
    /// A PostgreSQL URL (several instances).
    Postgres(String),
}

/// Every setting.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to serve on.
    pub listen: SocketAddr,
    /// Letta's base URL.
    pub letta_url: String,
    /// Letta API key (never logged).
    pub letta_api_key: Option<String>,
    /// Shared secret game servers send as `Authorization: Bearer ...` (never logged).
    pub token: String,
    /// The store.
    pub database: Database,
    /// PostgreSQL connections per instance.
    pub pg_connections: usize,
    /// This instance's name (write leases carry it; unique per instance on a shared database).
    pub instance_id: String,
    /// Most Letta calls in flight.
    pub letta_concurrency: usize,
    /// Timeout of one Letta call.
    pub letta_call_timeout: Duration,
    /// How long a batch may wait for Letta before the answer is a 503 with `Retry-After`.
    pub answer_timeout: Duration,
    /// A block write lease lasts this long unless renewed (a crashed instance's lease
    /// expires after it).
    pub lease: Duration,
    /// Requests a second per game server, sustained.
    pub rate_per_s: f64,
    /// Requests per game server in a burst.
    pub rate_burst: f64,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// First Letta retry delay.
    pub min_backoff: Duration,
    /// Longest Letta retry delay.
    pub max_backoff: Duration,
    /// How long idempotency records (answers to request ids) are kept.
    pub retention: Duration,
    /// On shutdown, how long requests in flight may still finish before they are answered
    /// 503 and their Letta writes given up.
    pub shutdown_grace: Duration,
    /// How often the catch-up writes the blocks Letta is behind on.
    pub catch_up_interval: Duration,
}

/// The queue's longest retry delay (its backoff caps at 30 s); an idempotency record must
/// outlive a few of them.
const QUEUE_BACKOFF_CAP_S: u64 = 30;

/// Every option: name, default (None: required or optional without default), meaning.
pub const OPTIONS: &[(&str, Option<&str>, &str)] = &[
    ("listen", Some("127.0.0.1:8787"), "address to serve on"),
    ("letta_url", None, "Letta's base URL (required)"),
    ("letta_api_key", None, "Letta API key, if Letta needs one"),
    (
        "token",
        None,
        "shared secret of game servers (required, 16 bytes or more)",
    ),
    (
        "database",
        Some("sqlite:npc-sync-gateway.db"),
        "sqlite:PATH or postgres://...",
    ),
    (
        "pg_connections",
        Some("4"),
        "PostgreSQL connections per instance",
    ),
    (
        "instance_id",
        Some("gateway"),
        "this instance's name, unique per instance",
    ),
    ("letta_concurrency", Some("8"), "most Letta calls in flight"),
    (
        "letta_call_timeout_ms",
        Some("5000"),
        "timeout of one Letta call",
    ),
    (
        "answer_timeout_ms",
        Some("10000"),
        "longest wait for Letta before a 503",
    ),
    ("lease_ms", Some("15000"), "block write lease"),
    (
        "rate_per_s",
        Some("20"),
        "requests a second per game server",
    ),
    ("rate_burst", Some("40"), "request burst per game server"),
    ("max_body_bytes", Some("262144"), "largest request body"),
    ("min_backoff_ms", Some("50"), "first Letta retry delay"),
    ("max_backoff_ms", Some("2000"), "longest Letta retry delay"),
    (
        "idempotency_retention_s",
        Some("86400"),
        "how long answers to request ids are kept for replays",
    ),
    (
        "shutdown_grace_ms",
        Some("5000"),
        "on SIGTERM, how long requests in flight may finish",
    ),
    (
        "catch_up_interval_ms",
        Some("2000"),
        "how often blocks Letta is behind on are written again",
    ),
];

/// The environment variable of an option.
pub fn env_name(option: &str) -> String {
    format!("NPC_SYNC_GATEWAY_{}", option.to_uppercase())
}

impl Config {
    /// Reads the settings: `args` are the command line after the program name
    /// (`--config FILE`, `--letta-url URL`, `--OPTION VALUE` for any option), `env` the
    /// environment.
    pub fn load(args: &[String], env: &BTreeMap<String, String>) -> Result<Config, String> {
        let mut cli: BTreeMap<String, String> = BTreeMap::new();
        let mut file: Option<String> = None;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let name = a
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {a:?} (options are --name value)"))?
                .replace('-', "_");
            let value = it
                .next()
                .ok_or_else(|| format!("option --{name} needs a value"))?;
            if name == "config" {
                file = Some(value.clone());
            } else if OPTIONS.iter().any(|o| o.0 == name) {
                cli.insert(name, value.clone());
            } else {
                return Err(format!("unknown option --{}", name.replace('_', "-")));
            }
        }
        let file = file.or_else(|| env.get(&env_name("config")).cloned());
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("config file {path}: {e}"))?;
            let table: toml::Table = text
                .parse()
                .map_err(|e| format!("config file {path}: {e}"))?;
            for (k, v) in table {
                if !OPTIONS.iter().any(|o| o.0 == k) {
                    return Err(format!("config file {path}: unknown option `{k}`"));
                }
                let v = match v {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    other => {
                        return Err(format!(
                        "config file {path}: option `{k}` must be a string or a number, is {other}"
                    ))
                    }
                };
                values.insert(k, v);
            }
        }
        for (name, _, _) in OPTIONS {
            if let Some(v) = env.get(&env_name(name)) {
                values.insert(name.to_string(), v.clone());
            }
        }
        if let Some(v) = env.get("LETTA_API_KEY") {
            values
                .entry("letta_api_key".into())
                .or_insert_with(|| v.clone());
        }
        values.extend(cli);
        for (name, default, _) in OPTIONS {
            if let Some(d) = default {
                values
                    .entry(name.to_string())
                    .or_insert_with(|| d.to_string());
            }
        }
        Config::from_values(&values)
    }

    fn from_values(v: &BTreeMap<String, String>) -> Result<Config, String> {
        let get = |k: &str| v.get(k).cloned();
        let need = |k: &str| {
            get(k).ok_or_else(|| {
                format!(
                    "option `{k}` is required (--{} or {})",
                    k.replace('_', "-"),
                    env_name(k)
                )
            })
        };
        let num = |k: &str, min: u64, max: u64| -> Result<u64, String> {
            let s = need(k)?;
            let n: u64 = s
                .trim()
                .parse()
                .map_err(|_| format!("option `{k}` must be a whole number, got {s:?}"))?;
            if n < min || n > max {
                return Err(format!("option `{k}` must be from {min} to {max}, got {n}"));
            }
            Ok(n)
        };
        let real = |k: &str| -> Result<f64, String> {
            let s = need(k)?;
            match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() && f > 0.0 => Ok(f),
                _ => Err(format!("option `{k}` must be a positive number, got {s:?}")),
            }
        };
        let ms = |k: &str, min: u64, max: u64| num(k, min, max).map(Duration::from_millis);
        let listen_s = need("listen")?;
        let listen = listen_s.parse().map_err(|_| {
            format!("option `listen` must be an address like 127.0.0.1:8787, got {listen_s:?}")
        })?;
        let letta_url = need("letta_url")?;
        if !(letta_url.starts_with("http://") || letta_url.starts_with("https://"))
            || reqwest::Url::parse(&letta_url).is_err()
        {
            return Err(format!(
                "option `letta_url` must be an http(s) URL, got {letta_url:?}"
            ));
        }
        let token = need("token")?;
        if token.len() < 16 {
            return Err(format!(
                "option `token` must be at least 16 bytes, is {}",
                token.len()
            ));
        }
        let db = need("database")?;
        let database = if let Some(p) = db.strip_prefix("sqlite:") {
            if p.is_empty() {
                return Err("option `database`: sqlite: needs a file path".into());
            }
            Database::Sqlite(p.to_string())
        } else if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            Database::Postgres(db)
        } else {
            return Err("option `database` must be sqlite:PATH or postgres://...".into());
        };
        let instance_id = need("instance_id")?;
        if instance_id.is_empty() || instance_id.len() > 64 || instance_id.contains(':') {
            return Err(format!(
                "option `instance_id` must be 1 to 64 bytes without `:`, got {instance_id:?}"
            ));
        }
        let min_backoff = ms("min_backoff_ms", 1, 60_000)?;
        let max_backoff = ms("max_backoff_ms", 1, 600_000)?;
        if max_backoff < min_backoff {
            return Err("option `max_backoff_ms` must not be below `min_backoff_ms`".into());
        }
        let letta_call_timeout = ms("letta_call_timeout_ms", 10, 600_000)?;
        let answer_timeout = ms("answer_timeout_ms", 10, 600_000)?;
        let lease = ms("lease_ms", 100, 3_600_000)?;
        if lease < letta_call_timeout {
            return Err("option `lease_ms` must not be below `letta_call_timeout_ms` (a lease must outlast one write)".into());
        }
        let retention_s = num(
            "idempotency_retention_s",
            2 * QUEUE_BACKOFF_CAP_S,
            90 * 86_400,
        )?;
        let retention = Duration::from_secs(retention_s);
        // A replay may come while the first answer is still being made: records must
        // outlive a request (an in-progress claim older than that is a dead instance's).
        if retention <= answer_timeout + letta_call_timeout {
            return Err(format!(
                "option `idempotency_retention_s` ({retention_s}) must be longer than `answer_timeout_ms` + `letta_call_timeout_ms`"
            ));
        }
        Ok(Config {
            retention,
            shutdown_grace: ms("shutdown_grace_ms", 0, 600_000)?,
            catch_up_interval: ms("catch_up_interval_ms", 50, 3_600_000)?,
            listen,
            letta_url,
            letta_api_key: get("letta_api_key").filter(|k| !k.is_empty()),
            token,
            database,
            pg_connections: num("pg_connections", 1, 64)? as usize,
            instance_id,
            letta_concurrency: num("letta_concurrency", 1, 1024)? as usize,
            letta_call_timeout,
            answer_timeout,
            lease,
            rate_per_s: real("rate_per_s")?,
            rate_burst: real("rate_burst")?,
            max_body_bytes: num("max_body_bytes", 1024, 64 << 20)? as usize,
            min_backoff,
            max_backoff,
        })
    }
}
