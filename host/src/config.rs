//! The server's configuration: a TOML file, then environment variables over it.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::master_key::MasterKey;
use crate::redacted::{Redacted, REDACTED};
use crate::rules::Limits;
use crate::server::rate_limit::RateLimitSettings;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./data";
pub const DEFAULT_ISSUER: &str = "http://127.0.0.1:8080/";
pub const DEFAULT_TENANT: &str = "default";
/// Token request bodies over this get 413.
pub const DEFAULT_MAX_TOKEN_BODY_BYTES: usize = 64 * 1024;
/// Management request bodies over this get 413 (a component upload may use the larger one).
pub const DEFAULT_MAX_MANAGEMENT_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_MAX_COMPONENT_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Token lifetime of the management API's own tokens, in seconds.
pub const DEFAULT_MANAGEMENT_TOKEN_LIFETIME: u32 = 86_400;
/// Rules that may exist at once: each compiled rule holds ~11 MB of memory.
pub const DEFAULT_MAX_RULES: usize = 100;
/// Open `/api/v2/logs/stream` connections at once; one more gets 429.
pub const DEFAULT_MAX_LOG_STREAMS: usize = 32;
/// Scopes one token request may list. Real grants hold tens of scopes (the management API
/// defines about twenty); a thousand is far above any of them, and small enough that the most a
/// request can make the server do with its scopes is a thousand short checks.
pub const DEFAULT_MAX_REQUEST_SCOPES: usize = 1_000;
/// Bytes of one requested scope. Scopes are names or URLs of tens of bytes; 1 KiB is far
/// above them.
pub const DEFAULT_MAX_SCOPE_LENGTH: usize = 1_024;
/// Audit entries older than this many days are deleted.
pub const DEFAULT_AUDIT_RETENTION_DAYS: NonZeroU32 = match NonZeroU32::new(365) {
    Some(days) => days,
    None => NonZeroU32::MIN,
};

