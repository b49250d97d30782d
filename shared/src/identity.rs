//! Who is calling. Deployed, only API Gateway's JWT authorizer can say so
//! (the `sub` claim); the `X-User-Id` header counts only when configuration
//! explicitly enables it for local work.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::config::IdentityMode;
use crate::error::ApiError;
use crate::token::TokenVerifier;

/// The header that names the caller in local mode.
pub const USER_HEADER: &str = "x-user-id";

/// Longest accepted caller id (a Cognito `sub` is 36 characters); keeps
/// storage keys far below DynamoDB's limits.
const MAX_CALLER_LEN: usize = 256;

/// An authenticated caller; every task key is scoped by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(String);

impl Caller {
    pub fn new(id: impl Into<String>) -> Option<Self> {
        let id = id.into();
        let valid = !id.trim().is_empty() && id.len() <= MAX_CALLER_LEN;
        valid.then_some(Caller(id))
    }

    pub fn id(&self) -> &str {
        &self.0
    }
}

/// The caller of `req`, or 401.
pub fn caller(req: &Request, mode: IdentityMode) -> Result<Caller, ApiError> {
    jwt_subject(req)
        .or_else(|| match mode {
            IdentityMode::Header => req
                .headers()
                .get(USER_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| Caller::new(v.trim())),
            IdentityMode::Jwt => None,
        })
        .ok_or(ApiError::Unauthenticated)
}

/// The caller of a request to a streamed route, which deployed comes
/// through the function's own URL with no API Gateway authorizer in
/// front: as [`caller`] (an authorizer's claims, or the local header),
/// else the `Authorization: Bearer` token, checked by the function itself
/// when `tokens` is configured (`JWT_ISSUER`). No token check configured
/// and no other identity: 401.
pub async fn authenticate(
    req: &Request,
    mode: IdentityMode,
    tokens: Option<&TokenVerifier>,
) -> Result<Caller, ApiError> {
    if let Ok(caller) = caller(req, mode) {
        return Ok(caller);
    }
    let Some(tokens) = tokens else {
        return Err(ApiError::Unauthenticated);
    };
    let authorization = req
        .headers()
        .get(lambda_http::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    tokens.verify(authorization).await
}

/// `requestContext.authorizer.jwt.claims.sub` of an HTTP API event.
fn jwt_subject(req: &Request) -> Option<Caller> {
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
