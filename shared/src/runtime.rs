//! The Lambda plumbing every function shares, so each `main.rs` is one
//! line: read the configuration and build the DynamoDB client once per cold
//! start, then serve requests with a handler: identify the caller once,
//! run the handler, map its errors to responses (logging a 5xx's whole
//! cause), and log one line per request.

use std::convert::Infallible;
use std::future::Future;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use lambda_http::tower::Layer;
use lambda_http::{Body, Request, Response, service_fn};

use crate::adapters::dynamo::{self, DynamoStore};
use crate::adapters::token::TokenVerifier;
use crate::config::Config;
use crate::http::cors::Cors;
use crate::http::error::{ApiError, chain};
use crate::http::identity::{Authenticator, Identity};
use crate::http::logging::{Invocation, PowertoolsJson};
use crate::http::observability::{LoggedCaller, ObservabilityLayer, init_metrics};
use crate::http::request::request_id;
use crate::http::streaming::{StreamedBody, buffered};
use crate::http::ticket::TicketKeys;

/// The functions fed by an event source rather than an HTTP route (see
/// [`start_events`]): each is a crate under `functions/` with no route.
pub const EVENT_FUNCTIONS: &[&str] = &["audit"];

/// What a handler may use: checked configuration and the store; and what
/// the runtime uses around it: who the caller is (with the bearer-token
/// check when configured, which fetches nothing until a token comes) and
/// local CORS.
#[derive(Debug)]
pub struct App<S> {
    pub config: Config,
    pub store: S,
    pub authenticator: Authenticator,
    pub cors: Cors,
    /// The key of the feed's tickets, once read ([`TicketKeys`]).
    pub tickets: TicketKeys,
}

/// Whether this build stands in for API Gateway's JWT authorizer: the
/// functions deployed behind it then check bearer tokens themselves when
/// `JWT_ISSUER` is set, as `cargo lambda watch` has no authorizer. The
/// tests' builds and `make dev` enable the `local-authorizer` feature;
/// `sam build` does not, so those binaries do not link the token check
/// (JWKS client, TLS, JWT parsing: about 0.25 MB of a storage function
/// and 1.6 MB of `me`).
const LOCAL_AUTHORIZER: bool = cfg!(feature = "local-authorizer");

/// The refusal of a function behind the JWT authorizer that is given
/// `JWT_ISSUER` (local token mode) but built without the authorizer's
/// stand-in (`local_authorizer`): it would serve callers nobody verified.
pub fn authorizer_stand_in_missing(config: &Config, local_authorizer: bool) -> Option<String> {
    (config.token.is_some() && !local_authorizer).then(|| {
        "configuration error: JWT_ISSUER is set, but this function is deployed behind \
         the API's JWT authorizer and was built without its local stand-in; build \
         with `--features shared/local-authorizer` (as make dev does) for local token mode"
            .to_string()
    })
}

impl<S> App<S> {
    /// An app that checks bearer tokens itself when `JWT_ISSUER` is set.
    pub fn new(config: Config, store: S) -> Self {
        let tokens = config.token.clone().map(TokenVerifier::new);
        Self::with_tokens(config, store, tokens)
    }

    /// The app of a function deployed behind the JWT authorizer: it checks
    /// tokens only in a build with the authorizer's local stand-in
    /// ([`LOCAL_AUTHORIZER`]); otherwise no token check is built (nor
    /// linked), and `JWT_ISSUER` stops the cold start.
    fn behind_authorizer(config: Config, store: S) -> Result<Self, String> {
        if let Some(refusal) = authorizer_stand_in_missing(&config, LOCAL_AUTHORIZER) {
            return Err(refusal);
        }
        Ok(if LOCAL_AUTHORIZER {
            Self::new(config, store)
        } else {
            Self::with_tokens(config, store, None)
        })
    }

    /// For a function with no caller (a public route's, or one fed by an
    /// event source): no bearer-token check is built (nor linked).
    fn public(config: Config, store: S) -> Result<Self, String> {
        Ok(Self::with_tokens(config, store, None))
    }

