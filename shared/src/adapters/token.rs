//! Checking a caller's bearer token in the function itself.
//!
//! Most routes sit behind the HTTP API, whose JWT authorizer checks the
//! token before the function runs (see [`crate::identity`]). The streamed
//! export and the Server-Sent-Events feed cannot: HTTP APIs buffer whole
//! responses, so those two functions are reached through Lambda Function
//! URLs in `RESPONSE_STREAM` mode with `AuthType: NONE`, and nothing in
//! front of them looks at the token (locally, in token mode, every
//! function checks it this way). [`TokenVerifier`] applies the rules of
//! API Gateway's JWT authorizer, as AWS documents them:
//!
//! - a JWT signed by one of the issuer's keys (its JWKS) with an RSA
//!   algorithm (RS256, RS384, RS512: the authorizer supports RSA only),
//!   as the key says (never an algorithm the token picks, never HMAC, never
//!   `none`);
//! - a `kid` the JWKS has;
//! - `iss` equal to the configured issuer;
//! - if the token has an `aud`, it must contain a configured audience, and
//!   `client_id` is not looked at; only without `aud` must `client_id` be
//!   one (Cognito's access tokens carry no `aud`);
//! - `exp` in the future and `nbf` (if present) in the past, give or take
//!   [`LEEWAY_SECONDS`];
//! - `iat` (if present) not after the current time: "must be before the
//!   current time in UTC", with no tolerance documented, so none here;
//! - at least one of the required scopes ([`TokenSettings::scopes`],
//!   `JWT_SCOPES`, the routes' `AuthorizationScopes` deployed) in the
//!   `scope` claim (space-separated) or `scp`: an ID token carries none, so
//!   it is refused, as AWS advises unless ID tokens are meant to work;
//! - and, beyond the authorizer, a `token_use` claim (Cognito's), when
//!   present, must be `access`: an ID token is not an access token;
//! - the caller is the `sub` claim.
//!
//! Any failure is [`TokenError::Rejected`] with the rule it broke (a 401
//! whose `WWW-Authenticate` says why); only keys that cannot be fetched
//! are [`TokenError::KeysUnavailable`] (a 503), since the token may well be
//! good. The keys are found as the authorizer finds them: the issuer's
//! discovery document (`{issuer}/.well-known/openid-configuration`) names
//! its `jwks_uri`. They are fetched on first use (not at cold start) and
//! kept for at most [`MAX_KEY_AGE`]: an older set is fetched again before
//! it is used, so a key the issuer withdrew stops working within the hour
//! even in an instance that stays warm. A token naming a key id the cache
//! does not have (the issuer rotated its keys) refetches them at once, but
//! at most once per [`REFETCH_INTERVAL`], so a flood of forged key ids
//! costs the issuer one request a minute. Tokens are never logged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lambda_http::http::{StatusCode, Uri};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use crate::config::TokenSettings;
use crate::domain::caller::Caller;
use crate::ports::chain;

/// Why a token gave no caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization: Bearer` token at all.
    #[error("no bearer token")]
    Missing,
    /// A token that breaks a rule; the text names the rule (it is shown to
    /// the client in `WWW-Authenticate`'s `error_description`).
    #[error("{0}")]
    Rejected(&'static str),
    /// The issuer's keys could not be fetched: the token may be good.
    #[error("JWKS unavailable: {0}")]
    KeysUnavailable(String),
}

/// A verified token: who, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub caller: Caller,
    /// The token's `exp`: nothing it opened may outlive it.
    pub expires_at: DateTime<Utc>,
}

