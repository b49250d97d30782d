//! The observability layer every function runs behind: `X-Process-Time` on
//! every response and one JSON log line per request with the fields an
//! operator filters on.

use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lambda_http::tower::{Layer, Service};
use lambda_http::{Body, Request, Response, service_fn};
use serde_json::Value;
use shared::adapters::memory::MemoryStore;
use shared::http::observability::{ObservabilityLayer, PROCESS_TIME_HEADER};
use shared::runtime::{App, HandlerResult, respond};

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// JSON log lines captured for as long as the guard lives.
    fn install() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().expect("lock").clone();
        String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON log line"))
            .collect()
    }
}

#[tokio::test]
async fn every_response_is_timed_and_logged_once() {
    let (logs, _guard) = Captured::install();

    // As the runtime serves: the layer around `respond` (which identifies
    // the caller) around a handler.
    let app = crate::support::app(&[]);
    let slow = service_fn(move |req: Request| async move {
        Ok::<_, Infallible>(respond(app, slow_not_found, req).await)
    });
    let mut service = ObservabilityLayer::new().layer(slow);

    let first = service
        .call(crate::support::event("get_task"))
        .await
        .expect("infallible");
    let second = service
        .call(crate::support::event("get_task"))
        .await
        .expect("infallible");
    for response in [&first, &second] {
        let seconds: f64 = response.headers()[PROCESS_TIME_HEADER]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((0.005..1.0).contains(&seconds), "{seconds}");
    }

    let lines: Vec<Value> = logs
        .lines()
        .into_iter()
        .filter(|l| l["message"] == "request")
        .collect();
    assert_eq!(lines.len(), 2, "one line per request");
    let line = &lines[0];
    assert_eq!(line["request_id"], "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
    assert_eq!(line["route"], "GET /tasks/{task_id}");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 404);
    assert!(
        line["latency_us"].as_u64().is_some_and(|us| us >= 5_000),
        "{line}"
    );
    let caller = line["caller"].as_str().expect("caller tag");
    assert_eq!(caller.len(), 12);
    assert_ne!(caller, "alice", "the caller is hashed, not logged");
    assert_eq!(
        lines[1]["caller"], caller,
        "the same caller gets the same tag"
    );
    assert_eq!(
        (
            line["cold_start"].as_bool(),
            lines[1]["cold_start"].as_bool()
        ),
        (Some(true), Some(false))
    );
}

async fn slow_not_found(_app: &App<MemoryStore>, _req: Request) -> HandlerResult {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = lambda_http::http::StatusCode::NOT_FOUND;
    Ok(response)
}

/// The log records the verified caller only: an `X-User-Id` sent where
/// the header does not count (JWT mode) is no caller, and is not logged.
#[tokio::test]
async fn an_unverified_header_is_not_logged_as_the_caller() {
    let (logs, _guard) = Captured::install();
    let app = crate::support::app(&[("IDENTITY_MODE", "jwt")]);
    let mut service = ObservabilityLayer::new().layer(service_fn(move |req: Request| async move {
        Ok::<_, Infallible>(respond(app, slow_not_found, req).await)
    }));
    let mut req = crate::support::event("health");
    req.headers_mut()
        .insert("x-user-id", "mallory".parse().expect("header"));
    service.call(req).await.expect("infallible");
    let lines: Vec<Value> = logs
        .lines()
        .into_iter()
        .filter(|l| l["message"] == "request")
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["caller"], "-", "{}", lines[0]);
}

