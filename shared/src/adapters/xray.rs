//! X-Ray subsegments of the calls a function makes (each DynamoDB call,
//! the JWKS fetch), sent as Lambda's X-Ray daemon accepts them: one UDP
//! datagram per document to `AWS_XRAY_DAEMON_ADDRESS`, a
//! `{"format":"json","version":1}` header line, then the JSON document.
//!
//! With active tracing (template.yaml, Globals `Tracing: Active`) Lambda
//! records the function's segment and gives each invocation a trace header
//! (`Root=1-...;Parent=<segment id>;Sampled=1`); the runtime runs the
//! invocation in its scope ([`in_trace`]), and each call made in it becomes
//! a subsegment of that segment (`parent_id` = `Parent`). Nothing is sent
//! when the invocation is not sampled, outside an invocation, or with no
//! daemon address (local runs without devstack's listener).
//!
//! A small sender of our own: serde_json and a std UDP socket, no X-Ray or
//! OpenTelemetry SDK (docs/operations.md, "Traces").

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use serde_json::{Value, json};

/// What the daemon expects before each document.
pub const HEADER: &str = "{\"format\":\"json\",\"version\":1}\n";

/// The trace an invocation belongs to: its `X-Amzn-Trace-Id`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub root: String,
    /// The function segment's id: the parent of our subsegments.
    pub parent: String,
    pub sampled: bool,
}

impl Trace {
    /// `Root=1-...;Parent=...;Sampled=1`; `None` without a root or parent.
    pub fn parse(header: &str) -> Option<Trace> {
        let (mut root, mut parent, mut sampled) = (None, None, false);
        for part in header.split(';') {
            match part.trim().split_once('=') {
                Some(("Root", value)) => root = Some(value.to_owned()),
                Some(("Parent", value)) => parent = Some(value.to_owned()),
                Some(("Sampled", value)) => sampled = value == "1",
                _ => {}
            }
        }
        Some(Trace {
            root: root?,
            parent: parent?,
            sampled,
        })
    }
}

tokio::task_local! {
    static CURRENT: Trace;
}

/// Runs `future` in the invocation's trace (if it has one).
pub fn in_trace<F: std::future::Future>(
    header: Option<&str>,
    future: F,
) -> impl std::future::Future<Output = F::Output> + use<F> {
    let trace = header.and_then(Trace::parse);
    async move {
        match trace {
            Some(trace) => CURRENT.scope(trace, future).await,
            None => future.await,
        }
    }
}

/// The trace the current task runs in (sampled or not), to carry into
/// work polled outside it ([`in_trace_sync`]).
pub fn captured() -> Option<Trace> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `f` in `trace` (a [`captured`] one), synchronously.
pub fn in_trace_sync<R>(trace: Option<Trace>, f: impl FnOnce() -> R) -> R {
    match trace {
        Some(trace) => CURRENT.sync_scope(trace, f),
        None => f(),
    }
}

/// The sampled trace of the current invocation, if any.
pub fn current() -> Option<Trace> {
    CURRENT.try_with(Clone::clone).ok().filter(|t| t.sampled)
}

/// The daemon of this process (`AWS_XRAY_DAEMON_ADDRESS`), found once.
pub fn daemon() -> Option<Arc<Daemon>> {
    static DAEMON: std::sync::OnceLock<Option<Arc<Daemon>>> = std::sync::OnceLock::new();
    DAEMON.get_or_init(Daemon::from_env).clone()
}

/// Local runs (`make dev`: devstack sets `XRAY_LOCAL_SEGMENTS=1` beside
/// its daemon's address): no Lambda records the function's segment, so the
/// function starts a sampled trace for every invocation and writes that
/// segment itself ([`LocalSegment`]). Never set deployed.
pub fn local_segments() -> bool {
    static LOCAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LOCAL.get_or_init(|| std::env::var("XRAY_LOCAL_SEGMENTS").is_ok_and(|v| v == "1"))
}

