use lambda_http::Request;
use lambda_http::http::StatusCode;

use super::DynamoDbAccess;
use crate::domain::task::Task;
use crate::http::identity::caller;
use crate::http::request::task_id;
use crate::http::response;
use crate::http::schemas::{
    ServiceUnavailable, TaskIdPath, TaskNotFound, Unauthorized, ValidationFailed,
};
use crate::ports::TaskStore;
use crate::runtime::{App, HandlerResult};

/// The DynamoDB actions [`handle`] calls (through `DynamoStore::get`), which
/// its function's policy in `template.yaml` grants, on the table only.
pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess::table(&["dynamodb:GetItem"]);

/// Get a task
///
/// The caller's task and its `ETag`.
#[utoipa::path(
    get, path = "/tasks/{task_id}", operation_id = "get_task", tag = "tasks",
    params(TaskIdPath),
    responses(
        (status = 200, description = "The task.", body = Task, headers(
            ("ETag" = String, description = "The task's version, quoted: `\"3\"`."),
        )),
        (status = 401, response = Unauthorized),
        (status = 404, response = TaskNotFound),
        (status = 422, response = ValidationFailed),
        (status = 503, response = ServiceUnavailable),
    ),
)]
pub async fn handle<S: TaskStore>(app: &App<S>, req: Request) -> HandlerResult {
    let owner = caller(&req)?;
    let id = task_id(&req)?;
    let stored = app.store.get(&owner, id).await?;
    Ok(response::task(StatusCode::OK, &stored))
}