/// The JSON lines of the functions' own format
/// (shared::http::logging::PowertoolsJson), captured for as long as the
/// guard lives.
fn install_powertools() -> (Captured, tracing::subscriber::DefaultGuard) {
    let logs = Captured::default();
    let writer = logs.clone();
    let format = shared::http::logging::PowertoolsJson::from_lookup(|name| match name {
        "AWS_LAMBDA_FUNCTION_NAME" => Some("task-api-GetTaskFunction-x1".into()),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => Some("128".into()),
        _ => None,
    });
    let subscriber = tracing_subscriber::fmt()
        .event_format(format)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

const ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:task-api-GetTaskFunction-x1:live";
const TRACE: &str = "Root=1-6752a1f3-5e1c2a0b9d8f7e6d5c4b3a29;Parent=53995c3f42cd8ad8;Sampled=1";

/// The sample event as Lambda hands it to the function: with its context.
fn invoked(name: &str, request_id: &str) -> Request {
    use lambda_http::RequestExt;
    let mut context = lambda_http::Context::default();
    context.request_id = request_id.to_owned();
    context.invoked_function_arn = ARN.to_owned();
    context.xray_trace_id = Some(TRACE.to_owned());
    context.env_config = Arc::new(lambda_http::lambda_runtime::Config {
        function_name: "task-api-GetTaskFunction-x1".into(),
        memory: 128,
        version: "7".into(),
        log_stream: "2026/12/06/[7]abc".into(),
        log_group: "/aws/lambda/task-api/get_task".into(),
    });
    crate::support::event(name).with_lambda_context(context)
}

/// A real handler's invocation logged as deployed: every line has
/// Powertools' keys with the invocation's values, and the request line
/// keeps the project's own fields.
#[tokio::test]
async fn log_lines_carry_powertools_keys() {
    let (logs, _guard) = install_powertools();
    let app = crate::support::app(&[]);
    let mut service = ObservabilityLayer::new().layer(service_fn(move |req: Request| async move {
        Ok::<_, Infallible>(respond(app, failing, req).await)
    }));
    service
        .call(invoked("get_task", "8f1b0c4e-cold"))
        .await
        .expect("infallible");
    service
        .call(invoked("get_task", "8f1b0c4e-warm"))
        .await
        .expect("infallible");
    tracing::info!("outside any invocation");

    let lines = logs.lines();
    let request = |id: &str| {
        lines
            .iter()
            .find(|l| l["message"] == "request" && l["function_request_id"] == id)
            .unwrap_or_else(|| panic!("no request line of {id} in {lines:?}"))
    };
    let cold = request("8f1b0c4e-cold");
    for (key, want) in [
        ("level", serde_json::json!("INFO")),
        ("message", serde_json::json!("request")),
        ("service", serde_json::json!("task-api")),
        ("cold_start", serde_json::json!(true)),
        (
            "function_name",
            serde_json::json!("task-api-GetTaskFunction-x1"),
        ),
        ("function_memory_size", serde_json::json!(128)),
        ("function_arn", serde_json::json!(ARN)),
        ("function_request_id", serde_json::json!("8f1b0c4e-cold")),
        (
            "xray_trace_id",
            serde_json::json!("1-6752a1f3-5e1c2a0b9d8f7e6d5c4b3a29"),
        ),
        // what the project logged before, unchanged
        (
            "request_id",
            serde_json::json!("c6af9ac6-7b61-11e6-9a41-93e8deadbeef"),
        ),
        ("route", serde_json::json!("GET /tasks/{task_id}")),
        ("method", serde_json::json!("GET")),
        ("status", serde_json::json!(500)),
    ] {
        assert_eq!(cold[key], want, "{key} in {cold}");
    }
    assert!(cold["latency_us"].is_u64(), "{cold}");
    assert!(cold["caller"].is_string(), "{cold}");
    let timestamp = cold["timestamp"].as_str().expect("timestamp");
    let parsed = chrono::DateTime::parse_from_rfc3339(timestamp).expect("ISO 8601");
    assert!((chrono::Utc::now() - parsed.to_utc()).num_seconds() < 60);
    assert!(
        cold["location"]
            .as_str()
            .is_some_and(|l| l.starts_with("shared/src/http/observability.rs:")),
        "{cold}"
    );
    let keys: Vec<&String> = cold.as_object().expect("object").keys().collect();
    assert_eq!(
        keys[..5],
        ["level", "location", "message", "timestamp", "service"],
        "Powertools' keys first"
    );
    assert_eq!(request("8f1b0c4e-warm")["cold_start"], false);

    // The handler's own line (a 5xx's cause) is the invocation's too.
    let error = lines
        .iter()
        .find(|l| l["level"] == "ERROR")
        .expect("the error line");
    assert_eq!(error["message"], "internal error", "{error}");
    assert_eq!(error["function_request_id"], "8f1b0c4e-cold", "{error}");
    assert_eq!(
        error["xray_trace_id"], "1-6752a1f3-5e1c2a0b9d8f7e6d5c4b3a29",
        "{error}"
    );
    assert_eq!(error["cold_start"], true, "{error}");

    // Outside an invocation: the function, no request.
    let outside = lines.last().expect("a line");
    assert_eq!(outside["message"], "outside any invocation");
    assert_eq!(outside["function_name"], "task-api-GetTaskFunction-x1");
    assert_eq!(outside["function_memory_size"], 128);
    assert!(outside.get("function_request_id").is_none(), "{outside}");

    // Every field docs/operations.md's Logs Insights queries name is in
    // the lines they read.
    let queries = insights_queries();
    assert_eq!(queries.len(), 3, "the three queries of the docs");
    for query in &queries {
        for field in query_fields(query) {
            assert!(
                cold.get(&field).is_some() || error.get(&field).is_some(),
                "`{field}` of the query\n{query}\nis in no log line: {cold}"
            );
        }
    }
}

async fn failing(_app: &App<MemoryStore>, _req: Request) -> HandlerResult {
    Err(shared::http::error::ApiError::internal("the table is gone"))
}

/// The ```insights blocks of docs/operations.md.
fn insights_queries() -> Vec<String> {
    let docs = crate::support::read("docs/operations.md");
    docs.split("```insights\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .map(str::to_owned)
        .collect()
}

/// The log fields a Logs Insights query reads: its identifiers, less the
/// language's commands, functions, keywords and the query's own aliases,
/// string literals and `@` fields.
fn query_fields(query: &str) -> Vec<String> {
    const WORDS: &[&str] = &[
        "fields", "filter", "stats", "sort", "limit", "display", "parse", "by", "as", "and", "or",
        "not", "like", "in", "desc", "asc",
    ];
    let unquoted = regex::Regex::new(r#""[^"]*"|@\w+"#)
        .expect("regex")
        .replace_all(query, " ");
    let aliases: Vec<String> = regex::Regex::new(r"\bas\s+(\w+)")
        .expect("regex")
        .captures_iter(&unquoted)
        .map(|c| c[1].to_owned())
        .collect();
    let mut fields: Vec<String> = regex::Regex::new(r"\b([a-z_][a-z0-9_]*)\b(\s*\()?")
        .expect("regex")
        .captures_iter(&unquoted)
        .filter(|c| c.get(2).is_none()) // a function call
        .map(|c| c[1].to_owned())
        .filter(|w| !WORDS.contains(&w.as_str()) && !aliases.contains(w))
        .collect();
    fields.dedup();
    assert!(!fields.is_empty(), "no field in {query}");
    fields
}