/// Everything `tokenhost serve` can be told. Its `Debug` never shows `secrets_key`.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `TOKENHOST_LISTEN`.
    pub listen: SocketAddr,
    /// `TOKENHOST_DATA_DIR`: the SQLite database and the server's keys.
    pub data_dir: PathBuf,
    /// `TOKENHOST_ISSUER`: every URL the server publishes derives from it.
    pub issuer: String,
    /// `TOKENHOST_TENANT`: `client.tenant` in rules.
    pub tenant: String,
    /// `TOKENHOST_TRUSTED_PROXIES` (comma-separated): peers whose `X-Forwarded-For` is
    /// believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// `TOKENHOST_DEFAULT_AUDIENCE`: used when a token request names none.
    pub default_audience: Option<String>,
    /// `TOKENHOST_SECRET_GRACE_SECONDS`: how long a rotated-out client secret still works.
    pub secret_grace_seconds: u64,
    /// `TOKENHOST_SECRETS_KEY`: base64 of the 32-byte key rule secrets are encrypted with;
    /// absent, a key is generated once into the data directory.
    pub secrets_key: Option<String>,
    /// `TOKENHOST_DATABASE_URL`: `postgres://...` to share one PostgreSQL database with
    /// other nodes; absent, the embedded SQLite database in the data directory.
    pub database_url: Option<String>,
    /// `TOKENHOST_MASTER_KEY`: base64 of 32 bytes every node of a cluster shares; the
    /// server's own keys derive from it instead of the data directory's key files.
    /// Required with `database_url`.
    pub master_key: Option<String>,
    pub max_token_body_bytes: usize,
    pub max_management_body_bytes: usize,
    pub max_component_body_bytes: usize,
    /// `TOKENHOST_MANAGEMENT_TOKEN_LIFETIME`: seconds a management API token is valid.
    pub management_token_lifetime: u32,
    /// `TOKENHOST_MAX_RULES`: rules that may exist at once (enabled or not).
    pub max_rules: usize,
    /// `TOKENHOST_MAX_LOG_STREAMS`: live log streams open at once.
    pub max_log_streams: usize,
    /// `TOKENHOST_MAX_REQUEST_SCOPES`: scopes one token request may list (a repeat counts);
    /// more is `invalid_request`.
    pub max_request_scopes: usize,
    /// `TOKENHOST_MAX_SCOPE_LENGTH`: bytes of one requested scope; longer is
    /// `invalid_scope`.
    pub max_scope_length: usize,
    /// The rule sandbox's limits (`[limits]` in the file; `TOKENHOST_RULE_DEADLINE_MS`,
    /// `TOKENHOST_RULE_FUEL`, `TOKENHOST_RULE_MEMORY_BYTES`).
    pub limits: Limits,
    /// Token rate limits and the failed-authentication slowdown (`[rate_limit]` in the
    /// file; `TOKENHOST_RATE_LIMIT_PER_SECOND`, `TOKENHOST_RATE_LIMIT_BURST`,
    /// `TOKENHOST_AUTH_FAILURE_BURST`, `TOKENHOST_AUTH_FAILURES_PER_MINUTE`,
    /// `TOKENHOST_MAX_AUTH_FAILURE_PAIRS`).
    pub rate_limit: RateLimitSettings,
    /// `TOKENHOST_AUDIT_RETENTION_DAYS`: audit entries older than this are deleted (at
    /// start, then hourly).
    pub audit_retention_days: NonZeroU32,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("issuer", &self.issuer)
            .field("tenant", &self.tenant)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("default_audience", &self.default_audience)
            .field("secret_grace_seconds", &self.secret_grace_seconds)
            .field("secrets_key", &self.secrets_key.as_ref().map(|_| Redacted))
            .field(
                "database_url",
                &self.database_url.as_deref().map(without_password),
            )
            .field("master_key", &self.master_key.as_ref().map(|_| Redacted))
            .field("max_token_body_bytes", &self.max_token_body_bytes)
            .field("max_management_body_bytes", &self.max_management_body_bytes)
            .field("max_component_body_bytes", &self.max_component_body_bytes)
            .field("management_token_lifetime", &self.management_token_lifetime)
            .field("max_rules", &self.max_rules)
            .field("max_log_streams", &self.max_log_streams)
            .field("max_request_scopes", &self.max_request_scopes)
            .field("max_scope_length", &self.max_scope_length)
            .field("limits", &self.limits)
            .field("rate_limit", &self.rate_limit)
            .field("audit_retention_days", &self.audit_retention_days)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            issuer: DEFAULT_ISSUER.into(),
            tenant: DEFAULT_TENANT.into(),
            trusted_proxies: Vec::new(),
            default_audience: None,
            secret_grace_seconds: 0,
            secrets_key: None,
            database_url: None,
            master_key: None,
            max_token_body_bytes: DEFAULT_MAX_TOKEN_BODY_BYTES,
            max_management_body_bytes: DEFAULT_MAX_MANAGEMENT_BODY_BYTES,
            max_component_body_bytes: DEFAULT_MAX_COMPONENT_BODY_BYTES,
            management_token_lifetime: DEFAULT_MANAGEMENT_TOKEN_LIFETIME,
            max_rules: DEFAULT_MAX_RULES,
            max_log_streams: DEFAULT_MAX_LOG_STREAMS,
            max_request_scopes: DEFAULT_MAX_REQUEST_SCOPES,
            max_scope_length: DEFAULT_MAX_SCOPE_LENGTH,
            limits: Limits::default(),
            rate_limit: RateLimitSettings::default(),
            audit_retention_days: DEFAULT_AUDIT_RETENTION_DAYS,
        }
    }
}

/// A configuration tokenhost cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("environment variable {name}={value:?}: {reason}")]
    Env {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("issuer {0:?} must be an absolute http:// or https:// URL")]
    Issuer(String),
    #[error("management_token_lifetime must be at least 1 second")]
    ManagementTokenLifetime,
    #[error(transparent)]
    Limits(#[from] crate::rules::LimitsError),
    #[error("database_url {0:?} must be a postgres:// URL (leave it unset for the embedded SQLite database)")]
    DatabaseUrl(String),
    #[error(
        "database_url needs master_key (TOKENHOST_MASTER_KEY): every node of a cluster must \
         be given the same master key, the base64 of 32 random bytes (`openssl rand -base64 32`)"
    )]
    MasterKeyRequired,
    #[error(transparent)]
    MasterKey(#[from] crate::master_key::BadMasterKey),
    #[error(
        "set master_key or secrets_key, not both: with a master key, the rule secrets key \
         derives from it"
    )]
    TwoKeys,
}

