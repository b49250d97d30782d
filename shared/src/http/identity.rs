//! Who is calling, decided once per request, in one place.
//!
//! - With `JWT_ISSUER` set, only a bearer token checked by the function
//!   itself ([`TokenVerifier`], the JWT authorizer's rules) names the
//!   caller: deployed, the two streamed functions behind Function URLs;
//!   locally, every function in token mode (standing in for the JWT
//!   authorizer: the `local-authorizer` feature, without which a function
//!   behind the authorizer neither links the check nor starts with
//!   `JWT_ISSUER` set; see `shared::runtime`). The authorizer's claims in an
//!   event and the `X-User-Id` header count for nothing then: behind a
//!   Function URL anybody could have written them.
//! - Otherwise the API Gateway JWT authorizer's `sub` claim
//!   (`requestContext.authorizer.jwt.claims.sub`), which the authorizer
//!   verified before the function ran;
//! - and, only when configuration says so for local work
//!   (`IDENTITY_MODE=header`), the `X-User-Id` header.
//!
//! The runtime runs [`identify`] before the handler and keeps the answer
//! in the request's extensions; handlers ask [`caller`] for it, so the
//! order of checks stays theirs (401 before any validation, no identity
//! needed for `/health`). The request log records the verified caller
//! from the same answer, never a header a client merely sent.

use chrono::{DateTime, Utc};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use super::error::ApiError;
use super::headers::USER_HEADER;
use crate::adapters::token::{TokenError, TokenVerifier};
use crate::config::IdentityMode;
use crate::domain::caller::Caller;

/// How a function identifies callers; built once per cold start.
#[derive(Debug)]
pub struct Authenticator {
    mode: IdentityMode,
    tokens: Option<TokenVerifier>,
}

/// A caller, verified, and until when the proof holds (a token's `exp`;
/// `None` when the authorizer or the local header vouched for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identified {
    pub caller: Caller,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What [`identify`] found, kept in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity(Result<Identified, TokenError>);

impl Authenticator {
    pub fn new(mode: IdentityMode, tokens: Option<TokenVerifier>) -> Self {
        Authenticator { mode, tokens }
    }

    /// Whether callers come from bearer tokens checked here.
    pub fn checks_tokens(&self) -> bool {
        self.tokens.is_some()
    }

    /// The caller of `req`, by the rules above.
    pub async fn identify(&self, req: &Request) -> Identity {
        if let Some(tokens) = &self.tokens {
            let authorization = req
                .headers()
                .get(lambda_http::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            return Identity(
                tokens
                    .verify(authorization)
                    .await
                    .map(|verified| Identified {
                        caller: verified.caller,
                        expires_at: Some(verified.expires_at),
                    }),
            );
        }
        self.identify_by_authorizer(req)
    }

    /// The caller by the authorizer's claims, or (configured locally) the
    /// `X-User-Id` header: [`identify`](Self::identify) when no token is
    /// checked here. Never links the token check.
    pub(crate) fn identify_by_authorizer(&self, req: &Request) -> Identity {
        let caller = authorizer_subject(req).or_else(|| match self.mode {
            IdentityMode::Header => req
                .headers()
                .get(USER_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| Caller::new(v.trim())),
            IdentityMode::Jwt => None,
        });
        Identity(
            caller
                .map(|caller| Identified {
                    caller,
                    expires_at: None,
                })
                .ok_or(TokenError::Missing),
        )
    }
}

impl Identity {
    /// The verified caller, if any (what the request log records).
    pub fn caller(&self) -> Option<&Caller> {
        self.0.as_ref().ok().map(|identified| &identified.caller)
    }

    /// The verified caller, or the error to answer with.
    pub fn identified(&self) -> Result<Identified, ApiError> {
        self.0.clone().map_err(ApiError::from)
    }
}

/// The caller of a request the runtime identified, or 401 (503 if the
/// issuer's keys could not be fetched).
pub fn caller(req: &Request) -> Result<Caller, ApiError> {
    identified(req).map(|identified| identified.caller)
}

/// [`caller`], with the expiry of its proof.
pub fn identified(req: &Request) -> Result<Identified, ApiError> {
    req.extensions()
        .get::<Identity>()
        .ok_or(ApiError::Unauthenticated)?
        .identified()
}

/// `requestContext.authorizer.jwt.claims.sub` of an HTTP API event.
fn authorizer_subject(req: &Request) -> Option<Caller> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context
            .authorizer
            .as_ref()?
            .jwt
            .as_ref()?
            .claims
            .get("sub")
            .and_then(|sub| Caller::new(sub.clone())),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// How long a feed ticket opens its caller's feed (the contract allows at
/// most 15 minutes): `EventSource`'s reconnects keep working until then.
pub const TICKET_LIFETIME_SECONDS: i64 = 10 * 60;
