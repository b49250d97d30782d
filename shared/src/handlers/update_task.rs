use lambda_http::Request;
use lambda_http::http::StatusCode;

use crate::error::ApiError;
use crate::identity::caller;
use crate::model::{TaskPatch, now};
use crate::request::{if_match, json_object, task_id};
use crate::response;
use crate::runtime::{App, HandlerResult};
use crate::store::TaskStore;
use crate::validation::zip;

/// `PATCH /tasks/{task_id}`: only the fields sent change. `{}` changes
/// nothing and returns the task as stored (still honouring `If-Match`).
pub async fn handle<S: TaskStore>(app: &App<S>, req: Request) -> HandlerResult {
    let owner = caller(&req, app.config.identity)?;
    let body = json_object(&req)?.and_then(|body| TaskPatch::from_object(&body));
    let (id, patch) = zip(task_id(&req), body)?;
    let precondition = if_match(&req);
    let stored = if patch.is_empty() {
        let stored = app.store.get(&owner, id).await?;
        if !precondition.allows(stored.version) {
            return Err(ApiError::PreconditionFailed);
        }
        stored
    } else {
        app.store
            .update(&owner, id, patch, now(), &precondition)
            .await?
    };
    Ok(response::task(StatusCode::OK, &stored))
}
