//! The OpenAPI 3.1 document, derived from the code: the models' schemas
//! (`ToSchema` on [`crate::model`]), each route's operation (`#[utoipa::path]`
//! on its handler, its doc comment giving the summary and description), and
//! the error responses below, whose examples are what [`ApiError`] really
//! answers. Every function is its own Lambda, so the document is assembled
//! here once, from all routes, and served by the `docs` function;
//! `openapi.json` at the repository root is a copy that
//! `shared/tests/openapi.rs` keeps identical, and
//! `shared/tests/route_table.rs` checks its operations against
//! [`crate::routes::ROUTES`].

use std::borrow::Cow;

use lambda_http::Body;
use serde_json::{Value, json};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, OneOfBuilder, Ref, RefOr, example::ExampleBuilder,
};
use utoipa::{IntoParams, Modify, OpenApi, PartialSchema, ToResponse, ToSchema};

use crate::error::ApiError;
use crate::handlers;
use crate::model::TaskCreate;
use crate::validation::FieldError;

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
    ),
    components(
        schemas(HttpError, HttpValidationError, FieldError),
        responses(
            Unauthorized,
            TaskNotFound,
            RouteNotFound,
            MethodNotAllowed,
            TaskLimitReached,
            PreconditionFailed,
            PayloadTooLarge,
            UnreadableBody,
            ValidationFailed,
            CreateTaskUnprocessable,
            ServiceUnavailable,
        ),
    ),
    modifiers(&SecuritySchemes, &ClosedBodies),
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

/// Task bodies reject unknown fields (`extra_forbidden`), which utoipa can
/// only read from serde attributes; the models are validated by hand.
struct ClosedBodies;

impl Modify for ClosedBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for name in ["TaskCreate", "TaskPatch"] {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
}

// ------------------------------------------------------------ error bodies

/// `{"detail": "<text>"}`: the body of every error but a validation failure.
#[derive(ToSchema)]
#[schema(as = HTTPError)]
pub struct HttpError {
    pub detail: String,
}

/// A 422 body: `{"detail": [ValidationError, ...]}`, FastAPI's
/// `HTTPValidationError`. This schema and [`FieldError`]'s are FastAPI's own
/// definitions (`fastapi.openapi.utils`), titles included, so a client
/// generated from either API sees the same types.
pub struct HttpValidationError;

impl PartialSchema for HttpValidationError {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .title(Some("HTTPValidationError"))
            .property(
                "detail",
                ArrayBuilder::new()
                    .title(Some("Detail"))
                    .items(Ref::from_schema_name(FieldError::name())),
            )
            .into()
    }
}

impl ToSchema for HttpValidationError {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("HTTPValidationError")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((FieldError::name().into_owned(), FieldError::schema()));
    }
}

/// [`FieldError`] is pydantic's error, which FastAPI calls `ValidationError`.
impl PartialSchema for FieldError {
    fn schema() -> RefOr<Schema> {
        let typed = |schema_type: Type, title: &str| {
            ObjectBuilder::new()
                .schema_type(schema_type)
                .title(Some(title))
        };
        let location_item = AnyOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ObjectBuilder::new().schema_type(Type::Integer));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .title(Some("ValidationError"))
            .property(
                "loc",
                ArrayBuilder::new()
                    .title(Some("Location"))
                    .items(location_item),
            )
            .property("msg", typed(Type::String, "Message"))
            .property("type", typed(Type::String, "Error Type"))
            .property(
                "input",
                ObjectBuilder::new()
                    .schema_type(SchemaType::AnyValue)
                    .title(Some("Input")),
            )
            .property("ctx", typed(Type::Object, "Context"))
            .required("loc")
            .required("msg")
            .required("type")
            .into()
    }
}

impl ToSchema for FieldError {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ValidationError")
    }
}

// --------------------------------------------------------- error responses

/// The body [`ApiError`] really answers with, as an example.
fn example_of(error: ApiError) -> Value {
    match error.into_response("<request id>").into_body() {
        Body::Text(text) => serde_json::from_str(&text).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// A documented error: its description, the schema of its body, an example
/// (what `error` answers) and the headers it sets.
fn error_response(
    description: &str,
    schema: RefOr<Schema>,
    error: ApiError,
    headers: &[(&str, &str)],
) -> RefOr<Response> {
    let content = ContentBuilder::new()
        .schema(Some(schema))
        .example(Some(example_of(error)))
        .build();
    let mut response = ResponseBuilder::new()
        .description(description)
        .content("application/json", content);
    for (name, description) in headers {
        let header = HeaderBuilder::new()
            .schema(Some(String::schema()))
            .description(Some(*description))
            .build();
        response = response.header(*name, header);
    }
    response.build().into()
}

fn http_error() -> RefOr<Schema> {
    Ref::from_schema_name(HttpError::name()).into()
}

fn http_validation_error() -> RefOr<Schema> {
    Ref::from_schema_name(HttpValidationError::name()).into()
}

/// Declares reusable error responses: each a unit type implementing
/// [`ToResponse`] under its own name, for `responses(...)` in the handlers'
/// `#[utoipa::path]`.
macro_rules! error_responses {
    ($(
        $(#[$doc:meta])*
        $name:ident = $description:literal, $schema:expr, $error:expr, [$($header:expr),*];
    )*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (
                    stringify!($name),
                    error_response($description, $schema, $error, &[$($header),*]),
                )
            }
        }
    )*};
}

const WWW_AUTHENTICATE: (&str, &str) = ("WWW-Authenticate", "Always `Bearer`.");
const ALLOW: (&str, &str) = ("Allow", "The methods the path has, e.g. `GET, POST`.");
const RETRY_AFTER: (&str, &str) = ("Retry-After", "Seconds to wait before retrying.");

