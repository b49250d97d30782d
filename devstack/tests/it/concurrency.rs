//! Races, retries and faults, through the real handlers and the DynamoDB
//! store on an embedded dynoxide: clients that race on one task, retry a
//! create, push past MAX_TASKS together, or meet a DynamoDB that went away.
//! Each test prints its figures (run with `--nocapture` to see them).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use devstack::{LocalDynamo, TempDatabase};
use futures::future::join_all;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Value, json};
use shared::adapters::dynamo::{DynamoStore, client};
use shared::config::Config;
use shared::handlers;
use shared::runtime::{App, respond};

const TABLE: &str = "tasks";

fn app(endpoint: &str, max_tasks: u32) -> App<DynamoStore> {
    // Races of one caller's writes, not its fair share.
    app_with(endpoint, max_tasks, &[("WRITES_PER_CALLER", "100000")])
}

fn app_with(endpoint: &str, max_tasks: u32, extra: &[(&str, &str)]) -> App<DynamoStore> {
    let endpoint = endpoint.to_owned();
    let extra: HashMap<String, String> = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let config = Config::from_lookup(move |name| {
        if let Some(value) = extra.get(name) {
            return Some(value.clone());
        }
        let value = match name {
            "TABLE_NAME" => TABLE.to_owned(),
            "MAX_TASKS" => max_tasks.to_string(),
            "IDENTITY_MODE" => "header".to_owned(),
            "AWS_REGION" => "us-east-1".to_owned(),
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => "local".to_owned(),
            "AWS_ENDPOINT_URL_DYNAMODB" => endpoint.clone(),
            _ => return None,
        };
        Some(value)
    })
    .expect("test config");
    let store = DynamoStore::new(client(&config.aws), TABLE);
    App::new(config, store)
}

/// A request as API Gateway would hand it over, from `user`.
fn request(method: Method, path: &str, user: &str, body: Option<Value>) -> Request {
    let mut req = lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("https://localhost{path}"))
        .header("x-user-id", user)
        .header("content-type", "application/json")
        .body(body.map_or(Body::Empty, |b| Body::Text(b.to_string())))
        .expect("request");
    if let Some(id) = path.strip_prefix("/tasks/") {
        let params = HashMap::from([("task_id".to_owned(), id.to_owned())]);
        req = req.with_path_parameters(params);
    }
    req
}

fn with_header(mut req: Request, name: &'static str, value: &str) -> Request {
    req.headers_mut()
        .insert(name, value.parse().expect("header value"));
    req
}

fn json_body(response: &Response<Body>) -> Value {
    match response.body() {
        Body::Text(text) => serde_json::from_str(text).expect("JSON"),
        Body::Empty => Value::Null,
        other => panic!("unexpected body {other:?}"),
    }
}

fn tally(responses: &[Response<Body>]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for response in responses {
        *counts.entry(response.status().as_u16()).or_insert(0) += 1;
    }
    counts
}

async fn create(app: &App<DynamoStore>, user: &str, body: Value) -> Response<Body> {
    respond(
        app,
        handlers::create_task::handle,
        request(Method::POST, "/tasks", user, Some(body)),
    )
    .await
}

