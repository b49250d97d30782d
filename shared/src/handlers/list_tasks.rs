use lambda_http::Request;
use lambda_http::http::StatusCode;

use super::DynamoDbAccess;
use crate::adapters::dynamo::table::GSI1;
use crate::http::identity::caller;
use crate::http::request::{encode_cursor, list_query};
use crate::http::response;
use crate::http::schemas::TaskPage;
use crate::http::schemas::{ListParams, ServiceUnavailable, Unauthorized, ValidationFailed};
use crate::ports::TaskStore;
use crate::runtime::{App, HandlerResult};

/// The DynamoDB actions [`handle`] calls (through `DynamoStore::list`),
/// which its function's policy in `template.yaml` grants: `Query` on the
/// table, and on `GSI1` for the `done` filter.
pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess {
    actions: &["dynamodb:Query"],
    table: true,
    indexes: &[GSI1],
    stream: false,
    ..DynamoDbAccess::NONE
};

/// List tasks
///
/// One page of the caller's tasks, oldest first: exactly
/// `min(limit, matching tasks left)` items, with or without the `done`
/// filter, and a `next_cursor` that is `null` exactly when nothing is left.
#[utoipa::path(
    get, path = "/tasks", operation_id = "list_tasks", tag = "tasks",
    params(ListParams),
    responses(
        (status = 200, description = "One page of tasks.", body = TaskPage),
        (status = 401, response = Unauthorized),
        (status = 422, response = ValidationFailed),
        (status = 503, response = ServiceUnavailable),
    ),
)]
pub async fn handle<S: TaskStore>(app: &App<S>, req: Request) -> HandlerResult {
    let owner = caller(&req)?;
    let query = list_query(&req)?;
    let page = app.store.list(&owner, &query).await?;
    let body = TaskPage {
        items: page.items,
        next_cursor: page.next_after.map(encode_cursor),
    };
    Ok(response::json(StatusCode::OK, &body))
}
