//! Checking a caller's bearer token in the function itself.
//!
//! Most routes sit behind the HTTP API, whose JWT authorizer checks the
//! token before the function runs (see [`crate::identity`]). The streamed
//! export and the Server-Sent-Events feed cannot: HTTP APIs buffer whole
//! responses, so those two functions are reached through Lambda Function
//! URLs in `RESPONSE_STREAM` mode with `AuthType: NONE`, and nothing in
//! front of them looks at the token. [`TokenVerifier`] does here what the
//! authorizer does there:
//!
//! - a JWT signed by one of the issuer's keys (its JWKS), RS256 or ES256
//!   as the key says (never an algorithm the token picks, never HMAC);
//! - `iss` equal to the configured issuer;
//! - `aud` containing the configured audience, or `client_id` equal to it
//!   (Cognito's access tokens carry no `aud`);
//! - `exp` in the future and `nbf` (if present) in the past, give or take
//!   [`LEEWAY_SECONDS`];
//! - the caller is the `sub` claim.
//!
//! Any failure is a 401 ([`ApiError::Unauthenticated`]); only a JWKS that
//! cannot be fetched is a 503 ([`ApiError::Unavailable`]), since the token
//! may well be good. The keys are fetched on first use (not at cold start)
//! and kept for the life of the process; a token naming a key id the cache
//! does not have (the issuer rotated its keys) refetches them, at most once
//! per [`REFETCH_INTERVAL`]. Tokens are never logged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

pub use crate::config::TokenSettings;
use crate::error::ApiError;
use crate::identity::Caller;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 60;
/// Least time between two JWKS fetches for unknown key ids.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
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
    rs256: Validation,
    es256: Validation,
    /// Usable keys by key id, as last fetched.
    keys: RwLock<HashMap<String, Arc<VerifyingKey>>>,
    /// Held while fetching, so concurrent requests wait for one fetch.
    fetch: Mutex<FetchState>,
    refetch_interval: Duration,
}

/// A key from the JWKS and the one algorithm it verifies.
struct VerifyingKey {
    key: DecodingKey,
    algorithm: Algorithm,
}

#[derive(Default)]
struct FetchState {
    /// Built on the first fetch, not at cold start.
    client: Option<reqwest::Client>,
    last_attempt: Option<Instant>,
    last_failed: bool,
}

