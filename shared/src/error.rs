//! The one error type of the API. Every failure a handler can meet becomes an
//! [`ApiError`], and [`ApiError::into_response`] is the only place that turns
//! one into a status, headers and a JSON body, so every function answers the
//! contract's error shapes the same way.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde_json::json;

use crate::validation::FieldError;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No caller identity on a route that needs one.
    #[error("not authenticated")]
    Unauthenticated,
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
    /// served on its function's own URL ([`crate::routes::STREAMED`]).
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
    /// The request body is larger than [`crate::request::MAX_BODY_BYTES`].
    #[error("request body too large")]
    PayloadTooLarge,
    /// A JSON body that is not UTF-8: FastAPI cannot decode it either, and
    /// answers 400 in these words.
    #[error("There was an error parsing the body")]
    UnreadableBody,
    /// An `Idempotency-Key` was reused with another body.
    #[error("idempotency key reused with a different body")]
    IdempotencyKeyReused,
    /// DynamoDB throttled us, timed out or could not be reached: retryable.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected answer: logged in full, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<Vec<FieldError>> for ApiError {
    fn from(errors: Vec<FieldError>) -> Self {
        ApiError::Validation(errors)
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Validation(_) | ApiError::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::TaskNotFound
            | ApiError::RouteNotFound
            | ApiError::StreamedElsewhere { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TaskLimitReached(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnreadableBody => StatusCode::BAD_REQUEST,
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
            ApiError::RouteNotFound => json!({ "detail": "Not Found" }),
            ApiError::MethodNotAllowed { .. } => json!({ "detail": "Method Not Allowed" }),
            ApiError::Unavailable(_) => json!({ "detail": "service unavailable" }),
            ApiError::Internal(_) => {
                json!({ "detail": "internal server error", "request_id": request_id })
            }
            other => json!({ "detail": other.to_string() }),
        };
        let mut response = crate::response::json(status, &body);
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthenticated => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::MethodNotAllowed { allow } => {
                if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
                    headers.insert(header::ALLOW, value);
                }
            }
            ApiError::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            _ => {}
        }
        response
    }
}
