//! The verifier against an issuer served on loopback by a tiny HTTP/1.1
//! responder that counts its requests: its discovery document at
//! `/.well-known/openid-configuration` names the JWKS at `/keys` (not the
//! `/.well-known/jwks.json` a guess would try).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

const ISSUER: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Test";
const AUDIENCE: &str = "3n4pp1ient1d";
const SUB: &str = "6f1c2a3b-0000-4000-8000-00000000000a";
/// What the routes require: Cognito's sign-in scope, or an API's own.
const SCOPES: &str = "aws.cognito.signin.user.admin tasks/api";

const RSA_A: &[u8] = include_bytes!("../../../tests/fixtures/token/rsa-a.der");
const RSA_B: &[u8] = include_bytes!("../../../tests/fixtures/token/rsa-b.der");
const EC_P256: &[u8] = include_bytes!("../../../tests/fixtures/token/ec-p256.der");
/// The public half of `RSA_A` (kid `key-a`), as Cognito serves it.
const JWKS_A: &str = include_str!("../../../tests/fixtures/token/jwks-a.json");

/// A loopback JWKS endpoint answering `reply` to every request.
struct JwksServer {
    addr: SocketAddr,
    /// Requests for the JWKS.
    hits: Arc<AtomicUsize>,
    /// Requests for the discovery document.
    discoveries: Arc<AtomicUsize>,
    reply: Arc<StdMutex<Reply>>,
    discovery: Arc<StdMutex<String>>,
}

#[derive(Clone)]
enum Reply {
    Status(u16, String),
    /// Accept the connection and never answer.
    Hang,
}

impl JwksServer {
    async fn start(body: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let discoveries = Arc::new(AtomicUsize::new(0));
        let reply = Arc::new(StdMutex::new(Reply::Status(200, body.to_owned())));
        let discovery = Arc::new(StdMutex::new(
            json!({ "issuer": ISSUER, "jwks_uri": format!("http://{addr}/keys") }).to_string(),
        ));
        let (counter, current) = (Arc::clone(&hits), Arc::clone(&reply));
        let (discovered, document) = (Arc::clone(&discoveries), Arc::clone(&discovery));
        // Ends with the test's runtime.
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (counter, current) = (Arc::clone(&counter), Arc::clone(&current));
                let (discovered, document) = (Arc::clone(&discovered), Arc::clone(&document));
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                        if request.len() > 16 * 1024 {
                            return;
                        }
                    }
                    let reply = if request.starts_with(b"GET /.well-known/openid-configuration ") {
                        discovered.fetch_add(1, Ordering::SeqCst);
                        Reply::Status(200, document.lock().expect("lock").clone())
                    } else if request.starts_with(b"GET /keys ") {
                        counter.fetch_add(1, Ordering::SeqCst);
                        current.lock().expect("reply lock").clone()
                    } else {
                        Reply::Status(404, "{}".into())
                    };
                    match reply {
                        Reply::Hang => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                        }
                        Reply::Status(status, body) => {
                            let response = format!(
                                "HTTP/1.1 {status} Test\r\nContent-Type: application/json\r\n\
                                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            let _ = stream.write_all(response.as_bytes()).await;
                            let _ = stream.shutdown().await;
                        }
                    }
                });
            }
        });
        JwksServer {
            addr,
            hits,
            discoveries,
            reply,
            discovery,
        }
    }

    /// The discovery document's URL.
    fn url(&self) -> String {
        format!("http://{}/.well-known/openid-configuration", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn discoveries(&self) -> usize {
        self.discoveries.load(Ordering::SeqCst)
    }

    fn discover(&self, document: Value) {
        *self.discovery.lock().expect("lock") = document.to_string();
    }

    fn answer(&self, reply: Reply) {
        *self.reply.lock().expect("reply lock") = reply;
    }

    fn verifier(&self) -> TokenVerifier {
        verifier_for(self.url())
    }
}

/// A verifier of [`ISSUER`]'s tokens whose discovery document is at
/// `discovery_url` (on loopback, where the Cognito URL cannot be).
fn verifier_for(discovery_url: String) -> TokenVerifier {
    let mut verifier = TokenVerifier::new(TokenSettings {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        scopes: SCOPES.into(),
    });
    verifier.discovery_url = discovery_url;
    verifier
}

/// A signing key and the kid its tokens name.
struct Signer {
    key: EncodingKey,
    alg: Algorithm,
    kid: &'static str,
}

fn key_a() -> Signer {
    Signer {
        key: EncodingKey::from_rsa_der(RSA_A),
        alg: Algorithm::RS256,
        kid: "key-a",
    }
}

fn key_b() -> Signer {
    Signer {
        key: EncodingKey::from_rsa_der(RSA_B),
        alg: Algorithm::RS256,
        kid: "key-b",
    }
}

fn key_ec() -> Signer {
    Signer {
        key: EncodingKey::from_ec_der(EC_P256),
        alg: Algorithm::ES256,
        kid: "key-ec",
    }
}

impl Signer {
    /// Its public key as a JWKS entry.
    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).expect("public key");
        jwk.common.key_id = Some(self.kid.into());
        jwk
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.kid, claims)
    }

    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.key).expect("signed")
    }
}

