//! Settings from the environment, read and checked once per cold start.
//! A malformed value stops the start with a message that names the
//! variable; nothing is parsed later on the request path.

use std::net::IpAddr;
use std::time::Duration;

/// How the caller is identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityMode {
    /// The API Gateway JWT authorizer's `sub` claim only (the default, and
    /// the only mode the deployed stack allows).
    Jwt,
    /// Local work: the `X-User-Id` header also names the caller.
    Header,
}

/// The live feed's path on the API (`GET /tasks/events`; the route table
/// test checks it names the feed's route): a ticket's URL without
/// `EVENTS_URL`, and its path on a bare `EVENTS_URL` origin.
pub const FEED_PATH: &str = "/tasks/events";

/// Days a change is kept unless `CHANGE_RETENTION_DAYS` says otherwise.
pub const DEFAULT_CHANGE_RETENTION_DAYS: u32 = 90;

/// A caller's writes per window unless `WRITES_PER_CALLER` says otherwise:
/// 20 per 10 s, on average 2 a second, a twenty-fifth of one write route's
/// `WriteRateLimit` (50/s in `template.yaml`), so one caller cannot take
/// more than that of a route's writes, however fast it sends.
pub const DEFAULT_WRITES_PER_CALLER: u32 = 20;
/// A caller's export opens per window unless `EXPORTS_PER_CALLER` says
/// otherwise: 2 per 10 s, so one caller holds at most a few of the
/// `ExportConcurrency` (10) executions (an export of 1,000 tasks takes
/// about a second).
pub const DEFAULT_EXPORTS_PER_CALLER: u32 = 2;
/// The window the per-caller counts are kept over, unless
/// `RATE_WINDOW_SECONDS` says otherwise.
pub const DEFAULT_RATE_WINDOW_SECONDS: u32 = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `TABLE_NAME`, required.
    pub table_name: String,
    /// `MAX_TASKS`, tasks per caller (default 1000).
    pub max_tasks: u32,
    /// `IDENTITY_MODE`: `jwt` (default) or `header`.
    pub identity: IdentityMode,
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins for local runs
    /// (default none: no CORS). Deployed, API Gateway answers CORS and the
    /// template does not set it (see [`crate::http::cors`]).
    pub cors_origins: Vec<String>,
    /// `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's logging config) or
    /// `LOG_LEVEL`: trace, debug, info (default), warn, error.
    pub log_level: tracing::Level,
    /// `EVENTS_LIFETIME_SECONDS`, `EVENTS_POLL_MILLISECONDS`,
    /// `EVENTS_HEARTBEAT_SECONDS`: how `GET /tasks/events` streams
    /// ([`FeedSettings`]).
    pub feed: FeedSettings,
    /// `CHANGE_RETENTION_DAYS` (default 90): how long a recorded change is
    /// kept before DynamoDB's TTL deletes it (what the audit function
    /// writes as its `expires_at`).
    pub change_retention_days: u32,
    /// `MAX_FEED_STREAMS_PER_CALLER` (default 3): open `GET /tasks/events`
    /// streams one caller may hold at once, across every instance.
    pub max_feed_streams: u32,
    /// `WRITES_PER_CALLER`, `EXPORTS_PER_CALLER`, `RATE_WINDOW_SECONDS`:
    /// one caller's share of the writes and of the exports
    /// ([`FairShare`]).
    pub fair_share: FairShare,
    /// `EVENTS_URL`: the feed's URL, where a feed ticket's `url` points.
    /// Unset: the API's own [`FEED_PATH`]. Deployed it is the feed
    /// function's Function URL, a bare origin
    /// (`https://<id>.lambda-url.<region>.on.aws/`) where any path reaches
    /// the function: [`FEED_PATH`] goes on it, as the stack's
    /// `TaskEventsUrl` output tells clients, so the feed's request log and
    /// metrics name its route rather than `$default`. A URL that names a
    /// path (a custom domain's mapping) is kept as it is.
    pub events_url: String,
    pub aws: AwsSettings,
    /// `JWT_ISSUER`, `JWT_AUDIENCE`, `JWT_SCOPES`: bearer tokens checked
    /// by the function itself (see [`crate::adapters::token`]); `None` when
    /// `JWT_ISSUER` is unset. When set, the caller comes from a verified
    /// bearer token only (see [`crate::http::identity`]).
    pub token: Option<TokenSettings>,
}

