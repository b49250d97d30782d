//! A local OpenID issuer, for running the stack in token mode without
//! Cognito: one RSA signing key (made on first use and kept in a file, so
//! tokens stay valid across restarts), its JWKS and discovery document
//! served over HTTP on loopback, and access tokens minted for any user name.
//!
//! The tokens are shaped like the Cognito access tokens the deployed HTTP
//! API's JWT authorizer checks: RS256 with a `kid` from the JWKS, `iss` the
//! issuer URL, no `aud` but `client_id` the app client (the audience),
//! `token_use: "access"`, `sub`, `iat` and `exp` (one hour). For tests the
//! same code mints the tokens the authorizer must refuse ([`TokenKind`]).
//!
//! Nothing here is meant for anything but local runs: the key sits in a
//! plain file under `.dev/` and anyone who can run `devstack token` can
//! mint a token for anyone.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The port `make dev` serves the issuer on (next to the API's 9000).
pub const DEFAULT_PORT: u16 = 9001;
/// The local app client id: what `JWT_AUDIENCE` is set to and what the
/// tokens carry as `client_id`.
pub const DEFAULT_AUDIENCE: &str = "task-api-local";
/// Where `make dev` keeps the signing key (PKCS#8 DER).
pub const DEFAULT_KEY_FILE: &str = ".dev/issuer-key.der";
/// How long a token is valid, as Cognito's access tokens by default.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// The scope Cognito puts in an access token of a user pool sign-in (SRP),
/// and what the functions require (`JWT_SCOPES`) in token mode, as the
/// template's `JwtScope` does deployed.
pub const SCOPE: &str = "aws.cognito.signin.user.admin";

/// The issuer URL for a port: `http://127.0.0.1:<port>`.
pub fn issuer_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// What kind of token to mint: a good one, or one of the ways a token is
/// refused by the authorizer (and by `shared::adapters::token::TokenVerifier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Valid for [`TOKEN_LIFETIME`].
    Valid,
    /// Expired an hour ago (beyond any clock-skew leeway).
    Expired,
    /// `client_id` names another app client.
    WrongAudience,
    /// `iss` names another issuer (still signed by this issuer's key).
    WrongIssuer,
    /// `alg: none`, no signature.
    Unsigned,
    /// Names this issuer's key id but is signed by another key.
    ForeignKey,
    /// An ID token, as Cognito issues one: `aud` the app client,
    /// `token_use: "id"`, no scope. The API's routes require a scope: refused.
    IdToken,
    /// An access token without a scope. Refused: no required scope.
    NoScope,
    /// Issued (`iat`) five minutes from now. Refused: the authorizer
    /// wants `iat` before the current time.
    FutureIat,
}

impl TokenKind {
    pub const ALL: [TokenKind; 9] = [
        TokenKind::Valid,
        TokenKind::Expired,
        TokenKind::WrongAudience,
        TokenKind::WrongIssuer,
        TokenKind::Unsigned,
        TokenKind::ForeignKey,
        TokenKind::IdToken,
        TokenKind::NoScope,
        TokenKind::FutureIat,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Valid => "valid",
            TokenKind::Expired => "expired",
            TokenKind::WrongAudience => "wrong-audience",
            TokenKind::WrongIssuer => "wrong-issuer",
            TokenKind::Unsigned => "unsigned",
            TokenKind::ForeignKey => "foreign-key",
            TokenKind::IdToken => "id-token",
            TokenKind::NoScope => "no-scope",
            TokenKind::FutureIat => "future-iat",
        }
    }
}

impl std::str::FromStr for TokenKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        TokenKind::ALL
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = TokenKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown token kind {s:?} (one of: {})", names.join(", "))
            })
    }
}