/// `url` with its password, in the user part or as a `password=` parameter, replaced:
/// safe to show in an error or a log.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".into();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut shown = match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:{REDACTED}@{host}{path}")
        }
        _ => format!("{scheme}://{authority}{path}"),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => {
                    format!("{name}={REDACTED}")
                }
                _ => pair.to_string(),
            })
            .collect();
        shown = format!("{shown}?{}", pairs.join("&"));
    }
    shown
}

impl Config {
    /// Reads `file` if given, then applies `TOKENHOST_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with(file, |name| std::env::var(name).ok())
    }

    /// As [`Config::load`], with the environment given as a lookup (for tests).
    pub fn load_with(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_path_buf(),
                    source,
                })?
            }
            None => Config::default(),
        };
        if let Some(v) = env("TOKENHOST_LISTEN") {
            config.listen = parse_env("TOKENHOST_LISTEN", &v)?;
        }
        if let Some(v) = env("TOKENHOST_DATA_DIR") {
            config.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("TOKENHOST_ISSUER") {
            config.issuer = v;
        }
        if let Some(v) = env("TOKENHOST_TENANT") {
            config.tenant = v;
        }
        if let Some(v) = env("TOKENHOST_DEFAULT_AUDIENCE") {
            config.default_audience = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = env("TOKENHOST_TRUSTED_PROXIES") {
            config.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| parse_env("TOKENHOST_TRUSTED_PROXIES", s))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = env("TOKENHOST_SECRET_GRACE_SECONDS") {
            config.secret_grace_seconds = parse_env("TOKENHOST_SECRET_GRACE_SECONDS", &v)?;
        }
        if let Some(v) = env("TOKENHOST_SECRETS_KEY") {
            config.secrets_key = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = env("TOKENHOST_DATABASE_URL") {
            config.database_url = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = env("TOKENHOST_MASTER_KEY") {
            config.master_key = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = env("TOKENHOST_MAX_REQUEST_SCOPES") {
            config.max_request_scopes = parse_env("TOKENHOST_MAX_REQUEST_SCOPES", &v)?;
        }
        if let Some(v) = env("TOKENHOST_MAX_SCOPE_LENGTH") {
            config.max_scope_length = parse_env("TOKENHOST_MAX_SCOPE_LENGTH", &v)?;
        }
        if let Some(v) = env("TOKENHOST_RULE_DEADLINE_MS") {
            config.limits.deadline =
                Duration::from_millis(parse_env("TOKENHOST_RULE_DEADLINE_MS", &v)?);
        }
        if let Some(v) = env("TOKENHOST_RULE_FUEL") {
            config.limits.fuel = parse_env("TOKENHOST_RULE_FUEL", &v)?;
        }
        if let Some(v) = env("TOKENHOST_RULE_MEMORY_BYTES") {
            config.limits.memory_bytes = parse_env("TOKENHOST_RULE_MEMORY_BYTES", &v)?;
        }
        if let Some(v) = env("TOKENHOST_RATE_LIMIT_PER_SECOND") {
            config.rate_limit.per_second = parse_env("TOKENHOST_RATE_LIMIT_PER_SECOND", &v)?;
        }
        if let Some(v) = env("TOKENHOST_RATE_LIMIT_BURST") {
            config.rate_limit.burst = parse_env("TOKENHOST_RATE_LIMIT_BURST", &v)?;
        }
        if let Some(v) = env("TOKENHOST_AUTH_FAILURE_BURST") {
            config.rate_limit.auth_failure_burst = parse_env("TOKENHOST_AUTH_FAILURE_BURST", &v)?;
        }
        if let Some(v) = env("TOKENHOST_AUTH_FAILURES_PER_MINUTE") {
            config.rate_limit.auth_failures_per_minute =
                parse_env("TOKENHOST_AUTH_FAILURES_PER_MINUTE", &v)?;
        }
        if let Some(v) = env("TOKENHOST_MANAGEMENT_RATE_LIMIT_PER_SECOND") {
            config.rate_limit.management_per_second =
                parse_env("TOKENHOST_MANAGEMENT_RATE_LIMIT_PER_SECOND", &v)?;
        }
        if let Some(v) = env("TOKENHOST_MANAGEMENT_RATE_LIMIT_BURST") {
            config.rate_limit.management_burst =
                parse_env("TOKENHOST_MANAGEMENT_RATE_LIMIT_BURST", &v)?;
        }
        if let Some(v) = env("TOKENHOST_MANAGEMENT_TOKEN_LIFETIME") {
            config.management_token_lifetime =
                parse_env("TOKENHOST_MANAGEMENT_TOKEN_LIFETIME", &v)?;
        }
        if let Some(v) = env("TOKENHOST_MAX_RULES") {
            config.max_rules = parse_env("TOKENHOST_MAX_RULES", &v)?;
        }
        if let Some(v) = env("TOKENHOST_MAX_LOG_STREAMS") {
            config.max_log_streams = parse_env("TOKENHOST_MAX_LOG_STREAMS", &v)?;
        }
        if let Some(v) = env("TOKENHOST_MAX_AUTH_FAILURE_PAIRS") {
            config.rate_limit.max_auth_failure_pairs =
                parse_env("TOKENHOST_MAX_AUTH_FAILURE_PAIRS", &v)?;
        }
        if let Some(v) = env("TOKENHOST_AUDIT_RETENTION_DAYS") {
            config.audit_retention_days = parse_env("TOKENHOST_AUDIT_RETENTION_DAYS", &v)?;
        }
        config.issuer = normalize_issuer(&config.issuer)?;
        if config.management_token_lifetime == 0 {
            return Err(ConfigError::ManagementTokenLifetime);
        }
        config.limits.validate()?;
        config.validate_cluster()?;
        Ok(config)
    }

    /// A database URL other than PostgreSQL's, a master key that is not one, a shared
    /// database without a master key, or both key settings at once are refused at start.
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(ConfigError::DatabaseUrl(without_password(url)));
            }
            if self.master_key.is_none() {
                return Err(ConfigError::MasterKeyRequired);
            }
        }
        if let Some(key) = &self.master_key {
            MasterKey::from_base64(key)?;
            if self.secrets_key.is_some() {
                return Err(ConfigError::TwoKeys);
            }
        }
        Ok(())
    }

    /// The master key, if configured (validated at load).
    pub fn master_key(&self) -> Option<MasterKey> {
        self.master_key
            .as_deref()
            .and_then(|key| MasterKey::from_base64(key).ok())
    }

    /// The management API's audience, `<issuer>api/v2/`.
    pub fn management_audience(&self) -> String {
        format!("{}api/v2/", self.issuer)
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}oauth/token", self.issuer)
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}.well-known/jwks.json", self.issuer)
    }
}

