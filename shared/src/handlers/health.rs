use lambda_http::Request;
use lambda_http::http::StatusCode;
use serde_json::json;

use crate::response;
use crate::runtime::{App, HandlerResult};

/// `GET /health`: no identity needed, no I/O.
pub async fn handle<S>(_app: &App<S>, _req: Request) -> HandlerResult {
    Ok(response::json(StatusCode::OK, &json!({ "status": "ok" })))
}
