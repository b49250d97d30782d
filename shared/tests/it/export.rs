//! `GET /tasks/export` (the streamed export), driven by its sample event
//! with the in-memory store: every task, in order, as NDJSON or CSV, sent
//! in chunks of a page; its errors answered before anything streams.

use bytes::Bytes;
use chrono::{Duration, TimeZone, Utc};
use http_body_util::BodyExt;
use lambda_http::http::{StatusCode, header};
use lambda_http::{Request, Response};
use serde_json::{Value, json};
use shared::adapters::memory::MemoryStore;
use shared::domain::caller::Caller;
use shared::domain::task::{Task, TaskCreate};
use shared::handlers::export_tasks::{EXPORT_PAGE, csv_columns, handle};
use shared::http::streaming::{StreamedBody, buffered};
use shared::ports::{CreateRules, TaskStore};
use shared::runtime::{App, respond_with};
use uuid::Uuid;

/// The sample event (`?format=csv`, caller alice) with another query.
fn request(query: &str) -> Request {
    let mut event = crate::support::event_json("export_tasks");
    crate::support::set_query(&mut event, query);
    crate::support::request(&event)
}

async fn seed(app: &App<MemoryStore>, owner: &str, n: usize) -> Vec<Task> {
    let owner = Caller::new(owner).expect("caller");
    let start = Utc
        .with_ymd_and_hms(2026, 11, 25, 9, 0, 0)
        .single()
        .expect("time");
    let rules = CreateRules {
        max_tasks: 100_000,
        idempotency: None,
    };
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let at = start + Duration::seconds(i as i64);
        let task = Task::with(
            Uuid::now_v7(),
            TaskCreate {
                title: format!("task {i}, \"quoted\""),
                description: if i % 2 == 0 {
                    "line one\nline two".into()
                } else {
                    String::new()
                },
                done: i % 3 == 0,
                ..TaskCreate::default()
            },
            at,
            at,
        );
        app.store
            .create(&owner, task.clone(), rules)
            .await
            .expect("seed");
        tasks.push(task);
    }
    tasks
}

async fn call(app: &'static App<MemoryStore>, req: Request) -> Response<StreamedBody> {
    respond_with(app, handle, req, buffered).await
}

/// Every chunk of the body, as sent.
async fn chunks(response: Response<StreamedBody>) -> Vec<Bytes> {
    let mut body = response.into_body();
    let mut chunks = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("no stream error").into_data() {
            chunks.push(data);
        }
    }
    chunks
}

#[tokio::test]
async fn ndjson_is_every_task_in_order_a_page_per_chunk() {
    let app = crate::support::app(&[]);
    let tasks = seed(app, "alice", 250).await;
    seed(app, "bob", 3).await;
    let response = call(app, request("")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/x-ndjson"
    );
    crate::openapi::assert_documented_content_type("/tasks/export", &response);
    let chunks = chunks(response).await;
    assert_eq!(chunks.len(), 250_usize.div_ceil(EXPORT_PAGE as usize));
    let text: String = chunks
        .iter()
        .map(|c| std::str::from_utf8(c).expect("UTF-8"))
        .collect();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON task per line"))
        .collect();
    let expected: Vec<Value> = tasks
        .iter()
        .map(|t| serde_json::to_value(t).expect("task JSON"))
        .collect();
    assert_eq!(lines, expected, "alice's tasks only, oldest first");
}

