//! The OpenAPI 3.1 document, derived from the code: the models' schemas
//! (the task models' from their field declarations, in
//! [`crate::http::schemas`]), each route's operation (`#[utoipa::path]`
//! on its handler, its doc comment giving the summary and description), and
//! the error responses of [`crate::http::schemas`], whose examples are what
//! `ApiError` really answers. Every function is its own Lambda, so the document is assembled
//! here once, from all routes, and served by the `docs` function;
//! `openapi.json` at the repository root is a copy that
//! `shared/tests/it/openapi.rs` keeps identical, and
//! `shared/tests/it/route_table.rs` checks its operations against
//! [`crate::http::routes::ROUTES`]. The top of the crate's layers: it lists
//! the handlers, and [`docs`] serves it.

pub mod docs;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::handlers;
use crate::http::schemas::*;
use crate::http::validation::FieldError;

/// The document, as the `docs` function serves it.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as pretty JSON with a final newline: the body of
/// `GET /openapi.json` and the content of the committed `openapi.json`.
pub fn to_json() -> String {
    let mut json = serde_json::to_string_pretty(&document())
        .unwrap_or_else(|_| r#"{"detail":"internal server error"}"#.to_owned());
    json.push('\n');
    json
}

const DESCRIPTION: &str = "\
The FastAPI tutorial's Task API, rebuilt as one AWS Lambda function per route.

**Identity.** Deployed, the caller is the `sub` claim of the API Gateway JWT \
authorizer (`Authorization: Bearer <token>`). For local work only \
(`IDENTITY_MODE=header`), the `X-User-Id` header names the caller. Every \
operation but `GET /health` needs a caller (401 otherwise), and a caller only \
ever sees its own tasks: another caller's task is a 404.

**Errors.** Every error body is JSON with a `detail`: the list of every \
validation failure, in pydantic's words, for a 422 (`HTTPValidationError`, \
as in FastAPI), a text otherwise (`HTTPError`). An unknown path is a 404 \
`{\"detail\": \"Not Found\"}` and another method on a known path a 405 \
`{\"detail\": \"Method Not Allowed\"}` with `Allow` (the `RouteNotFound` and \
`MethodNotAllowed` responses). When DynamoDB throttles or cannot be reached \
the answer is a 503 with `Retry-After`.

**Fair share.** Each caller may make `WRITES_PER_CALLER` task writes (20 \
by default) and open `EXPORTS_PER_CALLER` exports (2) per window of \
`RATE_WINDOW_SECONDS` (10 s); beyond, a 429 with `Retry-After`, while \
other callers' requests are served as usual.

**Concurrency.** A task's `ETag` is its version, bumped by every write. \
`If-Match` on PUT, PATCH and DELETE is checked atomically in the write \
itself (`*` matches any version): a stale one is a 412.

**Pages.** `GET /tasks` lists oldest first; pass `next_cursor` back as \
`cursor` until it is `null`.

This document is served at `/openapi.json`, and rendered at `/docs` \
(Swagger UI) and `/redoc` (ReDoc).";

#[derive(OpenApi)]
#[openapi(
    info(title = "Task API", description = DESCRIPTION),
    paths(
        handlers::health::handle,
        handlers::me::handle,
        handlers::create_task::handle,
        handlers::list_tasks::handle,
        handlers::get_task::handle,
        handlers::replace_task::handle,
        handlers::update_task::handle,
        handlers::delete_task::handle,
        handlers::task_history::handle,
        handlers::export_tasks::handle,
        handlers::task_events::handle,
        handlers::create_ticket::handle,
        // route:insert paths (make route adds handlers above this line)
    ),
    components(
        schemas(HttpError, HttpValidationError, FieldError),
        responses(
            Unauthorized,
            TaskNotFound,
            RouteNotFound,
            MethodNotAllowed,
            TaskLimitReached,
            IdempotencyKeyInFlight,
            PreconditionFailed,
            PayloadTooLarge,
            UnreadableBody,
            BadRequest,
            TooManyEntityTags,
            TooManyStreams,
            TooManyWrites,
            TooManyExports,
            FeedUnauthorized,
            ValidationFailed,
            WriteUnprocessable,
            ServiceUnavailable,
        ),
    ),
    modifiers(&SecuritySchemes),
    security(("jwt" = []), ("x_user_id" = [])),
    tags(
        (name = "tasks", description = "The caller's tasks: create, list, read, replace, update, delete."),
        (name = "service", description = "Health and identity."),
    ),
)]
struct ApiDoc;

/// The two ways to name the caller (`jwt` and `x_user_id`, as the
/// operations' `security` names them).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "jwt",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "Deployed: a Cognito JWT, checked by the API Gateway authorizer; \
                         its `sub` claim is the caller.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "x_user_id",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-User-Id",
                "Local work only (`IDENTITY_MODE=header`): the header names the caller. \
                 The deployed API ignores it.",
            ))),
        );
    }
}
