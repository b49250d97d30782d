//! The OpenAPI document (`shared::openapi`): the committed `openapi.json` is
//! exactly what the code generates, and what it says agrees with what the
//! code does (field rules, query bounds, the contract's responses).
//!
//! After changing a handler's `#[utoipa::path]`, a model or the document,
//! regenerate the committed copy with:
//!
//! ```text
//! UPDATE_OPENAPI=1 cargo test -p shared --test it openapi:: (make openapi)
//! ```

use std::path::PathBuf;

use serde_json::{Map, Value, json};
use shared::domain::task::{DEFAULT_LIMIT, MAX_LIMIT, TaskCreate, TaskPatch};
use shared::openapi;

const REGENERATE: &str = "UPDATE_OPENAPI=1 cargo test -p shared --test it openapi:: (make openapi)";

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi.json")
}

fn document() -> Value {
    serde_json::from_str(&openapi::to_json()).expect("the document is JSON")
}

fn at<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(value, |v, key| &v[*key])
}

/// `(method, path, operation)` of every operation.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            operations.push((method.clone(), path.clone(), operation.clone()));
        }
    }
    operations
}

#[test]
fn the_committed_openapi_json_is_the_generated_document() {
    let generated = openapi::to_json();
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("writing openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed == generated {
        return;
    }
    let first_difference = committed
        .lines()
        .zip(generated.lines())
        .enumerate()
        .find(|(_, (c, g))| c != g)
        .map(|(i, (c, g))| format!("line {}:\n  committed: {c}\n  generated: {g}", i + 1))
        .unwrap_or_else(|| "one is a prefix of the other".to_owned());
    panic!(
        "openapi.json differs from the document the code generates ({first_difference}).\n\
         Regenerate it with: {REGENERATE}"
    );
}

#[test]
fn the_document_is_openapi_3_1_with_info_tags_and_security() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(at(&doc, &["info", "title"]), "Task API");
    assert_eq!(at(&doc, &["info", "version"]), env!("CARGO_PKG_VERSION"));
    assert!(at(&doc, &["info", "description"]).is_string());
    assert_eq!(at(&doc, &["info", "license", "identifier"]), "MIT");

    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(tags.contains(&"tasks"), "{tags:?}");

    let schemes = at(&doc, &["components", "securitySchemes"]);
    assert_eq!(
        schemes["jwt"],
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": schemes["jwt"]["description"]})
    );
    assert_eq!(schemes["x_user_id"]["type"], "apiKey");
    assert_eq!(schemes["x_user_id"]["in"], "header");
    assert_eq!(schemes["x_user_id"]["name"], "X-User-Id");
    assert_eq!(
        doc["security"],
        json!([{"jwt": []}, {"x_user_id": []}]),
        "every operation needs a caller unless it says otherwise"
    );
}

