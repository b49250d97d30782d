//! The local OpenID issuer (`devstack::issuer`) against the functions' own
//! token check (`shared::adapters::token::TokenVerifier`, what the streamed functions
//! run and what the HTTP API's JWT authorizer does deployed): the issuer
//! serves its JWKS on loopback, a valid token names its user, and each bad
//! kind is refused. `scripts/e2e.sh` does the same through the running
//! functions.

use std::net::SocketAddr;
use std::sync::Arc;

use devstack::TempDatabase;
use devstack::issuer::{Issuer, SigningKey, TokenKind};
use serde_json::Value;
use shared::adapters::token::TokenVerifier;
use shared::config::TokenSettings;

const AUDIENCE: &str = "task-api-local";

async fn serve(key: SigningKey) -> (Arc<Issuer>, String) {
    // The URL is known only once bound: bind, then build the issuer on it.
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let issuer = Arc::new(Issuer::new(&url, AUDIENCE, key));
    tokio::spawn(Arc::clone(&issuer).serve(listener));
    (issuer, url)
}

fn verifier(issuer: &Issuer) -> TokenVerifier {
    TokenVerifier::new(TokenSettings {
        issuer: issuer.url().to_owned(),
        audience: AUDIENCE.to_owned(),
        scopes: devstack::issuer::SCOPE.to_owned(),
    })
}

#[tokio::test]
async fn the_functions_token_check_accepts_its_tokens_and_refuses_the_bad_kinds() {
    let (issuer, _) = serve(SigningKey::generate().expect("key")).await;
    let verifier = verifier(&issuer);
    for kind in TokenKind::ALL {
        let token = issuer.token("alice", kind).expect("token");
        let outcome = verifier.verify(Some(&format!("Bearer {token}"))).await;
        match kind {
            TokenKind::Valid => {
                assert_eq!(outcome.expect("a valid token").caller.id(), "alice");
            }
            _ => {
                let error = outcome.expect_err(kind.name());
                assert!(
                    matches!(error, shared::adapters::token::TokenError::Rejected(_)),
                    "{}: {error:?}",
                    kind.name()
                );
            }
        }
    }
}

#[tokio::test]
async fn it_serves_its_jwks_and_discovery_document() {
    let (issuer, url) = serve(SigningKey::generate().expect("key")).await;
    let get = |path: &str| {
        let url = format!("{url}{path}");
        async move {
            let response = reqwest::get(&url).await.expect("answer");
            assert_eq!(response.status(), 200, "{url}");
            assert_eq!(
                response.headers()["content-type"],
                "application/json",
                "{url}"
            );
            response.json::<Value>().await.expect("JSON")
        }
    };
    let discovery = get("/.well-known/openid-configuration").await;
    assert_eq!(discovery["issuer"], url);
    assert_eq!(discovery["jwks_uri"], issuer.jwks_url());
    assert!(
        discovery["jwks_uri"]
            .as_str()
            .is_some_and(|uri| uri.ends_with("/keys"))
    );
    let jwks = get("/keys").await;
    assert_eq!(jwks, issuer.jwks());
    let key = &jwks["keys"][0];
    assert_eq!(
        (&key["kty"], &key["alg"], &key["use"]),
        (&"RSA".into(), &"RS256".into(), &"sig".into())
    );
}

#[tokio::test]
async fn the_key_is_made_once_and_kept() {
    let dir = TempDatabase::new().expect("temp dir");
    let file = std::path::Path::new(dir.path()).with_file_name("issuer-key.der");
    let made = SigningKey::load_or_create(&file).expect("made");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).expect("file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "readable by its owner only");

    // The server (`make dev`) and `devstack token` each read the file: a
    // token minted by one verifies against the other's JWKS.
    let (served, url) = serve(SigningKey::load_or_create(&file).expect("read")).await;
    let minter = Issuer::new(
        &url,
        AUDIENCE,
        SigningKey::load_or_create(&file).expect("read"),
    );
    assert_eq!(made.kid(), served.jwks()["keys"][0]["kid"]);
    let token = minter.token("alice", TokenKind::Valid).expect("token");
    let caller = verifier(&served)
        .verify(Some(&format!("Bearer {token}")))
        .await
        .expect("a token of the kept key");
    assert_eq!(caller.caller.id(), "alice");
}
