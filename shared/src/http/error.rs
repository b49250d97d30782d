//! The one error type of the API. Every failure a handler can meet becomes an
//! [`ApiError`] (storage's [`StoreError`] and the token check's
//! [`TokenError`] through `From`, so handlers just use `?`), and
//! [`ApiError::into_response`] is the only place that turns one into a
//! status, headers and a JSON body, so every function answers the
//! contract's error shapes the same way. A 5xx keeps its cause (the whole
//! chain, logged by the runtime); the client sees only the request id.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde_json::json;

use super::validation::FieldError;
use crate::adapters::token::TokenError;
pub use crate::ports::chain;
use crate::ports::{Cause, StoreError};

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No caller identity on a route that needs one.
    #[error("not authenticated")]
    Unauthenticated,
    /// A bearer token that breaks a rule (which one: shown in
    /// `WWW-Authenticate`'s `error_description`).
    #[error("not authenticated")]
    InvalidToken(&'static str),
    /// Request validation failed; every failure is listed.
    #[error("request validation failed ({} errors)", .0.len())]
    Validation(Vec<FieldError>),
    /// The task does not exist for this caller (another caller's task included).
    #[error("task not found")]
    TaskNotFound,
    /// No route has this path.
    #[error("route not found")]
    RouteNotFound,
    /// The path exists, but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed { allow: Vec<&'static str> },
    /// A streamed route reached through the (buffering) HTTP API: it is
    /// served on its function's own URL ([`super::routes::STREAMED`]).
    #[error(
        "{route} streams its response: call it on its function URL (the stack's outputs list it)"
    )]
    StreamedElsewhere { route: String },
    /// The caller already owns `MAX_TASKS` tasks.
    #[error("task limit reached ({0})")]
    TaskLimitReached(u32),
    /// `If-Match` did not match the stored version.
    #[error("precondition failed")]
    PreconditionFailed,
    /// The request body is larger than [`super::request::MAX_BODY_BYTES`].
    #[error("request body too large")]
    PayloadTooLarge,
    /// A JSON body that is not UTF-8: FastAPI cannot decode it either, and
    /// answers 400 in these words.
    #[error("There was an error parsing the body")]
    UnreadableBody,
    /// An `Idempotency-Key` was reused with another body.
    #[error("idempotency key reused with a different body")]
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` is still being
    /// processed: retry after a moment (`Retry-After`).
    #[error("a request with this idempotency key is in progress")]
    IdempotencyKeyInFlight,
    /// The caller already holds its `MAX_FEED_STREAMS_PER_CALLER` open
    /// feed streams; one ends within `retry_after` seconds.
    #[error("too many open feed streams ({max})")]
    TooManyStreams { max: u32, retry_after: u64 },
    /// The caller has used its share of `what` (writes, exports) in this
    /// window (`WRITES_PER_CALLER` per `RATE_WINDOW_SECONDS`...); the
    /// window ends within `retry_after` seconds.
    #[error("too many {what}: at most {limit} per {window_seconds} s per caller")]
    OverShare {
        what: &'static str,
        limit: u32,
        window_seconds: u32,
        retry_after: u64,
    },
    /// A feed ticket that does not exist or has expired.
    #[error("invalid or expired ticket")]
    InvalidTicket,
    /// `If-Match` that is neither `*` nor a list of entity tags.
    #[error("If-Match must be * or a list of entity tags")]
    MalformedIfMatch,
    /// `If-Match` lists more entity tags than a write can check.
    #[error("If-Match lists more than {max} entity tags")]
    TooManyEntityTags { max: usize },
    /// DynamoDB (or the issuer's keys) throttled us, timed out or could not
    /// be reached: retryable.
    #[error("service unavailable")]
    Unavailable(#[source] Cause),
    /// A bug or an unexpected answer: logged in full, never shown.
    #[error("internal error")]
    Internal(#[source] Cause),
}

impl ApiError {
    /// A 500 for a fault found at the edge itself.
    pub fn internal(cause: impl Into<Cause>) -> Self {
        ApiError::Internal(cause.into())
    }

    /// A 503 for a fault found at the edge itself.
    pub fn unavailable(cause: impl Into<Cause>) -> Self {
        ApiError::Unavailable(cause.into())
    }
}

impl From<Vec<FieldError>> for ApiError {
    fn from(errors: Vec<FieldError>) -> Self {
        ApiError::Validation(errors)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::TaskNotFound => ApiError::TaskNotFound,
            StoreError::PreconditionFailed => ApiError::PreconditionFailed,
            StoreError::TaskLimitReached(max) => ApiError::TaskLimitReached(max),
            StoreError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
            StoreError::IdempotencyKeyInFlight => ApiError::IdempotencyKeyInFlight,
            error @ StoreError::Unavailable { .. } => ApiError::Unavailable(Box::new(error)),
            error @ StoreError::Internal { .. } => ApiError::Internal(Box::new(error)),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Missing => ApiError::Unauthenticated,
            TokenError::Rejected(reason) => ApiError::InvalidToken(reason),
            error @ TokenError::KeysUnavailable(_) => ApiError::Unavailable(Box::new(error)),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated | ApiError::InvalidToken(_) | ApiError::InvalidTicket => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::TooManyStreams { .. } | ApiError::OverShare { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Validation(_) | ApiError::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::TaskNotFound
            | ApiError::RouteNotFound
            | ApiError::StreamedElsewhere { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TaskLimitReached(_) | ApiError::IdempotencyKeyInFlight => {
                StatusCode::CONFLICT
            }
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnreadableBody
            | ApiError::TooManyEntityTags { .. }
            | ApiError::MalformedIfMatch => StatusCode::BAD_REQUEST,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response a client sees. `request_id` only appears in a 500 body,
    /// so a user can quote it and an operator can find the logged cause.
    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let status = self.status();
        let body = match &self {
            ApiError::Validation(errors) => json!({ "detail": errors }),
            ApiError::InvalidToken(_) => json!({ "detail": "not authenticated" }),
            ApiError::RouteNotFound => json!({ "detail": "Not Found" }),
            ApiError::MethodNotAllowed { .. } => json!({ "detail": "Method Not Allowed" }),
            ApiError::Unavailable(_) => json!({ "detail": "service unavailable" }),
            ApiError::Internal(_) => {
                json!({ "detail": "internal server error", "request_id": request_id })
            }
            other => json!({ "detail": other.to_string() }),
        };
        let mut response = super::response::json(status, &body);
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthenticated => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            // RFC 6750: the error code, and the rule the token broke.
            ApiError::InvalidToken(reason) => {
                let challenge =
                    format!("Bearer error=\"invalid_token\", error_description=\"{reason}\"");
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            ApiError::MethodNotAllowed { allow } => {
                if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
                    headers.insert(header::ALLOW, value);
                }
            }
            ApiError::Unavailable(_) | ApiError::IdempotencyKeyInFlight => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            ApiError::TooManyStreams { retry_after, .. }
            | ApiError::OverShare { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            ApiError::InvalidTicket => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer error=\"invalid_token\", error_description=\"invalid or expired ticket\"",
                    ),
                );
            }
            _ => {}
        }
        response
    }
}