#[test]
fn every_operation_is_documented_with_the_contracts_responses() {
    let doc = document();
    for (method, path, operation) in operations(&doc) {
        let id = operation["operationId"].as_str().unwrap_or_default();
        let whose = format!("{method} {path} ({id})");
        for field in ["summary", "description", "operationId"] {
            assert!(
                operation[field].as_str().is_some_and(|s| !s.is_empty()),
                "{whose}: {field}"
            );
        }
        assert!(
            operation["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{whose}: tags"
        );
        let responses = operation["responses"].as_object().expect("responses");
        let codes: Vec<&str> = responses.keys().map(String::as_str).collect();
        let public = path == "/health";
        assert_eq!(
            operation.get("security"),
            public.then(|| json!([{}])).as_ref(),
            "{whose}: only /health is public"
        );
        // What the operation says it takes decides what it may answer: a
        // body (400, 413), If-Match (412), inputs to validate (422), and
        // the storage its function's declaration grants (503).
        let parameters = operation["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let has_parameter = |place: &str, name: Option<&str>| {
            parameters
                .iter()
                .any(|p| p["in"] == place && name.is_none_or(|n| p["name"] == n))
        };
        let has_body = operation.get("requestBody").is_some();
        let mut expected: Vec<&str> = Vec::new();
        // One success status: 200; a POST that creates answers 201 (with
        // Location, below), a DELETE with nothing to say 204.
        let successes: Vec<&str> = codes
            .iter()
            .copied()
            .filter(|c| c.starts_with('2'))
            .collect();
        let [success] = successes[..] else {
            panic!("{whose}: exactly one success status, got {successes:?}");
        };
        let allowed: &[&str] = match method.as_str() {
            "post" => &["200", "201"],
            "delete" => &["200", "204"],
            _ => &["200"],
        };
        assert!(
            allowed.contains(&success),
            "{whose}: success status {success}, expected one of {allowed:?}"
        );
        expected.push(success);
        // A body, or an If-Match (whose lists are capped: 400 past 20).
        if has_body || has_parameter("header", Some("If-Match")) {
            expected.push("400");
        }
        if !public {
            expected.push("401");
        }
        // A task's history is empty, not missing, before its first change
        // is recorded (or for a task the caller never had).
        if path == "/tasks/{task_id}" {
            expected.push("404");
        }
        // The task limit (a create); a first request with the same
        // Idempotency-Key still in flight (every write that takes one).
        if (method == "post" && path == "/tasks")
            || has_parameter("header", Some("Idempotency-Key"))
        {
            expected.push("409");
        }
        if has_parameter("header", Some("If-Match")) {
            expected.push("412");
        }
        if has_body {
            expected.push("413");
        }
        let has_inputs = has_body || has_parameter("path", None) || has_parameter("query", None);
        if has_inputs {
            expected.push("422");
        }
        let storage = shared::handlers::dynamodb_access(id)
            .unwrap_or_else(|| panic!("{whose}: shared::handlers::dynamodb_access knows no {id}"));
        // The live feed's open streams per caller are bounded, and so are
        // each caller's task writes and export opens (its fair share).
        let task_write = matches!(method.as_str(), "post" | "put" | "patch" | "delete")
            && (path == "/tasks" || path == "/tasks/{task_id}");
        if path == "/tasks/events" || path == "/tasks/export" || task_write {
            expected.push("429");
        }
        if storage.uses_storage() {
            expected.push("503");
        }
        assert_eq!(codes, expected, "{whose}: response codes");

        let headers = |code: &str| -> Vec<String> {
            responses[code]["headers"]
                .as_object()
                .map(|h| h.keys().cloned().collect())
                .unwrap_or_default()
        };
        let task_body = responses[success]["content"]["application/json"]["schema"]["$ref"]
            == "#/components/schemas/Task";
        if task_body {
            assert!(headers(success).contains(&"ETag".to_owned()), "{whose}");
        }
        if success == "201" && task_body {
            assert_eq!(headers(success), ["ETag", "Location"], "{whose}");
        }
    }
}

#[test]
fn error_responses_show_what_the_api_answers() {
    let doc = document();
    let responses = at(&doc, &["components", "responses"]);
    let example = |name: &str| responses[name]["content"]["application/json"]["example"].clone();
    assert_eq!(
        example("Unauthorized"),
        json!({"detail": "not authenticated"})
    );
    assert_eq!(example("TaskNotFound"), json!({"detail": "task not found"}));
    assert_eq!(example("RouteNotFound"), json!({"detail": "Not Found"}));
    assert_eq!(
        example("MethodNotAllowed"),
        json!({"detail": "Method Not Allowed"})
    );
    assert_eq!(
        example("UnreadableBody"),
        json!({"detail": "There was an error parsing the body"})
    );
    assert_eq!(
        example("PreconditionFailed"),
        json!({"detail": "precondition failed"})
    );
    assert_eq!(
        example("ServiceUnavailable"),
        json!({"detail": "service unavailable"})
    );
    assert_eq!(
        example("ValidationFailed")["detail"][0]["type"],
        "string_too_short"
    );
    let header_names = |name: &str| -> Vec<String> {
        responses[name]["headers"]
            .as_object()
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(header_names("Unauthorized"), ["WWW-Authenticate"]);
    assert_eq!(header_names("MethodNotAllowed"), ["Allow"]);
    assert_eq!(header_names("ServiceUnavailable"), ["Retry-After"]);
}

#[test]
fn the_422_schemas_are_fastapis() {
    // FastAPI 0.16x's own definitions (`fastapi.openapi.utils`).
    let doc = document();
    let schemas = at(&doc, &["components", "schemas"]);
    assert_eq!(
        schemas["HTTPValidationError"],
        json!({
            "properties": {"detail": {"items": {"$ref": "#/components/schemas/ValidationError"},
                                      "type": "array", "title": "Detail"}},
            "type": "object", "title": "HTTPValidationError"
        })
    );
    assert_eq!(
        schemas["ValidationError"],
        json!({
            "properties": {
                "loc": {"items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        "type": "array", "title": "Location"},
                "msg": {"type": "string", "title": "Message"},
                "type": {"type": "string", "title": "Error Type"},
                "input": {"title": "Input"},
                "ctx": {"type": "object", "title": "Context"}
            },
            "type": "object", "required": ["loc", "msg", "type"], "title": "ValidationError"
        })
    );
}

/// The body `{field: value}`, validated as a create and as a patch.
fn field_is_valid(field: &str, value: Value) -> (bool, bool) {
    let mut object = Map::new();
    if field != "title" {
        object.insert("title".into(), json!("t"));
    }
    object.insert(field.into(), value);
    (
        TaskCreate::from_object(&object).is_ok(),
        TaskPatch::from_object(&object).is_ok(),
    )
}

#[test]
fn body_schemas_state_the_validation_rules() {
    let doc = document();
    let schemas = at(&doc, &["components", "schemas"]);
    for model in ["TaskCreate", "TaskPatch"] {
        let schema = &schemas[model];
        assert_eq!(schema["additionalProperties"], false, "{model}");
        for field in ["title", "description"] {
            let property = &schema["properties"][field];
            assert_eq!(property["type"], "string", "{model}.{field}");
            let max = property["maxLength"].as_u64().expect("maxLength") as usize;
            let min = property["minLength"].as_u64().unwrap_or(0) as usize;
            assert_eq!(
                field_is_valid(field, json!("é".repeat(max))),
                (true, true),
                "{model}.{field}: {max} characters are valid"
            );
            assert_eq!(
                field_is_valid(field, json!("é".repeat(max + 1))),
                (false, false),
                "{model}.{field}: {} characters are not",
                max + 1
            );
            if min > 0 {
                assert_eq!(
                    field_is_valid(field, json!("x".repeat(min - 1))),
                    (false, false),
                    "{model}.{field}: minLength {min}"
                );
            }
            // An explicit null is never "unchanged".
            assert_eq!(field_is_valid(field, Value::Null), (false, false));
        }
        assert_eq!(schema["properties"]["done"]["type"], "boolean", "{model}");
    }
    assert_eq!(schemas["TaskCreate"]["required"], json!(["title"]));
    assert!(schemas["TaskPatch"].get("required").is_none());
    let create = &schemas["TaskCreate"]["properties"];
    assert_eq!(create["description"]["default"], "");
    assert_eq!(create["done"]["default"], false);
}

#[test]
fn the_idempotency_key_header_states_its_bounds() {
    let doc = document();
    let parameters = at(&doc, &["paths", "/tasks", "post", "parameters"]);
    let key = parameters
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .expect("an Idempotency-Key parameter");
    assert_eq!(key["in"], "header");
    assert_eq!(key["required"], false);
    let accepts = |length: usize| {
        let req = lambda_http::http::Request::builder()
            .header("idempotency-key", "k".repeat(length))
            .body(lambda_http::Body::Empty)
            .expect("a request");
        shared::http::request::idempotency_key(&req).is_ok()
    };
    let min = key["schema"]["minLength"].as_u64().expect("minLength") as usize;
    let max = key["schema"]["maxLength"].as_u64().expect("maxLength") as usize;
    assert!(!accepts(min - 1) && accepts(min) && accepts(max) && !accepts(max + 1));
}

#[test]
fn list_parameters_state_the_query_bounds() {
    let doc = document();
    let parameters = at(&doc, &["paths", "/tasks", "get", "parameters"]);
    let limit = parameters
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("a limit parameter");
    assert_eq!(limit["in"], "query");
    assert_eq!(limit["required"], false);
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], MAX_LIMIT);
    assert_eq!(limit["schema"]["default"], DEFAULT_LIMIT);
}

/// Every `$ref` of the document names a component it defines (a response
/// or schema used by an operation but never registered fails here, not
/// only in `make lint`'s validator).
#[test]
fn every_reference_resolves() {
    fn walk(value: &serde_json::Value, document: &serde_json::Value, missing: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(object) => {
                if let Some(serde_json::Value::String(target)) = object.get("$ref") {
                    let pointer = target.trim_start_matches('#');
                    if document.pointer(pointer).is_none() {
                        missing.push(target.clone());
                    }
                }
                for child in object.values() {
                    walk(child, document, missing);
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    walk(item, document, missing);
                }
            }
            _ => {}
        }
    }
    let document = serde_json::to_value(shared::openapi::document()).expect("document");
    let mut missing = Vec::new();
    walk(&document, &document, &mut missing);
    assert!(missing.is_empty(), "unresolved references: {missing:?}");
}

