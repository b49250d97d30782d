//! A fault-injecting DynamoDB proxy: it sits between an SDK client and a
//! DynamoDB endpoint (dynoxide, moto, ...), forwards DynamoDB's JSON
//! protocol (`POST /` with `X-Amz-Target: DynamoDB_20120810.<Operation>`)
//! and, by programmable [`Rule`]s, answers some requests with a [`Fault`]:
//! an answer that comes too late, a 500 or a reset connection after the
//! write was applied, throttling before it, or a freeze. It records every
//! request it saw ([`Seen`]), so a test can assert what the SDK sent, e.g.
//! that its retries of one `TransactWriteItems` carried the same
//! `ClientRequestToken`. docs/faults.md has the details.
//!
//! Rules are set from Rust ([`FaultProxy::set_rules`]) or, for a running
//! dev stack, over HTTP on the proxy's own port:
//! `POST /__faults` with `{"rules": [...]}` replaces them, `DELETE
//! /__faults` clears rules and the record, `GET /__faults` shows both.
//!
//! It speaks just enough HTTP/1.1 for the SDK (bodies with
//! `Content-Length`, keep-alive) on raw tokio sockets: a reset needs the
//! socket itself, which no HTTP server framework hands out.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// The prefix of `X-Amz-Target` on every DynamoDB operation.
const TARGET_PREFIX: &str = "DynamoDB_20120810.";
/// Where the rules are read and set over HTTP.
pub const CONTROL_PATH: &str = "/__faults";
/// Larger requests are refused (DynamoDB's own limit is 16 MB a request).
const MAX_REQUEST: usize = 32 * 1024 * 1024;

/// What the proxy does instead of passing a request through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Forwards the request (the write is applied), then holds DynamoDB's
    /// answer for `delay_ms` before sending it: longer than the client's
    /// attempt timeout, the client gives up on the attempt and retries.
    LateAnswer { delay_ms: u64 },
    /// Forwards the request (applied), then answers 500
    /// `InternalServerError` instead of DynamoDB's answer.
    InternalError,
    /// Forwards the request (applied), then resets the connection (TCP
    /// RST) instead of answering.
    Reset,
    /// Does not forward: 400 `ProvisionedThroughputExceededException`.
    ProvisionedThroughputExceeded,
    /// Does not forward: 400 `ThrottlingException`.
    Throttling,
    /// Does not forward: holds the request `hold_ms`, then closes the
    /// connection without an answer. On every request (the default
    /// rule), a DynamoDB that stopped answering.
    Freeze { hold_ms: u64 },
}

impl Fault {
    /// Whether the request reaches DynamoDB (a write is applied) before
    /// the fault.
    pub fn forwards(&self) -> bool {
        matches!(
            self,
            Fault::LateAnswer { .. } | Fault::InternalError | Fault::Reset
        )
    }
}

/// When a fault happens: on the requests of `operation` (any, if `None`)
/// whose body contains `containing` (any, if `None`: e.g. one caller's
/// partition key, `USER#<sub>`, so a test's faults spare everyone else's
/// requests), counted from when the rule was set, on every `every`-th of
/// them (1: each), at most `times` times (`None`: no limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default)]
    pub operation: Option<String>,
    pub fault: Fault,
    #[serde(default = "one")]
    pub every: u32,
    #[serde(default)]
    pub times: Option<u32>,
    #[serde(default)]
    pub containing: Option<String>,
}

fn one() -> u32 {
    1
}

impl Rule {
    /// `fault` on the next `times` requests of `operation`.
    pub fn next(operation: &str, fault: Fault, times: u32) -> Self {
        Rule {
            operation: Some(operation.to_owned()),
            fault,
            every: 1,
            times: Some(times),
            containing: None,
        }
    }

    /// `fault` on every request of `operation`.
    pub fn always(operation: &str, fault: Fault) -> Self {
        Rule {
            operation: Some(operation.to_owned()),
            fault,
            every: 1,
            times: None,
            containing: None,
        }
    }

    /// `fault` on every request, whatever the operation.
    pub fn all(fault: Fault) -> Self {
        Rule {
            operation: None,
            fault,
            every: 1,
            times: None,
            containing: None,
        }
    }

    /// `fault` on every `n`-th request of `operation` (`None`: any).
    pub fn every_nth(operation: Option<&str>, n: u32, fault: Fault) -> Self {
        Rule {
            operation: operation.map(str::to_owned),
            fault,
            every: n.max(1),
            times: None,
            containing: None,
        }
    }

    /// Only on requests whose body contains `text`.
    pub fn containing(mut self, text: &str) -> Self {
        self.containing = Some(text.to_owned());
        self
    }