/// The algorithms API Gateway's JWT authorizer accepts: RSA only.
const RSA_ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512];

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 60;
/// Least time between two JWKS fetches for unknown key ids.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// Keys older than this are fetched again before use. AWS documents the
/// JWT authorizers' key cache as "up to 1 hour, best effort" (REST APIs'
/// page on signing keys) and "can cache public keys for two hours" (HTTP
/// APIs' page): the stricter of the two.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(3600);
/// A discovery document is a page of metadata (Cognito's: under 2 KiB).
const MAX_DISCOVERY_BYTES: usize = 64 * 1024;
/// Least time between two JWKS fetches after one failed.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Upper bound of one JWKS fetch, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// A JWKS is a few keys (Cognito's: two, under 1 KiB).
const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Longer bearer tokens are not parsed at all (Cognito's are ~1 KiB).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Checks bearer tokens against one issuer's keys. Build one per cold start
/// (no I/O) and share it: the keys are cached inside.
pub struct TokenVerifier {
    settings: TokenSettings,
    validation: Validation,
    /// Usable keys by key id, as last fetched, and when.
    keys: RwLock<KeySet>,
    /// Held while fetching, so concurrent requests wait for one fetch.
    fetch: Mutex<FetchState>,
    refetch_interval: Duration,
    max_key_age: Duration,
    /// [`TokenSettings::discovery_url`] (tests point it at loopback).
    discovery_url: String,
}

/// An RSA key from the JWKS.
struct VerifyingKey {
    key: DecodingKey,
}

#[derive(Default)]
struct KeySet {
    keys: HashMap<String, Arc<VerifyingKey>>,
    fetched_at: Option<Instant>,
}

impl KeySet {
    /// The key named `kid` if the set is younger than `max_age`.
    fn fresh_key(&self, kid: &str, max_age: Duration) -> Option<Arc<VerifyingKey>> {
        self.fresh(max_age)
            .then(|| self.keys.get(kid).cloned())
            .flatten()
    }

    fn fresh(&self, max_age: Duration) -> bool {
        self.fetched_at.is_some_and(|at| at.elapsed() < max_age)
    }
}

#[derive(Default)]
struct FetchState {
    /// Built on the first fetch, not at cold start.
    client: Option<JwksClient>,
    /// The discovery document's `jwks_uri`, once read (read again after a
    /// failed fetch).
    jwks_uri: Option<String>,
    last_attempt: Option<Instant>,
    last_failed: bool,
}

/// The claims read from a token (signature, `exp`, `nbf` and `iss` are
/// also checked by `jsonwebtoken`).
#[derive(Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<Scopes>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    token_use: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// `scp`: a space-separated string or a list (issuers differ).
#[derive(Deserialize)]
#[serde(untagged)]
enum Scopes {
    Spaced(String),
    Listed(Vec<String>),
}

impl Claims {
    /// The token's scopes: `scope` (space-separated) and `scp`.
    fn scopes(&self) -> impl Iterator<Item = &str> {
        let scp: Vec<&str> = match &self.scp {
            None => Vec::new(),
            Some(Scopes::Spaced(scp)) => scp.split_whitespace().collect(),
            Some(Scopes::Listed(scp)) => scp.iter().map(String::as_str).collect(),
        };
        self.scope
            .iter()
            .flat_map(|scope| scope.split_whitespace())
            .chain(scp)
    }
}

impl Audience {
    fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(aud) => aud == audience,
            Audience::Many(auds) => auds.iter().any(|aud| aud == audience),
        }
    }
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Does no I/O: the keys are fetched by the first [`Self::verify`].
    pub fn new(settings: TokenSettings) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = RSA_ALGORITHMS.to_vec();
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // `aud` or `client_id`: checked in `verify`.
        validation.validate_aud = false;
        validation.set_issuer(&[&settings.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        TokenVerifier {
            validation,
            discovery_url: settings.discovery_url(),
            settings,
            keys: RwLock::new(KeySet::default()),
            fetch: Mutex::new(FetchState::default()),
            refetch_interval: REFETCH_INTERVAL,
            max_key_age: MAX_KEY_AGE,
        }
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// The caller named by a valid bearer token and its expiry; the rule
    /// it broke otherwise, or [`TokenError::KeysUnavailable`].
    ///
    /// `authorization`: the raw `Authorization` header value, if any.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<Verified, TokenError> {
        let token = bearer(authorization).ok_or(TokenError::Missing)?;
        if unsigned(token) {
            return Err(rejected("unsigned token"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| rejected("malformed token"))?;
        if !RSA_ALGORITHMS.contains(&header.alg) {
            return Err(rejected("algorithm not accepted"));
        }
        let kid = header.kid.ok_or_else(|| rejected("no key id"))?;
        let key = self
            .key(&kid)
            .await?
            .ok_or_else(|| rejected("unknown key id"))?;
        let mut validation = self.validation.clone();
        // The key decides the algorithm family, never the token: an RSA key
        // verifies RSA signatures only.
        validation.algorithms = vec![header.alg];
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|error| rejected(reason(error.kind())))?
            .claims;
        if claims.iss != self.settings.issuer {
            return Err(rejected("wrong issuer"));
        }
        // As the HTTP API's authorizer: `aud` when the token has one, else
        // `client_id`; any of the configured audiences.
        let for_us = match &claims.aud {
            Some(aud) => self.settings.audiences().any(|a| aud.contains(a)),
            None => self
                .settings
                .audiences()
                .any(|a| claims.client_id.as_deref() == Some(a)),
        };
        if !for_us {
            return Err(rejected("wrong audience"));
        }
        // `iat` as the authorizer: before the current time (a token from
        // the future was not issued by a clock anyone trusts).
        if claims.iat.is_some_and(|iat| iat > Utc::now().timestamp()) {
            return Err(rejected("issued in the future"));
        }
        if !claims
            .scopes()
            .any(|scope| self.settings.scopes().any(|s| s == scope))
        {
            return Err(rejected("no required scope"));
        }
        if claims.token_use.as_deref().is_some_and(|u| u != "access") {
            return Err(rejected("not an access token"));
        }
        let caller = Caller::new(claims.sub).ok_or_else(|| rejected("invalid sub"))?;
        let expires_at =
            DateTime::from_timestamp(claims.exp, 0).ok_or_else(|| rejected("invalid exp"))?;
        Ok(Verified { caller, expires_at })
    }

    /// The key named `kid`: from the cache while it is younger than
    /// `max_key_age`; otherwise, or when the cache does not have it,
    /// fetched again (for an unknown kid at most once per
    /// `refetch_interval`; once per [`RETRY_INTERVAL`] after a failed
    /// fetch). `None`: no such key.
    async fn key(&self, kid: &str) -> Result<Option<Arc<VerifyingKey>>, TokenError> {
        if let Some(key) = self.keys.read().await.fresh_key(kid, self.max_key_age) {
            return Ok(Some(key));
        }
        let mut state = self.fetch.lock().await;
        // Another request may have fetched them while this one waited.
        let fresh = {
            let cached = self.keys.read().await;
            if let Some(key) = cached.fresh_key(kid, self.max_key_age) {
                return Ok(Some(key));
            }
            cached.fresh(self.max_key_age)
        };
        if let Some(last) = state.last_attempt {
            let interval = if state.last_failed {
                RETRY_INTERVAL
            } else {
                self.refetch_interval
            };
            // Keys too old are fetched again whatever the interval.
            if last.elapsed() < interval && (state.last_failed || fresh) {
                return if state.last_failed {
                    Err(TokenError::KeysUnavailable("the last fetch failed".into()))
                } else {
                    Ok(None)
                };
            }
        }
        state.last_attempt = Some(Instant::now());
        let state = &mut *state;
        match self
            .fetch_keys(&mut state.client, &mut state.jwks_uri)
            .await
        {
            Ok(keys) => {
                state.last_failed = false;
                tracing::debug!(keys = keys.len(), url = ?state.jwks_uri, "JWKS fetched");
                let key = keys.get(kid).cloned();
                *self.keys.write().await = KeySet {
                    keys,
                    fetched_at: Some(Instant::now()),
                };
                Ok(key)
            }
            Err(problem) => {
                state.last_failed = true;
                // Read the discovery document again next time; and never
                // use keys past their age.
                state.jwks_uri = None;
                tracing::warn!(issuer = %self.settings.issuer, %problem, "JWKS fetch failed");
                Err(TokenError::KeysUnavailable(problem))
            }
        }
    }

    /// The keys, from the `jwks_uri` of the issuer's discovery document
    /// (read first when not known yet).
    async fn fetch_keys(
        &self,
        client: &mut Option<JwksClient>,
        jwks_uri: &mut Option<String>,
    ) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
        let discovery_url = &self.discovery_url;
        let client = match client {
            Some(client) => client,
            None => client.insert(http_client(discovery_url)?),
        };
        let uri = match jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let body = self
                    .get(
                        client,
                        discovery_url,
                        MAX_DISCOVERY_BYTES,
                        "discovery document",
                    )
                    .await?;
                jwks_uri
                    .insert(parse_discovery(&body, &self.settings.issuer)?)
                    .clone()
            }
        };
        let body = self.get(client, &uri, MAX_JWKS_BYTES, "JWKS").await?;
        parse_jwks(&body)
    }

    /// One GET of `url` (a document of at most `limit` bytes) and its X-Ray
    /// subsegment.
    async fn get(
        &self,
        client: &JwksClient,
        url: &str,
        limit: usize,
        what: &str,
    ) -> Result<Bytes, String> {
        let uri: Uri = url
            .parse()
            .map_err(|error| format!("{what} URL: {error}"))?;
        let started = super::xray::now();
        let mut answered = None;
        let url = format!(
            "{}://{}{}",
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map_or("", |a| a.as_str()),
            uri.path()
        );
        let fetch = async {
            let response = client
                .get(uri)
                .await
                .map_err(|error| format!("{what} request failed: {}", chain(&error)))?;
            let status = response.status();
            answered = Some(status.as_u16());
            if status != StatusCode::OK {
                return Err(format!("{what} answered {status}"));
            }
            let body = Limited::new(response.into_body(), limit)
                .collect()
                .await
                .map_err(|error| {
                    if error.is::<LengthLimitError>() {
                        format!("{what} larger than {limit} bytes")
                    } else {
                        format!("{what} not read: {error}")
                    }
                })?;
            Ok(body.to_bytes())
        };
        let body = tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .map_err(|_| format!("{what} request timed out after {FETCH_TIMEOUT:?}"))
            .and_then(|fetched| fetched);
        // A subsegment of the invocation's segment (adapters::xray).
        super::xray::record(
            super::xray::daemon().as_deref(),
            &super::xray::Call {
                name: url
                    .split("://")
                    .nth(1)
                    .and_then(|rest| rest.split('/').next())
                    .unwrap_or("jwks")
                    .to_owned(),
                namespace: "remote",
                start: started,
                end: super::xray::now(),
                http: Some(serde_json::json!({ "request": { "method": "GET", "url": url } })),
                status: answered,
                failure: body.as_ref().err().cloned(),
                ..Default::default()
            },
        );
        body
    }
}

