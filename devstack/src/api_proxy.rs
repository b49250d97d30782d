//! The local API's front door (`make dev`, scripts/e2e.sh): every request
//! goes on to `cargo lambda watch` unchanged, but those watch cannot carry
//! to a function. Watch builds the Lambda event with the body and the
//! header values as text, and answers a body that is not UTF-8 (with a
//! text or JSON content type) or a header value with bytes over 0x7F with
//! its own 500 before any function runs; API Gateway hands such a request
//! to the function, the body base64-encoded. So those requests are sent
//! here as API Gateway sends them: an HTTP API (payload 2.0) event to
//! watch's Invoke API for the function the route table names
//! ([`shared::http::routes::route_for`], else the fallback), and the
//! function's answer is returned as the response. docs/development.md,
//! "Local stack vs deployed".

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use shared::http::routes;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Headers of one hop only, never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

struct Proxy {
    upstream: String,
    http: reqwest::Client,
}

/// Serves the proxy on `addr` in front of watch at `upstream`
/// (`http://127.0.0.1:<port>`); the task runs until aborted.
pub async fn start(addr: SocketAddr, upstream: &str) -> Result<JoinHandle<()>, String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("binding the API proxy on {addr}: {e}"))?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let proxy = Arc::new(Proxy {
        upstream: upstream.trim_end_matches('/').to_owned(),
        http,
    });
    let app = Router::new().fallback(handle).with_state(proxy);
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    }))
}

async fn handle(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return (StatusCode::BAD_REQUEST, "unreadable request body").into_response();
    };
    let path = parts.uri.path().to_owned();
    let function = routes::route_for(parts.method.as_str(), &path)
        .map(|route| route.function)
        .unwrap_or(routes::FALLBACK);
    let text_headers = parts.headers.values().all(|v| v.to_str().is_ok());
    let carried = std::str::from_utf8(&body).is_ok() && text_headers;
    // The streamed functions answer through watch's HTTP side only.
    if carried || routes::is_streamed(function) || path.starts_with("/2015-03-31/") {
        return forward(&proxy, parts, body).await;
    }
    invoke(&proxy, function, &parts, &body)
        .await
        .unwrap_or_else(|e| (StatusCode::BAD_GATEWAY, e).into_response())
}

/// The request, as it came, to watch; its answer streamed back as it comes.
async fn forward(
    proxy: &Proxy,
    parts: axum::http::request::Parts,
    body: axum::body::Bytes,
) -> Response {
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let url = format!("{}{}{query}", proxy.upstream, parts.uri.path());
    let mut upstream = proxy.http.request(parts.method.clone(), url);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != "host" {
            upstream = upstream.header(name, value);
        }
    }
    if !body.is_empty() || parts.method != Method::GET {
        upstream = upstream.body(body);
    }
    let answer = match send(upstream).await {
        Ok(answer) => answer,
        Err(e) => {
            return (StatusCode::BAD_GATEWAY, format!("cargo lambda watch: {e}")).into_response();
        }
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|e| (StatusCode::BAD_GATEWAY, e.to_string()).into_response())
}

