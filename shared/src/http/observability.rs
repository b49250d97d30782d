//! What every request leaves behind, written once as a `tower` layer around
//! each function: the seed's timing middleware (`X-Process-Time`, seconds),
//! one structured log line (request id, route, method, status, latency,
//! hashed verified caller, cold-start flag) and CloudWatch EMF metrics.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lambda_http::http::HeaderValue;
use lambda_http::tower::{Layer, Service};
use lambda_http::{Request, RequestExt, Response};

use metrics_cloudwatch_embedded::Collector;

pub use super::headers::PROCESS_TIME_HEADER;
use super::logging::Invocation;
use super::request::request_id;
use crate::adapters::xray;
use crate::domain::caller::Caller;

/// Wraps a function's service with [`Observed`].
#[derive(Clone, Default)]
pub struct ObservabilityLayer {
    cold: Arc<AtomicBool>,
    metrics: Option<&'static Collector>,
}

impl ObservabilityLayer {
    /// The first request through a new layer is the cold start.
    pub fn new() -> Self {
        ObservabilityLayer {
            cold: Arc::new(AtomicBool::new(true)),
            metrics: None,
        }
    }

    /// Also flush the request's metrics as one EMF line to stdout (where
    /// Lambda sends it to CloudWatch Logs, which extracts the metrics).
    pub fn with_metrics(mut self, collector: &'static Collector) -> Self {
        self.metrics = Some(collector);
        self
    }
}

/// The EMF collector for this process: namespace `TaskApi`, dimension
/// `function`. Installed once per cold start as the `metrics` recorder.
pub fn init_metrics(function: &str) -> Option<&'static Collector> {
    metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace("TaskApi")
        .with_dimension("function", function.to_owned())
        .init()
        .map_err(|error| tracing::warn!(%error, "metrics disabled"))
        .ok()
}

impl<S> Layer<S> for ObservabilityLayer {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observed {
            inner,
            cold: self.cold.clone(),
            metrics: self.metrics,
        }
    }
}

#[derive(Clone)]
pub struct Observed<S> {
    inner: S,
    cold: Arc<AtomicBool>,
    metrics: Option<&'static Collector>,
}

/// The facts of one request, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub request_id: String,
    /// The route's pattern (`GET /tasks/{task_id}`), never the raw path:
    /// ids stay out of metrics dimensions and log cardinality stays low.
    pub route: String,
    pub method: String,
    pub status: u16,
    pub latency: Duration,
    /// A short hash of the verified caller's id ([`LoggedCaller`]; never
    /// the id itself, never a token, never a header merely sent).
    pub caller: Option<String>,
    pub cold_start: bool,
}

impl RequestRecord {
    fn log(&self) {
        tracing::info!(
            request_id = %self.request_id,
            route = %self.route,
            method = %self.method,
            status = self.status,
            latency_us = self.latency.as_micros() as u64,
            caller = self.caller.as_deref().unwrap_or("-"),
            cold_start = self.cold_start,
            "request"
        );
    }

    fn emit_metrics(&self) {
        let class = match self.status {
            200..=399 => "2xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        metrics::counter!("requests", "route" => self.route.clone()).increment(1);
        if self.status >= 400 {
            metrics::counter!("errors", "route" => self.route.clone(), "class" => class)
                .increment(1);
        }
        metrics::histogram!("latency_ms", "route" => self.route.clone())
            .record(self.latency.as_secs_f64() * 1000.0);
        if self.cold_start {
            metrics::counter!("cold_starts").increment(1);
        }
    }
}

/// The matching route pattern, e.g. `GET /tasks/{task_id}`; unmatched
/// requests are `"$default"`, as API Gateway names them.
pub fn route_of(method: &str, path: &str) -> String {
    super::routes::route_for(method, path).map_or_else(
        || "$default".to_owned(),
        |r| format!("{} {}", r.method, r.path),
    )
}

/// A stable, non-reversible tag for a caller id: 12 base64url characters
/// of its SHA-256. What logs say instead of the id (request lines and
/// audit entries alike, so the two can be joined).
pub fn caller_hash(id: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(id.as_bytes());
    let mut tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    tag.truncate(12);
    tag
}

/// The verified caller of a request, put in its response's extensions by
/// the runtime (which identified it, [`super::identity`]) for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedCaller(pub String);

impl LoggedCaller {
    pub fn of(caller: &Caller) -> Self {
        LoggedCaller(caller_hash(caller.id()))
    }
}

/// Any response body: buffered (`lambda_http::Body`) or streamed. A
/// streamed response is timed and logged when its head is ready (the time
/// to first byte); its body then flows on.
impl<S, F, B> Service<Request> for Observed<S>
where
    S: Service<Request, Response = Response<B>, Error = Infallible, Future = F>,
    F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let started = Instant::now();
        let cold_start = self.cold.swap(false, Ordering::Relaxed);
        let method = req.method().to_string();
        let route = route_of(&method, req.uri().path());
        let request_id = request_id(&req);
        // Every line logged while serving it carries the Lambda
        // invocation's keys (super::logging).
        let mut invocation = req
            .lambda_context_ref()
            .map(|context| Invocation::of(context, cold_start));
        // Locally, the function's own segment (xray::local_segments).
        let local = xray::local_segments().then(xray::LocalSegment::start);
        if let (Some(invocation), Some(local)) = (&mut invocation, &local) {
            invocation.trace_header = Some(local.header.clone());
        }
        let function = invocation
            .as_ref()
            .map(|i| i.function_name.clone())
            .unwrap_or_default();
        let response = self.inner.call(req);
        let metrics = self.metrics;
        let served = async move {
            let Ok(mut response) = response.await;
            let latency = started.elapsed();
            if let Ok(value) = HeaderValue::from_str(&format!("{:.6}", latency.as_secs_f64())) {
                response.headers_mut().insert(PROCESS_TIME_HEADER, value);
            }
            let caller = response
                .extensions()
                .get::<LoggedCaller>()
                .map(|logged| logged.0.clone());
            let record = RequestRecord {
                request_id,
                route,
                method,
                status: response.status().as_u16(),
                latency,
                caller,
                cold_start,
            };
            record.log();
            record.emit_metrics();
            if let Some(local) = local {
                let path = record
                    .route
                    .split_once(' ')
                    .map_or(&*record.route, |(_, p)| p);
                let http = serde_json::json!({
                    "request": { "method": record.method, "url": path }
                });
                local.end(&function, Some(http), Some(record.status));
            }
            if let Some(collector) = metrics {
                let flushed = collector
                    .set_property("request_id", record.request_id.clone())
                    .flush(std::io::stdout().lock());
                if let Err(error) = flushed {
                    tracing::warn!(%error, "metrics not written");
                }
            }
            Ok(response)
        };
        match invocation {
            Some(invocation) => {
                // And every call it makes is traced under its segment.
                let traced = xray::in_trace(invocation.trace_header.as_deref(), served);
                Box::pin(invocation.scope(traced))
            }
            None => Box::pin(served),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_named_by_pattern() {
        assert_eq!(
            route_of("GET", "/tasks/0193f1d2-7c4e"),
            "GET /tasks/{task_id}"
        );
        assert_eq!(route_of("POST", "/tasks"), "POST /tasks");
        assert_eq!(route_of("POST", "/tasks/x"), "$default");
        assert_eq!(route_of("GET", "/nowhere"), "$default");
    }
}
