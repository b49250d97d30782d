use lambda_http::Request;
use lambda_http::http::StatusCode;

use super::DynamoDbAccess;
use crate::domain::task::{Task, TaskPatch, now};
use crate::http::error::ApiError;
use crate::http::identity::caller;
use crate::http::request::{idempotency_key, if_match, json_object, task_id};
use crate::http::response;
use crate::http::schemas::{
    BadRequest, IfMatchHeader, PayloadTooLarge, PreconditionFailed, ServiceUnavailable, TaskIdPath,
    TaskNotFound, Unauthorized,
};
use crate::http::validation::zip;
use crate::ports::{Idempotency, RateLimiter, TaskStore};
use crate::runtime::{App, HandlerResult};

/// The DynamoDB actions [`handle`] calls, which its function's policy in
/// `template.yaml` grants, on the table only: one conditional `UpdateItem`
/// (`DynamoStore::update`), or a `GetItem` for an empty patch; with an
/// `Idempotency-Key`, a `GetItem` and a `TransactWriteItems` of two
/// `PutItem`s (the task, the key), as `replace_task`.
pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess::table(&[
    "dynamodb:UpdateItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
]);

/// Update a task
///
/// Changes only the fields sent; an explicit `null` is a 422. `{}` changes
/// nothing and returns the task as stored (still honouring `If-Match`).
/// With `If-Match`, only if the task is still at that version. With an
/// `Idempotency-Key`, a retry gets the first answer and writes nothing again.
#[utoipa::path(
    patch, path = "/tasks/{task_id}", operation_id = "update_task", tag = "tasks",
    params(TaskIdPath, IfMatchHeader, crate::http::schemas::IdempotencyKeyHeader),
    request_body = TaskPatch,
    responses(
        (status = 200, description = "The task, as stored.", body = Task, headers(
            ("ETag" = String, description = "The task's new version, quoted: `\"4\"`."),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = TaskNotFound),
        (status = 409, response = crate::http::schemas::IdempotencyKeyInFlight),
        (status = 412, response = PreconditionFailed),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = crate::http::schemas::WriteUnprocessable),
        (status = 429, response = crate::http::schemas::TooManyWrites),
        (status = 503, response = ServiceUnavailable),
    ),
)]
pub async fn handle<S: TaskStore + RateLimiter>(app: &App<S>, req: Request) -> HandlerResult {
    let owner = caller(&req)?;
    super::within_share(app, &owner, super::Share::Writes).await?;
    let body = json_object(&req)?.and_then(|body| TaskPatch::from_object(&body));
    let ((id, key), patch) = zip(zip(task_id(&req), idempotency_key(&req)), body)?;
    let precondition = if_match(&req)?;
    let idempotency = key.map(|key| {
        let body = serde_json::to_value(&patch).unwrap_or_default();
        Idempotency::for_write(key, "PATCH", id, &precondition, body)
    });
    let stored = if patch.is_empty() {
        let stored = app.store.get(&owner, id).await?;
        if !precondition.allows(stored.version) {
            return Err(ApiError::PreconditionFailed);
        }
        stored
    } else {
        app.store
            .update(
                &owner,
                id,
                patch,
                now(),
                &precondition,
                idempotency.as_ref(),
            )
            .await?
    };
    Ok(response::task(StatusCode::OK, &stored))
}
