//! The Lambda plumbing every function shares, so each `main.rs` is one
//! line: read the configuration and build the DynamoDB client once per cold
//! start, then serve requests with a handler, mapping its errors to
//! responses and logging one line per request.

use std::convert::Infallible;
use std::future::Future;
use std::process::ExitCode;

use lambda_http::tower::Layer;
use lambda_http::{Body, Request, Response, service_fn};

use crate::config::Config;
use crate::error::ApiError;
use crate::observability::{ObservabilityLayer, init_metrics};
use crate::request::request_id;
use crate::store::dynamo::{self, DynamoStore};
use crate::streaming::{StreamedBody, buffered};
use crate::token::TokenVerifier;

/// The functions fed by an event source rather than an HTTP route (see
/// [`start_events`]): each is a crate under `functions/` with no route.
pub const EVENT_FUNCTIONS: &[&str] = &["audit"];

/// What a handler may use: checked configuration, the store, and the
/// bearer-token check of the streamed functions (built from the
/// configuration; it fetches nothing until a token comes).
#[derive(Debug)]
pub struct App<S> {
    pub config: Config,
    pub store: S,
    pub tokens: Option<TokenVerifier>,
}

impl<S> App<S> {
    pub fn new(config: Config, store: S) -> Self {
        let tokens = config.token.clone().map(TokenVerifier::new);
        App {
            config,
            store,
            tokens,
        }
    }
}

/// A handler's result: a response, or an error [`respond`] maps to one.
pub type HandlerResult = Result<Response<Body>, ApiError>;

