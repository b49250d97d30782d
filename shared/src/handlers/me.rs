use lambda_http::Request;
use lambda_http::http::StatusCode;
use serde_json::json;

use crate::identity::caller;
use crate::response;
use crate::runtime::{App, HandlerResult};

/// `GET /me`: who the API thinks you are.
pub async fn handle<S>(app: &App<S>, req: Request) -> HandlerResult {
    let caller = caller(&req, app.config.identity)?;
    Ok(response::json(
        StatusCode::OK,
        &json!({ "user_id": caller.id() }),
    ))
}