/// What a function checks a bearer token against, as the HTTP API's JWT
/// authorizer does (see [`crate::adapters::token::TokenVerifier`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// `JWT_ISSUER`: the exact `iss` of every token; a Cognito user pool's
    /// is `https://cognito-idp.{region}.amazonaws.com/{pool id}`.
    pub issuer: String,
    /// `JWT_AUDIENCE`, required with `JWT_ISSUER`: in a token's `aud`, or
    /// its `client_id` (Cognito access tokens); the app client id, or
    /// several, comma-separated (the template's `JwtAudience` list).
    pub audience: String,
    /// `JWT_SCOPES`, required with `JWT_ISSUER`: a token must carry at
    /// least one of these (space- or comma-separated), as the API's routes
    /// require of the authorizer (the template's `JwtScope`). ID tokens
    /// carry no scope: they are refused.
    pub scopes: String,
}

impl TokenSettings {
    /// The accepted audiences: [`TokenSettings::audience`] split at commas.
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        self.audience
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
    }

    /// The accepted scopes: [`TokenSettings::scopes`] split at commas and
    /// spaces.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scopes
            .split([',', ' ', '\t'])
            .filter(|scope| !scope.is_empty())
    }

    /// Where the keys are found, as API Gateway's JWT authorizer finds
    /// them: the issuer's OpenID discovery document, whose `jwks_uri`
    /// names the key set.
    pub fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }
}

/// What the DynamoDB client needs. Read here rather than through
/// `aws-config`, which would pull in STS and SSO for nothing: Lambda
/// always hands a function its region and credentials as variables.
#[derive(Clone, PartialEq)]
pub struct AwsSettings {
    /// `AWS_REGION`.
    pub region: String,
    /// `AWS_ENDPOINT_URL_DYNAMODB` (or `AWS_ENDPOINT_URL`): the local
    /// DynamoDB for development and tests.
    pub endpoint_url: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Upper bound of one DynamoDB call, retries included.
    pub operation_timeout: Duration,
    /// Upper bound of one attempt.
    pub attempt_timeout: Duration,
}

