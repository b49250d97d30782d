//! What the API answers, described for OpenAPI: the response bodies (a
//! page of tasks, a history, a change) and the error bodies, reusable
//! error responses (whose examples are what [`ApiError`] really answers)
//! and the parameters of the handlers' `#[utoipa::path]`s. The document
//! itself is assembled in [`crate::openapi`].

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use lambda_http::Body;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, Schema,
    SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, OneOfBuilder, Ref, RefOr, example::ExampleBuilder,
};
use utoipa::{IntoParams, PartialSchema, ToResponse, ToSchema};
use uuid::Uuid;

use super::error::ApiError;
use super::validation::FieldError;
use crate::domain::change::{Action, Change, FieldChange};
use crate::domain::task::{FIELDS, Field, Kind, Task, TaskCreate, TaskPatch, rfc3339};

// ---------------------------------------------------------- response bodies

/// One page of tasks, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TaskPage {
    pub items: Vec<Task>,
    /// Pass it back as `cursor` for the next page; `null` when nothing is left.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A change as clients see it: an entry of a task's history
/// (`GET /tasks/{task_id}/history`) and the data of a live feed frame
/// (`GET /tasks/events`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Change)]
pub struct ChangeView {
    /// The change id: it grows with every change of the caller's tasks (it
    /// is the table stream's sequence number), so it orders them.
    #[schema(example = "111300000000017845912208")]
    pub id: String,
    pub task_id: Uuid,
    pub action: Action,
    /// When the change was made.
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// The task's version (its `ETag`) after the change; before it, for a delete.
    pub version: u64,
    /// The fields that changed, from what to what (all of them on create and delete).
    pub changes: Vec<FieldChange>,
    /// The task after the change; `null` after a delete.
    #[schema(required = true)]
    pub task: Option<Task>,
}

impl From<&Change> for ChangeView {
    fn from(change: &Change) -> Self {
        ChangeView {
            id: change.sequence.id().to_owned(),
            task_id: change.task_id,
            action: change.action,
            at: change.at,
            version: change.version,
            changes: change.fields.clone(),
            task: change.task.clone(),
        }
    }
}

/// One page of a task's history, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct History {
    pub items: Vec<ChangeView>,
    /// Pass it back as `cursor` for the next (older) page; `null` when nothing is left.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

// ------------------------------------------------------------- task models

/// A declared field's schema, from its declaration: its kind's type and
/// rule (with `rules`: request bodies), its description, and its example.
fn field_schema(field: &Field, rules: bool) -> ObjectBuilder {
    let doc = field.doc.trim();
    let (schema, rule) = match field.kind {
        Kind::Text { min, max } => {
            let schema = ObjectBuilder::new().schema_type(Type::String);
            let schema = if rules {
                schema
                    .min_length((min > 0).then_some(min as usize))
                    .max_length(Some(max as usize))
            } else {
                schema
            };
            let rule = match min {
                0 => format!("At most {max} characters (Unicode code points)."),
                _ => format!("{min} to {max} characters (Unicode code points)."),
            };
            (schema, rule)
        }
        Kind::Bool => (
            ObjectBuilder::new().schema_type(Type::Boolean),
            "Also accepts pydantic's lax forms: `0`/`1` and the strings `true`, `false`, \
             `yes`, `no`, `on`, `off`, `1`, `0`, `t`, `f`, `y`, `n` in any case."
                .to_owned(),
        ),
        Kind::Integer { min, max } => {
            let schema = ObjectBuilder::new().schema_type(Type::Integer);
            let schema = if rules {
                schema.minimum(Some(min)).maximum(Some(max))
            } else {
                schema
            };
            (
                schema,
                format!(
                    "{min} to {max}. Also accepts pydantic's lax forms: a whole number as \
                     a float (`3.0`) or a string (`\"3\"`), and `true`/`false` (1/0)."
                ),
            )
        }
    };
    let description = if rules {
        format!("{doc} {rule}")
    } else {
        doc.to_owned()
    };
    schema
        .description(Some(description.trim()))
        .examples([field.example_value()])
}

/// A task as every response shows it: `id`, the declared fields, the times.
impl PartialSchema for Task {
    fn schema() -> RefOr<Schema> {
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("A task as every response shows it."))
            .property(
                "id",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    .description(Some(
                        "UUIDv7: time-ordered, so \"oldest first\" is key order.",
                    )),
            )
            .required("id");
        for field in FIELDS {
            object = object
                .property(field.name, field_schema(field, false))
                .required(field.name);
        }
        for time in ["created_at", "updated_at"] {
            let schema = ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)));
            object = object.property(time, schema).required(time);
        }
        object.into()
    }
}