#[tokio::test]
async fn csv_has_a_header_and_quotes_what_needs_it() {
    let app = crate::support::app(&[]);
    let tasks = seed(app, "alice", 120).await;
    let response = call(app, request("format=csv")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    crate::openapi::assert_documented_content_type("/tasks/export", &response);
    let bytes: Vec<u8> = chunks(response).await.concat();
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let headers: Vec<String> = reader
        .headers()
        .expect("header row")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(headers, csv_columns());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a row")).collect();
    assert_eq!(rows.len(), tasks.len());
    let cell = |column: &str| {
        let at = headers.iter().position(|h| h == column).expect(column);
        rows[0][at].to_owned()
    };
    assert_eq!(cell("id"), tasks[0].id.to_string());
    assert_eq!(cell("title"), "task 0, \"quoted\"");
    assert_eq!(cell("description"), "line one\nline two");
    assert_eq!(cell("done"), "true");
    assert_eq!(cell("created_at"), "2026-11-25T09:00:00.000000Z");
}

#[tokio::test]
async fn an_empty_export_is_a_header_or_nothing() {
    let app = crate::support::app(&[]);
    let csv = chunks(call(app, request("format=csv")).await)
        .await
        .concat();
    assert_eq!(csv, format!("{}\n", csv_columns().join(",")).into_bytes());
    let ndjson = chunks(call(app, request("format=ndjson")).await)
        .await
        .concat();
    assert!(ndjson.is_empty());
}

#[tokio::test]
async fn errors_are_answered_before_anything_streams() {
    let app = crate::support::app(&[]);
    let bad = call(app, request("format=xml")).await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value =
        serde_json::from_slice(&chunks(bad).await.concat()).expect("a JSON error body");
    assert_eq!(
        body,
        json!({"detail": [{
            "type": "literal_error",
            "loc": ["query", "format"],
            "msg": "Input should be 'ndjson' or 'csv'",
            "input": "xml",
            "ctx": {"expected": "'ndjson' or 'csv'"},
        }]})
    );

    let mut event = crate::support::event_json("export_tasks");
    crate::support::set_caller(&mut event, None);
    let anonymous = crate::support::request(&event);
    let response = call(app, anonymous).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// Serves the issuer's discovery document at
/// `/.well-known/openid-configuration` and `jwks` at any other path on a
/// loopback port; returns the issuer URL.
async fn jwks_server(jwks: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let body = if request.starts_with(b"GET /.well-known/openid-configuration ") {
                serde_json::json!({
                    "issuer": format!("http://{addr}"),
                    "jwks_uri": format!("http://{addr}/keys"),
                })
                .to_string()
            } else {
                jwks.to_owned()
            };
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    format!("http://{addr}")
}

/// A Function URL request (no API Gateway authorizer in front) with this
/// `Authorization` header.
fn function_url_request(authorization: Option<&str>) -> Request {
    let mut event = crate::support::event_json("export_tasks");
    crate::support::set_caller(&mut event, None);
    if let Some(authorization) = authorization {
        event["headers"]["authorization"] = Value::from(authorization);
    }
    crate::support::request(&event)
}

#[tokio::test]
async fn through_its_function_url_the_export_checks_the_bearer_token() {
    const AUDIENCE: &str = "web-client";
    let issuer = jwks_server(include_str!("../fixtures/token/jwks-a.json")).await;
    let audiences = format!("other-client, {AUDIENCE}");
    let config = crate::support::config(&[
        ("JWT_ISSUER", &issuer),
        ("JWT_AUDIENCE", &audiences),
        ("JWT_SCOPES", "aws.cognito.signin.user.admin"),
    ]);
    let app: &'static App<MemoryStore> =
        Box::leak(Box::new(App::new(config, MemoryStore::default())));
    let tasks = seed(app, "carol", 3).await;
    seed(app, "alice", 2).await;

    let sign = |claims: Value| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some("key-a".into());
        let key =
            jsonwebtoken::EncodingKey::from_rsa_der(include_bytes!("../fixtures/token/rsa-a.der"));
        jsonwebtoken::encode(&header, &claims, &key).expect("signed")
    };
    let now = Utc::now().timestamp();
    // A Cognito access token: `client_id`, no `aud`.
    let token = sign(json!({
        "sub": "carol", "iss": issuer, "client_id": AUDIENCE,
        "token_use": "access", "iat": now, "exp": now + 600,
        "scope": "aws.cognito.signin.user.admin",
    }));
    let response = call(app, function_url_request(Some(&format!("Bearer {token}")))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let bytes: Vec<u8> = chunks(response).await.concat();
    let rows = csv::Reader::from_reader(bytes.as_slice()).records().count();
    assert_eq!(rows, tasks.len(), "carol's tasks, not alice's");

    let expired = sign(json!({
        "sub": "carol", "iss": issuer, "aud": AUDIENCE, "iat": now - 900, "exp": now - 600,
    }));
    let other_audience = sign(json!({
        "sub": "carol", "iss": issuer, "aud": "someone-else", "iat": now, "exp": now + 600,
    }));
    // An OpenID Connect ID token: `aud` the client, no scope.
    let id_token = sign(json!({
        "sub": "carol", "iss": issuer, "aud": AUDIENCE, "iat": now, "exp": now + 600,
    }));
    for authorization in [
        None,
        Some(format!("Bearer {expired}")),
        Some(format!("Bearer {other_audience}")),
        Some(format!("Bearer {id_token}")),
        Some("Bearer not-a-jwt".to_owned()),
    ] {
        let response = call(app, function_url_request(authorization.as_deref())).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{authorization:?}"
        );
    }
    // Without a configured issuer the URL trusts nothing.
    let open = call(
        crate::support::app(&[]),
        function_url_request(Some(&format!("Bearer {token}"))),
    )
    .await;
    assert_eq!(open.status(), StatusCode::UNAUTHORIZED);
}

/// OWASP's CSV injection advice: a cell a spreadsheet would run as a
/// formula gets a leading `'`; NDJSON carries the caller's text unchanged.
#[tokio::test]
async fn csv_cells_never_run_as_formulas_and_ndjson_is_unchanged() {
    use shared::domain::task::TaskCreate;
    use shared::ports::{CreateRules, TaskStore};
    let app = crate::support::app(&[]);
    let owner = Caller::new("alice").expect("caller");
    let dangerous = [
        "=HYPERLINK(\"http://evil\",\"x\")",
        "+1",
        "-1+2",
        "@SUM(A1)",
        "\tlead",
        "\rlead",
        "plain = fine",
    ];
    for (i, title) in dangerous.iter().enumerate() {
        let input = TaskCreate {
            title: (*title).to_owned(),
            description: if i == 0 { "=1+1".into() } else { String::new() },
            done: false,
            ..TaskCreate::default()
        };
        let task = Task::new(input, Utc::now());
        let rules = CreateRules {
            max_tasks: 100,
            idempotency: None,
        };
        app.store
            .create(&owner, task, rules)
            .await
            .expect("created");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let csv = chunks(call(app, request("format=csv")).await)
        .await
        .concat();
    let mut reader = csv::Reader::from_reader(csv.as_slice());
    let titles: Vec<String> = reader
        .records()
        .map(|r| r.expect("row")[1].to_owned())
        .collect();
    let expected: Vec<String> = dangerous
        .iter()
        .map(|t| {
            if t.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{t}")
            } else {
                (*t).to_owned()
            }
        })
        .collect();
    assert_eq!(titles, expected);
    assert!(String::from_utf8_lossy(&csv).contains(",'=1+1,"));

    let ndjson = chunks(call(app, request("format=ndjson")).await)
        .await
        .concat();
    let titles: Vec<String> = String::from_utf8(ndjson)
        .expect("UTF-8")
        .lines()
        .map(|line| {
            let task: Value = serde_json::from_str(line).expect("JSON");
            task["title"].as_str().expect("title").to_owned()
        })
        .collect();
    assert_eq!(titles, dangerous);
}
