use lambda_http::Request;
use lambda_http::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::DynamoDbAccess;
use crate::http::identity::caller;
use crate::http::response;
use crate::http::schemas::Unauthorized;
use crate::runtime::{App, HandlerResult};

/// [`handle`] touches no storage (it does not even ask for a `TaskStore`):
/// its function has no IAM policy in `template.yaml`.
pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess::NONE;

/// The body of `GET /me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The caller's id: the JWT `sub` claim, or locally the `X-User-Id` header.
    pub user_id: String,
}

/// Who am I
///
/// The caller, as the API identifies it: the `sub` claim of the JWT
/// (deployed), or the `X-User-Id` header (local work only).
#[utoipa::path(
    get, path = "/me", operation_id = "me", tag = "service",
    responses(
        (status = 200, description = "The caller.", body = Me),
        (status = 401, response = Unauthorized),
    ),
)]
pub async fn handle<S>(_app: &App<S>, req: Request) -> HandlerResult {
    let caller = caller(&req)?;
    let body = Me {
        user_id: caller.id().to_owned(),
    };
    Ok(response::json(StatusCode::OK, &body))
}