async fn list_all(app: &App<DynamoStore>, user: &str) -> Vec<Value> {
    let req = request(Method::GET, "/tasks", user, None)
        .with_query_string_parameters(HashMap::from([("limit".to_owned(), "100".to_owned())]));
    let response = respond(app, handlers::list_tasks::handle, req).await;
    json_body(&response)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A caller's writes paced evenly: `count` creates over `over`, one at a
/// time, as a client looping as fast as it is allowed would send them.
async fn paced_creates(
    app: &App<DynamoStore>,
    user: &str,
    count: u32,
    over: std::time::Duration,
) -> Vec<Response<Body>> {
    let start = tokio::time::Instant::now();
    let mut responses = Vec::new();
    for i in 0..count {
        tokio::time::sleep_until(start + over / count * i).await;
        let body = json!({"title": format!("{user} {i}")});
        responses.push(create(app, user, body).await);
    }
    responses
}

/// The fair share on DynamoDB, through the real handlers: with
/// `WRITES_PER_CALLER=3` per 1 s window, alice sends ten times her share
/// (30 writes in one second) while bob writes within his (3). Alice gets
/// at most two windows' worth (6: fixed windows, and one second of sending
/// touches at most two) and 429 with `Retry-After: 1` for the rest, none
/// of which was stored; every write of bob's succeeds; once the window
/// has passed, alice is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_at_ten_times_its_share_gets_429_and_another_is_served() {
    let dynamo = LocalDynamo::in_memory(TABLE).await.expect("dynoxide");
    let share = [("WRITES_PER_CALLER", "3"), ("RATE_WINDOW_SECONDS", "1")];
    let app = app_with(&dynamo.endpoint, 1000, &share);
    let second = std::time::Duration::from_secs(1);
    let started = std::time::Instant::now();
    let (alice, bob) = tokio::join!(
        paced_creates(&app, "alice", 30, second),
        paced_creates(&app, "bob", 3, second),
    );
    let (alice_counts, bob_counts) = (tally(&alice), tally(&bob));
    println!(
        "fair share, 3 writes/s each: alice at 30/s -> {alice_counts:?}, bob at 3/s -> \
         {bob_counts:?} in {:?}",
        started.elapsed()
    );
    assert_eq!(
        bob_counts,
        BTreeMap::from([(201, 3)]),
        "bob's writes all succeed"
    );
    let admitted = alice_counts.get(&201).copied().unwrap_or(0);
    let refused = alice_counts.get(&429).copied().unwrap_or(0);
    assert!((3..=6).contains(&admitted), "alice: {alice_counts:?}");
    assert_eq!(admitted + refused, 30, "only 201 and 429: {alice_counts:?}");
    for response in alice
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
    {
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok());
        assert_eq!(
            retry_after,
            Some("1"),
            "the 1 s window ends within a second"
        );
        assert_eq!(
            json_body(response)["detail"],
            "too many writes: at most 3 per 1 s per caller"
        );
    }
    // A refused write wrote nothing.
    assert_eq!(list_all(&app, "alice").await.len(), admitted);
    assert_eq!(list_all(&app, "bob").await.len(), 3);
    // After Retry-After, alice is served again.
    tokio::time::sleep(second).await;
    let again = create(&app, "alice", json!({"title": "after the window"})).await;
    assert_eq!(again.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_patches_with_one_if_match_have_one_winner() {
    let dynamo = LocalDynamo::in_memory(TABLE).await.expect("dynoxide");
    let app = app(&dynamo.endpoint, 1000);
    let created = create(&app, "alice", json!({"title": "contested"})).await;
    let id = json_body(&created)["id"].as_str().expect("id").to_owned();
    let path = format!("/tasks/{id}");

    let attempts = 50;
    let responses = join_all((0..attempts).map(|i| {
        let req = request(
            Method::PATCH,
            &path,
            "alice",
            Some(json!({"title": format!("writer {i}")})),
        );
        respond(
            &app,
            handlers::update_task::handle,
            with_header(req, "if-match", "\"1\""),
        )
    }))
    .await;

    let counts = tally(&responses);
    println!("If-Match race: {attempts} attempts -> {counts:?}");
    assert_eq!(counts, BTreeMap::from([(200, 1), (412, attempts - 1)]));
    let winner = responses
        .iter()
        .find(|r| r.status() == StatusCode::OK)
        .map(json_body)
        .expect("a winner");
    for loser in responses.iter().filter(|r| r.status() != StatusCode::OK) {
        assert_eq!(json_body(loser), json!({"detail": "precondition failed"}));
    }
    let stored = respond(
        &app,
        handlers::get_task::handle,
        request(Method::GET, &path, "alice", None),
    )
    .await;
    assert_eq!(
        json_body(&stored),
        winner,
        "the stored task is exactly the winner's"
    );
    assert_eq!(stored.headers()["etag"], "\"2\"");
    println!(
        "If-Match race: final title {:?}, ETag \"2\"",
        winner["title"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_patches_of_different_fields_lose_nothing() {
    let dynamo = LocalDynamo::in_memory(TABLE).await.expect("dynoxide");
    let app = app(&dynamo.endpoint, 1000);
    let rounds = 10;
    for round in 0..rounds {
        let created = create(&app, "alice", json!({"title": "start"})).await;
        let id = json_body(&created)["id"].as_str().expect("id").to_owned();
        let path = format!("/tasks/{id}");
        let patches = [
            json!({"title": format!("title {round}")}),
            json!({"description": format!("description {round}")}),
            json!({"done": true}),
        ];
        let responses = join_all(patches.into_iter().map(|patch| {
            respond(
                &app,
                handlers::update_task::handle,
                request(Method::PATCH, &path, "alice", Some(patch)),
            )
        }))
        .await;
        assert_eq!(tally(&responses), BTreeMap::from([(200, 3)]));
        let stored = respond(
            &app,
            handlers::get_task::handle,
            request(Method::GET, &path, "alice", None),
        )
        .await;
        let task = json_body(&stored);
        assert_eq!(task["title"], format!("title {round}"));
        assert_eq!(task["description"], format!("description {round}"));
        assert_eq!(task["done"], true);
        assert_eq!(
            stored.headers()["etag"],
            "\"4\"",
            "three writes, three versions"
        );
    }
    println!("different-field race: {rounds} rounds x 3 parallel PATCHes, no field lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_idempotency_key_creates_one_task() {
    let dynamo = LocalDynamo::in_memory(TABLE).await.expect("dynoxide");
    let app = app(&dynamo.endpoint, 1000);
    let body = json!({"title": "pay the rent", "done": false});
    let attempts = 20;
    let responses = join_all((0..attempts).map(|_| {
        let req = request(Method::POST, "/tasks", "alice", Some(body.clone()));
        respond(
            &app,
            handlers::create_task::handle,
            with_header(req, "idempotency-key", "rent-2026-11"),
        )
    }))
    .await;
    let counts = tally(&responses);
    let first = json_body(&responses[0]);
    assert_eq!(counts, BTreeMap::from([(201, attempts)]), "{first}");
    for response in &responses {
        assert_eq!(json_body(response), first, "same id, same body");
        assert_eq!(response.headers()["etag"], "\"1\"");
        assert_eq!(
            response.headers()["location"],
            format!("/tasks/{}", first["id"].as_str().unwrap_or(""))
        );
    }
    let tasks = list_all(&app, "alice").await;
    println!(
        "idempotency race: {attempts} parallel POSTs, one key -> {counts:?}, {} task stored",
        tasks.len()
    );
    assert_eq!(tasks, vec![first.clone()]);

    // A retry after success, spelled differently but the same request.
    let retry = request(
        Method::POST,
        "/tasks",
        "alice",
        Some(json!({"done": "no", "title": "pay the rent"})),
    );
    let retried = respond(
        &app,
        handlers::create_task::handle,
        with_header(retry, "idempotency-key", "rent-2026-11"),
    )
    .await;
    assert_eq!(
        (retried.status(), json_body(&retried)),
        (StatusCode::CREATED, first)
    );

    // The same key with another body is refused and creates nothing.
    let other = request(
        Method::POST,
        "/tasks",
        "alice",
        Some(json!({"title": "pay the gas"})),
    );
    let refused = respond(
        &app,
        handlers::create_task::handle,
        with_header(other, "idempotency-key", "rent-2026-11"),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        json_body(&refused),
        json!({"detail": "idempotency key reused with a different body"})
    );
    assert_eq!(list_all(&app, "alice").await.len(), 1);

    // Keys are per caller: bob's request with the same key is his own.
    let bobs = request(
        Method::POST,
        "/tasks",
        "bob",
        Some(json!({"title": "pay the gas"})),
    );
    let bobs = respond(
        &app,
        handlers::create_task::handle,
        with_header(bobs, "idempotency-key", "rent-2026-11"),
    )
    .await;
    assert_eq!(bobs.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_tasks_holds_under_parallel_creates() {
    let dynamo = LocalDynamo::in_memory(TABLE).await.expect("dynoxide");
    let max = 5;
    let app = app(&dynamo.endpoint, max);
    for i in 0..max - 1 {
        assert_eq!(
            create(&app, "alice", json!({"title": format!("t{i}")}))
                .await
                .status(),
            201
        );
    }
    let attempts = 20;
    let responses = join_all(
        (0..attempts).map(|i| create(&app, "alice", json!({"title": format!("racer {i}")}))),
    )
    .await;
    let counts = tally(&responses);
    println!(
        "MAX_TASKS race: {} tasks, limit {max}, {attempts} parallel POSTs -> {counts:?}",
        max - 1
    );
    assert_eq!(counts, BTreeMap::from([(201, 1), (409, attempts - 1)]));
    for response in responses
        .iter()
        .filter(|r| r.status() == StatusCode::CONFLICT)
    {
        assert_eq!(
            json_body(response),
            json!({"detail": format!("task limit reached ({max})")})
        );
    }
    let tasks = list_all(&app, "alice").await;
    assert_eq!(tasks.len(), max as usize);

    // Another caller has room of its own.
    assert_eq!(
        create(&app, "bob", json!({"title": "mine"})).await.status(),
        201
    );

    // A delete frees room again; a failed delete does not.
    let id = tasks[0]["id"].as_str().expect("id");
    let missing = request(
        Method::DELETE,
        &format!("/tasks/{}", uuid::Uuid::now_v7()),
        "alice",
        None,
    );
    assert_eq!(
        respond(&app, handlers::delete_task::handle, missing)
            .await
            .status(),
        404
    );
    assert_eq!(
        create(&app, "alice", json!({"title": "no room"}))
            .await
            .status(),
        409
    );
    let delete = request(Method::DELETE, &format!("/tasks/{id}"), "alice", None);
    assert_eq!(
        respond(&app, handlers::delete_task::handle, delete)
            .await
            .status(),
        204
    );
    assert_eq!(
        create(&app, "alice", json!({"title": "room again"}))
            .await
            .status(),
        201
    );
    assert_eq!(
        create(&app, "alice", json!({"title": "full again"}))
            .await
            .status(),
        409
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_dynamodb_is_503_and_service_resumes_without_loss() {
    let db = TempDatabase::new().expect("temp dir");
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let dynamo = LocalDynamo::start(db.open().expect("db"), any_port, TABLE)
        .await
        .expect("dynoxide");
    let addr = dynamo.addr;
    let app = app(&dynamo.endpoint, 1000);

    let created = create(&app, "alice", json!({"title": "survives"})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let task = json_body(&created);
    let path_of_task = format!("/tasks/{}", task["id"].as_str().expect("id"));

    dynamo.stop().await.expect("stop");
    let started = std::time::Instant::now();
    let down = respond(
        &app,
        handlers::get_task::handle,
        request(Method::GET, &path_of_task, "alice", None),
    )
    .await;
    println!(
        "DynamoDB down: {} after {:?}",
        down.status(),
        started.elapsed()
    );
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_body(&down), json!({"detail": "service unavailable"}));
    assert_eq!(down.headers()["retry-after"], "1");
    let write = create(&app, "alice", json!({"title": "while down"})).await;
    assert_eq!(write.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Same file, same port: the same client serves again, nothing lost.
    let dynamo = LocalDynamo::start(db.open().expect("db"), addr, TABLE)
        .await
        .expect("dynoxide again");
    let up = respond(
        &app,
        handlers::get_task::handle,
        request(Method::GET, &path_of_task, "alice", None),
    )
    .await;
    assert_eq!(up.status(), StatusCode::OK);
    assert_eq!(json_body(&up), task);
    assert_eq!(
        list_all(&app, "alice").await,
        vec![task],
        "the failed write left nothing behind"
    );
    dynamo.stop().await.expect("stop");
}

/// The feed's places on DynamoDB, through the handler: with every place
/// held, a new stream (opened after MIN_LEASE_AGE) takes the oldest's,
/// which ends at its next heartbeat, long before its lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_feed_stream_ends_at_its_next_heartbeat_on_dynamodb() {
    use http_body_util::BodyExt;
    let dynamo = LocalDynamo::in_memory(TABLE)
        .await
        .expect("dynoxide starts");
    let endpoint = dynamo.endpoint.clone();
    let config = Config::from_lookup(move |name| {
        let value = match name {
            "TABLE_NAME" => TABLE.to_owned(),
            "IDENTITY_MODE" => "header".to_owned(),
            "AWS_REGION" => "us-east-1".to_owned(),
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => "local".to_owned(),
            "AWS_ENDPOINT_URL_DYNAMODB" => endpoint.clone(),
            "EVENTS_LIFETIME_SECONDS" => "30".to_owned(),
            "EVENTS_HEARTBEAT_SECONDS" => "1".to_owned(),
            _ => return None,
        };
        Some(value)
    })
    .expect("test config");
    let store = DynamoStore::new(client(&config.aws), TABLE);
    let app: &'static App<DynamoStore> = Box::leak(Box::new(App::new(config, store)));
    let open = || async {
        let mut event = serde_json::from_str::<serde_json::Value>(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../events/task_events.json"
            ))
            .expect("event"),
        )
        .expect("JSON");
        event["headers"]["x-user-id"] = serde_json::Value::from("dana");
        if let Some(context) = event["requestContext"].as_object_mut() {
            context.remove("authorizer");
        }
        let req = lambda_http::request::from_str(&event.to_string()).expect("event");
        shared::runtime::respond_with(
            app,
            handlers::task_events::handle,
            req,
            shared::http::streaming::buffered,
        )
        .await
    };
    let first = open().await;
    assert_eq!(first.status(), 200);
    let first = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut body = first.into_body();
        let mut text = String::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("frame").into_data() {
                text.push_str(std::str::from_utf8(&data).expect("UTF-8"));
            }
        }
        (started.elapsed(), text)
    });
    let mut others = Vec::new();
    for _ in 0..2 {
        let response = open().await;
        assert_eq!(response.status(), 200);
        others.push(response);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let fourth = open().await;
    assert_eq!(fourth.status(), 200, "a new stream is never locked out");
    let (ended_after, text) = tokio::time::timeout(std::time::Duration::from_secs(10), first)
        .await
        .expect("the replaced stream ends within a heartbeat, not its 30 s lifetime")
        .expect("joined");
    assert!(text.contains("retry:"), "{text}");
    assert!(
        ended_after < std::time::Duration::from_secs(5),
        "{ended_after:?}"
    );
    drop(others);
    drop(fourth);
}
