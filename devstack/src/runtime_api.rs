//! A minimal Lambda Runtime API (the interface a `provided.al2023` function
//! polls), enough to start a function binary as Lambda would and time it:
//! when the process first asks for work (its init is over), when each event
//! was handed out, and when its response came back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use tokio::sync::{mpsc, oneshot};

/// What the function answered, and when the event went out.
#[derive(Debug)]
pub struct Invocation {
    pub handed_out: Instant,
    pub answered: Instant,
    /// `Ok(body)` for a response, `Err(body)` for a reported error.
    pub outcome: Result<Bytes, Bytes>,
}

struct Pending {
    handed_out: Instant,
    reply: oneshot::Sender<Invocation>,
}

struct Shared {
    events: tokio::sync::Mutex<mpsc::Receiver<(String, String, oneshot::Sender<Invocation>)>>,
    pending: Mutex<HashMap<String, Pending>>,
    first_poll: OnceLock<Instant>,
}

/// A running Runtime API on a loopback port.
pub struct RuntimeApi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    events: mpsc::Sender<(String, String, oneshot::Sender<Invocation>)>,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start() -> std::io::Result<Self> {
        let (events, receiver) = mpsc::channel(16);
        let shared = Arc::new(Shared {
            events: tokio::sync::Mutex::new(receiver),
            pending: Mutex::new(HashMap::new()),
            first_poll: OnceLock::new(),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            // A streamed response arrives in chunks; it is gathered here
            // (the function's memory is what is measured, not this one's).
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response).layer(axum::extract::DefaultBodyLimit::disable()),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RuntimeApi {
            addr,
            shared,
            events,
            server,
        })
    }

    /// When the function first polled for an event (its init was done).
    pub fn first_poll(&self) -> Option<Instant> {
        self.shared.first_poll.get().copied()
    }

    /// Hands `event` to the function and waits for its answer.
    pub async fn invoke(&self, request_id: &str, event: &str) -> Option<Invocation> {
        let (reply, answer) = oneshot::channel();
        self.events
            .send((request_id.to_owned(), event.to_owned(), reply))
            .await
            .ok()?;
        answer.await.ok()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> (StatusCode, HeaderMap, String) {
    let _ = shared.first_poll.set(Instant::now());
    let Some((id, event, reply)) = shared.events.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), String::new());
    };
    let handed_out = Instant::now();
    if let Ok(mut pending) = shared.pending.lock() {
        pending.insert(id.clone(), Pending { handed_out, reply });
    }
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() + 30_000);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:measured".into(),
    );
    set(
        "lambda-runtime-trace-id",
        // Sampled, as active tracing's first request of a second is: the
        // functions then trace their calls (shared::adapters::xray) when
        // given a daemon (coldstart gives one).
        "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=1".into(),
    );
    (StatusCode::OK, headers, event)
}

fn finish(shared: &Shared, id: &str, outcome: Result<Bytes, Bytes>) -> StatusCode {
    let pending = shared.pending.lock().ok().and_then(|mut p| p.remove(id));
    if let Some(pending) = pending {
        let _ = pending.reply.send(Invocation {
            handed_out: pending.handed_out,
            answered: Instant::now(),
            outcome,
        });
    }
    StatusCode::ACCEPTED
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    finish(&shared, &id, Ok(body))
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    finish(&shared, &id, Err(body))
}

async fn init_error(body: Bytes) -> StatusCode {
    eprintln!("init error: {}", String::from_utf8_lossy(&body));
    StatusCode::ACCEPTED
}