// ---------------------------------------------------------------------------
// Every documented string rule is exactly what the API accepts: for each
// parameter with a pattern, a corpus of strings (valid values, their
// mutations, random strings over the rule's alphabet and beyond) is
// accepted by the API if and only if the document's schema (length bounds
// and pattern) allows it.
// ---------------------------------------------------------------------------

use lambda_http::http::{HeaderValue, Request as HttpRequest};
use lambda_http::{Body, Request, RequestExt};
use shared::domain::change::Sequence;
use shared::http::request;

/// A small deterministic generator (xorshift), so the corpus is the same
/// on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn string(&mut self, alphabet: &[char], max_len: usize) -> String {
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }
}

/// Each valid value, then single-character edits of it (replaced, dropped,
/// doubled), then random strings.
fn corpus(valid: &[String], alphabet: &[char], max_len: usize) -> Vec<String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut strings: Vec<String> = valid.to_vec();
    for value in valid {
        let chars: Vec<char> = value.chars().collect();
        for _ in 0..40 {
            let mut edited = chars.clone();
            let i = rng.below(chars.len().max(1));
            match rng.below(3) {
                0 if i < edited.len() => edited[i] = alphabet[rng.below(alphabet.len())],
                1 if i < edited.len() => {
                    edited.remove(i);
                }
                _ => edited.insert(i, alphabet[rng.below(alphabet.len())]),
            }
            strings.push(edited.into_iter().collect());
        }
    }
    for _ in 0..3000 {
        strings.push(rng.string(alphabet, max_len));
    }
    strings.extend(["", " ", "0", "%", "A", "h", "*"].map(str::to_owned));
    strings
}