/// The function's own segment of a local invocation: started with a new
/// sampled trace, sent when the invocation ends.
#[derive(Debug, Clone)]
pub struct LocalSegment {
    pub header: String,
    trace: Trace,
    start: f64,
}

impl LocalSegment {
    /// A new trace (`Root=1-<epoch hex>-<24 hex>`), this segment its parent.
    pub fn start() -> LocalSegment {
        let start = now();
        let mut unique = uuid::Uuid::new_v4().simple().to_string();
        unique.truncate(24);
        let trace = Trace {
            root: format!("1-{:08x}-{unique}", start as u64),
            parent: segment_id(),
            sampled: true,
        };
        LocalSegment {
            header: format!("Root={};Parent={};Sampled=1", trace.root, trace.parent),
            trace,
            start,
        }
    }

    /// Sends the segment: `name` the function, `http` the request's facts.
    pub fn end(&self, name: &str, http: Option<Value>, status: Option<u16>) {
        let Some(daemon) = daemon() else { return };
        let mut doc = json!({
            "name": name,
            "id": self.trace.parent,
            "trace_id": self.trace.root,
            "origin": "AWS::Lambda::Function",
            "start_time": self.start,
            "end_time": now(),
            "error": status.is_some_and(|s| (400..500).contains(&s)),
            "fault": status.is_some_and(|s| s >= 500),
        });
        if let Some(mut http) = http {
            if let Some(status) = status {
                http["response"] = json!({ "status": status });
            }
            doc["http"] = http;
        }
        daemon.send(&doc);
    }
}

/// The X-Ray daemon's UDP endpoint.
#[derive(Debug)]
pub struct Daemon {
    socket: UdpSocket,
    address: SocketAddr,
}

impl Daemon {
    /// The daemon Lambda runs beside a traced function
    /// (`AWS_XRAY_DAEMON_ADDRESS`, `host:port` or `tcp:... udp:host:port`).
    pub fn from_env() -> Option<Arc<Daemon>> {
        let value = std::env::var("AWS_XRAY_DAEMON_ADDRESS").ok()?;
        Daemon::at(udp_address(&value)?).ok().map(Arc::new)
    }

    /// A daemon (or a test's listener) at `address`.
    pub fn at(address: SocketAddr) -> std::io::Result<Daemon> {
        let bind: SocketAddr = if address.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let socket = UdpSocket::bind(bind)?;
        socket.set_nonblocking(true)?;
        Ok(Daemon { socket, address })
    }

    /// Sends one document; a lost datagram only loses a subsegment.
    pub fn send(&self, document: &Value) {
        let datagram = format!("{HEADER}{document}");
        if let Err(error) = self.socket.send_to(datagram.as_bytes(), self.address) {
            tracing::debug!(%error, "X-Ray subsegment not sent");
        }
    }
}

/// The UDP address of an `AWS_XRAY_DAEMON_ADDRESS` value.
fn udp_address(value: &str) -> Option<SocketAddr> {
    let udp = value
        .split_whitespace()
        .find_map(|part| part.strip_prefix("udp:"))
        .unwrap_or(value);
    udp.to_socket_addrs().ok()?.next()
}

/// Seconds since the epoch, as X-Ray times are.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A new 16-hex-digit segment id.
pub fn segment_id() -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(16);
    id
}

/// One finished call: what a subsegment says.
#[derive(Debug, Clone, Default)]
pub struct Call {
    pub name: String,
    /// `aws` for AWS SDK calls, `remote` for other HTTP calls.
    pub namespace: &'static str,
    pub start: f64,
    pub end: f64,
    /// The subsegment's `aws` (or `http`) facts.
    pub aws: Option<Value>,
    pub http: Option<Value>,
    pub metadata: Option<Value>,
    /// HTTP status, if an answer came.
    pub status: Option<u16>,
    pub throttled: bool,
    /// Why it failed (`None`: it did not).
    pub failure: Option<String>,
}