fn parse_env<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| ConfigError::Env {
        name,
        value: value.to_string(),
        reason: e.to_string(),
    })
}

/// An absolute http(s) URL ending in exactly one `/`.
pub fn normalize_issuer(issuer: &str) -> Result<String, ConfigError> {
    let trimmed = issuer.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
            Ok(format!("{trimmed}/"))
        }
        _ => Err(ConfigError::Issuer(issuer.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secrets_key() {
        let config = Config {
            secrets_key: Some("c2VjcmV0LWtleS12YWx1ZQ==".into()),
            ..Config::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }

    #[test]
    fn issuer_ends_in_exactly_one_slash() {
        assert_eq!(normalize_issuer("http://a:1").unwrap(), "http://a:1/");
        assert_eq!(
            normalize_issuer("https://a.example/auth///").unwrap(),
            "https://a.example/auth/"
        );
        assert!(normalize_issuer("a.example").is_err());
    }

    #[test]
    fn environment_overrides_defaults() {
        let env = |name: &str| match name {
            "TOKENHOST_LISTEN" => Some("127.0.0.1:0".to_string()),
            "TOKENHOST_ISSUER" => Some("http://localhost:9/".to_string()),
            "TOKENHOST_TRUSTED_PROXIES" => Some("10.0.0.1, ::1".to_string()),
            "TOKENHOST_RULE_DEADLINE_MS" => Some("500".to_string()),
            _ => None,
        };
        let config = Config::load_with(None, env).unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.management_audience(), "http://localhost:9/api/v2/");
        assert_eq!(config.trusted_proxies.len(), 2);
        assert_eq!(config.limits.deadline, Duration::from_millis(500));
    }

    #[test]
    fn scope_bounds_have_defaults_and_come_from_the_environment() {
        let config = Config::default();
        assert_eq!(config.max_request_scopes, DEFAULT_MAX_REQUEST_SCOPES);
        assert_eq!(config.max_scope_length, DEFAULT_MAX_SCOPE_LENGTH);
        let shown = format!("{config:?}");
        assert!(shown.contains("max_request_scopes: 1000"), "{shown}");
        assert!(shown.contains("max_scope_length: 1024"), "{shown}");
        let env = |name: &str| match name {
            "TOKENHOST_MAX_REQUEST_SCOPES" => Some("5".to_string()),
            "TOKENHOST_MAX_SCOPE_LENGTH" => Some("64".to_string()),
            _ => None,
        };
        let config = Config::load_with(None, env).unwrap();
        assert_eq!(config.max_request_scopes, 5);
        assert_eq!(config.max_scope_length, 64);
        let bad = |name: &str| (name == "TOKENHOST_MAX_REQUEST_SCOPES").then(|| "many".to_string());
        assert!(matches!(
            Config::load_with(None, bad),
            Err(ConfigError::Env { .. })
        ));
    }

    #[test]
    fn a_deadline_over_twenty_seconds_is_refused() {
        let env = |name: &str| (name == "TOKENHOST_RULE_DEADLINE_MS").then(|| "30000".to_string());
        assert!(matches!(
            Config::load_with(None, env),
            Err(ConfigError::Limits(_))
        ));
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let path =
            std::env::temp_dir().join(format!("tokenhost-config-{}.toml", std::process::id()));
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\nlsiten = 3\n").unwrap();
        assert!(matches!(
            Config::load_with(Some(&path), |_| None),
            Err(ConfigError::Parse { .. })
        ));
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn rate_limits_come_from_the_environment_and_zero_is_refused() {
        let env = |name: &str| match name {
            "TOKENHOST_RATE_LIMIT_PER_SECOND" => Some("5".to_string()),
            "TOKENHOST_RATE_LIMIT_BURST" => Some("7".to_string()),
            "TOKENHOST_MAX_AUTH_FAILURE_PAIRS" => Some("50".to_string()),
            "TOKENHOST_MANAGEMENT_RATE_LIMIT_BURST" => Some("9".to_string()),
            _ => None,
        };
        let config = Config::load_with(None, env).unwrap();
        assert_eq!(config.rate_limit.management_burst.get(), 9);
        assert_eq!(config.rate_limit.management_per_second.get(), 50);
        assert_eq!(config.rate_limit.per_second.get(), 5);
        assert_eq!(config.rate_limit.burst.get(), 7);
        assert_eq!(config.rate_limit.auth_failure_burst.get(), 10);
        assert_eq!(config.rate_limit.max_auth_failure_pairs.get(), 50);
        let zero = |name: &str| (name == "TOKENHOST_RATE_LIMIT_BURST").then(|| "0".to_string());
        assert!(matches!(
            Config::load_with(None, zero),
            Err(ConfigError::Env { .. })
        ));
    }

    #[test]
    fn management_limits_come_from_the_environment() {
        let defaults = Config::load_with(None, |_| None).unwrap();
        assert_eq!(defaults.management_token_lifetime, 86_400);
        assert_eq!(defaults.max_rules, 100);
        assert_eq!(defaults.max_log_streams, 32);
        let env = |name: &str| match name {
            "TOKENHOST_MANAGEMENT_TOKEN_LIFETIME" => Some("60".to_string()),
            "TOKENHOST_MAX_RULES" => Some("3".to_string()),
            "TOKENHOST_MAX_LOG_STREAMS" => Some("4".to_string()),
            _ => None,
        };
        let config = Config::load_with(None, env).unwrap();
        assert_eq!(config.management_token_lifetime, 60);
        assert_eq!(config.max_rules, 3);
        assert_eq!(config.max_log_streams, 4);
        let shown = format!("{config:?}");
        assert!(shown.contains("management_token_lifetime: 60"), "{shown}");
        assert!(shown.contains("max_rules: 3"), "{shown}");
        assert!(shown.contains("max_log_streams: 4"), "{shown}");
        let zero =
            |name: &str| (name == "TOKENHOST_MANAGEMENT_TOKEN_LIFETIME").then(|| "0".to_string());
        assert!(matches!(
            Config::load_with(None, zero),
            Err(ConfigError::ManagementTokenLifetime)
        ));
    }

    #[test]
    fn a_database_url_is_shown_without_its_password() {
        for (url, shown) in [
            (
                "postgres://u:hunter2@db:5432/t",
                "postgres://u:[redacted]@db:5432/t",
            ),
            (
                "postgres://u@db/t?password=hunter2&sslmode=require",
                "postgres://u@db/t?password=[redacted]&sslmode=require",
            ),
            ("postgresql://db/t", "postgresql://db/t"),
        ] {
            assert_eq!(without_password(url), shown);
        }
        let env = |name: &str| match name {
            "TOKENHOST_DATABASE_URL" => Some("postgres://u:hunter2@db/t".to_string()),
            "TOKENHOST_MASTER_KEY" => Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into()),
            _ => None,
        };
        let config = Config::load_with(None, env).unwrap();
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("AAECAw"),
            "{shown}"
        );
    }

    #[test]
    fn a_shared_database_needs_a_valid_master_key_and_not_a_secrets_key_too() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let load = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Config::load_with(None, move |name| {
                vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            })
        };
        let url = ("TOKENHOST_DATABASE_URL", "postgres://db/t");
        assert!(matches!(load(&[url]), Err(ConfigError::MasterKeyRequired)));
        assert!(matches!(
            load(&[
                ("TOKENHOST_DATABASE_URL", "mysql://db/t"),
                ("TOKENHOST_MASTER_KEY", key)
            ]),
            Err(ConfigError::DatabaseUrl(_))
        ));
        assert!(matches!(
            load(&[url, ("TOKENHOST_MASTER_KEY", "c2hvcnQ=")]),
            Err(ConfigError::MasterKey(_))
        ));
        assert!(matches!(
            load(&[
                ("TOKENHOST_MASTER_KEY", key),
                ("TOKENHOST_SECRETS_KEY", key)
            ]),
            Err(ConfigError::TwoKeys)
        ));
        assert!(load(&[url, ("TOKENHOST_MASTER_KEY", key)])
            .unwrap()
            .master_key()
            .is_some());
    }

    #[test]
    fn audit_retention_defaults_to_a_year_and_comes_from_the_environment() {
        assert_eq!(Config::default().audit_retention_days.get(), 365);
        let env = |name: &str| (name == "TOKENHOST_AUDIT_RETENTION_DAYS").then(|| "30".to_string());
        let config = Config::load_with(None, env).unwrap();
        assert_eq!(config.audit_retention_days.get(), 30);
        assert!(format!("{config:?}").contains("audit_retention_days: 30"));
        let zero = |name: &str| (name == "TOKENHOST_AUDIT_RETENTION_DAYS").then(|| "0".to_string());
        assert!(matches!(
            Config::load_with(None, zero),
            Err(ConfigError::Env { .. })
        ));
        let path = std::env::temp_dir().join(format!(
            "tokenhost-config-retention-{}.toml",
            std::process::id()
        ));
        std::fs::write(&path, "audit_retention_days = 7\n").unwrap();
        let from_file = Config::load_with(Some(&path), |_| None).unwrap();
        std::fs::write(&path, "audit_retention_days = 0\n").unwrap();
        let zero_in_file = Config::load_with(Some(&path), |_| None);
        std::fs::remove_file(&path).ok();
        assert_eq!(from_file.audit_retention_days.get(), 7);
        assert!(matches!(zero_in_file, Err(ConfigError::Parse { .. })));
    }
}