impl ToSchema for Task {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Task")
    }
}

/// A request body's schema: every declared field with its rule, nothing
/// else (`extra_forbidden`); with `whole` (POST, PUT), the required fields
/// required and the others' defaults.
fn body_schema(description: &str, whole: bool) -> RefOr<Schema> {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for field in FIELDS {
        let mut schema = field_schema(field, true);
        if whole {
            schema = schema.default(field.default_value());
            if field.required() {
                object = object.required(field.name);
            }
        }
        object = object.property(field.name, schema);
    }
    object.into()
}

/// POST and PUT bodies.
impl PartialSchema for TaskCreate {
    fn schema() -> RefOr<Schema> {
        body_schema(
            "POST and PUT bodies: a whole task with create's defaults.",
            true,
        )
    }
}

impl ToSchema for TaskCreate {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TaskCreate")
    }
}

/// PATCH bodies: any of the declared fields, none required, no `null`.
impl PartialSchema for TaskPatch {
    fn schema() -> RefOr<Schema> {
        body_schema(
            "PATCH bodies: only the fields sent change; `{}` is a valid no-op.\n\
             An explicit `null` is a 422, never \"unchanged\".",
            false,
        )
    }
}

impl ToSchema for TaskPatch {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TaskPatch")
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
    TaskLimitReached = "The caller already owns `MAX_TASKS` tasks (1000 by default); or the \
        first request with this `Idempotency-Key` is still being processed (`Retry-After`).",
        http_error(), ApiError::TaskLimitReached(1000), [];
    /// 409 of PUT, PATCH and DELETE.
    IdempotencyKeyInFlight = "The first request with this `Idempotency-Key` is still being \
        processed: retry after `Retry-After` seconds to get its answer.",
        http_error(), ApiError::IdempotencyKeyInFlight, [RETRY_AFTER];
    /// 412 of the writes.
    PreconditionFailed = "`If-Match` does not match the task's current `ETag`.",
        http_error(), ApiError::PreconditionFailed, [];
    /// 413 of the requests with a body.
    PayloadTooLarge = "The request body is over 64 KiB.",
        http_error(), ApiError::PayloadTooLarge, [];
    /// 400 of `POST /tasks`.
    UnreadableBody = "The JSON body is not UTF-8 (FastAPI answers it in the same words).",
        http_error(), ApiError::UnreadableBody, [];
    /// 400 of PUT and PATCH.
    BadRequest = "The JSON body is not UTF-8, or `If-Match` is not `*` or a list of at most \
        20 entity tags.",
        http_error(), ApiError::TooManyEntityTags { max: 20 }, [];
    /// 400 of DELETE.
    TooManyEntityTags = "`If-Match` is not `*` or a list of at most 20 entity tags.",
        http_error(), ApiError::TooManyEntityTags { max: 20 }, [];
    /// 429 of the live feed.
    TooManyStreams = "The caller opened more than `MAX_FEED_STREAMS_PER_CALLER` feed streams \
        (3 by default) within one second: retry after `Retry-After` seconds. (Slower, a new \
        stream takes the place of the caller's oldest, which ends within a heartbeat.)",
        http_error(), ApiError::TooManyStreams { max: 3, retry_after: 1 }, [RETRY_AFTER];
    /// 429 of the task writes (POST, PUT, PATCH, DELETE).
    TooManyWrites = "The caller has used its share of the API's writes: `WRITES_PER_CALLER` \
        (20 by default) writes of tasks, all four methods together, per fixed window of \
        `RATE_WINDOW_SECONDS` (10 s), counted across every instance. Retry after \
        `Retry-After` seconds (when the window ends). Other callers are not affected.",
        http_error(), ApiError::OverShare {
            what: "writes", limit: 20, window_seconds: 10, retry_after: 7
        }, [RETRY_AFTER];
    /// 429 of `GET /tasks/export`.
    TooManyExports = "The caller has used its share of the exports: `EXPORTS_PER_CALLER` \
        (2 by default) per fixed window of `RATE_WINDOW_SECONDS` (10 s). Retry after \
        `Retry-After` seconds. (When every caller together runs `ExportConcurrency` \
        exports, the function's URL answers 429 too, without this body.)",
        http_error(), ApiError::OverShare {
            what: "exports", limit: 2, window_seconds: 10, retry_after: 7
        }, [RETRY_AFTER];
    /// 401 of the live feed (a token or a ticket).
    FeedUnauthorized = "No caller: no valid bearer token (or, locally, `X-User-Id`), or a \
        `ticket` that does not exist or has expired. Checked before anything else.",
        http_error(), ApiError::InvalidTicket, [WWW_AUTHENTICATE];
    /// 422 of every operation with inputs.
    ValidationFailed = "Validation failed: every failure of the body, path and query \
        together, in pydantic's vocabulary (`type`, `loc`, `msg`, `input`, `ctx`).",
        http_validation_error(), validation_example(), [];
    /// 503 of every operation that reads or writes tasks.
    ServiceUnavailable = "DynamoDB throttled the request or could not be reached: retry later.",
        http_error(), ApiError::unavailable("example"), [RETRY_AFTER];
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

/// 422 of the writes (POST, PUT, PATCH, DELETE): a validation failure, or
/// an `Idempotency-Key` reused with another request.
pub struct WriteUnprocessable;

impl<'r> ToResponse<'r> for WriteUnprocessable {
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
                 `Idempotency-Key` was already used with another request.",
            )
            .content("application/json", content)
            .build();
        ("WriteUnprocessable", response.into())
    }
}

