//! The contract's 422 table, row by row, through the real handlers.
//!
//! Every case sends an API Gateway HTTP API (v2) event from `events/`,
//! edited where the case needs it, through `shared::runtime::respond` with an
//! in-memory store, and compares the status and the WHOLE response body with
//! what FastAPI (pydantic v2, lax mode) answers for the same request: first as
//! JSON values (readable diffs), then as text, since FastAPI renders compact
//! JSON, keys in model order, non-ASCII unescaped, which `serde_json` with
//! `preserve_order` reproduces byte for byte.
//!
//! The expected bodies were checked against FastAPI 0.165 / pydantic 2.14
//! (pydantic-core 2.50) serving the same models: `extra="forbid"`, `title`
//! 1..=200, `description` ..=2000, `limit` `Query(ge=1, le=100)`, the cursor `Query(min_length=23, max_length=23, pattern=...)`
//! (its exact form: every such cursor decodes).

use lambda_http::http::HeaderMap;
use lambda_http::{Body, Request};
use serde_json::{Value, json};
use shared::adapters::memory::MemoryStore;
use shared::handlers;
use shared::runtime::{App, respond};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// The sample events' task id (`pathParameters.task_id`).
const SAMPLE_ID: &str = "0193f1d2-7c4e-7a3b-9c1d-2e3f4a5b6c7d";

#[derive(Debug, Clone, Copy)]
enum Route {
    CreateTask,
    ListTasks,
    GetTask,
    ReplaceTask,
    UpdateTask,
}

impl Route {
    fn event_file(self) -> &'static str {
        match self {
            Route::CreateTask => "create_task",
            Route::ListTasks => "list_tasks",
            Route::GetTask => "get_task",
            Route::ReplaceTask => "replace_task",
            Route::UpdateTask => "update_task",
        }
    }
}

/// One request, as an API Gateway v2 event being edited.
#[derive(Debug, Clone)]
struct Call {
    route: Route,
    event: Value,
}

