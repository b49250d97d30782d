use lambda_http::Request;

use super::DynamoDbAccess;
use crate::http::error::ApiError;
use crate::http::routes::{allowed_methods, is_streamed, route_for};
use crate::runtime::{App, HandlerResult};

/// [`handle`] touches no storage (it does not even ask for a `TaskStore`):
/// its function has no IAM policy in `template.yaml`.
pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess::NONE;

/// Everything no route matches (API Gateway's `$default`): 405 with `Allow`
/// for a known path, 404 otherwise, in FastAPI's words. Deployed, the HTTP
/// API also sends it the streamed routes, which it cannot serve buffered:
/// a 404 that says where they are served.
pub async fn handle<S>(_app: &App<S>, req: Request) -> HandlerResult {
    let path = req.uri().path();
    if let Some(route) = route_for(req.method().as_str(), path).filter(|r| is_streamed(r.function))
    {
        return Err(ApiError::StreamedElsewhere {
            route: format!("{} {}", route.method, route.path),
        });
    }
    let allow = allowed_methods(path);
    if allow.is_empty() {
        Err(ApiError::RouteNotFound)
    } else {
        Err(ApiError::MethodNotAllowed { allow })
    }
}