impl Call {
    /// The subsegment document of this call in `trace`.
    pub fn document(&self, trace: &Trace) -> Value {
        let mut doc = json!({
            "name": self.name,
            "id": segment_id(),
            "trace_id": trace.root,
            "parent_id": trace.parent,
            "type": "subsegment",
            "namespace": self.namespace,
            "start_time": self.start,
            "end_time": self.end,
        });
        let (error, fault) = match (self.status, &self.failure) {
            (_, None) => (false, false),
            (Some(status), Some(_)) if (400..500).contains(&status) => (true, false),
            _ => (false, true),
        };
        doc["error"] = error.into();
        doc["fault"] = fault.into();
        if self.throttled {
            doc["throttle"] = true.into();
        }
        if let Some(failure) = &self.failure {
            doc["cause"] = json!({ "exceptions": [{ "id": segment_id(), "message": failure }] });
        }
        if let Some(aws) = &self.aws {
            doc["aws"] = aws.clone();
        }
        let mut http = self.http.clone().unwrap_or_else(|| json!({}));
        if let Some(status) = self.status {
            http["response"] = json!({ "status": status });
        }
        if http.as_object().is_some_and(|h| !h.is_empty()) {
            doc["http"] = http;
        }
        if let Some(metadata) = &self.metadata {
            doc["metadata"] = metadata.clone();
        }
        doc
    }
}

/// Sends `call` as a subsegment of the current invocation's segment, if
/// it is sampled and there is a daemon.
pub fn record(daemon: Option<&Daemon>, call: &Call) {
    if let (Some(daemon), Some(trace)) = (daemon, current()) {
        daemon.send(&call.document(&trace));
    }
}

/// The DynamoDB client's interceptor: one subsegment per operation (all
/// its attempts), with the operation, table(s), consumed capacity,
/// retries and outcome.
#[derive(Debug, Clone)]
pub struct DynamoDbTracing {
    daemon: Arc<Daemon>,
}

impl DynamoDbTracing {
    pub fn new(daemon: Arc<Daemon>) -> Self {
        DynamoDbTracing { daemon }
    }
}

/// One operation in flight (in the SDK's config bag).
#[derive(Debug, Clone)]
struct InFlight {
    trace: Trace,
    start: f64,
    attempts: u32,
    tables: Vec<String>,
}

impl Storable for InFlight {
    type Storer = StoreReplace<Self>;
}

impl Intercept for DynamoDbTracing {
    fn name(&self) -> &'static str {
        "XRayDynamoDbTracing"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(trace) = current() {
            cfg.interceptor_state().store_put(InFlight {
                trace,
                start: now(),
                attempts: 0,
                tables: Vec::new(),
            });
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(mut call) = cfg.load::<InFlight>().cloned() else {
            return Ok(());
        };
        call.attempts += 1;
        if call.tables.is_empty() {
            call.tables = context
                .request()
                .body()
                .bytes()
                .and_then(|body| serde_json::from_slice::<Value>(body).ok())
                .map(|body| tables_of(&body))
                .unwrap_or_default();
        }
        cfg.interceptor_state().store_put(call);
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(call) = cfg.load::<InFlight>() else {
            return Ok(());
        };
        let operation = cfg
            .load::<Metadata>()
            .map_or_else(|| "unknown".to_owned(), |m| m.name().to_owned());
        let response = context.response();
        let status = response.map(|r| r.status().as_u16());
        let request_id = response
            .and_then(|r| r.headers().get("x-amzn-requestid"))
            .map(str::to_owned);
        let body = response
            .and_then(|r| r.body().bytes())
            .and_then(|body| serde_json::from_slice::<Value>(body).ok());
        let failed = context.output_or_error().is_some_and(|o| o.is_err());
        let error_type = body
            .as_ref()
            .and_then(|b| b["__type"].as_str())
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned());
        let failure = failed.then(|| {
            error_type.clone().unwrap_or_else(|| {
                context
                    .output_or_error()
                    .and_then(|o| o.err())
                    .map_or_else(|| "failed".to_owned(), |e| format!("{e:?}"))
            })
        });
        let throttled = error_type.as_deref().is_some_and(|t| {
            t.contains("Throttl") || t == "ProvisionedThroughputExceededException"
        });
        let mut aws = json!({
            "operation": operation,
            "retries": call.attempts.saturating_sub(1),
        });
        if let Some(table) = call.tables.first() {
            aws["table_name"] = table.as_str().into();
        }
        if call.tables.len() > 1 {
            aws["table_names"] = call.tables.clone().into();
        }
        if let Some(request_id) = request_id {
            aws["request_id"] = request_id.into();
        }
        let consumed = body.as_ref().and_then(consumed_capacity);
        let done = Call {
            name: "DynamoDB".to_owned(),
            namespace: "aws",
            start: call.start,
            end: now(),
            aws: Some(aws),
            http: None,
            metadata: consumed.map(|c| json!({ "dynamodb": { "consumed_capacity": c } })),
            status,
            throttled,
            failure,
        };
        self.daemon.send(&done.document(&call.trace));
        Ok(())
    }
}