    fn matches(&self, operation: &str, body: &[u8]) -> bool {
        self.operation.as_deref().is_none_or(|o| o == operation)
            && self.containing.as_deref().is_none_or(|text| {
                let text = text.as_bytes();
                !text.is_empty() && body.windows(text.len()).any(|w| w == text)
            })
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone, Serialize)]
pub struct Seen {
    /// The operation (`X-Amz-Target` without its prefix), or the method
    /// and path of anything else.
    pub operation: String,
    /// The request's JSON body (`null` if it was not JSON).
    pub body: serde_json::Value,
    /// What the proxy did instead of passing it through.
    pub fault: Option<Fault>,
    /// The upstream DynamoDB's status, when the request reached it (with
    /// an after-the-write fault: 200 means the write was applied though
    /// the client never heard so).
    pub upstream: Option<u16>,
    /// Numbers the requests, from 1.
    pub n: u64,
}

/// A rule and how many requests it matched and faulted so far.
#[derive(Debug)]
struct Armed {
    rule: Rule,
    matched: u32,
    fired: u32,
}

#[derive(Debug, Default)]
struct Faults {
    rules: Vec<Armed>,
    seen: Vec<Seen>,
    requests: u64,
}

impl Faults {
    /// The fault for a request of `operation` (the first rule that fires),
    /// counting it on every rule that matches.
    fn decide(&mut self, operation: &str, body: &[u8]) -> Option<Fault> {
        let mut chosen = None;
        for armed in &mut self.rules {
            if !armed.rule.matches(operation, body) {
                continue;
            }
            armed.matched += 1;
            let due = armed.matched % armed.rule.every.max(1) == 0;
            let left = armed.rule.times.is_none_or(|t| armed.fired < t);
            if chosen.is_none() && due && left {
                armed.fired += 1;
                chosen = Some(armed.rule.fault.clone());
            }
        }
        chosen
    }
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    http: reqwest::Client,
    faults: Mutex<Faults>,
    connections: Mutex<Vec<AbortHandle>>,
}

impl Shared {
    fn faults(&self) -> MutexGuard<'_, Faults> {
        // A panic while holding the lock leaves plain data behind: usable.
        self.faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The running proxy. Dropping it stops it (and every connection).
#[derive(Debug)]
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`: the endpoint to give the SDK.
    pub endpoint: String,
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy on `addr` (port 0: a free one) in front of `upstream`
    /// (`http://host:port`), passing everything through until rules are
    /// set.
    pub async fn start(addr: SocketAddr, upstream: &str) -> Result<Self, String> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("binding {addr}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| format!("the proxy's HTTP client: {e}"))?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http,
            faults: Mutex::new(Faults::default()),
            connections: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(FaultProxy {
            endpoint: format!("http://{addr}"),
            addr,
            shared,
            accept,
        })
    }

    /// On a free loopback port.
    pub async fn loopback(upstream: &str) -> Result<Self, String> {
        Self::start(SocketAddr::from(([127, 0, 0, 1], 0)), upstream).await
    }

    /// Replaces the rules (their counts start again).
    pub fn set_rules(&self, rules: Vec<Rule>) {
        self.shared.faults().rules = armed(rules);
    }

    /// No rules: everything passes through.
    pub fn clear_rules(&self) {
        self.set_rules(Vec::new());
    }

    /// Every request seen so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.faults().seen.clone()
    }

    /// The requests of `operation` seen so far.
    pub fn seen_of(&self, operation: &str) -> Vec<Seen> {
        self.shared
            .faults()
            .seen
            .iter()
            .filter(|s| s.operation == operation)
            .cloned()
            .collect()
    }

    /// Forgets the requests seen so far.
    pub fn clear_seen(&self) {
        self.shared.faults().seen.clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        let connections = self
            .shared
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for connection in connections.iter() {
            connection.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: try again shortly.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let task = tokio::spawn(serve_connection(stream, Arc::clone(&shared)));
        let mut connections = shared
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        connections.retain(|c| !c.is_finished());
        connections.push(task.abort_handle());
    }
}

/// A request as read off the socket.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn keep_alive(&self) -> bool {
        !self
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
    }
}

/// A response to write back.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn json(status: u16, body: &serde_json::Value) -> Self {
        Response {
            status,
            headers: vec![(
                "content-type".to_owned(),
                "application/x-amz-json-1.0".to_owned(),
            )],
            body: body.to_string().into_bytes(),
        }
    }

    /// DynamoDB's error shape.
    fn dynamodb_error(status: u16, code: &str, message: &str) -> Self {
        Response::json(
            status,
            &serde_json::json!({
                "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"),
                "message": message,
            }),
        )
    }
}

async fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut buffer = Vec::new();
    loop {
        let request = match read_request(&mut stream, &mut buffer).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(message) => {
                let answer = Response::json(400, &serde_json::json!({ "message": message }));
                let _ = write_response(&mut stream, &answer, false).await;
                return;
            }
        };
        let keep_alive = request.keep_alive();
        if request.path.split('?').next() == Some(CONTROL_PATH) {
            let answer = control(&shared, &request);
            if write_response(&mut stream, &answer, keep_alive)
                .await
                .is_err()
                || !keep_alive
            {
                return;
            }
            continue;
        }
        let operation = match request.header("x-amz-target") {
            Some(target) => target
                .strip_prefix(TARGET_PREFIX)
                .unwrap_or(target)
                .to_owned(),
            None => format!("{} {}", request.method, request.path),
        };
        let (n, fault) = {
            let mut faults = shared.faults();
            let fault = faults.decide(&operation, &request.body);
            faults.requests += 1;
            let n = faults.requests;
            faults.seen.push(Seen {
                operation,
                body: serde_json::from_slice(&request.body).unwrap_or(serde_json::Value::Null),
                fault: fault.clone(),
                upstream: None,
                n,
            });
            (n, fault)
        };
        let answer = match fault {
            None => forward_recorded(&shared, n, &request).await,
            Some(Fault::ProvisionedThroughputExceeded) => Response::dynamodb_error(
                400,
                "ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded (fault proxy)",
            ),
            Some(Fault::Throttling) => Response::dynamodb_error(
                400,
                "ThrottlingException",
                "Rate of requests exceeds the allowed throughput (fault proxy)",
            ),
            Some(Fault::Freeze { hold_ms }) => {
                tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                return;
            }
            Some(Fault::InternalError) => {
                let _applied = forward_recorded(&shared, n, &request).await;
                Response::dynamodb_error(
                    500,
                    "InternalServerError",
                    "Internal server error (fault proxy, after the request was applied)",
                )
            }
            Some(Fault::Reset) => {
                let _applied = forward_recorded(&shared, n, &request).await;
                // SO_LINGER 0: closing sends RST, not FIN.
                let _ = stream.set_zero_linger();
                return;
            }
            Some(Fault::LateAnswer { delay_ms }) => {
                let answer = forward_recorded(&shared, n, &request).await;
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                answer
            }
        };
        if write_response(&mut stream, &answer, keep_alive)
            .await
            .is_err()
            || !keep_alive
        {
            return;
        }
    }
}

/// The control endpoint: `GET` shows rules and record, `POST` with
/// `{"rules": [...]}` replaces the rules, `DELETE` clears both.
/// Rules with their counts at zero.
fn armed(rules: Vec<Rule>) -> Vec<Armed> {
    rules
        .into_iter()
        .map(|rule| Armed {
            rule,
            matched: 0,
            fired: 0,
        })
        .collect()
}

fn control(shared: &Shared, request: &Request) -> Response {
    #[derive(Deserialize)]
    struct SetRules {
        rules: Vec<Rule>,
    }
    let mut faults = shared.faults();
    match request.method.as_str() {
        "GET" => {}
        "POST" => match serde_json::from_slice::<SetRules>(&request.body) {
            Ok(set) => faults.rules = armed(set.rules),
            Err(e) => {
                return Response::json(400, &serde_json::json!({ "message": e.to_string() }));
            }
        },
        "DELETE" => {
            faults.rules.clear();
            faults.seen.clear();
        }
        _ => {
            return Response::json(
                405,
                &serde_json::json!({ "message": "GET, POST or DELETE" }),
            );
        }
    }
    let rules: Vec<serde_json::Value> = faults
        .rules
        .iter()
        .map(|a| {
            serde_json::json!({
                "rule": a.rule,
                "matched": a.matched,
                "fired": a.fired,
            })
        })
        .collect();
    let seen: Vec<serde_json::Value> = faults
        .seen
        .iter()
        .map(|s| {
            serde_json::json!({
                "n": s.n,
                "operation": s.operation,
                "fault": s.fault,
                "upstream": s.upstream,
            })
        })
        .collect();
    Response::json(200, &serde_json::json!({ "rules": rules, "seen": seen }))
}

/// [`forward`], noting the upstream's status on the request's record.
async fn forward_recorded(shared: &Shared, n: u64, request: &Request) -> Response {
    let answer = forward(shared, request).await;
    if let Some(seen) = shared.faults().seen.iter_mut().find(|s| s.n == n) {
        seen.upstream = Some(answer.status);
    }
    answer
}

