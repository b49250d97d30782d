use lambda_http::Request;

use super::DynamoDbAccess;
use crate::error::ApiError;
use crate::routes::allowed_methods;
use crate::runtime::{App, HandlerResult};

/// [`handle`] touches no storage (it does not even ask for a `TaskStore`):
/// its function has no IAM policy in `template.yaml`.
pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess::NONE;

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