impl std::fmt::Debug for AwsSettings {
    // Never print credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSettings")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("operation_timeout", &self.operation_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}

/// A variable that is missing or malformed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("configuration error: {var} {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

fn invalid(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    /// Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| get(name).ok_or_else(|| invalid(name, "is required"));

        let table_name = required("TABLE_NAME")?;
        if !valid_table_name(&table_name) {
            return Err(invalid(
                "TABLE_NAME",
                format!("must be 3-255 characters of a-z A-Z 0-9 _ - . (got {table_name:?})"),
            ));
        }
        let max_tasks = match get("MAX_TASKS") {
            None => 1000,
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    invalid(
                        "MAX_TASKS",
                        format!("must be a positive integer (got {v:?})"),
                    )
                })?,
        };
        let identity = match get("IDENTITY_MODE").as_deref().map(str::trim) {
            None | Some("jwt") => IdentityMode::Jwt,
            Some("header") => IdentityMode::Header,
            Some(other) => {
                return Err(invalid(
                    "IDENTITY_MODE",
                    format!("must be \"jwt\" or \"header\" (got {other:?})"),
                ));
            }
        };
        let cors_origins = match get("CORS_ALLOWED_ORIGINS") {
            None => Vec::new(),
            Some(v) => {
                parse_origins(&v).map_err(|problem| invalid("CORS_ALLOWED_ORIGINS", problem))?
            }
        };
        let (log_var, log_value) = match get("AWS_LAMBDA_LOG_LEVEL") {
            Some(v) => ("AWS_LAMBDA_LOG_LEVEL", Some(v)),
            None => ("LOG_LEVEL", get("LOG_LEVEL")),
        };
        let log_level = match log_value {
            None => tracing::Level::INFO,
            // Lambda's levels include FATAL, which tracing calls ERROR.
            Some(v) if v.trim().eq_ignore_ascii_case("fatal") => tracing::Level::ERROR,
            Some(v) => v.trim().parse().map_err(|_| {
                invalid(
                    log_var,
                    format!("must be trace, debug, info, warn or error (got {v:?})"),
                )
            })?,
        };
        let defaults = FeedSettings::default();
        let positive = |var: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(var) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| invalid(var, format!("must be a positive integer (got {v:?})"))),
            }
        };
        let feed = FeedSettings {
            lifetime: Duration::from_secs(positive(
                "EVENTS_LIFETIME_SECONDS",
                defaults.lifetime.as_secs(),
            )?),
            poll: Duration::from_millis(positive(
                "EVENTS_POLL_MILLISECONDS",
                defaults.poll.as_millis() as u64,
            )?),
            heartbeat: Duration::from_secs(positive(
                "EVENTS_HEARTBEAT_SECONDS",
                defaults.heartbeat.as_secs(),
            )?),
            retry: defaults.retry,
        };
        let change_retention_days = u32::try_from(positive(
            "CHANGE_RETENTION_DAYS",
            u64::from(DEFAULT_CHANGE_RETENTION_DAYS),
        )?)
        .map_err(|_| invalid("CHANGE_RETENTION_DAYS", "is too large"))?;
        let max_feed_streams = u32::try_from(positive("MAX_FEED_STREAMS_PER_CALLER", 3)?)
            .map_err(|_| invalid("MAX_FEED_STREAMS_PER_CALLER", "is too large"))?;
        let per_caller = |var: &'static str, default: u32| -> Result<u32, ConfigError> {
            u32::try_from(positive(var, u64::from(default))?)
                .map_err(|_| invalid(var, "is too large"))
        };
        let fair_share = FairShare {
            writes: per_caller("WRITES_PER_CALLER", DEFAULT_WRITES_PER_CALLER)?,
            exports: per_caller("EXPORTS_PER_CALLER", DEFAULT_EXPORTS_PER_CALLER)?,
            window_seconds: per_caller("RATE_WINDOW_SECONDS", DEFAULT_RATE_WINDOW_SECONDS)?,
        };
        let events_url = match get("EVENTS_URL") {
            None => FEED_PATH.to_owned(),
            Some(url) => {
                let url = url.trim().trim_end_matches('?').to_owned();
                if !https_or_loopback_http(&url) {
                    return Err(invalid(
                        "EVENTS_URL",
                        format!("must be an https URL, or http on a loopback host (got {url:?})"),
                    ));
                }
                feed_on(url)
            }
        };
        let endpoint_url = match get("AWS_ENDPOINT_URL_DYNAMODB") {
            Some(v) => Some(("AWS_ENDPOINT_URL_DYNAMODB", v)),
            None => get("AWS_ENDPOINT_URL").map(|v| ("AWS_ENDPOINT_URL", v)),
        };
        let endpoint_url = match endpoint_url {
            None => None,
            Some((var, url)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid(
                        var,
                        format!("must be an http(s) URL (got {url:?})"),
                    ));
                }
                Some(url)
            }
        };
        let aws = AwsSettings {
            region: required("AWS_REGION")?,
            endpoint_url,
            access_key_id: required("AWS_ACCESS_KEY_ID")?,
            secret_access_key: required("AWS_SECRET_ACCESS_KEY")?,
            session_token: get("AWS_SESSION_TOKEN"),
            operation_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_millis(1500),
        };
        let token = match get("JWT_ISSUER") {
            None => {
                for var in ["JWT_AUDIENCE", "JWT_SCOPES"] {
                    if get(var).is_some() {
                        return Err(invalid(
                            "JWT_ISSUER",
                            format!("is required when {var} is set"),
                        ));
                    }
                }
                None
            }
            Some(issuer) => {
                let issuer = issuer.trim().to_owned();
                if !https_or_loopback_http(&issuer) {
                    return Err(invalid(
                        "JWT_ISSUER",
                        format!(
                            "must be an https URL, or http on a loopback host (got {issuer:?})"
                        ),
                    ));
                }
                let audience = get("JWT_AUDIENCE")
                    .ok_or_else(|| invalid("JWT_AUDIENCE", "is required when JWT_ISSUER is set"))?
                    .trim()
                    .to_owned();
                let scopes = get("JWT_SCOPES")
                    .ok_or_else(|| {
                        invalid(
                            "JWT_SCOPES",
                            "is required when JWT_ISSUER is set (the scopes the API's \
                             routes require, such as aws.cognito.signin.user.admin)",
                        )
                    })?
                    .trim()
                    .to_owned();
                Some(TokenSettings {
                    issuer,
                    audience,
                    scopes,
                })
            }
        };
        if identity == IdentityMode::Header && token.is_some() {
            return Err(invalid(
                "IDENTITY_MODE",
                "cannot be \"header\" when JWT_ISSUER is set: with JWT_ISSUER the caller \
                 comes from a verified bearer token only",
            ));
        }
        Ok(Config {
            table_name,
            max_tasks,
            identity,
            cors_origins,
            log_level,
            feed,
            change_retention_days,
            max_feed_streams,
            fair_share,
            events_url,
            aws,
            token,
        })
    }
}