impl Call {
    /// The route's sample event from `events/`, unchanged.
    fn sample(route: Route) -> Self {
        let path = format!(
            "{}/../events/{}.json",
            env!("CARGO_MANIFEST_DIR"),
            route.event_file()
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let event = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        Call { route, event }
    }

    /// `POST /tasks` with this JSON body.
    fn post(body: &str) -> Self {
        Self::sample(Route::CreateTask).body(body)
    }

    /// `GET /tasks?{query}` (`query` as sent, percent-encoded).
    fn list(query: &str) -> Self {
        let mut call = Self::sample(Route::ListTasks);
        call.event["rawQueryString"] = json!(query);
        if let Some(event) = call.event.as_object_mut() {
            // lambda_http reads the raw query string; drop the sample's
            // pre-parsed copy so nothing stale is left in the event.
            event.remove("queryStringParameters");
        }
        call
    }

    /// `GET /tasks/{task_id}`.
    fn get(task_id: &str) -> Self {
        Self::sample(Route::GetTask).task_id(task_id)
    }

    /// `PUT /tasks/{task_id}` with this JSON body.
    fn put(task_id: &str, body: &str) -> Self {
        Self::sample(Route::ReplaceTask).task_id(task_id).body(body)
    }

    /// `PATCH /tasks/{task_id}` with this JSON body.
    fn patch(task_id: &str, body: &str) -> Self {
        Self::sample(Route::UpdateTask).task_id(task_id).body(body)
    }

    /// The path parameter as API Gateway hands it over (decoded), and the
    /// raw path as the client sent it.
    fn task_id(mut self, task_id: &str) -> Self {
        let raw_path = format!(
            "/tasks/{}",
            task_id
                .replace('{', "%7B")
                .replace('}', "%7D")
                .replace(' ', "%20")
        );
        self.event["rawPath"] = json!(raw_path);
        self.event["requestContext"]["http"]["path"] = json!(raw_path);
        self.event["pathParameters"] = json!({ "task_id": task_id });
        self
    }

    fn body(mut self, body: &str) -> Self {
        self.event["body"] = json!(body);
        self.event["isBase64Encoded"] = json!(false);
        self
    }

    /// A body API Gateway hands over base64-encoded (not text).
    fn binary_body(mut self, bytes: &[u8]) -> Self {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.event["body"] = json!(encoded);
        self.event["isBase64Encoded"] = json!(true);
        self
    }

    fn no_body(mut self) -> Self {
        if let Some(event) = self.event.as_object_mut() {
            event.remove("body");
        }
        self
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.event["headers"][name] = json!(value);
        self
    }

    fn no_header(mut self, name: &str) -> Self {
        if let Some(headers) = self.event["headers"].as_object_mut() {
            headers.remove(name);
        }
        self
    }

    /// No JWT authorizer claims: only `X-User-Id` can name a caller now.
    fn anonymous(mut self) -> Self {
        if let Some(context) = self.event["requestContext"].as_object_mut() {
            context.remove("authorizer");
        }
        self
    }

    fn request(&self) -> Request {
        lambda_http::request::from_str(&self.event.to_string())
            .unwrap_or_else(|e| panic!("not an API Gateway v2 event ({e}): {}", self.event))
    }

    /// Runs the route's handler as its Lambda function would.
    async fn send(&self, app: &App<MemoryStore>) -> Reply {
        let req = self.request();
        let response = match self.route {
            Route::CreateTask => respond(app, handlers::create_task::handle, req).await,
            Route::ListTasks => respond(app, handlers::list_tasks::handle, req).await,
            Route::GetTask => respond(app, handlers::get_task::handle, req).await,
            Route::ReplaceTask => respond(app, handlers::replace_task::handle, req).await,
            Route::UpdateTask => respond(app, handlers::update_task::handle, req).await,
        };
        let (parts, body) = response.into_parts();
        let text = match body {
            Body::Empty => String::new(),
            Body::Text(text) => text,
            Body::Binary(bytes) => String::from_utf8(bytes).expect("UTF-8 response body"),
            _ => panic!("unexpected streaming body"),
        };
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {text:?}"));
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            text,
            json,
        }
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    text: String,
    json: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Status, content type and the whole body, as values and as text.
    /// `Err` describes the first difference.
    fn check(&self, status: u16, body: &Value) -> Result<(), String> {
        if self.status != status {
            return Err(format!(
                "status {} (expected {status}), body {}",
                self.status, self.text
            ));
        }
        if self.header("content-type") != Some("application/json") {
            return Err(format!("content-type {:?}", self.header("content-type")));
        }
        if self.json != *body {
            return Err(format!("body\n     got: {}\nexpected: {body}", self.text));
        }
        let rendered = body.to_string();
        if self.text != rendered {
            return Err(format!(
                "body text (key order or formatting)\n     got: {}\nexpected: {rendered}",
                self.text
            ));
        }
        Ok(())
    }

    #[track_caller]
    fn assert(&self, status: u16, body: &Value) {
        if let Err(problem) = self.check(status, body) {
            panic!("{problem}");
        }
    }

    /// A task body: exactly the six fields, a lowercase hyphenated UUIDv7
    /// and RFC 3339 UTC timestamps with `Z`. Returns the id.
    #[track_caller]
    fn assert_task(&self, status: u16, title: &str, description: &str, done: bool) -> String {
        let id = self.json["id"].as_str().unwrap_or_default().to_owned();
        let created_at = self.json["created_at"].as_str().unwrap_or_default();
        let updated_at = self.json["updated_at"].as_str().unwrap_or_default();
        let uuid = Uuid::parse_str(&id).unwrap_or_else(|e| panic!("id {id:?}: {e}"));
        assert_eq!(uuid.hyphenated().to_string(), id, "id form");
        assert_eq!(uuid.get_version_num(), 7, "UUIDv7");
        for at in [created_at, updated_at] {
            assert!(at.ends_with('Z'), "{at:?} is not UTC with Z");
            chrono::DateTime::parse_from_rfc3339(at)
                .unwrap_or_else(|e| panic!("{at:?} is not RFC 3339: {e}"));
        }
        // Key order as served: `id`, the declared fields (one added after
        // these tests were written at its default), the times.
        let given = json!({"title": title, "description": description, "done": done});
        let mut want = serde_json::Map::new();
        want.insert("id".into(), json!(id));
        for field in shared::domain::task::FIELDS {
            let value = given.get(field.name).cloned();
            want.insert(
                field.name.into(),
                value.or(field.default_value()).unwrap_or_default(),
            );
        }
        want.insert("created_at".into(), json!(created_at));
        want.insert("updated_at".into(), json!(updated_at));
        let want = Value::Object(want);
        self.assert(status, &want);
        id
    }
}

/// One table row: a request and the response FastAPI gives it.
struct Case {
    name: &'static str,
    call: Call,
    status: u16,
    body: Value,
}

fn case(name: &'static str, call: Call, status: u16, body: Value) -> Case {
    Case {
        name,
        call,
        status,
        body,
    }
}

/// Runs every case on a fresh API and reports every mismatch at once.
async fn run(cases: Vec<Case>) {
    let count = cases.len();
    let mut failures = Vec::new();
    for case in cases {
        let reply = case
            .call
            .send(crate::support::app(&[("IDENTITY_MODE", "header")]))
            .await;
        if let Err(problem) = reply.check(case.status, &case.body) {
            failures.push(format!("- {}: {problem}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Creates a task for "alice" (the sample events' caller); returns its id.
async fn create(app: &App<MemoryStore>, body: &str) -> String {
    let reply = Call::post(body).send(app).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json["id"].as_str().expect("task id").to_owned()
}

// ---------------------------------------------------------------------------
// Request bodies (POST /tasks; PUT shares the model)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn body_failures_as_fastapi_reports_them() {
    let e201 = "é".repeat(201);
    let d2001 = "d".repeat(2001);
    run(vec![
        case(
            "missing title: input is the whole body object",
            Call::post(r#"{"description":"x"}"#),
            422,
            json!({"detail": [{
                "type": "missing", "loc": ["body", "title"], "msg": "Field required",
                "input": {"description": "x"},
            }]}),
        ),
        case(
            "empty object: title missing",
            Call::post("{}"),
            422,
            json!({"detail": [{
                "type": "missing", "loc": ["body", "title"], "msg": "Field required",
                "input": {},
            }]}),
        ),
        case(
            "empty title",
            Call::post(r#"{"title":""}"#),
            422,
            json!({"detail": [{
                "type": "string_too_short", "loc": ["body", "title"],
                "msg": "String should have at least 1 character",
                "input": "", "ctx": {"min_length": 1},
            }]}),
        ),
        case(
            "201 code points (402 bytes) are too long",
            Call::post(&json!({ "title": e201 }).to_string()),
            422,
            json!({"detail": [{
                "type": "string_too_long", "loc": ["body", "title"],
                "msg": "String should have at most 200 characters",
                "input": e201, "ctx": {"max_length": 200},
            }]}),
        ),
        case(
            "description of 2001 characters",
            Call::post(&json!({ "title": "a", "description": d2001 }).to_string()),
            422,
            json!({"detail": [{
                "type": "string_too_long", "loc": ["body", "description"],
                "msg": "String should have at most 2000 characters",
                "input": d2001, "ctx": {"max_length": 2000},
            }]}),
        ),
        case(
            "title is a number: no coercion to string",
            Call::post(r#"{"title":123}"#),
            422,
            json!({"detail": [{
                "type": "string_type", "loc": ["body", "title"],
                "msg": "Input should be a valid string", "input": 123,
            }]}),
        ),
        case(
            "title and description of the wrong type, both listed",
            Call::post(r#"{"title":["a"],"description":5}"#),
            422,
            json!({"detail": [
                {"type": "string_type", "loc": ["body", "title"],
                 "msg": "Input should be a valid string", "input": ["a"]},
                {"type": "string_type", "loc": ["body", "description"],
                 "msg": "Input should be a valid string", "input": 5},
            ]}),
        ),
        case(
            "done \"maybe\"",
            Call::post(r#"{"title":"a","done":"maybe"}"#),
            422,
            json!({"detail": [{
                "type": "bool_parsing", "loc": ["body", "done"],
                "msg": "Input should be a valid boolean, unable to interpret input",
                "input": "maybe",
            }]}),
        ),
        case(
            "done 2",
            Call::post(r#"{"title":"a","done":2}"#),
            422,
            json!({"detail": [{
                "type": "bool_parsing", "loc": ["body", "done"],
                "msg": "Input should be a valid boolean, unable to interpret input",
                "input": 2,
            }]}),
        ),
        case(
            "done -1",
            Call::post(r#"{"title":"a","done":-1}"#),
            422,
            json!({"detail": [{
                "type": "bool_parsing", "loc": ["body", "done"],
                "msg": "Input should be a valid boolean, unable to interpret input",
                "input": -1,
            }]}),
        ),
        case(
            "done 2.0: a whole float is read as the integer 2",
            Call::post(r#"{"title":"a","done":2.0}"#),
            422,
            json!({"detail": [{
                "type": "bool_parsing", "loc": ["body", "done"],
                "msg": "Input should be a valid boolean, unable to interpret input",
                "input": 2.0,
            }]}),
        ),
        case(
            "done 0.5: a fractional float is not a boolean at all",
            Call::post(r#"{"title":"a","done":0.5}"#),
            422,
            json!({"detail": [{
                "type": "bool_type", "loc": ["body", "done"],
                "msg": "Input should be a valid boolean", "input": 0.5,
            }]}),
        ),
        case(
            "done 1e300: a float beyond i64 is not a boolean at all",
            Call::post(r#"{"title":"a","done":1e300}"#),
            422,
            json!({"detail": [{
                "type": "bool_type", "loc": ["body", "done"],
                "msg": "Input should be a valid boolean", "input": 1e300,
            }]}),
        ),
        case(
            "done 18446744073709551615: an integer beyond i64 is not a boolean",
            Call::post(r#"{"title":"a","done":18446744073709551615}"#),
            422,
            json!({"detail": [{
                "type": "bool_type", "loc": ["body", "done"],
                "msg": "Input should be a valid boolean", "input": u64::MAX,
            }]}),
        ),
        case(
            "done \" true\": strings are not trimmed",
            Call::post(r#"{"title":"a","done":" true"}"#),
            422,
            json!({"detail": [{
                "type": "bool_parsing", "loc": ["body", "done"],
                "msg": "Input should be a valid boolean, unable to interpret input",
                "input": " true",
            }]}),
        ),
        case(
            "done []",
            Call::post(r#"{"title":"a","done":[]}"#),
            422,
            json!({"detail": [{
                "type": "bool_type", "loc": ["body", "done"],
                "msg": "Input should be a valid boolean", "input": [],
            }]}),
        ),
        case(
            "done {}",
            Call::post(r#"{"title":"a","done":{}}"#),
            422,
            json!({"detail": [{
                "type": "bool_type", "loc": ["body", "done"],
                "msg": "Input should be a valid boolean", "input": {},
            }]}),
        ),
        case(
            "done null on create: null is no default",
            Call::post(r#"{"title":"a","done":null}"#),
            422,
            json!({"detail": [{
                "type": "bool_type", "loc": ["body", "done"],
                "msg": "Input should be a valid boolean", "input": null,
            }]}),
        ),
        case(
            "extra field",
            Call::post(r#"{"title":"a","extra":1}"#),
            422,
            json!({"detail": [{
                "type": "extra_forbidden", "loc": ["body", "extra"],
                "msg": "Extra inputs are not permitted", "input": 1,
            }]}),
        ),
        case(
            "extra fields in input order",
            Call::post(r#"{"z":1,"title":"a","a":[2]}"#),
            422,
            json!({"detail": [
                {"type": "extra_forbidden", "loc": ["body", "z"],
                 "msg": "Extra inputs are not permitted", "input": 1},
                {"type": "extra_forbidden", "loc": ["body", "a"],
                 "msg": "Extra inputs are not permitted", "input": [2]},
            ]}),
        ),
        case(
            "missing title comes before the extra field",
            Call::post(r#"{"z":1}"#),
            422,
            json!({"detail": [
                {"type": "missing", "loc": ["body", "title"], "msg": "Field required",
                 "input": {"z": 1}},
                {"type": "extra_forbidden", "loc": ["body", "z"],
                 "msg": "Extra inputs are not permitted", "input": 1},
            ]}),
        ),
        case(
            "every field fails: model field order, not input order",
            Call::post(&format!(
                r#"{{"x":0,"done":"x","description":"{d2001}","title":""}}"#
            )),
            422,
            json!({"detail": [
                {"type": "string_too_short", "loc": ["body", "title"],
                 "msg": "String should have at least 1 character",
                 "input": "", "ctx": {"min_length": 1}},
                {"type": "string_too_long", "loc": ["body", "description"],
                 "msg": "String should have at most 2000 characters",
                 "input": d2001, "ctx": {"max_length": 2000}},
                {"type": "bool_parsing", "loc": ["body", "done"],
                 "msg": "Input should be a valid boolean, unable to interpret input",
                 "input": "x"},
                {"type": "extra_forbidden", "loc": ["body", "x"],
                 "msg": "Extra inputs are not permitted", "input": 0},
            ]}),
        ),
        case(
            "body is an array",
            Call::post("[1]"),
            422,
            json!({"detail": [{
                "type": "model_attributes_type", "loc": ["body"],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": [1],
            }]}),
        ),
        case(
            "body is null",
            Call::post("null"),
            422,
            json!({"detail": [{
                "type": "model_attributes_type", "loc": ["body"],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": null,
            }]}),
        ),
        case(
            "body is a string",
            Call::post(r#""str""#),
            422,
            json!({"detail": [{
                "type": "model_attributes_type", "loc": ["body"],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": "str",
            }]}),
        ),
        case(
            "text/plain: the body is not parsed, its text is the input",
            Call::post(r#"{"title":"a"}"#).header("content-type", "text/plain"),
            422,
            json!({"detail": [{
                "type": "model_attributes_type", "loc": ["body"],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": r#"{"title":"a"}"#,
            }]}),
        ),
        case(
            "a content type that is no MIME type is not JSON either",
            Call::post(r#"{"title":"a"}"#).header("content-type", "garbage"),
            422,
            json!({"detail": [{
                "type": "model_attributes_type", "loc": ["body"],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": r#"{"title":"a"}"#,
            }]}),
        ),
        case(
            "no body",
            Call::sample(Route::CreateTask).no_body(),
            422,
            json!({"detail": [{
                "type": "missing", "loc": ["body"], "msg": "Field required", "input": null,
            }]}),
        ),
        case(
            "no body and no content type",
            Call::sample(Route::CreateTask)
                .no_body()
                .no_header("content-type"),
            422,
            json!({"detail": [{
                "type": "missing", "loc": ["body"], "msg": "Field required", "input": null,
            }]}),
        ),
    ])
    .await;
}

/// `json_invalid`: `loc` holds the character offset Python's `json` module
/// reports, `input` is `{}`. `ctx.error` is the decoder's reason: a string,
/// but not Python's wording (see the report), so only its type is checked.
#[tokio::test]
async fn malformed_json_is_json_invalid_at_the_python_char_offset() {
    let cases = [
        (
            "truncated after a comma",
            Call::post(r#"{"title":"a","#),
            13,
        ),
        (
            "offset counts characters, not bytes",
            Call::post(r#"{"title":"é" x}"#),
            13,
        ),
        ("trailing data", Call::post(r#"{"title":"a"} x"#), 14),
        ("only whitespace", Call::post("   "), 3),
        (
            "no content type still parses JSON",
            Call::post(r#"{"title":"a","#).no_header("content-type"),
            13,
        ),
        (
            "PUT: FastAPI reports a JSON error alone, before the path",
            Call::put("abc", r#"{"title":"a","#),
            13,
        ),
        (
            "PATCH: FastAPI reports a JSON error alone, before the path",
            Call::patch("abc", r#"{"title":"a","#),
            13,
        ),
    ];
    for (name, call, offset) in cases {
        let reply = call
            .send(crate::support::app(&[("IDENTITY_MODE", "header")]))
            .await;
        let error = match &reply.json["detail"][0] {
            first if first["type"] == "json_invalid" => first["ctx"]["error"].clone(),
            _ => json!("<the decoder's reason>"),
        };
        assert!(
            error.as_str().is_some_and(|e| !e.is_empty()),
            "{name}: ctx.error {error} in {}",
            reply.text
        );
        let expected = json!({"detail": [{
            "type": "json_invalid", "loc": ["body", offset], "msg": "JSON decode error",
            "input": {}, "ctx": {"error": error},
        }]});
        if let Err(problem) = reply.check(422, &expected) {
            panic!("{name}: {problem}");
        }
    }
}

// ---------------------------------------------------------------------------
// Path and query
// ---------------------------------------------------------------------------

#[tokio::test]
async fn path_and_query_failures_as_fastapi_reports_them() {
    run(vec![
        case(
            "task id too short",
            Call::get("abc"),
            422,
            json!({"detail": [{
                "type": "uuid_parsing", "loc": ["path", "task_id"],
                "msg": "Input should be a valid UUID, invalid length: found 3",
                "input": "abc", "ctx": {"error": "invalid length: found 3"},
            }]}),
        ),
        case(
            "task id with a bad character",
            Call::get("0193f1d2-7c4e-7a3b-9c1d-2e3f4a5b6czz"),
            422,
            json!({"detail": [{
                "type": "uuid_parsing", "loc": ["path", "task_id"],
                "msg": "Input should be a valid UUID, invalid character: found `z` at 34",
                "input": "0193f1d2-7c4e-7a3b-9c1d-2e3f4a5b6czz",
                "ctx": {"error": "invalid character: found `z` at 34"},
            }]}),
        ),
        case(
            "limit abc",
            Call::list("limit=abc"),
            422,
            json!({"detail": [{
                "type": "int_parsing", "loc": ["query", "limit"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "abc",
            }]}),
        ),
        case(
            "limit empty",
            Call::list("limit="),
            422,
            json!({"detail": [{
                "type": "int_parsing", "loc": ["query", "limit"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "",
            }]}),
        ),
        case(
            "limit 1.5",
            Call::list("limit=1.5"),
            422,
            json!({"detail": [{
                "type": "int_parsing", "loc": ["query", "limit"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "1.5",
            }]}),
        ),
        case(
            "limit 1__0: underscores only singly between digits",
            Call::list("limit=1__0"),
            422,
            json!({"detail": [{
                "type": "int_parsing", "loc": ["query", "limit"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "1__0",
            }]}),
        ),
        case(
            "repeated limit: the last one counts",
            Call::list("limit=5&limit=abc"),
            422,
            json!({"detail": [{
                "type": "int_parsing", "loc": ["query", "limit"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "abc",
            }]}),
        ),
        case(
            "limit 0",
            Call::list("limit=0"),
            422,
            json!({"detail": [{
                "type": "greater_than_equal", "loc": ["query", "limit"],
                "msg": "Input should be greater than or equal to 1",
                "input": "0", "ctx": {"ge": 1},
            }]}),
        ),
        case(
            "limit -5",
            Call::list("limit=-5"),
            422,
            json!({"detail": [{
                "type": "greater_than_equal", "loc": ["query", "limit"],
                "msg": "Input should be greater than or equal to 1",
                "input": "-5", "ctx": {"ge": 1},
            }]}),
        ),
        case(
            "limit 101",
            Call::list("limit=101"),
            422,
            json!({"detail": [{
                "type": "less_than_equal", "loc": ["query", "limit"],
                "msg": "Input should be less than or equal to 100",
                "input": "101", "ctx": {"le": 100},
            }]}),
        ),
        case(
            "limit beyond i64 is still an integer, just too large",
            Call::list("limit=99999999999999999999"),
            422,
            json!({"detail": [{
                "type": "less_than_equal", "loc": ["query", "limit"],
                "msg": "Input should be less than or equal to 100",
                "input": "99999999999999999999", "ctx": {"le": 100},
            }]}),
        ),
        case(
            "done maybe",
            Call::list("done=maybe"),
            422,
            json!({"detail": [{
                "type": "bool_parsing", "loc": ["query", "done"],
                "msg": "Input should be a valid boolean, unable to interpret input",
                "input": "maybe",
            }]}),
        ),
        case(
            "done \" true\": query strings are not trimmed either",
            Call::list("done=%20true"),
            422,
            json!({"detail": [{
                "type": "bool_parsing", "loc": ["query", "done"],
                "msg": "Input should be a valid boolean, unable to interpret input",
                "input": " true",
            }]}),
        ),
        case(
            "cursor garbage: shorter than the documented 23 characters",
            Call::list("cursor=garbage"),
            422,
            json!({"detail": [{
                "type": "string_too_short", "loc": ["query", "cursor"],
                "msg": "String should have at least 23 characters",
                "input": "garbage", "ctx": {"min_length": 23},
            }]}),
        ),
        case(
            "cursor empty",
            Call::list("cursor="),
            422,
            json!({"detail": [{
                "type": "string_too_short", "loc": ["query", "cursor"],
                "msg": "String should have at least 23 characters",
                "input": "", "ctx": {"min_length": 23},
            }]}),
        ),
        case(
            "cursor of the right length but not the documented pattern",
            Call::list("cursor=BQAAAAAAAAAAAAAAAAAAAAA"),
            422,
            json!({"detail": [{
                "type": "string_pattern_mismatch", "loc": ["query", "cursor"],
                "msg": "String should match pattern '^A[Q-Za-f][A-Za-z0-9_-]{20}[AEIMQUYcgkosw048]$'",
                "input": "BQAAAAAAAAAAAAAAAAAAAAA",
                "ctx": {"pattern": "^A[Q-Za-f][A-Za-z0-9_-]{20}[AEIMQUYcgkosw048]$"},
            }]}),
        ),
        case(
            "cursor too long",
            Call::list("cursor=AQAAAAAAAAAAAAAAAAAAAAAA"),
            422,
            json!({"detail": [{
                "type": "string_too_long", "loc": ["query", "cursor"],
                "msg": "String should have at most 23 characters",
                "input": "AQAAAAAAAAAAAAAAAAAAAAAA", "ctx": {"max_length": 23},
            }]}),
        ),
    ])
    .await;
}

#[tokio::test]
async fn lax_query_values_are_accepted() {
    let empty_page = json!({"items": [], "next_cursor": null});
    let queries = [
        "limit=1",
        "limit=100",
        "limit=%205%20",
        "limit=+5",
        "limit=05",
        "limit=5.0",
        "limit=5.00",
        "limit=1_0",
        "limit=5&done=TRUE",
        "done=Off",
        "done=1",
        "done=y",
        "unknown=1",
    ];
    run(queries
        .iter()
        .map(|query| case(query, Call::list(query), 200, empty_page.clone()))
        .collect())
    .await;
}

// ---------------------------------------------------------------------------
// Several failures in one 422
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_failure_is_listed_in_pydantic_order() {
    let path_abc = json!({
        "type": "uuid_parsing", "loc": ["path", "task_id"],
        "msg": "Input should be a valid UUID, invalid length: found 3",
        "input": "abc", "ctx": {"error": "invalid length: found 3"},
    });
    let query_errors = json!({"detail": [
        {"type": "greater_than_equal", "loc": ["query", "limit"],
         "msg": "Input should be greater than or equal to 1",
         "input": "0", "ctx": {"ge": 1}},
        {"type": "bool_parsing", "loc": ["query", "done"],
         "msg": "Input should be a valid boolean, unable to interpret input",
         "input": "maybe"},
        {"type": "string_too_short", "loc": ["query", "cursor"],
         "msg": "String should have at least 23 characters", "input": "bad",
         "ctx": {"min_length": 23}},
    ]});
    run(vec![
        case(
            "PUT: path, then title, done, then the extra field",
            Call::put("abc", r#"{"title":"","done":"maybe","x":1}"#),
            422,
            json!({"detail": [
                path_abc,
                {"type": "string_too_short", "loc": ["body", "title"],
                 "msg": "String should have at least 1 character",
                 "input": "", "ctx": {"min_length": 1}},
                {"type": "bool_parsing", "loc": ["body", "done"],
                 "msg": "Input should be a valid boolean, unable to interpret input",
                 "input": "maybe"},
                {"type": "extra_forbidden", "loc": ["body", "x"],
                 "msg": "Extra inputs are not permitted", "input": 1},
            ]}),
        ),
        case(
            "PUT: same order whatever the input order",
            Call::put("abc", r#"{"x":1,"done":"maybe","title":""}"#),
            422,
            json!({"detail": [
                path_abc,
                {"type": "string_too_short", "loc": ["body", "title"],
                 "msg": "String should have at least 1 character",
                 "input": "", "ctx": {"min_length": 1}},
                {"type": "bool_parsing", "loc": ["body", "done"],
                 "msg": "Input should be a valid boolean, unable to interpret input",
                 "input": "maybe"},
                {"type": "extra_forbidden", "loc": ["body", "x"],
                 "msg": "Extra inputs are not permitted", "input": 1},
            ]}),
        ),
        case(
            "PUT: bad path and no body",
            Call::sample(Route::ReplaceTask).task_id("abc").no_body(),
            422,
            json!({"detail": [
                path_abc,
                {"type": "missing", "loc": ["body"], "msg": "Field required", "input": null},
            ]}),
        ),
        case(
            "PUT: bad path and a body that is no object",
            Call::put("abc", "[]"),
            422,
            json!({"detail": [
                path_abc,
                {"type": "model_attributes_type", "loc": ["body"],
                 "msg": "Input should be a valid dictionary or object to extract fields from",
                 "input": []},
            ]}),
        ),
        case(
            "PATCH: bad path and a null title",
            Call::patch("abc", r#"{"title":null}"#),
            422,
            json!({"detail": [
                path_abc,
                {"type": "string_type", "loc": ["body", "title"],
                 "msg": "Input should be a valid string", "input": null},
            ]}),
        ),
        case(
            "GET /tasks: limit, done, cursor",
            Call::list("limit=0&done=maybe&cursor=bad"),
            422,
            query_errors.clone(),
        ),
        case(
            "GET /tasks: declaration order, not query order",
            Call::list("cursor=bad&done=maybe&limit=0"),
            422,
            query_errors,
        ),
    ])
    .await;
}

// ---------------------------------------------------------------------------
// PATCH
// ---------------------------------------------------------------------------

#[tokio::test]
async fn patch_rejects_explicit_nulls() {
    run(vec![
        case(
            "title null",
            Call::patch(SAMPLE_ID, r#"{"title":null}"#),
            422,
            json!({"detail": [{
                "type": "string_type", "loc": ["body", "title"],
                "msg": "Input should be a valid string", "input": null,
            }]}),
        ),
        case(
            "description null",
            Call::patch(SAMPLE_ID, r#"{"description":null}"#),
            422,
            json!({"detail": [{
                "type": "string_type", "loc": ["body", "description"],
                "msg": "Input should be a valid string", "input": null,
            }]}),
        ),
        case(
            "done null",
            Call::patch(SAMPLE_ID, r#"{"done":null}"#),
            422,
            json!({"detail": [{
                "type": "bool_type", "loc": ["body", "done"],
                "msg": "Input should be a valid boolean", "input": null,
            }]}),
        ),
        case(
            "all null, plus an extra field",
            Call::patch(SAMPLE_ID, r#"{"done":null,"x":null,"title":null}"#),
            422,
            json!({"detail": [
                {"type": "string_type", "loc": ["body", "title"],
                 "msg": "Input should be a valid string", "input": null},
                {"type": "bool_type", "loc": ["body", "done"],
                 "msg": "Input should be a valid boolean", "input": null},
                {"type": "extra_forbidden", "loc": ["body", "x"],
                 "msg": "Extra inputs are not permitted", "input": null},
            ]}),
        ),
        case(
            "empty title",
            Call::patch(SAMPLE_ID, r#"{"title":""}"#),
            422,
            json!({"detail": [{
                "type": "string_too_short", "loc": ["body", "title"],
                "msg": "String should have at least 1 character",
                "input": "", "ctx": {"min_length": 1},
            }]}),
        ),
        case(
            "no body",
            Call::sample(Route::UpdateTask).no_body(),
            422,
            json!({"detail": [{
                "type": "missing", "loc": ["body"], "msg": "Field required", "input": null,
            }]}),
        ),
    ])
    .await;
}

#[tokio::test]
async fn patch_with_an_empty_object_returns_the_task_unchanged() {
    let app = crate::support::app(&[("IDENTITY_MODE", "header")]);
    let created = Call::post(r#"{"title":"keep","description":"me","done":true}"#)
        .send(app)
        .await;
    let id = created.assert_task(201, "keep", "me", true);

    let patched = Call::patch(&id, "{}").send(app).await;
    patched.assert(200, &created.json);
    assert_eq!(patched.header("etag"), created.header("etag"));

    let fetched = Call::get(&id).send(app).await;
    fetched.assert(200, &created.json);

    // Still validated as a task: a missing one is a 404.
    Call::patch(SAMPLE_ID, "{}")
        .send(app)
        .await
        .assert(404, &json!({"detail": "task not found"}));
}

// ---------------------------------------------------------------------------
// Accepted input
// ---------------------------------------------------------------------------

#[tokio::test]
async fn done_accepts_pydantic_lax_booleans() {
    let app = crate::support::app(&[("IDENTITY_MODE", "header")]);
    let accepted = [
        (json!(true), true),
        (json!(false), false),
        (json!(1), true),
        (json!(0), false),
        (json!(1.0), true),
        (json!(0.0), false),
        (json!("true"), true),
        (json!("FALSE"), false),
        (json!("Yes"), true),
        (json!("nO"), false),
        (json!("ON"), true),
        (json!("off"), false),
        (json!("1"), true),
        (json!("0"), false),
        (json!("T"), true),
        (json!("f"), false),
        (json!("y"), true),
        (json!("N"), false),
        (json!("tRuE"), true),
        (json!("oFf"), false),
    ];
    for (done, expected) in accepted {
        let body = json!({"title": "t", "done": done}).to_string();
        let reply = Call::post(&body).send(app).await;
        if reply.status != 201 || reply.json["done"] != json!(expected) {
            panic!("done {done}: {} {}", reply.status, reply.text);
        }
        reply.assert_task(201, "t", "", expected);
    }
}

#[tokio::test]
async fn defaults_and_length_limits_in_code_points() {
    let app = crate::support::app(&[("IDENTITY_MODE", "header")]);
    Call::post(r#"{"title":"t"}"#)
        .send(app)
        .await
        .assert_task(201, "t", "", false);

    // 200 "é" are 400 bytes: the limit counts code points.
    let title = "é".repeat(200);
    let description = "d".repeat(2000);
    let body = json!({"title": title, "description": description}).to_string();
    Call::post(&body)
        .send(app)
        .await
        .assert_task(201, &title, &description, false);

    // A blank title is a title (no stripping in the model).
    Call::post(r#"{"title":" "}"#)
        .send(app)
        .await
        .assert_task(201, " ", "", false);

    // JSON content types with parameters or a +json suffix are parsed.
    for content_type in [
        "application/json; charset=utf-8",
        "application/vnd.api+json",
    ] {
        Call::post(r#"{"title":"ct"}"#)
            .header("content-type", content_type)
            .send(app)
            .await
            .assert_task(201, "ct", "", false);
    }
}

#[tokio::test]
async fn replace_applies_create_defaults() {
    let app = crate::support::app(&[("IDENTITY_MODE", "header")]);
    let id = create(app, r#"{"title":"a","description":"b","done":true}"#).await;
    let reply = Call::put(&id, r#"{"title":"c"}"#).send(app).await;
    assert_eq!(reply.json["id"], json!(id));
    assert_eq!(
        (
            &reply.json["title"],
            &reply.json["description"],
            &reply.json["done"]
        ),
        (&json!("c"), &json!(""), &json!(false)),
        "{}",
        reply.text
    );
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn any_uuid_form_reaches_the_task() {
    let app = crate::support::app(&[("IDENTITY_MODE", "header")]);
    let id = create(app, r#"{"title":"find me"}"#).await;
    let canonical = Call::get(&id).send(app).await;
    canonical.assert_task(200, "find me", "", false);

    let simple = id.replace('-', "");
    let forms = [
        simple.clone(),
        simple.to_uppercase(),
        id.to_uppercase(),
        format!("{{{id}}}"),
        format!("urn:uuid:{id}"),
    ];
    for form in &forms {
        let reply = Call::get(form).send(app).await;
        if let Err(problem) = reply.check(200, &canonical.json) {
            panic!("GET /tasks/{form}: {problem}");
        }
    }

    // Writes too: the response always shows the canonical form.
    let reply = Call::patch(&simple.to_uppercase(), r#"{"done":"yes"}"#)
        .send(app)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["id"], json!(id));
    assert_eq!(reply.json["done"], json!(true));
}

// ---------------------------------------------------------------------------
// What comes before validation
// ---------------------------------------------------------------------------

#[tokio::test]
async fn no_caller_is_401_before_any_validation() {
    let app = crate::support::app(&[("IDENTITY_MODE", "header")]);
    let unauthenticated = json!({"detail": "not authenticated"});
    let calls = [
        ("POST bad body", Call::post(r#"{"title":""}"#).anonymous()),
        ("POST invalid JSON", Call::post(r#"{"title":"#).anonymous()),
        (
            "POST no body",
            Call::sample(Route::CreateTask).no_body().anonymous(),
        ),
        (
            "POST over 64 KiB",
            Call::post(&"x".repeat(64 * 1024 + 1)).anonymous(),
        ),
        ("PUT bad path and body", Call::put("abc", "[]").anonymous()),
        (
            "PATCH bad path and body",
            Call::patch("abc", r#"{"done":null}"#).anonymous(),
        ),
        ("GET bad path", Call::get("abc").anonymous()),
        ("GET bad query", Call::list("limit=0").anonymous()),
        (
            "blank X-User-Id",
            Call::post(r#"{"title":""}"#)
                .anonymous()
                .header("x-user-id", " "),
        ),
    ];
    for (name, call) in calls {
        let reply = call.send(app).await;
        if let Err(problem) = reply.check(401, &unauthenticated) {
            panic!("{name}: {problem}");
        }
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{name}");
    }

    // The same request with a caller gets as far as validation.
    Call::post(r#"{"title":""}"#)
        .anonymous()
        .header("x-user-id", "bob")
        .send(app)
        .await
        .assert(
            422,
            &json!({"detail": [{
                "type": "string_too_short", "loc": ["body", "title"],
                "msg": "String should have at least 1 character",
                "input": "", "ctx": {"min_length": 1},
            }]}),
        );
}

#[tokio::test]
async fn bodies_over_64_kib_are_413_before_parsing() {
    let app = crate::support::app(&[("IDENTITY_MODE", "header")]);
    let too_large = json!({"detail": "request body too large"});
    // Not even JSON: the size is checked first.
    Call::post(&"x".repeat(64 * 1024 + 1))
        .send(app)
        .await
        .assert(413, &too_large);
    Call::put(SAMPLE_ID, &"x".repeat(64 * 1024 + 1))
        .send(app)
        .await
        .assert(413, &too_large);

    // Exactly 64 KiB is read and validated.
    let title = "a".repeat(64 * 1024 - r#"{"title":""}"#.len());
    let body = format!(r#"{{"title":"{title}"}}"#);
    assert_eq!(body.len(), 64 * 1024);
    Call::post(&body).send(app).await.assert(
        422,
        &json!({"detail": [{
            "type": "string_too_long", "loc": ["body", "title"],
            "msg": "String should have at most 200 characters",
            "input": title, "ctx": {"max_length": 200},
        }]}),
    );
}

#[tokio::test]
async fn json_bodies_that_are_not_utf8_are_400_as_in_fastapi() {
    // FastAPI 0.16x: `request.json()` cannot decode the bytes, so the answer
    // is its 400, not a validation error.
    let app = crate::support::app(&[("IDENTITY_MODE", "header")]);
    let unreadable = json!({"detail": "There was an error parsing the body"});
    for bytes in [
        &b"\xc9\xbd\xff3\x12\xfe"[..],
        b"Q+\xff",
        b"{\"title\": \"\xff\"}",
    ] {
        Call::post("")
            .binary_body(bytes)
            .send(app)
            .await
            .assert(400, &unreadable);
        Call::patch(SAMPLE_ID, "")
            .binary_body(bytes)
            .send(app)
            .await
            .assert(400, &unreadable);
    }
    // Not declared as JSON: read as raw input, as before.
    Call::post("")
        .binary_body(b"\xff")
        .header("content-type", "application/octet-stream")
        .send(app)
        .await
        .assert(
            422,
            &json!({"detail": [{
                "type": "model_attributes_type", "loc": ["body"],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": "\u{fffd}",
            }]}),
        );
}