/// An RSA key that signs tokens, and its key id (the RFC 7638 thumbprint
/// of its public key, so the same key always has the same id).
pub struct SigningKey {
    pair: KeyPair,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new RSA-2048 key.
    pub fn generate() -> Result<Self, String> {
        let pair = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| "generating an RSA key failed".to_owned())?;
        Ok(Self::new(pair))
    }

    /// A key from its PKCS#8 DER encoding.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, String> {
        let pair = KeyPair::from_pkcs8(der).map_err(|e| format!("not an RSA key: {e}"))?;
        Ok(Self::new(pair))
    }

    fn new(pair: KeyPair) -> Self {
        let kid = thumbprint(&public_jwk_members(&pair));
        SigningKey { pair, kid }
    }

    /// The key in `path`, or a new one written there first (its directory
    /// created, readable by the owner only). Two processes starting at once
    /// end up with the same key: the file appears whole or not at all.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        match std::fs::read(path) {
            Ok(der) => {
                return Self::from_pkcs8(&der).map_err(|e| format!("{}: {e}", path.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        }
        let key = Self::generate()?;
        let der = key
            .pair
            .as_der()
            .map_err(|_| "encoding the RSA key failed".to_owned())?;
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let temp = path.with_extension(format!("tmp{}", std::process::id()));
        write_private(&temp, der.as_ref())?;
        // A hard link never replaces an existing file: whoever links first
        // wins, and the other process reads the winner's key.
        let linked = std::fs::hard_link(&temp, path);
        let _ = std::fs::remove_file(&temp);
        match linked {
            Ok(()) => Ok(key),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let der =
                    std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
                Self::from_pkcs8(&der)
            }
            Err(e) => Err(format!("writing {}: {e}", path.display())),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWKS entry.
    pub fn jwk(&self) -> Value {
        let (e, n) = public_jwk_members(&self.pair);
        json!({"kid": self.kid, "alg": "RS256", "kty": "RSA", "use": "sig", "e": e, "n": n})
    }

    /// `header.claims.signature`, RS256.
    fn sign(&self, header: &Value, claims: &Value) -> Result<String, String> {
        let input = format!("{}.{}", encode_part(header), encode_part(claims));
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing failed".to_owned())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// Writes `bytes` to a new file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// `(e, n)`, base64url.
fn public_jwk_members(pair: &KeyPair) -> (String, String) {
    let public = pair.public_key();
    (
        URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
    )
}

/// RFC 7638: SHA-256 of `{"e":…,"kty":"RSA","n":…}`, base64url.
fn thumbprint((e, n): &(String, String)) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Seconds since the epoch.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The local issuer: its URL, the audience its tokens are for, its key.
#[derive(Debug)]
pub struct Issuer {
    url: String,
    audience: String,
    key: SigningKey,
}

impl Issuer {
    /// `url` is the exact `iss` of its tokens (trailing `/` dropped, as
    /// `JWT_ISSUER` should be written without one).
    pub fn new(url: &str, audience: &str, key: SigningKey) -> Self {
        Issuer {
            url: url.trim_end_matches('/').to_owned(),
            audience: audience.to_owned(),
            key,
        }
    }

    /// An issuer with the key kept in `key_file` (made there if missing).
    pub fn open(key_file: &Path, url: &str, audience: &str) -> Result<Self, String> {
        Ok(Self::new(
            url,
            audience,
            SigningKey::load_or_create(key_file)?,
        ))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Where the JWKS is: not `/.well-known/jwks.json` (Cognito's), so
    /// that a function finds it only through the discovery document's
    /// `jwks_uri`, as API Gateway's authorizer does.
    pub fn jwks_url(&self) -> String {
        format!("{}/keys", self.url)
    }

    /// `{"keys": [...]}`: the one signing key.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.key.jwk()] })
    }

    /// The OpenID discovery document (what an authorizer reads to find the
    /// JWKS). Tokens come from `devstack token`, not from an endpoint.
    pub fn discovery(&self) -> Value {
        json!({
            "issuer": self.url,
            "jwks_uri": self.jwks_url(),
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": ["openid", SCOPE],
            "claims_supported": ["sub", "iss", "client_id", "token_use", "scope", "auth_time", "iat", "exp", "jti", "username"],
        })
    }

    /// An access token for `user` (its `sub`), of `kind`, issued now.
    pub fn token(&self, user: &str, kind: TokenKind) -> Result<String, String> {
        self.token_at(user, kind, unix_now())
    }

    /// As [`Issuer::token`], issued at `now` (seconds since the epoch).
    pub fn token_at(&self, user: &str, kind: TokenKind, now: u64) -> Result<String, String> {
        let lifetime = TOKEN_LIFETIME.as_secs();
        let issued = match kind {
            // Issued two hours ago: expired an hour ago.
            TokenKind::Expired => now.saturating_sub(2 * lifetime),
            TokenKind::FutureIat => now + 300,
            _ => now,
        };
        if kind == TokenKind::IdToken {
            let claims = json!({
                "sub": user,
                "iss": self.url,
                "aud": self.audience,
                "token_use": "id",
                "auth_time": issued,
                "iat": issued,
                "exp": issued + lifetime,
                "email": format!("{user}@example.com"),
                "cognito:username": user,
            });
            return self
                .key
                .sign(&json!({"kid": self.key.kid, "alg": "RS256"}), &claims);
        }
        let mut claims = json!({
            "sub": user,
            "iss": match kind {
                TokenKind::WrongIssuer => format!("{}/someone-else", self.url),
                _ => self.url.clone(),
            },
            "client_id": match kind {
                TokenKind::WrongAudience => format!("{}-other", self.audience),
                _ => self.audience.clone(),
            },
            "token_use": "access",
            "scope": SCOPE,
            "auth_time": issued,
            "iat": issued,
            "exp": issued + lifetime,
            "jti": uuid::Uuid::now_v7().to_string(),
            "username": user,
        });
        if let (TokenKind::NoScope, Some(claims)) = (kind, claims.as_object_mut()) {
            claims.remove("scope");
        }
        let header = json!({"kid": self.key.kid, "alg": "RS256"});
        match kind {
            TokenKind::Unsigned => Ok(format!(
                "{}.{}.",
                encode_part(&json!({"alg": "none"})),
                encode_part(&claims)
            )),
            TokenKind::ForeignKey => SigningKey::generate()?.sign(&header, &claims),
            _ => self.key.sign(&header, &claims),
        }
    }

    /// The issuer's HTTP routes: the JWKS and the discovery document.
    pub fn router(self: Arc<Self>) -> Router {
        let jwks = self.jwks().to_string();
        let discovery = self.discovery().to_string();
        let json = |body: String| {
            move || async move {
                (
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, "max-age=300"),
                    ],
                    body,
                )
                    .into_response()
            }
        };
        Router::new()
            .route("/keys", get(json(jwks)))
            .route("/.well-known/openid-configuration", get(json(discovery)))
    }

    /// Serves [`Issuer::router`] on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> Result<(), String> {
        axum::serve(listener, self.router())
            .await
            .map_err(|e| format!("issuer server: {e}"))
    }

    /// Binds `addr` and serves in a task; returns the bound address.
    pub async fn spawn(
        self: Arc<Self>,
        addr: SocketAddr,
    ) -> Result<(SocketAddr, tokio::task::JoinHandle<Result<(), String>>), String> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("binding {addr}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        Ok((addr, tokio::spawn(self.serve(listener))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in TokenKind::ALL {
            assert_eq!(kind.name().parse::<TokenKind>(), Ok(kind));
        }
        assert!("bogus".parse::<TokenKind>().is_err());
    }

    #[test]
    fn a_token_has_the_cognito_access_token_shape() {
        let issuer = Issuer::new(
            "http://127.0.0.1:9001/",
            "client",
            SigningKey::generate().expect("key"),
        );
        let token = issuer
            .token_at("alice", TokenKind::Valid, 1_000_000)
            .expect("token");
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |part: &str| -> Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
        };
        assert_eq!(
            decode(parts[0]),
            json!({"kid": issuer.key.kid(), "alg": "RS256"})
        );
        let claims = decode(parts[1]);
        assert_eq!(claims["iss"], "http://127.0.0.1:9001");
        assert_eq!(claims["client_id"], "client");
        assert_eq!(claims["token_use"], "access");
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["exp"], 1_003_600);
        assert!(claims.get("aud").is_none());
        assert_eq!(issuer.jwks()["keys"][0]["kid"], issuer.key.kid());
    }
}