/// The `jwks_uri` of an OpenID discovery document, whose `issuer` must be
/// the configured one (OpenID Connect Discovery 1.0, section 4.3): https,
/// or http on a loopback host (local runs).
fn parse_discovery(body: &[u8], issuer: &str) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Document {
        issuer: String,
        jwks_uri: String,
    }
    let document: Document = serde_json::from_slice(body)
        .map_err(|error| format!("not a discovery document: {error}"))?;
    if document.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err("the discovery document names another issuer".into());
    }
    if !crate::config::https_or_loopback_http(&document.jwks_uri) {
        return Err("jwks_uri is neither https nor http on a loopback host".into());
    }
    Ok(document.jwks_uri)
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is
/// case-insensitive).
fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= MAX_TOKEN_BYTES)
        .then_some(token)
}

/// A rejection, logged with its reason (never the token).
fn rejected(reason: &'static str) -> TokenError {
    tracing::debug!(reason, "bearer token rejected");
    TokenError::Rejected(reason)
}

/// Whether the token's header says `"alg": "none"` (jsonwebtoken cannot
/// even parse such a header, which would read as "malformed").
fn unsigned(token: &str) -> bool {
    use base64::Engine;
    #[derive(Deserialize)]
    struct Header {
        alg: String,
    }
    let Some((header, _)) = token.split_once('.') else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Header>(&bytes).ok())
        .is_some_and(|h| h.alg.eq_ignore_ascii_case("none"))
}

