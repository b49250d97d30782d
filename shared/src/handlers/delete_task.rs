use lambda_http::Request;

use crate::identity::caller;
use crate::request::{if_match, task_id};
use crate::response;
use crate::runtime::{App, HandlerResult};
use crate::store::TaskStore;

/// `DELETE /tasks/{task_id}`: 204 with an empty body.
pub async fn handle<S: TaskStore>(app: &App<S>, req: Request) -> HandlerResult {
    let owner = caller(&req, app.config.identity)?;
    let id = task_id(&req)?;
    app.store.delete(&owner, id, &if_match(&req)).await?;
    Ok(response::no_content())
}