// -------------------------------------------------------------- parameters

/// The `task_id` path parameter (read by [`super::request::task_id`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TaskIdPath {
    /// The task's id: a UUID, hyphenated or simple (32 hex digits), any case.
    pub task_id: uuid::Uuid,
}

/// `GET /tasks` query parameters (read by [`super::request::list_query`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Tasks per page.
    #[param(default = 20, minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Only tasks with this `done` value (lax booleans: `true`, `yes`, `1`, ...).
    pub done: Option<bool>,
    /// The `next_cursor` of the previous page (opaque; exactly this form,
    /// any other is a 422).
    #[param(
        min_length = 23,
        max_length = 23,
        pattern = "^A[Q-Za-f][A-Za-z0-9_-]{20}[AEIMQUYcgkosw048]$"
    )]
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
    #[param(rename = "Last-Event-ID", value_type = String, required = false, min_length = 1, max_length = 40, pattern = "^[0-9]{1,40}$")]
    pub last_event_id: Option<String>,
}

/// The query of `GET /tasks/events`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// A change id to start after, for a client that cannot set the header
    /// (`Last-Event-ID` wins when both are sent; both are checked).
    #[param(min_length = 1, max_length = 40, pattern = "^[0-9]{1,40}$")]
    pub since: Option<String>,
}

/// The query of `GET /tasks/{task_id}/history`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Changes per page.
    #[param(default = 20, minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (opaque; exactly this form,
    /// any other is a 422).
    #[param(min_length = 2, max_length = 41, pattern = "^h[0-9]{1,40}$")]
    pub cursor: Option<String>,
}

/// `If-Match` on the writes (read by [`super::request::if_match`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfMatchHeader {
    /// Apply the write only if the task's `ETag` is this one (or one of a
    /// comma-separated list of at most 20); `*` matches any version. A
    /// stale (or weak) tag is a 412; more than 20 tags, or a value that is
    /// not `*` or entity tags (RFC 9110: `"..."` or `W/"..."`, visible
    /// ASCII inside the quotes but `"`), a 400.
    #[param(
        rename = "If-Match",
        value_type = String,
        required = false,
        pattern = "^(\\*|(W/)?\"[!#-~]*\"([ \\t]*,[ \\t]*(W/)?\"[!#-~]*\"){0,19})$"
    )]
    pub if_match: Option<String>,
}

/// `Idempotency-Key` on `POST /tasks`.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// Makes a write safe to retry: the same caller, key, method, path and
    /// body within 24 hours gets the first request's answer (status, body,
    /// `ETag`, `Location`) and applies nothing again, whatever DynamoDB
    /// answered the first time (a 503 included). The same key with another
    /// request is a 422; while the first request with the key is still
    /// being processed, a 409 with `Retry-After`.
    #[param(
        rename = "Idempotency-Key",
        value_type = String,
        required = false,
        min_length = 1,
        max_length = 255
    )]
    pub idempotency_key: Option<String>,
}
