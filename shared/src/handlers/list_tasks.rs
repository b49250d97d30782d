use lambda_http::Request;
use lambda_http::http::StatusCode;

use crate::identity::caller;
use crate::model::TaskPage;
use crate::request::{encode_cursor, list_query};
use crate::response;
use crate::runtime::{App, HandlerResult};
use crate::store::TaskStore;

/// `GET /tasks?limit=&done=&cursor=`: one page, oldest first.
pub async fn handle<S: TaskStore>(app: &App<S>, req: Request) -> HandlerResult {
    let owner = caller(&req, app.config.identity)?;
    let query = list_query(&req)?;
    let page = app.store.list(&owner, &query).await?;
    let body = TaskPage {
        items: page.items,
        next_cursor: page.next_after.map(encode_cursor),
    };
    Ok(response::json(StatusCode::OK, &body))
}