/// `CORS_ALLOWED_ORIGINS`: comma-separated origins, `scheme://host[:port]`
/// (http or https, no path, no `*`), as the template's `AllowedOrigins`
/// accepts. Returned in lower case.
pub fn parse_origins(value: &str) -> Result<Vec<String>, String> {
    let mut origins = Vec::new();
    for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        if !is_origin(origin) {
            return Err(format!(
                "must be comma-separated origins such as http://localhost:5173 \
                 (scheme://host[:port], no path, no \"*\"); got {origin:?}"
            ));
        }
        origins.push(origin.to_ascii_lowercase());
    }
    Ok(origins)
}

fn is_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let (host, port) = match rest.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    let port_ok =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()));
    host_ok && port_ok
}

/// One caller's share of what every caller shares: at most `writes` task
/// writes (POST, PUT, PATCH, DELETE together) and `exports` export opens
/// in each window of `window_seconds`, counted across every instance of
/// every function (in the table: [`crate::ports::RateLimiter`]). Beyond
/// it, 429 with `Retry-After` (the seconds left in the window).
///
/// Fixed windows (a count per window, one conditional write per request):
/// a caller may send its whole share at the end of one window and again
/// at the start of the next, so up to twice the share within a short
/// span across a boundary; averaged over any two windows it is at most
/// the share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FairShare {
    pub writes: u32,
    pub exports: u32,
    pub window_seconds: u32,
}

impl Default for FairShare {
    fn default() -> Self {
        FairShare {
            writes: DEFAULT_WRITES_PER_CALLER,
            exports: DEFAULT_EXPORTS_PER_CALLER,
            window_seconds: DEFAULT_RATE_WINDOW_SECONDS,
        }
    }
}

/// How a feed runs; from the environment (`EVENTS_*` variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedSettings {
    /// `EVENTS_LIFETIME_SECONDS` (default 240): how long one invocation
    /// streams before it ends the stream with a `retry:` hint. Below the
    /// function's timeout (300 s in `template.yaml`).
    pub lifetime: Duration,
    /// `EVENTS_POLL_MILLISECONDS` (default 1000): the pause between two
    /// reads when nothing is new.
    pub poll: Duration,
    /// `EVENTS_HEARTBEAT_SECONDS` (default 15): a `: keep-alive` comment
    /// after this long without a frame, so proxies keep the connection.
    pub heartbeat: Duration,
    /// `retry:` sent at the end, in milliseconds: when `EventSource`
    /// reconnects.
    pub retry: Duration,
}

impl Default for FeedSettings {
    fn default() -> Self {
        FeedSettings {
            lifetime: Duration::from_secs(240),
            poll: Duration::from_millis(1000),
            heartbeat: Duration::from_secs(15),
            retry: Duration::from_millis(1000),
        }
    }
}

