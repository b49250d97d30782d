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