fn reason(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::ImmatureSignature => "not yet valid",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::MissingRequiredClaim(_) => "missing claim",
        ErrorKind::InvalidAlgorithm => "algorithm not accepted",
        _ => "malformed token",
    }
}

/// The usable keys of a JWKS document by key id: RSA keys meant for
/// signatures. Other entries are skipped
/// (an issuer may publish more kinds than we accept); a document that is
/// not a JWKS is an error.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
    #[derive(Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document =
        serde_json::from_slice(body).map_err(|error| format!("JWKS is not a key set: {error}"))?;
    let keys = document
        .keys
        .into_iter()
        .filter_map(|entry| serde_json::from_value::<Jwk>(entry).ok())
        .filter_map(|jwk| {
            let (kid, key) = verifying_key(&jwk)?;
            Some((kid, Arc::new(key)))
        })
        .collect();
    Ok(keys)
}

fn verifying_key(jwk: &Jwk) -> Option<(String, VerifyingKey)> {
    let kid = jwk.common.key_id.clone().filter(|kid| !kid.is_empty())?;
    if !matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    ) {
        return None;
    }
    let rsa = matches!(
        (&jwk.algorithm, jwk.common.key_algorithm),
        (
            AlgorithmParameters::RSA(_),
            None | Some(KeyAlgorithm::RS256 | KeyAlgorithm::RS384 | KeyAlgorithm::RS512),
        )
    );
    if !rsa {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, VerifyingKey { key }))
}

