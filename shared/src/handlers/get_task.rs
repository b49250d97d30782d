use lambda_http::Request;
use lambda_http::http::StatusCode;

use crate::identity::caller;
use crate::request::task_id;
use crate::response;
use crate::runtime::{App, HandlerResult};
use crate::store::TaskStore;

/// `GET /tasks/{task_id}`: the task and its `ETag`.
pub async fn handle<S: TaskStore>(app: &App<S>, req: Request) -> HandlerResult {
    let owner = caller(&req, app.config.identity)?;
    let id = task_id(&req)?;
    let stored = app.store.get(&owner, id).await?;
    Ok(response::task(StatusCode::OK, &stored))
}