/// Passes the request to the upstream DynamoDB; its failures become 502s
/// (the SDK retries those like any 5xx).
async fn forward(shared: &Shared, request: &Request) -> Response {
    let url = format!("{}{}", shared.upstream, request.path);
    let method = match reqwest::Method::from_bytes(request.method.as_bytes()) {
        Ok(method) => method,
        Err(e) => return Response::json(400, &serde_json::json!({ "message": e.to_string() })),
    };
    let mut outgoing = shared.http.request(method, url).body(request.body.clone());
    for (name, value) in &request.headers {
        if !is_hop_header(name) {
            outgoing = outgoing.header(name.as_str(), value.as_str());
        }
    }
    let answered = match outgoing.send().await {
        Ok(answered) => answered,
        Err(e) => {
            return Response::json(
                502,
                &serde_json::json!({ "message": format!("fault proxy: upstream: {e}") }),
            );
        }
    };
    let status = answered.status().as_u16();
    let headers = answered
        .headers()
        .iter()
        .filter(|(name, _)| !is_hop_header(name.as_str()))
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    match answered.bytes().await {
        Ok(body) => Response {
            status,
            headers,
            body: body.to_vec(),
        },
        Err(e) => Response::json(
            502,
            &serde_json::json!({ "message": format!("fault proxy: upstream body: {e}") }),
        ),
    }
}

/// Headers that belong to one connection (or that the proxy sets itself).
fn is_hop_header(name: &str) -> bool {
    [
        "host",
        "connection",
        "keep-alive",
        "content-length",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Reads one request: `None` when the client closed the connection
/// between requests.
async fn read_request(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> Result<Option<Request>, String> {
    let head_end = loop {
        if let Some(at) = find(buffer, b"\r\n\r\n") {
            break at;
        }
        if buffer.len() > MAX_REQUEST {
            return Err("request head too large".to_owned());
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return if buffer.is_empty() {
                Ok(None)
            } else {
                Err("connection closed inside a request".to_owned())
            };
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut start = lines.next().unwrap_or_default().split(' ');
    let method = start.next().unwrap_or_default().to_owned();
    let path = start.next().unwrap_or("/").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect();
    let request_head = Request {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if request_head
        .header("transfer-encoding")
        .is_some_and(|t| !t.eq_ignore_ascii_case("identity"))
    {
        return Err("chunked request bodies are not supported".to_owned());
    }
    let length: usize = match request_head.header("content-length") {
        Some(value) => value
            .parse()
            .map_err(|_| format!("bad Content-Length: {value}"))?,
        None => 0,
    };
    if length > MAX_REQUEST {
        return Err("request body too large".to_owned());
    }
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed inside a request body".to_owned());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[body_start..body_start + length].to_vec();
    buffer.drain(..body_start + length);
    Ok(Some(Request {
        body,
        ..request_head
    }))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn write_response(
    stream: &mut TcpStream,
    response: &Response,
    keep_alive: bool,
) -> std::io::Result<()> {
    let reason = reqwest::StatusCode::from_u16(response.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", response.status);
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n", response.body.len()));
    if !keep_alive {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&response.body).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(rules: Vec<Rule>) -> Faults {
        Faults {
            rules: rules
                .into_iter()
                .map(|rule| Armed {
                    rule,
                    matched: 0,
                    fired: 0,
                })
                .collect(),
            seen: Vec::new(),
            requests: 0,
        }
    }

    #[test]
    fn next_fires_on_the_first_matching_requests_only() {
        let mut f = faults(vec![Rule::next("PutItem", Fault::InternalError, 2)]);
        assert_eq!(f.decide("GetItem", b""), None);
        assert_eq!(f.decide("PutItem", b""), Some(Fault::InternalError));
        assert_eq!(f.decide("PutItem", b""), Some(Fault::InternalError));
        assert_eq!(f.decide("PutItem", b""), None);
    }

    #[test]
    fn containing_spares_other_bodies() {
        let rule = Rule::next("PutItem", Fault::InternalError, 1).containing("USER#carol");
        let mut f = faults(vec![rule]);
        assert_eq!(f.decide("PutItem", br#"{"pk":{"S":"USER#alice"}}"#), None);
        assert_eq!(
            f.decide("PutItem", br#"{"pk":{"S":"USER#carol"}}"#),
            Some(Fault::InternalError)
        );
        assert_eq!(f.decide("PutItem", br#"{"pk":{"S":"USER#carol"}}"#), None);
    }

    #[test]
    fn every_nth_counts_matching_requests() {
        let mut f = faults(vec![Rule::every_nth(None, 3, Fault::Reset)]);
        let fired: Vec<bool> = ["A", "B", "C", "D", "E", "F"]
            .iter()
            .map(|op| f.decide(op, b"").is_some())
            .collect();
        assert_eq!(fired, [false, false, true, false, false, true]);
    }

    #[test]
    fn rules_parse_from_the_control_json() {
        let rule: Rule = serde_json::from_value(serde_json::json!({
            "operation": "UpdateItem",
            "fault": { "kind": "late_answer", "delay_ms": 2000 },
            "times": 1
        }))
        .expect("a rule");
        assert_eq!(
            rule,
            Rule::next("UpdateItem", Fault::LateAnswer { delay_ms: 2000 }, 1)
        );
    }
}
