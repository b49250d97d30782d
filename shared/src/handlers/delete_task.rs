use lambda_http::Request;

use super::DynamoDbAccess;
use crate::http::identity::caller;
use crate::http::request::{if_match, task_id};
use crate::http::response;
use crate::ports::TaskStore;
use crate::runtime::{App, HandlerResult};

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
    params(crate::http::schemas::TaskIdPath, crate::http::schemas::IfMatchHeader),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = crate::http::schemas::TooManyEntityTags),
        (status = 401, response = crate::http::schemas::Unauthorized),
        (status = 404, response = crate::http::schemas::TaskNotFound),
        (status = 412, response = crate::http::schemas::PreconditionFailed),
        (status = 422, response = crate::http::schemas::ValidationFailed),
        (status = 503, response = crate::http::schemas::ServiceUnavailable),
    ),
)]
pub async fn handle<S: TaskStore>(app: &App<S>, req: Request) -> HandlerResult {
    let owner = caller(&req)?;
    let id = task_id(&req)?;
    app.store.delete(&owner, id, &if_match(&req)?).await?;
    Ok(response::no_content())
}