/// The tables a DynamoDB request names (`TableName`, or each part's of a
/// transaction or batch).
fn tables_of(body: &Value) -> Vec<String> {
    let mut tables: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !tables.iter().any(|t| t == name) {
            tables.push(name.to_owned());
        }
    };
    if let Some(name) = body["TableName"].as_str() {
        add(name);
    }
    for item in body["TransactItems"].as_array().into_iter().flatten() {
        for part in item.as_object().into_iter().flat_map(|o| o.values()) {
            if let Some(name) = part["TableName"].as_str() {
                add(name);
            }
        }
    }
    for name in body["RequestItems"]
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
    {
        add(name);
    }
    tables
}

/// The capacity units of a response's `ConsumedCapacity` (one, or one per
/// table of a transaction), summed.
fn consumed_capacity(body: &Value) -> Option<f64> {
    match &body["ConsumedCapacity"] {
        Value::Object(one) => one.get("CapacityUnits").and_then(Value::as_f64),
        Value::Array(many) => many
            .iter()
            .map(|c| c["CapacityUnits"].as_f64())
            .sum::<Option<f64>>(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_headers_are_parsed() {
        assert_eq!(
            Trace::parse(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
            ),
            Some(Trace {
                root: "1-5759e988-bd862e3fe1be46a994272793".into(),
                parent: "53995c3f42cd8ad8".into(),
                sampled: true
            })
        );
        assert!(
            Trace::parse("Root=1-5759e988-bd86;Parent=53995c3f42cd8ad8;Sampled=0")
                .is_some_and(|t| !t.sampled)
        );
        assert_eq!(Trace::parse("Root=1-5759e988-bd86"), None);
    }

    #[test]
    fn the_daemon_address_is_lambdas_variable() {
        let udp = |v| udp_address(v).map(|a| a.to_string());
        assert_eq!(
            udp("169.254.79.129:2000").as_deref(),
            Some("169.254.79.129:2000")
        );
        assert_eq!(
            udp("tcp:127.0.0.1:2000 udp:127.0.0.1:2001").as_deref(),
            Some("127.0.0.1:2001")
        );
        assert_eq!(udp("nowhere"), None);
    }

    #[test]
    fn tables_and_capacity_are_read_from_the_wire() {
        let transaction = json!({"TransactItems": [
            {"Put": {"TableName": "tasks"}}, {"Update": {"TableName": "tasks"}}
        ]});
        assert_eq!(tables_of(&transaction), ["tasks"]);
        assert_eq!(
            consumed_capacity(&json!({"ConsumedCapacity": [
                {"TableName": "tasks", "CapacityUnits": 2.0},
                {"TableName": "tasks", "CapacityUnits": 1.5}
            ]})),
            Some(3.5)
        );
        assert_eq!(
            consumed_capacity(&json!({"ConsumedCapacity": {"CapacityUnits": 0.5}})),
            Some(0.5)
        );
    }
}
