use lambda_http::Request;
use lambda_http::http::{HeaderValue, StatusCode, header};

use super::DynamoDbAccess;
use crate::domain::task::{Task, TaskCreate, now};
use crate::http::identity::caller;
use crate::http::request::{idempotency_key, json_object};
use crate::http::response;
use crate::http::validation::zip;
use crate::ports::{CreateRules, Idempotency, RateLimiter, TaskStore};
use crate::runtime::{App, HandlerResult};

/// The DynamoDB actions [`handle`] calls (through `DynamoStore::create`),
/// which its function's policy in `template.yaml` grants, on the table only:
/// one `TransactWriteItems` of an `UpdateItem` (the caller's task count) and
/// two `PutItem`s (the task, the idempotency key), and a `GetItem` that reads
/// a replayed idempotency key back when the cancelled transaction did not
/// return it. (A transaction needs its parts' actions, none of its own.)
pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess::table(&[
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:GetItem",
]);

/// Create a task
///
/// Stores a new task for the caller, with create's defaults (`description`
/// `""`, `done` `false`), and answers 201 with it, its `Location` and its
/// `ETag`. With an `Idempotency-Key`, a retry of the same request returns the
/// task created first and creates nothing.
#[utoipa::path(
    post, path = "/tasks", operation_id = "create_task", tag = "tasks",
    params(crate::http::schemas::IdempotencyKeyHeader),
    request_body = TaskCreate,
    responses(
        (status = 201, description = "The task, as stored.", body = Task, headers(
            ("Location" = String, description = "The task's path: `/tasks/{id}`."),
            ("ETag" = String, description = "The task's version, quoted: `\"1\"`."),
        )),
        (status = 400, response = crate::http::schemas::UnreadableBody),
        (status = 401, response = crate::http::schemas::Unauthorized),
        (status = 409, response = crate::http::schemas::TaskLimitReached),
        (status = 413, response = crate::http::schemas::PayloadTooLarge),
        (status = 422, response = crate::http::schemas::WriteUnprocessable),
        (status = 429, response = crate::http::schemas::TooManyWrites),
        (status = 503, response = crate::http::schemas::ServiceUnavailable),
    ),
)]
pub async fn handle<S: TaskStore + RateLimiter>(app: &App<S>, req: Request) -> HandlerResult {
    let owner = caller(&req)?;
    super::within_share(app, &owner, super::Share::Writes).await?;
    let body = json_object(&req)?.and_then(|body| TaskCreate::from_object(&body));
    let (key, input) = zip(idempotency_key(&req), body)?;
    let idempotency = key.map(|key| Idempotency::new(key, &input));
    let rules = CreateRules {
        max_tasks: app.config.max_tasks,
        idempotency: idempotency.as_ref(),
    };
    let stored = app
        .store
        .create(&owner, Task::new(input, now()), rules)
        .await?;
    let mut response = response::task(StatusCode::CREATED, &stored);
    let location = format!("/tasks/{}", stored.task.id);
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}
