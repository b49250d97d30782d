use lambda_http::Request;
use lambda_http::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::DynamoDbAccess;
use crate::http::response;
use crate::runtime::{App, HandlerResult};

/// [`handle`] touches no storage (it does not even ask for a `TaskStore`):
/// its function has no IAM policy in `template.yaml`.
pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess::NONE;

/// The body of `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(value_type = String, example = "ok")]
    pub status: &'static str,
}

/// Health check
///
/// Answers `{"status": "ok"}` while the function runs. Needs no caller and
/// touches no storage.
#[utoipa::path(
    get, path = "/health", operation_id = "health", tag = "service",
    security(()),
    responses((status = 200, description = "The API is up.", body = Health)),
)]
pub async fn handle<S>(_app: &App<S>, _req: Request) -> HandlerResult {
    Ok(response::json(StatusCode::OK, &Health { status: "ok" }))
}