/// The client of the discovery document and the JWKS: hyper's, over
/// rustls with aws-lc (the TLS stack the DynamoDB client links already).
/// It follows no redirects; each fetch is bounded by [`FETCH_TIMEOUT`].
/// The roots are chosen by the issuer's host: Cognito's endpoints
/// (`*.amazonaws.com`, whose `jwks_uri` is on the same host) are checked
/// against the compiled-in Amazon roots, as DynamoDB's are (no system trust
/// store to parse); any other issuer against the system's roots.
type JwksClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

fn http_client(url: &str) -> Result<JwksClient, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let connector = hyper_rustls::HttpsConnectorBuilder::new();
    let connector = if is_amazon_host(url) {
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS not set up: {error}"))?
            .with_root_certificates(amazon_roots()?)
            .with_no_client_auth();
        connector.with_tls_config(config)
    } else {
        connector
            .with_provider_and_native_roots(provider)
            .map_err(|error| format!("system roots not loaded: {error}"))?
    };
    let connector = connector.https_or_http().enable_http1().build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// Amazon's roots ([`crate::adapters::tls::AMAZON_TRUST_SERVICES`]).
fn amazon_roots() -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(crate::adapters::tls::AMAZON_TRUST_SERVICES) {
        let certificate =
            certificate.map_err(|error| format!("Amazon roots not loaded: {error}"))?;
        roots
            .add(certificate)
            .map_err(|error| format!("Amazon roots not loaded: {error}"))?;
    }
    Ok(roots)
}

fn is_amazon_host(url: &str) -> bool {
    url.parse::<Uri>().is_ok_and(|uri| {
        uri.scheme_str() == Some("https")
            && uri
                .host()
                .is_some_and(|host| host == "amazonaws.com" || host.ends_with(".amazonaws.com"))
    })
}

#[cfg(test)]
mod tests;