error_responses! {
    /// 401.
    Unauthorized = "No caller: no JWT `sub` claim (deployed), or no `X-User-Id` header \
        (local). Checked before anything else, body validation included.",
        http_error(), ApiError::Unauthenticated, [WWW_AUTHENTICATE];
    /// 404 of the task routes.
    TaskNotFound = "The caller has no task with this id (another caller's task included).",
        http_error(), ApiError::TaskNotFound, [];
    /// 404 of any path no route has.
    RouteNotFound = "No route has this path.",
        http_error(), ApiError::RouteNotFound, [];
    /// 405 of every other method of a documented path.
    MethodNotAllowed = "The path exists, but not with this method. \
        Every documented path answers it for the methods it does not list.",
        http_error(), ApiError::MethodNotAllowed { allow: vec!["GET", "POST"] }, [ALLOW];
    /// 409 of `POST /tasks`.
    TaskLimitReached = "The caller already owns `MAX_TASKS` tasks (1000 by default).",
        http_error(), ApiError::TaskLimitReached(1000), [];
    /// 412 of the writes.
    PreconditionFailed = "`If-Match` does not match the task's current `ETag`.",
        http_error(), ApiError::PreconditionFailed, [];
    /// 413 of the requests with a body.
    PayloadTooLarge = "The request body is over 64 KiB.",
        http_error(), ApiError::PayloadTooLarge, [];
    /// 400 of the requests with a body.
    UnreadableBody = "The JSON body is not UTF-8 (FastAPI answers it in the same words).",
        http_error(), ApiError::UnreadableBody, [];
    /// 422 of every operation with inputs.
    ValidationFailed = "Validation failed: every failure of the body, path and query \
        together, in pydantic's vocabulary (`type`, `loc`, `msg`, `input`, `ctx`).",
        http_validation_error(), validation_example(), [];
    /// 503 of every operation that reads or writes tasks.
    ServiceUnavailable = "DynamoDB throttled the request or could not be reached: retry later.",
        http_error(), ApiError::Unavailable(String::new()), [RETRY_AFTER];
}

/// The 422 of a real request: `{"title": "", "done": "maybe"}`.
fn validation_example() -> ApiError {
    let body = json!({"title": "", "done": "maybe"});
    let object = body.as_object().cloned().unwrap_or_default();
    match TaskCreate::from_object(&object) {
        Err(errors) => ApiError::Validation(errors),
        Ok(_) => ApiError::Validation(Vec::new()),
    }
}

/// 422 of `POST /tasks`: a validation failure, or an `Idempotency-Key`
/// reused with another body.
pub struct CreateTaskUnprocessable;

impl<'r> ToResponse<'r> for CreateTaskUnprocessable {
    fn response() -> (&'r str, RefOr<Response>) {
        let schema = OneOfBuilder::new()
            .item(http_validation_error())
            .item(http_error());
        let examples = [
            ("validation", validation_example()),
            ("idempotency_key_reused", ApiError::IdempotencyKeyReused),
        ]
        .map(|(name, error)| {
            let example = ExampleBuilder::new().value(Some(example_of(error))).build();
            (name, example)
        });
        let content = ContentBuilder::new()
            .schema(Some(schema))
            .examples_from_iter(examples)
            .build();
        let response = ResponseBuilder::new()
            .description(
                "Validation failed (every failure, as for any 422), or the \
                 `Idempotency-Key` was already used with a different body.",
            )
            .content("application/json", content)
            .build();
        ("CreateTaskUnprocessable", response.into())
    }
}

// -------------------------------------------------------------- parameters

/// The `task_id` path parameter (read by [`crate::request::task_id`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TaskIdPath {
    /// The task's id: a UUID, hyphenated or simple (32 hex digits), any case.
    pub task_id: uuid::Uuid,
}

/// `GET /tasks` query parameters (read by [`crate::request::list_query`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Tasks per page.
    #[param(default = 20, minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Only tasks with this `done` value (lax booleans: `true`, `yes`, `1`, ...).
    pub done: Option<bool>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The query of `GET /tasks/export`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `ndjson` (one JSON task per line) or `csv` (a header row, then a task per row).
    #[param(default = "ndjson", pattern = "^(ndjson|csv)$")]
    pub format: Option<String>,
}

/// `Last-Event-ID` on `GET /tasks/events` (the feed starts now without it
/// or `since`).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct LastEventIdHeader {
    /// The id of the last change received: the feed sends every later one.
    /// `EventSource` sends it when it reconnects.
    #[param(rename = "Last-Event-ID", value_type = String, required = false, pattern = "^[0-9]{1,40}$")]
    pub last_event_id: Option<String>,
}

/// The query of `GET /tasks/events`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// A change id to start after, for a client that cannot set the header
    /// (`Last-Event-ID` wins when both are sent).
    #[param(pattern = "^[0-9]{1,40}$")]
    pub since: Option<String>,
}

/// The query of `GET /tasks/{task_id}/history`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Changes per page.
    #[param(default = 20, minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `If-Match` on the writes (read by [`crate::request::if_match`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfMatchHeader {
    /// Apply the write only if the task's `ETag` is this one (or one of a
    /// comma-separated list); `*` matches any version. A stale value is a 412.
    #[param(rename = "If-Match", value_type = String, required = false)]
    pub if_match: Option<String>,
}

/// `Idempotency-Key` on `POST /tasks`.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// Makes a create safe to retry: the same key with the same body returns
    /// the task created first (201, same id) and creates nothing, for 24
    /// hours. The same key with another body is a 422.
    #[param(
        rename = "Idempotency-Key",
        value_type = String,
        required = false,
        min_length = 1,
        max_length = 255
    )]
    pub idempotency_key: Option<String>,
}