/// The schema of parameter `name` of `method path`.
fn parameter_schema(doc: &Value, method: &str, path: &str, name: &str) -> Value {
    at(doc, &["paths", path, method, "parameters"])
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} documents {name}"))["schema"]
        .clone()
}

/// Whether the schema (a string's `minLength`, `maxLength`, `pattern`)
/// allows `value`, as a JSON Schema validator decides it.
fn schema_allows(schema: &Value, pattern: &regex::Regex, value: &str) -> bool {
    let length = value.chars().count() as u64;
    let min = schema["minLength"].as_u64().unwrap_or(0);
    let max = schema["maxLength"].as_u64().unwrap_or(u64::MAX);
    min <= length && length <= max && pattern.is_match(value)
}

fn query_request(name: &str, value: &str) -> Request {
    let req = HttpRequest::builder()
        .uri("https://localhost/")
        .body(Body::Empty)
        .expect("a request");
    req.with_query_string_parameters(lambda_http::aws_lambda_events::query_map::QueryMap::from(
        std::collections::HashMap::from([(name.to_owned(), value.to_owned())]),
    ))
}

fn header_request(name: &str, value: &str) -> Option<Request> {
    let value = HeaderValue::from_str(value).ok()?;
    Some(
        HttpRequest::builder()
            .uri("https://localhost/")
            .header(name, value)
            .body(Body::Empty)
            .expect("a request"),
    )
}

/// Every string of the corpus: accepted by `accepts` exactly when the
/// schema allows it (`None`: a string no request can carry, skipped).
fn assert_schema_is_exact(
    what: &str,
    schema: &Value,
    strings: &[String],
    accepts: impl Fn(&str) -> Option<bool>,
) {
    let pattern = schema["pattern"].as_str().expect("a pattern");
    let pattern = regex::Regex::new(pattern).expect("the pattern compiles");
    let mut checked = 0;
    let mut allowed = 0;
    for value in strings {
        let Some(accepted) = accepts(value) else {
            continue;
        };
        let documented = schema_allows(schema, &pattern, value);
        assert_eq!(
            accepted,
            documented,
            "{what}: {value:?} is {} by the API but {} by the document ({schema})",
            if accepted { "accepted" } else { "refused" },
            if documented { "allowed" } else { "forbidden" },
        );
        checked += 1;
        allowed += usize::from(documented);
    }
    assert!(
        allowed >= 1 && allowed < checked,
        "{what}: the corpus has both kinds"
    );
}

const BASE64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn chars(extra: &str) -> Vec<char> {
    format!("{BASE64URL}{extra}").chars().collect()
}