    /// For the streamed functions, behind Function URLs with no
    /// authorizer in front: they check tokens in every build.
    fn checking_tokens(config: Config, store: S) -> Result<Self, String> {
        Ok(Self::new(config, store))
    }

    fn with_tokens(config: Config, store: S, tokens: Option<TokenVerifier>) -> Self {
        let authenticator = Authenticator::new(config.identity, tokens);
        let header_identity = config.identity == crate::config::IdentityMode::Header;
        let cors = Cors::new(config.cors_origins.clone(), header_identity);
        App {
            config,
            store,
            authenticator,
            cors,
            tickets: TicketKeys::default(),
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
    cold_start(connect, App::behind_authorizer, move |app| {
        serve(move |req| respond(app, handler, req))
    })
}

/// [`start`] for a function that never touches storage (me, and routes
/// made with `make route STORAGE=none`): no DynamoDB client is built, and
/// the AWS SDK is not even linked into its binary.
pub fn start_without_storage<H, Fut>(handler: H) -> ExitCode
where
    H: Fn(&'static App<()>, Request) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send,
{
    cold_start(
        |_| (),
        App::behind_authorizer,
        move |app| serve(move |req| respond(app, handler, req)),
    )
}

/// [`start_without_storage`] for a public route's function (health, docs,
/// the fallback): it has no caller, so none is looked for: no bearer token
/// is checked (the token check, its JWKS client and TLS stack are not
/// linked into its binary) and its request log names no caller.
pub fn start_public<H, Fut>(handler: H) -> ExitCode
where
    H: Fn(&'static App<()>, Request) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send,
{
    cold_start(
        |_| (),
        App::public,
        move |app| serve(move |req| respond_public(app, handler, req)),
    )
}

/// The buffered HTTP serving loop of [`start`], [`start_without_storage`]
/// and [`start_public`]: `respond` answers each request.
async fn serve<R, Fut>(respond: R) -> Result<(), lambda_runtime::Error>
where
    R: Fn(Request) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send,
{
    let service =
        service_fn(move |req: Request| async move { Ok::<_, Infallible>(respond(req).await) });
    lambda_http::run(observability_layer().layer(service)).await
}

/// The DynamoDB store, its client built once per cold start.
fn connect(config: &Config) -> DynamoStore {
    DynamoStore::new(dynamo::client(&config.aws), config.table_name.clone())
        .with_change_retention(config.change_retention_days)
}

/// Runs a Lambda function whose responses are streamed (Lambda's
/// `RESPONSE_STREAM` invoke mode; `cargo lambda watch` streams them too):
/// `handler` answers with a head and a body that is sent chunk by chunk as
/// it is produced ([`crate::http::streaming`]). Errors before the head are
/// answered as in [`start`].
pub fn start_streaming<H, Fut>(handler: H) -> ExitCode
where
    H: Fn(&'static App<DynamoStore>, Request) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = StreamedResult> + Send,
{
    cold_start(connect, App::checking_tokens, |app| async move {
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
    cold_start(connect, App::public, |app| async move {
        static COLD: AtomicBool = AtomicBool::new(true);
        let service =
            lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<E>| async move {
                let cold_start = COLD.swap(false, Ordering::Relaxed);
                Ok::<_, Infallible>(invoke_event(app, handler, event, cold_start).await)
            });
        lambda_runtime::run(service).await
    })
}

/// Serves one event of [`start_events`]: its lines logged with the
/// invocation's keys, its calls traced under the invocation's segment.
pub async fn invoke_event<'a, S, E, R, H, Fut>(
    app: &'a App<S>,
    handler: H,
    event: lambda_runtime::LambdaEvent<E>,
    cold_start: bool,
) -> R
where
    H: FnOnce(&'a App<S>, E) -> Fut,
    Fut: Future<Output = R>,
{
    use crate::adapters::xray;
    let mut invocation = Invocation::of(&event.context, cold_start);
    // Locally, the function's own segment (xray::local_segments).
    let local = xray::local_segments().then(xray::LocalSegment::start);
    if let Some(local) = &local {
        invocation.trace_header = Some(local.header.clone());
    }
    let function = invocation.function_name.clone();
    let traced = xray::in_trace(
        invocation.trace_header.as_deref(),
        handler(app, event.payload),
    );
    let answer = invocation.scope(traced).await;
    if let Some(local) = local {
        local.end(&function, None, None);
    }
    answer
}

/// Once per cold start: configuration, logs, the async runtime and the
/// store; then `serve` until the Lambda runtime stops.
fn cold_start<S, F, Fut>(
    connect: impl FnOnce(&Config) -> S,
    app: impl FnOnce(Config, S) -> Result<App<S>, String>,
    serve: F,
) -> ExitCode
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
        match app(config, store) {
            // Lives as long as the process, as the SDK client must.
            Ok(app) => serve(Box::leak(Box::new(app))).await.map_err(Some),
            Err(refusal) => {
                eprintln!("{refusal}");
                Err(None)
            }
        }
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(Some(error)) => {
            tracing::error!(%error, "runtime stopped");
            ExitCode::FAILURE
        }
        Err(None) => ExitCode::FAILURE,
    }
}

/// JSON logs when Lambda's log format says so (or locally on request),
/// with Powertools for AWS Lambda's keys ([`PowertoolsJson`]); plain text
/// otherwise. Either way through [`log_filter`]: `LOG_LEVEL` is the level
/// of this project's code only.
fn init_tracing(level: tracing::Level) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false);
    let _already_set = if json {
        builder
            .event_format(PowertoolsJson::from_env())
            .finish()
            .with(log_filter(level))
            .try_init()
    } else {
        builder.finish().with(log_filter(level)).try_init()
    };
}

/// The crates whose lines `LOG_LEVEL` governs: this project's. Their
/// debug and trace lines name what happened (a rejected token's rule, a
/// JWKS fetch, a record already recorded), never a token, a ticket, a body
/// or a table item.
pub const OWN_LOG_TARGETS: &[&str] = &["shared", "devstack"];

/// The most verbose level of every other crate, whatever `LOG_LEVEL` says.
/// Below it they print what must never reach a log: lambda_runtime's
/// `trace` is the raw invocation event (the `Authorization` header, a feed
/// ticket in the query, the request body), the AWS SDK's `debug`/`trace`
/// the requests and responses to DynamoDB (table items), hyper, h2 and
/// rustls the bytes on the wire.
pub const OTHER_CRATES_MAX_LEVEL: tracing::level_filters::LevelFilter =
    tracing::level_filters::LevelFilter::INFO;

/// Per-target filtering: an allow-list, so a crate added tomorrow (or one
/// nobody thought of: `lambda_runtime_api_client`, `aws_smithy_*`,
/// `tower`) is capped without being named. This project's crates
/// ([`OWN_LOG_TARGETS`]) log at `level`; every other target at `level` or
/// [`OTHER_CRATES_MAX_LEVEL`], whichever is less verbose. The functions'
/// own crates (`functions/*`) log nothing: each `main.rs` is one call
/// into `shared`.
pub fn log_filter(level: tracing::Level) -> tracing_subscriber::filter::Targets {
    let own = tracing::level_filters::LevelFilter::from_level(level);
    OWN_LOG_TARGETS.iter().fold(
        tracing_subscriber::filter::Targets::new().with_default(own.min(OTHER_CRATES_MAX_LEVEL)),
        |filter, target| filter.with_target(*target, own),
    )
}

/// Serves one request: identifies the caller (once: handlers read it with
/// [`crate::http::identity::caller`]), runs `handler` and turns an error
/// into its response, logging the whole cause of a 5xx (which the client
/// never sees). Timing and the per-request log line are the
/// [`ObservabilityLayer`]'s; the verified caller goes to it with the
/// response.
pub async fn respond<'a, S, H, Fut>(app: &'a App<S>, handler: H, req: Request) -> Response<Body>
where
    H: FnOnce(&'a App<S>, Request) -> Fut,
    Fut: Future<Output = HandlerResult>,
{
    if let Some(preflight) = app.cors.preflight(&req) {
        return preflight;
    }
    // The functions answering this way are behind the JWT authorizer
    // (App::behind_authorizer): only a build with its local stand-in checks
    // tokens here, and only such a build links the check. (A `cfg`, not an
    // `if LOCAL_AUTHORIZER`: an await left in a dead branch still keeps its
    // future, and the whole token check, in the binary.)
    #[cfg(feature = "local-authorizer")]
    let identity = app.authenticator.identify(&req).await;
    #[cfg(not(feature = "local-authorizer"))]
    let identity = app.authenticator.identify_by_authorizer(&req);
    answer(app, handler, req, |response| response, Some(identity)).await
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
    // Local CORS (off unless CORS_ALLOWED_ORIGINS is set; deployed, API
    // Gateway answers CORS): a preflight never reaches the handler.
    if let Some(preflight) = app.cors.preflight(&req) {
        return buffered(preflight);
    }
    let identity = app.authenticator.identify(&req).await;
    answer(app, handler, req, buffered, Some(identity)).await
}

/// [`respond`] for a public route's function ([`start_public`]): no
/// caller is looked for.
async fn respond_public<'a, S, H, Fut>(app: &'a App<S>, handler: H, req: Request) -> Response<Body>
where
    H: FnOnce(&'a App<S>, Request) -> Fut,
    Fut: Future<Output = HandlerResult>,
{
    if let Some(preflight) = app.cors.preflight(&req) {
        return preflight;
    }
    answer(app, handler, req, |response| response, None).await
}

/// The rest of [`respond_with`], after the caller was identified (or, for
/// a public route's function, with no caller: `None`).
async fn answer<'a, S, H, Fut, B>(
    app: &'a App<S>,
    handler: H,
    mut req: Request,
    buffered: fn(Response<Body>) -> Response<B>,
    identity: Option<Identity>,
) -> Response<B>
where
    H: FnOnce(&'a App<S>, Request) -> Fut,
    Fut: Future<Output = Result<Response<B>, ApiError>>,
{
    let request_id = request_id(&req);
    let cors = &app.cors;
    let origin = cors.allowed_origin(req.headers());
    let logged = identity
        .as_ref()
        .and_then(Identity::caller)
        .map(LoggedCaller::of);
    if let Some(identity) = identity {
        req.extensions_mut().insert(identity);
    }
    let mut response = match handler(app, req).await {
        Ok(response) => response,
        Err(error) => {
            match &error {
                ApiError::Internal(_) => {
                    tracing::error!(%request_id, cause = %chain(&error), "internal error");
                }
                ApiError::Unavailable(_) => {
                    tracing::warn!(%request_id, cause = %chain(&error), "service unavailable");
                }
                _ => {}
            }
            buffered(error.into_response(&request_id))
        }
    };
    if let Some(logged) = logged {
        response.extensions_mut().insert(logged);
    }
    cors.decorate(origin, &mut response);
    response
}

#[cfg(test)]
mod tests {
    /// The filter of every function's logs (shared::runtime::log_filter):
    /// this project's crates at LOG_LEVEL, everything else at info at most.
    #[test]
    fn logs_of_other_crates_stop_at_info() {
        use tracing::Level;
        let filter = super::log_filter(Level::TRACE);
        for target in ["shared", "shared::adapters::token", "devstack::issuer"] {
            assert!(filter.would_enable(target, &Level::TRACE), "{target}");
        }
        for target in [
            "lambda_runtime::layers::api_response",
            "lambda_runtime_api_client",
            "lambda_http",
            "aws_smithy_runtime::client::http",
            "aws_sdk_dynamodb",
            "hyper_util",
            "h2",
            "rustls",
            "tower",
            "a_crate_added_next_year",
        ] {
            assert!(!filter.would_enable(target, &Level::DEBUG), "{target}");
            assert!(filter.would_enable(target, &Level::INFO), "{target}");
        }
        let quiet = super::log_filter(Level::WARN);
        assert!(!quiet.would_enable("lambda_runtime", &Level::INFO));
        assert!(!quiet.would_enable("shared", &Level::INFO));
        assert!(quiet.would_enable("shared", &Level::WARN));
    }
}