/// The request as API Gateway's payload 2.0 event, invoked through
/// watch's Invoke API; the function's answer as the response.
async fn invoke(
    proxy: &Proxy,
    function: &str,
    parts: &axum::http::request::Parts,
    body: &[u8],
) -> Result<Response, String> {
    let method = parts.method.as_str();
    let path = parts.uri.path();
    let raw_query = parts.uri.query().unwrap_or("");
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == "cookie" {
            cookies.extend(value.split(';').map(|c| Value::from(c.trim())));
            continue;
        }
        match headers.get_mut(name.as_str()) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::from(value));
            }
        }
    }
    let mut query = Map::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (decode(name), decode(value));
        match query.get_mut(&name) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                query.insert(name, Value::from(value));
            }
        }
    }
    let route = routes::route_for(method, path);
    let route_key = route.map_or_else(|| "$default".to_owned(), |r| format!("{method} {}", r.path));
    let mut path_parameters = Map::new();
    if let Some(route) = route {
        for segment in route.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let name = name.trim_end_matches('+');
                if let Some(value) = routes::path_parameter(method, path, name) {
                    path_parameters.insert(name.to_owned(), Value::from(value));
                }
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": parts.headers.get("user-agent")
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default(),
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": route_key,
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": now,
        },
        "isBase64Encoded": true,
        "body": STANDARD.encode(body),
    });
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !path_parameters.is_empty() {
        event["pathParameters"] = Value::Object(path_parameters);
    }
    if !cookies.is_empty() {
        event["cookies"] = Value::Array(cookies);
    }
    let url = format!(
        "{}/2015-03-31/functions/{function}/invocations",
        proxy.upstream
    );
    let answer: Value = send(proxy.http.post(url).json(&event))
        .await
        .map_err(|e| format!("invoking {function}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("the answer of {function}: {e}"))?;
    response_of(&answer).ok_or_else(|| format!("{function} answered {answer}"))
}

/// How long a request waits for watch to listen (`make dev` restarts it
/// after a source change; it starts after devstack): the request is then
/// served by the restarted functions, not refused.
const WAIT_FOR_WATCH: std::time::Duration = std::time::Duration::from_secs(60);

/// Sends `request`, again while watch is not listening (a refused
/// connection: nothing was sent), for up to [`WAIT_FOR_WATCH`].
async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, reqwest::Error> {
    let deadline = tokio::time::Instant::now() + WAIT_FOR_WATCH;
    loop {
        let attempt = request.try_clone().map(|r| r.send());
        let result = match attempt {
            Some(sending) => sending.await,
            None => return request.send().await,
        };
        match result {
            Err(e) if e.is_connect() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// An API Gateway (payload 2.0) response as HTTP.
fn response_of(answer: &Value) -> Option<Response> {
    let status = StatusCode::from_u16(u16::try_from(answer["statusCode"].as_u64()?).ok()?).ok()?;
    let mut headers = HeaderMap::new();
    if let Some(map) = answer["headers"].as_object() {
        for (name, value) in map {
            let (Ok(name), Some(Ok(value))) = (
                HeaderName::from_bytes(name.as_bytes()),
                value.as_str().map(HeaderValue::from_str),
            ) else {
                continue;
            };
            headers.append(name, value);
        }
    }
    if let Some(map) = answer["multiValueHeaders"].as_object() {
        for (name, values) in map {
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            headers.remove(&name);
            for value in values.as_array().into_iter().flatten() {
                if let Some(Ok(value)) = value.as_str().map(HeaderValue::from_str) {
                    headers.append(name.clone(), value);
                }
            }
        }
    }
    for cookie in answer["cookies"].as_array().into_iter().flatten() {
        if let Some(Ok(value)) = cookie.as_str().map(HeaderValue::from_str) {
            headers.append(axum::http::header::SET_COOKIE, value);
        }
    }
    let text = answer["body"].as_str().unwrap_or("");
    let body = if answer["isBase64Encoded"].as_bool() == Some(true) {
        STANDARD.decode(text).ok()?
    } else {
        text.as_bytes().to_vec()
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Some(response)
}

/// `%XX` and `+` of a query string decoded (invalid escapes kept).
fn decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_as_api_gateway_decodes_them() {
        assert_eq!(decode("a%20b+c"), "a b c");
        assert_eq!(decode("%"), "%");
        assert_eq!(decode("%2"), "%2");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(decode("%C3%A9"), "é");
    }

    #[test]
    fn a_payload_2_answer_becomes_the_http_response() {
        let answer = json!({
            "statusCode": 400,
            "headers": {"content-type": "application/json"},
            "multiValueHeaders": {"vary": ["origin", "accept"]},
            "cookies": ["a=1"],
            "body": "{\"detail\":\"There was an error parsing the body\"}",
            "isBase64Encoded": false,
        });
        let response = response_of(&answer).expect("a response");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.headers().get_all("vary").iter().count(), 2);
        assert_eq!(response.headers()["set-cookie"], "a=1");
        let encoded =
            json!({"statusCode": 200, "body": STANDARD.encode([0xff_u8]), "isBase64Encoded": true});
        assert!(response_of(&encoded).is_some());
        assert!(response_of(&json!({"statusCode": "x"})).is_none());
    }
}