#[test]
fn the_list_cursor_is_documented_exactly() {
    let doc = document();
    let schema = parameter_schema(&doc, "get", "/tasks", "cursor");
    let valid: Vec<String> = (0..50u128)
        .map(|i| {
            request::encode_cursor(uuid::Uuid::from_u128(
                i.wrapping_mul(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
            ))
        })
        .chain([
            request::encode_cursor(uuid::Uuid::max()),
            request::encode_cursor(uuid::Uuid::nil()),
        ])
        .collect();
    let strings = corpus(&valid, &chars("=+/ %"), 26);
    assert_schema_is_exact("GET /tasks cursor", &schema, &strings, |value| {
        Some(request::list_query(&query_request("cursor", value)).is_ok())
    });
    assert_eq!(schema["pattern"], request::LIST_CURSOR.pattern);
}

#[test]
fn the_history_cursor_is_documented_exactly() {
    let doc = document();
    let schema = parameter_schema(&doc, "get", "/tasks/{task_id}/history", "cursor");
    let valid: Vec<String> = ["0", "7", "111300000000017845912208", &"9".repeat(40)]
        .iter()
        .map(|id| request::encode_history_cursor(&Sequence::parse(id).expect("an id")))
        .collect();
    let strings = corpus(&valid, &chars(" "), 44);
    assert_schema_is_exact("history cursor", &schema, &strings, |value| {
        Some(request::history_query(&query_request("cursor", value)).is_ok())
    });
    assert_eq!(schema["pattern"], request::HISTORY_CURSOR.pattern);
}

#[test]
fn the_feeds_change_ids_are_documented_exactly() {
    let doc = document();
    let valid: Vec<String> = ["0", "42", "111300000000017845912208", &"9".repeat(40)]
        .map(str::to_owned)
        .to_vec();
    let strings = corpus(&valid, &"0123456789a -%".chars().collect::<Vec<_>>(), 44);
    let since = parameter_schema(&doc, "get", "/tasks/events", "since");
    assert_schema_is_exact("since", &since, &strings, |value| {
        Some(request::feed_start(&query_request("since", value)).is_ok())
    });
    let header = parameter_schema(&doc, "get", "/tasks/events", "Last-Event-ID");
    // HTTP strips a header value's surrounding spaces: none can be sent.
    assert_schema_is_exact("Last-Event-ID", &header, &strings, |value| {
        (value.trim() == value)
            .then(|| header_request("last-event-id", value))
            .flatten()
            .map(|req| request::feed_start(&req).is_ok())
    });
}

#[test]
fn since_is_checked_even_when_last_event_id_wins() {
    let mut req = query_request("since", "%");
    req.headers_mut()
        .insert("last-event-id", HeaderValue::from_static("5"));
    let errors = request::feed_start(&req).expect_err("since=% is refused");
    let first = serde_json::to_value(&errors[0]).expect("JSON");
    assert_eq!(first["type"], "string_pattern_mismatch");
}

#[test]
fn if_match_is_documented_exactly() {
    let doc = document();
    let valid: Vec<String> = [
        "*",
        "\"1\"",
        "W/\"1\"",
        "\"\"",
        "\"a,b\"",
        "\"1\", \"2\"",
        "\"1\"\t,W/\"x!#~\"",
        &vec!["\"7\""; 20].join(","),
    ]
    .map(str::to_owned)
    .to_vec();
    let alphabet: Vec<char> = "\"W/*, \t0123456789ax!#~".chars().collect();
    let strings = corpus(&valid, &alphabet, 30);
    for method in ["put", "patch", "delete"] {
        let schema = parameter_schema(&doc, method, "/tasks/{task_id}", "If-Match");
        assert_eq!(schema["pattern"], request::IF_MATCH_PATTERN);
        assert_schema_is_exact("If-Match", &schema, &strings, |value| {
            (value.trim() == value)
                .then(|| header_request("if-match", value))
                .flatten()
                .map(|req| request::if_match(&req).is_ok())
        });
    }
}

/// The content type of a 200 of `GET path` (a streamed route) is, exactly,
/// one the document declares for it, with an example (called by the
/// export's and the feed's tests with their real answers).
pub fn assert_documented_content_type<B>(path: &str, response: &lambda_http::http::Response<B>) {
    let doc = document();
    let content = at(&doc, &["paths", path, "get", "responses", "200", "content"]);
    let answered = response.headers()["content-type"]
        .to_str()
        .expect("a text content type");
    let declared = content.get(answered).unwrap_or_else(|| {
        panic!("GET {path} answers {answered}, the document declares {content}")
    });
    assert!(
        declared["example"].is_string(),
        "{path} {answered}: an example"
    );
}

#[test]
fn the_streamed_routes_declare_exactly_their_content_types() {
    let doc = document();
    for (path, expected) in [
        (
            "/tasks/export",
            &["application/x-ndjson", "text/csv; charset=utf-8"][..],
        ),
        ("/tasks/events", &["text/event-stream"][..]),
    ] {
        let content = at(&doc, &["paths", path, "get", "responses", "200", "content"]);
        let declared: Vec<&str> = content
            .as_object()
            .expect("content")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(declared, expected, "GET {path}");
    }
}
