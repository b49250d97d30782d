use lambda_http::Request;
use lambda_http::http::StatusCode;

use super::DynamoDbAccess;
use crate::adapters::dynamo::table::GSI1;
use crate::http::identity::caller;
use crate::http::request::{encode_history_cursor, history_query, task_id};
use crate::http::response;
use crate::http::schemas::{ChangeView, History};
use crate::http::schemas::{
    HistoryParams, ServiceUnavailable, TaskIdPath, Unauthorized, ValidationFailed,
};
use crate::http::validation::zip;
use crate::ports::AuditStore;
use crate::runtime::{App, HandlerResult};

/// The DynamoDB actions [`handle`] calls (through `AuditStore::history`),
/// which its function's policy in `template.yaml` grants: `Query` on
/// `GSI1` only, where a task's changes are grouped (IAM authorises a Query
/// of an index by the index's ARN alone).
pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess {
    actions: &["dynamodb:Query"],
    table: false,
    indexes: &[GSI1],
    stream: false,
    ..DynamoDbAccess::NONE
};

/// A task's history
///
/// Every recorded change of the caller's task, newest first, paginated as
/// `GET /tasks`: who changed it is the caller, and each entry says what
/// happened, when, and which fields went from what to what. Changes are
/// recorded from the table's stream after the write has been answered, so
/// the newest one may take a moment to appear. A deleted task keeps its
/// history. A task the caller never had has an empty history.
#[utoipa::path(
    get, path = "/tasks/{task_id}/history", operation_id = "task_history", tag = "tasks",
    params(TaskIdPath, HistoryParams),
    responses(
        (status = 200, description = "One page of the task's changes, newest first.", body = History),
        (status = 401, response = Unauthorized),
        (status = 422, response = ValidationFailed),
        (status = 503, response = ServiceUnavailable),
    ),
)]
pub async fn handle<S: AuditStore>(app: &App<S>, req: Request) -> HandlerResult {
    let owner = caller(&req)?;
    let (task, query) = zip(task_id(&req), history_query(&req))?;
    let page = app.store.history(&owner, task, &query).await?;
    let body = History {
        items: page.items.iter().map(ChangeView::from).collect(),
        next_cursor: page.next_before.as_ref().map(encode_history_cursor),
    };
    Ok(response::json(StatusCode::OK, &body))
}