/// The claims read from a token (signature, `exp`, `nbf` and `iss` are
/// also checked by `jsonwebtoken`).
#[derive(Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    client_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
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
        let validation = |algorithm| {
            let mut validation = Validation::new(algorithm);
            validation.leeway = LEEWAY_SECONDS;
            validation.validate_exp = true;
            validation.validate_nbf = true;
            // `aud` or `client_id`: checked in `verify`.
            validation.validate_aud = false;
            validation.set_issuer(&[&settings.issuer]);
            validation.set_required_spec_claims(&["exp", "iss", "sub"]);
            validation
        };
        TokenVerifier {
            rs256: validation(Algorithm::RS256),
            es256: validation(Algorithm::ES256),
            settings,
            keys: RwLock::new(HashMap::new()),
            fetch: Mutex::new(FetchState::default()),
            refetch_interval: REFETCH_INTERVAL,
        }
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// The caller named by a valid bearer token, or 401; 503 if the
    /// issuer's keys cannot be fetched.
    ///
    /// `authorization`: the raw `Authorization` header value, if any.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        let token = bearer(authorization).ok_or_else(|| rejected("no bearer token"))?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| rejected("malformed token"))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(rejected("algorithm not accepted"));
        }
        let kid = header.kid.ok_or_else(|| rejected("no key id"))?;
        let key = self
            .key(&kid)
            .await?
            .ok_or_else(|| rejected("unknown key id"))?;
        // The key decides the algorithm, never the token.
        if header.alg != key.algorithm {
            return Err(rejected("algorithm does not match the key"));
        }
        let validation = match key.algorithm {
            Algorithm::ES256 => &self.es256,
            _ => &self.rs256,
        };
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, validation)
            .map_err(|error| rejected(reason(error.kind())))?
            .claims;
        if claims.iss != self.settings.issuer {
            return Err(rejected("wrong issuer"));
        }
        // As the HTTP API's authorizer: any of the configured audiences.
        let for_us = self.settings.audiences().any(|audience| {
            claims
                .aud
                .as_ref()
                .is_some_and(|aud| aud.contains(audience))
                || claims.client_id.as_deref() == Some(audience)
        });
        if !for_us {
            return Err(rejected("wrong audience"));
        }
        Caller::new(claims.sub).ok_or_else(|| rejected("invalid sub"))
    }

    /// The key named `kid`: from the cache, or fetched when the cache does
    /// not have it (at most once per `refetch_interval`, once per
    /// [`RETRY_INTERVAL`] after a failed fetch). `None`: no such key.
    async fn key(&self, kid: &str) -> Result<Option<Arc<VerifyingKey>>, ApiError> {
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(Some(Arc::clone(key)));
        }
        let mut state = self.fetch.lock().await;
        // Another request may have fetched them while this one waited.
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(Some(Arc::clone(key)));
        }
        if let Some(last) = state.last_attempt {
            let interval = if state.last_failed {
                RETRY_INTERVAL
            } else {
                self.refetch_interval
            };
            if last.elapsed() < interval {
                return if state.last_failed {
                    Err(ApiError::Unavailable("JWKS unavailable".into()))
                } else {
                    Ok(None)
                };
            }
        }
        state.last_attempt = Some(Instant::now());
        match self.fetch_keys(&mut state.client).await {
            Ok(keys) => {
                state.last_failed = false;
                tracing::debug!(keys = keys.len(), url = %self.settings.jwks_url, "JWKS fetched");
                let key = keys.get(kid).cloned();
                *self.keys.write().await = keys;
                Ok(key)
            }
            Err(problem) => {
                state.last_failed = true;
                tracing::warn!(url = %self.settings.jwks_url, %problem, "JWKS fetch failed");
                Err(ApiError::Unavailable(problem))
            }
        }
    }

    async fn fetch_keys(
        &self,
        client: &mut Option<reqwest::Client>,
    ) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
        let client = match client {
            Some(client) => client,
            None => client.insert(http_client(&self.settings.jwks_url)?),
        };
        let mut response = client
            .get(&self.settings.jwks_url)
            .send()
            .await
            .map_err(|error| format!("JWKS request failed: {}", chain(&error)))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(format!("JWKS answered {status}"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| format!("JWKS not read: {}", chain(&error)))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("JWKS larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body)
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is
/// case-insensitive).
fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= MAX_TOKEN_BYTES)
        .then_some(token)
}

/// 401, with the reason logged (never the token).
fn rejected(reason: &'static str) -> ApiError {
    tracing::debug!(reason, "bearer token rejected");
    ApiError::Unauthenticated
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

/// The usable keys of a JWKS document by key id: RSA keys for RS256 and
/// P-256 keys for ES256, meant for signatures. Other entries are skipped
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
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        _ => return None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, VerifyingKey { key, algorithm }))
}

/// The JWKS client: a short timeout, no redirects. Cognito's endpoints
/// (`*.amazonaws.com`) are checked against the compiled-in Amazon roots,
/// as DynamoDB's are (no system trust store to parse); any other issuer
/// against the system's roots.
fn http_client(jwks_url: &str) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if is_amazon_host(jwks_url) {
        let roots =
            reqwest::Certificate::from_pem_bundle(crate::store::dynamo::AMAZON_TRUST_SERVICES)
                .map_err(|error| format!("Amazon roots not loaded: {}", chain(&error)))?;
        builder = builder.tls_certs_only(roots);
    }
    builder
        .build()
        .map_err(|error| format!("JWKS client not built: {}", chain(&error)))
}

fn is_amazon_host(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|url| {
        url.scheme() == "https"
            && url
                .host_str()
                .is_some_and(|host| host == "amazonaws.com" || host.ends_with(".amazonaws.com"))
    })
}

/// An error and its causes, on one line (reqwest's own message is only
/// the outermost).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