fn valid_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// An https URL with a host, or an http one whose host is loopback
/// (`localhost`, 127.0.0.0/8, `[::1]`): keys are never fetched in clear
/// over a network.
/// `EVENTS_URL` with [`FEED_PATH`] on a bare origin (see
/// [`Config::events_url`]).
fn feed_on(url: String) -> String {
    match url.parse::<lambda_http::http::Uri>() {
        Ok(uri) if matches!(uri.path(), "" | "/") && uri.query().is_none() => {
            format!("{}{FEED_PATH}", url.trim_end_matches('/'))
        }
        _ => url,
    }
}

pub(crate) fn https_or_loopback_http(url: &str) -> bool {
    let Ok(parsed) = url.parse::<lambda_http::http::Uri>() else {
        return false;
    };
    let Some(host) = parsed.host().filter(|h| !h.is_empty()) else {
        return false;
    };
    match parsed.scheme_str().unwrap_or_default() {
        "https" => true,
        "http" => {
            host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut map: HashMap<String, String> = [
            ("TABLE_NAME", "tasks"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            map.insert(k.to_string(), v.to_string());
        }
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults() {
        let config = Config::from_lookup(lookup(&[])).expect("valid config");
        assert_eq!(config.table_name, "tasks");
        assert_eq!(config.max_tasks, 1000);
        assert_eq!(config.identity, IdentityMode::Jwt);
        assert_eq!(config.log_level, tracing::Level::INFO);
        assert_eq!(config.aws.endpoint_url, None);
        assert!(config.cors_origins.is_empty());
        assert_eq!(config.token, None);
        assert_eq!(config.fair_share, FairShare::default());
        assert_eq!(config.fair_share.writes, 20);
        assert_eq!(config.fair_share.window_seconds, 10);
    }

    #[test]
    fn events_url_is_the_feeds_url() {
        let events_url = |value: Option<&str>| {
            let pairs: Vec<(&str, &str)> = value.map(|v| ("EVENTS_URL", v)).into_iter().collect();
            Config::from_lookup(lookup(&pairs)).map(|c| c.events_url)
        };
        assert_eq!(events_url(None).expect("valid"), FEED_PATH);
        // Deployed: the feed function's URL, a bare origin, with or
        // without its slash (or a stray `?`), gets the feed's path.
        let origin = "https://abc123.lambda-url.eu-west-1.on.aws";
        for value in [
            format!("{origin}/"),
            origin.to_owned(),
            format!("{origin}/?"),
        ] {
            assert_eq!(
                events_url(Some(&value)).expect("valid"),
                format!("{origin}/tasks/events"),
                "{value}"
            );
        }
        // A URL that names a path is the feed's URL as it is.
        assert_eq!(
            events_url(Some("https://feed.example.com/live")).expect("valid"),
            "https://feed.example.com/live"
        );
        assert!(events_url(Some("http://feed.example.com/")).is_err());
    }

    #[test]
    fn token_settings() {
        let issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123";
        let config = Config::from_lookup(lookup(&[
            ("JWT_ISSUER", issuer),
            ("JWT_AUDIENCE", " 4k1ient1d "),
            ("JWT_SCOPES", " aws.cognito.signin.user.admin "),
        ]))
        .expect("valid config");
        let token = config.token.expect("token settings");
        assert_eq!(
            token,
            TokenSettings {
                issuer: issuer.into(),
                audience: "4k1ient1d".into(),
                scopes: "aws.cognito.signin.user.admin".into(),
            }
        );
        // The keys are found through the discovery document, as the
        // authorizer finds them.
        assert_eq!(
            token.discovery_url(),
            format!("{issuer}/.well-known/openid-configuration")
        );

        // No doubled slash; scopes split at commas and spaces.
        let config = Config::from_lookup(lookup(&[
            ("JWT_ISSUER", "https://issuer.example/"),
            ("JWT_AUDIENCE", "api"),
            ("JWT_SCOPES", "tasks/read, tasks/write  openid"),
        ]))
        .expect("valid config");
        let token = config.token.expect("token settings");
        assert_eq!(
            token.discovery_url(),
            "https://issuer.example/.well-known/openid-configuration"
        );
        assert_eq!(
            token.scopes().collect::<Vec<_>>(),
            ["tasks/read", "tasks/write", "openid"]
        );
    }

    #[test]
    fn bad_token_settings_name_their_variable() {
        let issuer = ("JWT_ISSUER", "https://issuer.example");
        let audience = ("JWT_AUDIENCE", "api");
        let scopes = ("JWT_SCOPES", "api/tasks");
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[issuer, scopes], "JWT_AUDIENCE"),
            (&[issuer, ("JWT_AUDIENCE", " "), scopes], "JWT_AUDIENCE"),
            (&[issuer, audience], "JWT_SCOPES"),
            (&[issuer, audience, ("JWT_SCOPES", " ")], "JWT_SCOPES"),
            (&[audience], "JWT_ISSUER"),
            (&[scopes], "JWT_ISSUER"),
            (
                &[("JWT_ISSUER", "issuer.example"), audience, scopes],
                "JWT_ISSUER",
            ),
            (
                &[("JWT_ISSUER", "http://issuer.example"), audience, scopes],
                "JWT_ISSUER",
            ),
        ];
        for (pairs, named) in cases {
            let err = Config::from_lookup(lookup(pairs)).expect_err(named);
            assert_eq!(err.var, *named, "{pairs:?}");
            assert!(err.to_string().contains(named), "{err}");
        }
    }

    #[test]
    fn overrides() {
        let config = Config::from_lookup(lookup(&[
            ("MAX_TASKS", "5"),
            ("IDENTITY_MODE", "header"),
            ("LOG_LEVEL", "debug"),
            ("WRITES_PER_CALLER", "3"),
            ("EXPORTS_PER_CALLER", "1"),
            ("RATE_WINDOW_SECONDS", "2"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
            (
                "CORS_ALLOWED_ORIGINS",
                "http://localhost:5173,https://app.example",
            ),
        ]))
        .expect("valid config");
        assert_eq!(
            config.cors_origins,
            ["http://localhost:5173", "https://app.example"]
        );
        assert_eq!(config.max_tasks, 5);
        assert_eq!(
            config.fair_share,
            FairShare {
                writes: 3,
                exports: 1,
                window_seconds: 2
            }
        );
        assert_eq!(config.identity, IdentityMode::Header);
        assert_eq!(config.log_level, tracing::Level::DEBUG);
        assert_eq!(
            config.aws.endpoint_url.as_deref(),
            Some("http://127.0.0.1:8000")
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            (("MAX_TASKS", "lots"), "MAX_TASKS"),
            (("MAX_TASKS", "0"), "MAX_TASKS"),
            (("IDENTITY_MODE", "trust-me"), "IDENTITY_MODE"),
            (("LOG_LEVEL", "loud"), "LOG_LEVEL"),
            (("AWS_LAMBDA_LOG_LEVEL", "LOUD"), "AWS_LAMBDA_LOG_LEVEL"),
            (
                ("AWS_ENDPOINT_URL_DYNAMODB", "localhost:8000"),
                "AWS_ENDPOINT_URL_DYNAMODB",
            ),
            (("TABLE_NAME", "no spaces"), "TABLE_NAME"),
            (("CORS_ALLOWED_ORIGINS", "*"), "CORS_ALLOWED_ORIGINS"),
            (
                ("CORS_ALLOWED_ORIGINS", "http://localhost:5173/"),
                "CORS_ALLOWED_ORIGINS",
            ),
            (("TABLE_NAME", ""), "TABLE_NAME"),
            (("AWS_REGION", ""), "AWS_REGION"),
            (("WRITES_PER_CALLER", "0"), "WRITES_PER_CALLER"),
            (("EXPORTS_PER_CALLER", "-1"), "EXPORTS_PER_CALLER"),
            (("RATE_WINDOW_SECONDS", "5000000000"), "RATE_WINDOW_SECONDS"),
        ];
        for ((var, value), named) in cases {
            let err = Config::from_lookup(lookup(&[(var, value)])).expect_err(var);
            assert_eq!(err.var, named, "{var}={value:?}");
            assert!(err.to_string().contains(named), "{err}");
        }
    }

    #[test]
    fn credentials_are_not_printed() {
        let config = Config::from_lookup(lookup(&[])).expect("valid config");
        let printed = format!("{config:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(!printed.contains("AKID"), "{printed}");
    }
}