fn jwks(signers: &[Signer]) -> String {
    let set = JwkSet {
        keys: signers.iter().map(Signer::jwk).collect(),
    };
    serde_json::to_string(&set).expect("JWKS")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A token with an `aud` (as other issuers' access tokens have), valid
/// for ten minutes.
fn aud_token_claims() -> Value {
    json!({
        "sub": SUB,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "scp": ["tasks/api"],
        "iat": now(),
        "exp": now() + 600,
    })
}

/// A Cognito access token's claims: `client_id`, no `aud`.
fn access_token_claims() -> Value {
    json!({
        "sub": SUB,
        "iss": ISSUER,
        "client_id": AUDIENCE,
        "token_use": "access",
        "scope": "openid aws.cognito.signin.user.admin",
        "iat": now(),
        "exp": now() + 600,
    })
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (name, value) in changes.as_object().expect("object") {
        if value.is_null() {
            claims.as_object_mut().expect("object").remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn bearer_of(token: &str) -> String {
    format!("Bearer {token}")
}

fn unsigned(header: &Value, claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"));
    format!("{}.{}.", part(header), part(claims))
}

async fn check(verifier: &TokenVerifier, token: &str) -> Result<Caller, TokenError> {
    verifier
        .verify(Some(&bearer_of(token)))
        .await
        .map(|verified| verified.caller)
}

fn assert_401<T: std::fmt::Debug>(result: Result<T, TokenError>, what: &str) {
    match result {
        Err(TokenError::Rejected(_) | TokenError::Missing) => {}
        other => panic!("{what}: expected a rejection, got {other:?}"),
    }
}

fn assert_503<T: std::fmt::Debug>(result: Result<T, TokenError>, what: &str) {
    match result {
        Err(TokenError::KeysUnavailable(_)) => {}
        other => panic!("{what}: expected keys unavailable, got {other:?}"),
    }
}

/// API Gateway's JWT authorizer rules (and Cognito's `token_use`), one
/// token breaking each; the reason is what the client's
/// `WWW-Authenticate` says.
#[tokio::test]
async fn each_authorizer_rule_rejects_the_token_that_breaks_it() {
    let server = JwksServer::start(&jwks(&[key_a(), key_ec()])).await;
    let verifier = server.verifier();
    let ok = access_token_claims();
    let cases: Vec<(String, &str, &str)> = vec![
        (
            key_a().sign(&with(ok.clone(), json!({ "iss": "https://other.example" }))),
            "wrong issuer",
            "iss",
        ),
        (
            key_a().sign(&with(ok.clone(), json!({ "client_id": "other" }))),
            "wrong audience",
            "client_id without aud",
        ),
        (
            key_a().sign(&with(ok.clone(), json!({ "aud": "other" }))),
            "wrong audience",
            "aud present and wrong, client_id right",
        ),
        (
            key_a().sign(&with(ok.clone(), json!({ "exp": now() - 120 }))),
            "expired",
            "exp",
        ),
        (
            key_a().sign(&with(ok.clone(), json!({ "nbf": now() + 120 }))),
            "not yet valid",
            "nbf",
        ),
        (
            key_a().sign_as("key-z", &ok),
            "unknown key id",
            "kid not in the JWKS",
        ),
        (
            key_b().sign_as("key-a", &ok),
            "bad signature",
            "signed by a foreign key",
        ),
        (
            key_ec().sign(&ok),
            "algorithm not accepted",
            "ES256 (RSA only)",
        ),
        (
            unsigned(&json!({ "alg": "none", "kid": "key-a" }), &ok),
            "unsigned token",
            "alg none",
        ),
        (
            key_a().sign(&with(ok.clone(), json!({ "iat": now() + 120 }))),
            "issued in the future",
            "iat",
        ),
        (
            key_a().sign(&with(ok.clone(), json!({ "scope": "openid" }))),
            "no required scope",
            "scope without a required one",
        ),
        (
            key_a().sign(&with(ok.clone(), json!({ "scope": null }))),
            "no required scope",
            "no scope (an ID token)",
        ),
        (
            key_a().sign(&with(ok.clone(), json!({ "token_use": "id" }))),
            "not an access token",
            "a Cognito ID token",
        ),
    ];
    for (token, reason, rule) in cases {
        assert_eq!(
            check(&verifier, &token).await,
            Err(TokenError::Rejected(reason)),
            "{rule}"
        );
    }
    let verified = verifier
        .verify(Some(&bearer_of(&key_a().sign(&ok))))
        .await
        .expect("the unbroken token");
    assert_eq!(verified.caller.id(), SUB);
    assert_eq!(
        verified.expires_at.timestamp(),
        ok["exp"].as_i64().expect("exp")
    );
}

#[tokio::test]
async fn a_valid_token_names_its_sub() {
    let server = JwksServer::start(JWKS_A).await;
    let verifier = server.verifier();
    assert_eq!(server.hits(), 0, "new() fetches nothing");

    let caller = check(&verifier, &key_a().sign(&aud_token_claims()))
        .await
        .expect("valid token");
    assert_eq!(caller.id(), SUB);
    assert_eq!(server.hits(), 1);

    // The scheme is case-insensitive; spaces around the token are ignored.
    let token = key_a().sign(&aud_token_claims());
    let verified = verifier
        .verify(Some(&format!("  bearer   {token} ")))
        .await
        .expect("lower-case scheme");
    assert_eq!(verified.caller.id(), SUB);
    assert_eq!(server.hits(), 1, "keys are cached");
}

#[tokio::test]
async fn expiry_and_not_before_are_checked_with_leeway() {
    let server = JwksServer::start(JWKS_A).await;
    let verifier = server.verifier();
    let key = key_a();
    let cases = [
        (
            json!({ "exp": now() - 120 }),
            false,
            "expired two minutes ago",
        ),
        (
            json!({ "exp": now() - 20 }),
            true,
            "expired within the leeway",
        ),
        (json!({ "exp": null }), false, "no exp"),
        (json!({ "exp": "tomorrow" }), false, "exp not a number"),
        (
            json!({ "nbf": now() + 600 }),
            false,
            "not valid for ten minutes",
        ),
        (json!({ "nbf": now() + 20 }), true, "nbf within the leeway"),
        (json!({ "nbf": now() - 600 }), true, "nbf in the past"),
    ];
    for (changes, accepted, what) in cases {
        let result = check(&verifier, &key.sign(&with(aud_token_claims(), changes))).await;
        if accepted {
            assert_eq!(result.expect(what).id(), SUB, "{what}");
        } else {
            assert_401(result, what);
        }
    }
}

#[tokio::test]
async fn issuer_must_match_exactly() {
    let server = JwksServer::start(JWKS_A).await;
    let verifier = server.verifier();
    let key = key_a();
    for (iss, what) in [
        (
            json!("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"),
            "another pool",
        ),
        (json!(format!("{ISSUER}/")), "trailing slash"),
        (json!([ISSUER]), "issuer as a list"),
        (Value::Null, "no issuer"),
    ] {
        let claims = with(aud_token_claims(), json!({ "iss": iss }));
        assert_401(check(&verifier, &key.sign(&claims)).await, what);
    }
}

#[tokio::test]
async fn audience_or_client_id_must_match() {
    let server = JwksServer::start(JWKS_A).await;
    let verifier = server.verifier();
    let key = key_a();
    let access_token = access_token_claims();
    let cases = [
        (aud_token_claims(), true, "aud equal"),
        (
            with(aud_token_claims(), json!({ "aud": ["other", AUDIENCE] })),
            true,
            "aud list containing it",
        ),
        (
            access_token.clone(),
            true,
            "Cognito access token (client_id)",
        ),
        (
            with(aud_token_claims(), json!({ "aud": "other-client" })),
            false,
            "wrong aud",
        ),
        (
            with(aud_token_claims(), json!({ "aud": ["a", "b"] })),
            false,
            "aud list without it",
        ),
        (
            with(access_token.clone(), json!({ "client_id": "other-client" })),
            false,
            "wrong client_id",
        ),
        (
            with(access_token.clone(), json!({ "aud": "other-client" })),
            false,
            "a wrong aud is not saved by a right client_id",
        ),
        (
            with(aud_token_claims(), json!({ "aud": null })),
            false,
            "neither aud nor client_id",
        ),
    ];
    for (claims, accepted, what) in cases {
        let result = check(&verifier, &key.sign(&claims)).await;
        if accepted {
            assert_eq!(result.expect(what).id(), SUB, "{what}");
        } else {
            assert_401(result, what);
        }
    }
}

#[tokio::test]
async fn sub_must_be_a_caller_id() {
    let server = JwksServer::start(JWKS_A).await;
    let verifier = server.verifier();
    let key = key_a();
    for (sub, what) in [
        (Value::Null, "no sub"),
        (json!(""), "empty sub"),
        (json!("x".repeat(300)), "sub too long"),
        (json!(42), "sub not a string"),
    ] {
        let claims = with(aud_token_claims(), json!({ "sub": sub }));
        assert_401(check(&verifier, &key.sign(&claims)).await, what);
    }
}

#[tokio::test]
async fn forged_tokens_are_refused() {
    let server = JwksServer::start(JWKS_A).await;
    let verifier = server.verifier();
    let claims = aud_token_claims();

    // `alg: none`, unsigned.
    let none = unsigned(
        &json!({ "alg": "none", "kid": "key-a", "typ": "JWT" }),
        &claims,
    );
    assert_401(check(&verifier, &none).await, "alg none");
    assert_eq!(server.hits(), 0, "refused before any key lookup");

    // HS256 "signed" with the public key: the RSA-to-HMAC confusion.
    let public_key = serde_json::to_vec(&key_a().jwk()).expect("jwk");
    for secret in [public_key.as_slice(), JWKS_A.as_bytes()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("key-a".into());
        let hs256 =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).expect("hs");
        assert_401(check(&verifier, &hs256).await, "HS256 with the public key");
    }
    assert_eq!(server.hits(), 0);

    // Signed by another key, naming key-a.
    assert_401(
        check(&verifier, &key_b().sign_as("key-a", &claims)).await,
        "signed by an unknown key",
    );

    // A valid token with its claims changed.
    let token = key_a().sign(&claims);
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&with(claims.clone(), json!({ "sub": "someone-else" }))).expect("json"),
    );
    parts[1] = &forged;
    assert_401(check(&verifier, &parts.join(".")).await, "claims changed");

    // No kid.
    let no_kid = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key_a().key)
        .expect("signed");
    assert_401(check(&verifier, &no_kid).await, "no kid");

    // Still fine with the real key.
    assert_eq!(check(&verifier, &token).await.expect("valid").id(), SUB);
}

#[tokio::test]
async fn missing_or_non_bearer_headers_are_401_without_fetching() {
    let server = JwksServer::start(JWKS_A).await;
    let verifier = server.verifier();
    let token = key_a().sign(&aud_token_claims());
    let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
    for (header, what) in [
        (None, "no header"),
        (Some(""), "empty header"),
        (Some("Bearer"), "scheme only"),
        (Some("Bearer   "), "scheme and spaces"),
        (Some(token.as_str()), "no scheme"),
        (Some(&*format!("Basic {token}")), "Basic"),
        (Some(&*format!("Bearer{token}")), "no space"),
        (Some("Bearer not.a.jwt"), "not a JWT"),
        (Some("Bearer abc"), "one part"),
        (Some(long.as_str()), "too long"),
    ] {
        assert_401(verifier.verify(header).await, what);
    }
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn unknown_kid_refetches_at_most_once_per_interval() {
    let server = JwksServer::start(JWKS_A).await;
    let verifier = server.verifier();
    check(&verifier, &key_a().sign(&aud_token_claims()))
        .await
        .expect("valid token");
    assert_eq!(server.hits(), 1);

    // Within the interval of the first fetch: no refetch.
    let unknown = key_b().sign(&aud_token_claims());
    assert_401(check(&verifier, &unknown).await, "unknown kid");
    assert_eq!(server.hits(), 1, "no refetch within {REFETCH_INTERVAL:?}");

    // Once the interval has passed: one refetch, then none again.
    let mut verifier = server.verifier();
    verifier.refetch_interval = Duration::from_millis(500);
    check(&verifier, &key_a().sign(&aud_token_claims()))
        .await
        .expect("valid token");
    assert_eq!(server.hits(), 2);
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_401(check(&verifier, &unknown).await, "unknown kid");
    assert_eq!(server.hits(), 3, "refetched for the unknown kid");
    for _ in 0..5 {
        assert_401(check(&verifier, &unknown).await, "unknown kid again");
        assert_401(
            check(&verifier, &key_b().sign_as("another", &aud_token_claims())).await,
            "another unknown kid",
        );
    }
    assert_eq!(server.hits(), 3, "no refetch within the interval");
    // Known keys keep working meanwhile.
    check(&verifier, &key_a().sign(&aud_token_claims()))
        .await
        .expect("valid token");
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn rotated_keys_are_picked_up_and_removed_ones_dropped() {
    let server = JwksServer::start(JWKS_A).await;
    let mut verifier = server.verifier();
    verifier.refetch_interval = Duration::ZERO;
    let old = key_a().sign(&aud_token_claims());
    check(&verifier, &old).await.expect("key-a");

    // The issuer publishes key-b next to key-a.
    server.answer(Reply::Status(200, jwks(&[key_a(), key_b()])));
    let new = key_b().sign(&aud_token_claims());
    assert_eq!(check(&verifier, &new).await.expect("key-b").id(), SUB);
    assert_eq!(server.hits(), 2);

    // Then retires key-a: once a refetch happens, key-a tokens are refused.
    server.answer(Reply::Status(200, jwks(&[key_b()])));
    assert_401(
        check(&verifier, &key_b().sign_as("key-c", &aud_token_claims())).await,
        "unknown kid",
    );
    assert_eq!(server.hits(), 3);
    assert_401(check(&verifier, &old).await, "retired key");
    check(&verifier, &new).await.expect("key-b still valid");
}

#[tokio::test]
async fn keys_are_fetched_once_for_many_requests() {
    let server = JwksServer::start(JWKS_A).await;
    let verifier = server.verifier();
    let tokens: Vec<String> = (0..20)
        .map(|i| {
            key_a().sign(&with(
                aud_token_claims(),
                json!({ "sub": format!("user-{i}") }),
            ))
        })
        .collect();
    // Concurrently from a cold cache: one fetch, the others wait for it.
    let results =
        futures::future::join_all(tokens.iter().map(|token| check(&verifier, token))).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.expect("valid token").id(), format!("user-{i}"));
    }
    assert_eq!(server.hits(), 1);
    // And sequentially afterwards.
    for token in &tokens {
        check(&verifier, token).await.expect("valid token");
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn jwks_server_down_is_503() {
    // A port nothing listens on.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let verifier = verifier_for(format!("http://{addr}/.well-known/openid-configuration"));
    let token = key_a().sign(&aud_token_claims());
    assert_503(check(&verifier, &token).await, "connection refused");
    // Still a 503 (not a 401) while waiting to retry.
    assert_503(check(&verifier, &token).await, "retry not yet due");
    // A malformed token is still a 401.
    assert_401(verifier.verify(Some("Bearer x")).await, "garbage");
}

#[tokio::test]
async fn jwks_errors_are_503_and_retried_after_a_second() {
    let server = JwksServer::start("").await;
    let verifier = server.verifier();
    let token = key_a().sign(&aud_token_claims());
    for (reply, what) in [
        (Reply::Status(500, "{}".into()), "500"),
        (Reply::Status(404, JWKS_A.into()), "404"),
        (Reply::Status(302, String::new()), "redirect"),
        (Reply::Status(200, "<html>".into()), "not JSON"),
        (
            Reply::Status(200, "{\"kid\":\"key-a\"}".into()),
            "not a key set",
        ),
        (
            Reply::Status(
                200,
                format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(70_000)),
            ),
            "too large",
        ),
    ] {
        server.answer(reply);
        let hits = server.hits();
        assert_503(check(&verifier, &token).await, what);
        assert_eq!(server.hits(), hits + 1, "{what}: fetched once");
        assert_503(check(&verifier, &token).await, what);
        assert_eq!(server.hits(), hits + 1, "{what}: no retry within a second");
        tokio::time::sleep(RETRY_INTERVAL + Duration::from_millis(50)).await;
    }
    server.answer(Reply::Status(200, JWKS_A.into()));
    assert_eq!(check(&verifier, &token).await.expect("recovered").id(), SUB);
}

#[tokio::test]
async fn a_hanging_jwks_server_times_out_as_503() {
    let server = JwksServer::start("").await;
    server.answer(Reply::Hang);
    let verifier = server.verifier();
    let started = Instant::now();
    assert_503(
        check(&verifier, &key_a().sign(&aud_token_claims())).await,
        "hanging server",
    );
    let waited = started.elapsed();
    assert!(
        waited >= FETCH_TIMEOUT - Duration::from_millis(100) && waited < FETCH_TIMEOUT * 2,
        "{waited:?}"
    );
}

#[test]
fn jwks_entries_we_cannot_use_are_skipped() {
    let good = serde_json::to_value(key_a().jwk()).expect("jwk");
    let ec = serde_json::to_value(key_ec().jwk()).expect("jwk");
    let document = json!({ "keys": [
        good,
        ec,
        with(good.clone(), json!({ "kid": "enc", "use": "enc" })),
        with(good.clone(), json!({ "kid": "rs512", "alg": "RS512" })),
        with(good.clone(), json!({ "kid": "ps256", "alg": "PS256" })),
        with(good.clone(), json!({ "kid": null })),
        with(good.clone(), json!({ "kid": "" })),
        with(ec.clone(), json!({ "kid": "es384", "alg": "ES384" })),
        { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256" },
        { "kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" },
        { "kty": "future", "kid": "later" },
        "not an object",
    ]});
    let keys = parse_jwks(document.to_string().as_bytes()).expect("key set");
    let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
    kids.sort_unstable();
    // RSA keys only (the authorizer's algorithms): the EC key is skipped.
    assert_eq!(kids, ["key-a", "rs512"]);

    let cognito = parse_jwks(JWKS_A.as_bytes()).expect("Cognito-shaped JWKS");
    assert!(cognito.contains_key("key-a"));

    assert!(parse_jwks(b"{}").is_err());
    assert!(parse_jwks(b"[]").is_err());
    assert!(parse_jwks(b"{\"keys\":{}}").is_err());
}

#[tokio::test]
async fn an_hmac_key_in_the_jwks_is_never_used() {
    let secret = b"shared-secret-shared-secret-0123";
    let document = json!({ "keys": [
        serde_json::to_value(key_a().jwk()).expect("jwk"),
        { "kty": "oct", "kid": "hmac", "k": URL_SAFE_NO_PAD.encode(secret), "alg": "HS256" },
    ]});
    let server = JwksServer::start(&document.to_string()).await;
    let verifier = server.verifier();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hmac".into());
    let token = jsonwebtoken::encode(
        &header,
        &aud_token_claims(),
        &EncodingKey::from_secret(secret),
    )
    .expect("hs");
    assert_401(
        check(&verifier, &token).await,
        "HS256 with a published oct key",
    );
}

#[test]
fn bearer_values() {
    assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
    assert_eq!(bearer(Some("BEARER abc")), Some("abc"));
    assert_eq!(bearer(Some(" Bearer  abc ")), Some("abc"));
    assert_eq!(bearer(Some("Bearer a b")), Some("a b"));
    assert_eq!(bearer(Some("Token abc")), None);
    assert_eq!(bearer(Some("Bearer ")), None);
    assert_eq!(bearer(None), None);
}

#[test]
fn cognito_hosts_use_the_compiled_in_roots() {
    assert!(is_amazon_host(
        "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Test/.well-known/jwks.json"
    ));
    assert!(!is_amazon_host(
        "https://login.example/.well-known/jwks.json"
    ));
    assert!(!is_amazon_host("https://amazonaws.com.evil.example/jwks"));
    assert!(!is_amazon_host("https://evilamazonaws.com/jwks"));
    assert!(!is_amazon_host(
        "http://cognito-idp.eu-west-1.amazonaws.com/jwks"
    ));
    // The bundle parses and the client builds, for both kinds of host.
    http_client("https://cognito-idp.eu-west-1.amazonaws.com/x/.well-known/jwks.json")
        .expect("client with Amazon roots");
    http_client("https://login.example/.well-known/jwks.json").expect("client with system roots");
    assert_eq!(amazon_roots().expect("PEM bundle").len(), 5);
}

#[test]
fn debug_shows_settings_only() {
    let verifier = verifier_for("https://keys.example/discovery".into());
    let printed = format!("{verifier:?}");
    assert!(printed.contains(ISSUER), "{printed}");
    assert!(printed.contains(SCOPES), "{printed}");
}

/// ID tokens are refused on every route: an ID token has no scope (an
/// OpenID Connect ID token's `aud` is the client id, so the audience rule
/// alone lets it through, as AWS's JWT authorizer does without route
/// scopes). A token passes with any one of the required scopes, in
/// `scope` (space-separated) or `scp` (a list or a string).
#[tokio::test]
async fn a_required_scope_is_needed_and_one_is_enough() {
    let server = JwksServer::start(JWKS_A).await;
    let verifier = server.verifier();
    let key = key_a();
    let id_token = json!({
        "sub": SUB, "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 600,
        "email": "alice@example.com", "auth_time": now(),
    });
    let cases = [
        (id_token.clone(), false, "an OpenID Connect ID token"),
        (
            with(id_token.clone(), json!({ "scope": "" })),
            false,
            "empty scope",
        ),
        (
            with(id_token.clone(), json!({ "scope": "openid profile" })),
            false,
            "other scopes only",
        ),
        (
            with(
                id_token.clone(),
                json!({ "scope": "aws.cognito.signin.user.admin.x" }),
            ),
            false,
            "a scope that only starts like a required one",
        ),
        (
            with(
                id_token.clone(),
                json!({ "scope": "openid aws.cognito.signin.user.admin" }),
            ),
            true,
            "Cognito's sign-in scope among others",
        ),
        (
            with(id_token.clone(), json!({ "scp": ["x", "tasks/api"] })),
            true,
            "scp as a list",
        ),
        (
            with(id_token.clone(), json!({ "scp": "tasks/api other" })),
            true,
            "scp as a string",
        ),
        (access_token_claims(), true, "a Cognito access token"),
    ];
    for (claims, accepted, what) in cases {
        let result = check(&verifier, &key.sign(&claims)).await;
        if accepted {
            assert_eq!(result.expect(what).id(), SUB, "{what}");
        } else {
            assert_eq!(
                result,
                Err(TokenError::Rejected("no required scope")),
                "{what}"
            );
        }
    }
}

/// `iat` as the authorizer checks it: before the current time (AWS
/// documents no tolerance). Absent, it is not required.
#[tokio::test]
async fn a_token_issued_in_the_future_is_refused() {
    let server = JwksServer::start(JWKS_A).await;
    let verifier = server.verifier();
    let key = key_a();
    for (iat, accepted, what) in [
        (json!(now() - 600), true, "ten minutes ago"),
        (json!(now()), true, "this second"),
        (Value::Null, true, "no iat"),
        (json!(now() + 5), false, "in five seconds"),
        (json!(now() + 3600), false, "in an hour"),
    ] {
        let claims = with(aud_token_claims(), json!({ "iat": iat }));
        let result = check(&verifier, &key.sign(&claims)).await;
        if accepted {
            assert_eq!(result.expect(what).id(), SUB, "{what}");
        } else {
            assert_eq!(
                result,
                Err(TokenError::Rejected("issued in the future")),
                "{what}"
            );
        }
    }
}

/// The keys come from the `jwks_uri` of the issuer's discovery document
/// (here `/keys`, which no guess of `/.well-known/jwks.json` finds), read
/// once; a document for another issuer, or naming a plain-http key set
/// off loopback, gives no keys.
#[tokio::test]
async fn keys_come_from_the_discovery_documents_jwks_uri() {
    let server = JwksServer::start(JWKS_A).await;
    let verifier = server.verifier();
    for _ in 0..3 {
        check(&verifier, &key_a().sign(&aud_token_claims()))
            .await
            .expect("valid token");
    }
    assert_eq!((server.discoveries(), server.hits()), (1, 1));

    let jwks_uri = format!("http://{}/keys", server.addr);
    for (document, what) in [
        (
            json!({ "issuer": "https://other.example", "jwks_uri": jwks_uri }),
            "another issuer's document",
        ),
        (
            json!({ "issuer": ISSUER, "jwks_uri": "http://keys.example/keys" }),
            "plain http off loopback",
        ),
        (json!({ "issuer": ISSUER }), "no jwks_uri"),
    ] {
        server.discover(document);
        let verifier = server.verifier();
        assert_503(
            check(&verifier, &key_a().sign(&aud_token_claims())).await,
            what,
        );
    }
    assert_eq!(server.hits(), 1, "no key set fetched from a bad document");
}

/// A warm instance does not keep a withdrawn key: keys older than their
/// maximum age are fetched again before use (here 300 ms for an hour).
#[tokio::test]
async fn keys_are_fetched_again_by_age_and_a_withdrawn_key_dropped() {
    let server = JwksServer::start(&jwks(&[key_a(), key_b()])).await;
    let mut verifier = server.verifier();
    verifier.max_key_age = Duration::from_millis(300);
    let old = key_a().sign(&aud_token_claims());
    let new = key_b().sign(&aud_token_claims());
    check(&verifier, &old).await.expect("key-a");
    check(&verifier, &new).await.expect("key-b");
    assert_eq!(server.hits(), 1);

    // The issuer withdraws key-a: its tokens still pass while the keys
    // are young (the authorizer caches too), not once they are old.
    server.answer(Reply::Status(200, jwks(&[key_b()])));
    check(&verifier, &old)
        .await
        .expect("key-a, keys still young");
    assert_eq!(server.hits(), 1);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        check(&verifier, &old).await,
        Err(TokenError::Rejected("unknown key id")),
        "withdrawn key-a"
    );
    assert_eq!(server.hits(), 2, "fetched again by age");
    check(&verifier, &new).await.expect("key-b");
    assert_eq!(server.hits(), 2, "then cached again");

    // Old keys that cannot be fetched again are not used: 503.
    tokio::time::sleep(Duration::from_millis(350)).await;
    server.answer(Reply::Status(500, "{}".into()));
    assert_503(check(&verifier, &new).await, "old keys, issuer down");
}
