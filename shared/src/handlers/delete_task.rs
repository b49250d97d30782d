use lambda_http::Request;

use super::DynamoDbAccess;
use crate::identity::caller;
use crate::request::{if_match, task_id};
use crate::response;
use crate::runtime::{App, HandlerResult};
use crate::store::TaskStore;

/// The DynamoDB actions [`handle`] calls (through `DynamoStore::delete`),
/// which its function's policy in `template.yaml` grants, on the table only:
/// one `TransactWriteItems` of a `DeleteItem` (the task) and an `UpdateItem`
/// (the caller's task count).
pub const DYNAMODB: DynamoDbAccess =
    DynamoDbAccess::table(&["dynamodb:DeleteItem", "dynamodb:UpdateItem"]);

/// Delete a task
///
/// Deletes the caller's task and answers 204 with an empty body. With
/// `If-Match`, only if the task is still at that version.
#[utoipa::path(
    delete, path = "/tasks/{task_id}", operation_id = "delete_task", tag = "tasks",
    params(crate::openapi::TaskIdPath, crate::openapi::IfMatchHeader),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 404, response = crate::openapi::TaskNotFound),
        (status = 412, response = crate::openapi::PreconditionFailed),
        (status = 422, response = crate::openapi::ValidationFailed),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ),
)]
pub async fn handle<S: TaskStore>(app: &App<S>, req: Request) -> HandlerResult {
    let owner = caller(&req, app.config.identity)?;
    let id = task_id(&req)?;
    app.store.delete(&owner, id, &if_match(&req)).await?;
    Ok(response::no_content())
}
