use lambda_http::Request;

use crate::error::ApiError;
use crate::routes::allowed_methods;
use crate::runtime::{App, HandlerResult};

/// Everything no route matches (API Gateway's `$default`): 405 with `Allow`
/// for a known path, 404 otherwise, in FastAPI's words.
pub async fn handle<S>(_app: &App<S>, req: Request) -> HandlerResult {
    let allow = allowed_methods(req.uri().path());
    if allow.is_empty() {
        Err(ApiError::RouteNotFound)
    } else {
        Err(ApiError::MethodNotAllowed { allow })
    }
}