/// Runs a Lambda function serving `handler` until the runtime stops it.
/// A configuration error stops the cold start with a message naming the
/// variable (Lambda reports it as an init failure).
pub fn start<H, Fut>(handler: H) -> ExitCode
where
    H: Fn(&'static App<DynamoStore>, Request) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send,
{
    cold_start(connect, move |app| serve(app, handler))
}

/// [`start`] for a function that never touches storage (health, me, the
/// fallback, docs): no DynamoDB client is built, and the AWS SDK is not
/// even linked into its binary.
pub fn start_without_storage<H, Fut>(handler: H) -> ExitCode
where
    H: Fn(&'static App<()>, Request) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send,
{
    cold_start(|_| (), move |app| serve(app, handler))
}

/// The buffered HTTP serving loop of [`start`] and [`start_without_storage`].
async fn serve<S, H, Fut>(app: &'static App<S>, handler: H) -> Result<(), lambda_runtime::Error>
where
    S: Send + Sync + 'static,
    H: Fn(&'static App<S>, Request) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send,
{
    let service = service_fn(move |req: Request| async move {
        Ok::<_, Infallible>(respond(app, handler, req).await)
    });
    lambda_http::run(observability_layer().layer(service)).await
}

/// The DynamoDB store, its client built once per cold start.
fn connect(config: &Config) -> DynamoStore {
    DynamoStore::new(dynamo::client(&config.aws), config.table_name.clone())
}

/// Runs a Lambda function whose responses are streamed (Lambda's
/// `RESPONSE_STREAM` invoke mode; `cargo lambda watch` streams them too):
/// `handler` answers with a head and a body that is sent chunk by chunk as
/// it is produced ([`crate::streaming`]). Errors before the head are
/// answered as in [`start`].
pub fn start_streaming<H, Fut>(handler: H) -> ExitCode
where
    H: Fn(&'static App<DynamoStore>, Request) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = StreamedResult> + Send,
{
    cold_start(connect, |app| async move {
        let layer = observability_layer();
        // A client that goes away mid-stream can break the connection to
        // the Runtime API under the runtime, and lambda_runtime then returns
        // the error of the next call on it. The process itself is fine:
        // poll for the next invocation again rather than exit (a crash, to
        // Lambda, and a new cold start). Failing again at once, 3 times in
        // a row, stops it.
        let mut quick_failures = 0;
        loop {
            let started = std::time::Instant::now();
            let service = service_fn(move |req: Request| async move {
                Ok::<_, Infallible>(respond_with(app, handler, req, buffered).await)
            });
            let Err(error) = lambda_http::run_with_streaming_response(layer.layer(service)).await
            else {
                return Ok(());
            };
            quick_failures = if started.elapsed() < std::time::Duration::from_secs(1) {
                quick_failures + 1
            } else {
                0
            };
            if quick_failures >= 3 {
                return Err(error);
            }
            tracing::warn!(%error, "runtime interrupted; polling for the next invocation again");
        }
    })
}

/// A streaming handler's result.
pub type StreamedResult = Result<Response<StreamedBody>, ApiError>;

/// The per-request log line, timing header and metrics of every function.
fn observability_layer() -> ObservabilityLayer {
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into());
    let layer = ObservabilityLayer::new();
    match init_metrics(&function) {
        Some(collector) => layer.with_metrics(collector),
        None => layer,
    }
}

/// Runs a Lambda function fed by an event source (not API Gateway), such
/// as the table's DynamoDB stream: `handler` gets each event's payload and
/// answers it (a batch response, say); it cannot fail the invocation.
/// Same cold start as [`start`].
pub fn start_events<E, R, H, Fut>(handler: H) -> ExitCode
where
    E: serde::de::DeserializeOwned + Send + 'static,
    R: serde::Serialize + Send + 'static,
    H: Fn(&'static App<DynamoStore>, E) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = R> + Send,
{
    cold_start(connect, |app| async move {
        let service =
            lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<E>| async move {
                Ok::<_, Infallible>(handler(app, event.payload).await)
            });
        lambda_runtime::run(service).await
    })
}

/// Once per cold start: configuration, logs, the async runtime and the
/// store; then `serve` until the Lambda runtime stops.
fn cold_start<S, F, Fut>(connect: impl FnOnce(&Config) -> S, serve: F) -> ExitCode
where
    S: Send + Sync + 'static,
    F: FnOnce(&'static App<S>) -> Fut,
    Fut: Future<Output = Result<(), lambda_runtime::Error>>,
{
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    init_tracing(config.log_level);
    // Lambda sends one request at a time to an instance: one thread is enough.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async move {
        let store = connect(&config);
        // Lives as long as the process, as the SDK client must.
        let app: &'static App<S> = Box::leak(Box::new(App::new(config, store)));
        serve(app).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "runtime stopped");
            ExitCode::FAILURE
        }
    }
}

/// JSON logs when Lambda's log format says so (or locally on request),
/// plain text otherwise.
fn init_tracing(level: tracing::Level) {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false);
    let _already_set = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Serves one request: runs `handler` and turns an error into its
/// response, logging the cause of a 5xx (which the client never sees).
/// Timing and the per-request log line are the [`ObservabilityLayer`]'s.
pub async fn respond<'a, S, H, Fut>(app: &'a App<S>, handler: H, req: Request) -> Response<Body>
where
    H: FnOnce(&'a App<S>, Request) -> Fut,
    Fut: Future<Output = HandlerResult>,
{
    respond_with(app, handler, req, |response| response).await
}

/// [`respond`] for any response body: `buffered` turns the buffered
/// answers made here (an error, a preflight) into that body.
pub async fn respond_with<'a, S, H, Fut, B>(
    app: &'a App<S>,
    handler: H,
    req: Request,
    buffered: fn(Response<Body>) -> Response<B>,
) -> Response<B>
where
    H: FnOnce(&'a App<S>, Request) -> Fut,
    Fut: Future<Output = Result<Response<B>, ApiError>>,
{
    let request_id = request_id(&req);
    // Local CORS (off unless CORS_ALLOWED_ORIGINS is set; deployed, API
    // Gateway answers CORS): a preflight never reaches the handler.
    let cors = &app.config.cors;
    if let Some(preflight) = cors.preflight(&req) {
        return buffered(preflight);
    }
    let origin = cors.allowed_origin(req.headers());
    let mut response = match handler(app, req).await {
        Ok(response) => response,
        Err(error) => {
            match &error {
                ApiError::Internal(cause) => tracing::error!(%request_id, %cause, "internal error"),
                ApiError::Unavailable(cause) => {
                    tracing::warn!(%request_id, %cause, "dynamodb unavailable")
                }
                _ => {}
            }
            buffered(error.into_response(&request_id))
        }
    };
    cors.decorate(origin, &mut response);
    response
}
