//! Building successful responses: JSON bodies and the task headers.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::domain::task::VersionedTask;

/// A JSON response. Serialising our own types cannot fail; if it ever did,
/// the client gets a 500-shaped body rather than a panic.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response<Body> {
    let text = serde_json::to_string(body)
        .unwrap_or_else(|_| r#"{"detail":"internal server error"}"#.to_owned());
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A task body with its `ETag` (the stored version, quoted).
pub fn task(status: StatusCode, task: &VersionedTask) -> Response<Body> {
    let mut response = json(status, &task.task);
    if let Ok(etag) = HeaderValue::from_str(&task.etag()) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// 204 with an empty body.
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}
