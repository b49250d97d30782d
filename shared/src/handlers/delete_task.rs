use lambda_http::Request;

use super::DynamoDbAccess;
use crate::http::identity::caller;
use crate::http::request::{idempotency_key, if_match, task_id};
use crate::http::response;
use crate::http::validation::zip;
use crate::ports::{Idempotency, RateLimiter, TaskStore};
use crate::runtime::{App, HandlerResult};
use serde_json::Value;

/// The DynamoDB actions [`handle`] calls (through `DynamoStore::delete`),
/// which its function's policy in `template.yaml` grants, on the table only:
/// one `TransactWriteItems` of a `DeleteItem` (the task) and an `UpdateItem`
/// (the caller's task count), with an `Idempotency-Key` also a `PutItem`
/// (the key), and a `GetItem` of the key when the transaction did not
/// return it.
pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess::table(&[
    "dynamodb:DeleteItem",
    "dynamodb:UpdateItem",
    "dynamodb:PutItem",
    "dynamodb:GetItem",
]);

/// Delete a task
///
/// Deletes the caller's task and answers 204 with an empty body. With
/// `If-Match`, only if the task is still at that version. With an
/// `Idempotency-Key`, a retry gets 204 again and deletes nothing.
#[utoipa::path(
    delete, path = "/tasks/{task_id}", operation_id = "delete_task", tag = "tasks",
    params(
        crate::http::schemas::TaskIdPath,
        crate::http::schemas::IfMatchHeader,
        crate::http::schemas::IdempotencyKeyHeader,
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = crate::http::schemas::TooManyEntityTags),
        (status = 401, response = crate::http::schemas::Unauthorized),
        (status = 404, response = crate::http::schemas::TaskNotFound),
        (status = 409, response = crate::http::schemas::IdempotencyKeyInFlight),
        (status = 412, response = crate::http::schemas::PreconditionFailed),
        (status = 422, response = crate::http::schemas::WriteUnprocessable),
        (status = 429, response = crate::http::schemas::TooManyWrites),
        (status = 503, response = crate::http::schemas::ServiceUnavailable),
    ),
)]
pub async fn handle<S: TaskStore + RateLimiter>(app: &App<S>, req: Request) -> HandlerResult {
    let owner = caller(&req)?;
    super::within_share(app, &owner, super::Share::Writes).await?;
    let (id, key) = zip(task_id(&req), idempotency_key(&req))?;
    let precondition = if_match(&req)?;
    let idempotency =
        key.map(|key| Idempotency::for_write(key, "DELETE", id, &precondition, Value::Null));
    app.store
        .delete(&owner, id, &precondition, idempotency.as_ref())
        .await?;
    Ok(response::no_content())
}
