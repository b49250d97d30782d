use lambda_http::Request;
use lambda_http::http::StatusCode;

use crate::identity::caller;
use crate::model::{TaskCreate, now};
use crate::request::{if_match, json_object, task_id};
use crate::response;
use crate::runtime::{App, HandlerResult};
use crate::store::TaskStore;
use crate::validation::zip;

/// `PUT /tasks/{task_id}`: a full replace with create's defaults.
pub async fn handle<S: TaskStore>(app: &App<S>, req: Request) -> HandlerResult {
    let owner = caller(&req, app.config.identity)?;
    let body = json_object(&req)?.and_then(|body| TaskCreate::from_object(&body));
    let (id, input) = zip(task_id(&req), body)?;
    let stored = app
        .store
        .replace(&owner, id, input, now(), &if_match(&req))
        .await?;
    Ok(response::task(StatusCode::OK, &stored))
}
