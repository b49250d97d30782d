use lambda_http::Request;
use lambda_http::http::{HeaderValue, StatusCode, header};

use crate::identity::caller;
use crate::model::{Task, TaskCreate, now};
use crate::request::json_object;
use crate::response;
use crate::runtime::{App, HandlerResult};
use crate::store::TaskStore;

/// `POST /tasks`: 201 with the task, `Location` and `ETag`.
pub async fn handle<S: TaskStore>(app: &App<S>, req: Request) -> HandlerResult {
    let owner = caller(&req, app.config.identity)?;
    let input = json_object(&req)?.and_then(|body| TaskCreate::from_object(&body))?;
    let stored = app.store.create(&owner, Task::new(input, now())).await?;
    let mut response = response::task(StatusCode::CREATED, &stored);
    let location = format!("/tasks/{}", stored.task.id);
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}
