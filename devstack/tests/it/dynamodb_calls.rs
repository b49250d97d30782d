//! The other half of least privilege: every DynamoDB call a handler's code
//! makes is one its declaration (`shared::handlers::<function>::DYNAMODB`,
//! which `template.yaml` grants exactly: `shared/tests/least_privilege.rs`)
//! covers. Each handler serves its requests (success, not found,
//! precondition failed, idempotent replay, filters, pages...) against
//! dynoxide through an SDK client whose interceptor records every
//! operation, with a transaction counted as the actions of its parts, as
//! IAM counts it. The audit function gets the sample stream batch. A call
//! the declaration lacks would be an AccessDenied on AWS (a 500, or an
//! audit entry never written): here it fails the test. A confined action
//! (`DynamoDbAccess::confined`, granted under a `dynamodb:LeadingKeys`
//! condition) is checked on the partition key each call named.
//!
//! `cargo test -p devstack --test dynamodb_calls -- --nocapture` prints
//! what each function called.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemInput;
use aws_sdk_dynamodb::operation::get_item::GetItemInput;
use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use aws_sdk_dynamodb::operation::query::QueryInput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use devstack::LocalDynamo;
use lambda_http::http::{self, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::Value;
use shared::adapters::dynamo::DynamoStore;
use shared::config::Config;
use shared::handlers::{self, DynamoDbAccess, LeadingKey, dynamodb_access};
use shared::http::streaming::buffered;
use shared::runtime::{App, HandlerResult, respond, respond_with};

const TABLE: &str = "tasks";

/// `(IAM action, index, partition key)` of one call (the partition key
/// of an item operation, which IAM's `dynamodb:LeadingKeys` names).
type Call = (String, Option<String>, Option<String>);

/// The partition key of an item or key.
fn partition(item: Option<&HashMap<String, AttributeValue>>) -> Option<String> {
    item?.get("pk")?.as_s().ok().cloned()
}

/// Records the IAM actions of every DynamoDB operation the client sends.
#[derive(Debug, Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Recorder {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().expect("recorder lock"))
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "DynamoDbCallRecorder"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_owned())
            .unwrap_or_else(|| "<unknown operation>".to_owned());
        let input = context.input();
        let mut calls = Vec::new();
        if let Some(transaction) = input.downcast_ref::<TransactWriteItemsInput>() {
            for item in transaction.transact_items() {
                let (part, key) = if let Some(put) = item.put() {
                    ("PutItem", partition(Some(put.item())))
                } else if let Some(update) = item.update() {
                    ("UpdateItem", partition(Some(update.key())))
                } else if let Some(delete) = item.delete() {
                    ("DeleteItem", partition(Some(delete.key())))
                } else if let Some(check) = item.condition_check() {
                    ("ConditionCheckItem", partition(Some(check.key())))
                } else {
                    ("<unknown transaction part>", None)
                };
                calls.push((format!("dynamodb:{part}"), None, key));
            }
        } else if let Some(query) = input.downcast_ref::<QueryInput>() {
            calls.push((
                format!("dynamodb:{operation}"),
                query.index_name().map(str::to_owned),
                None,
            ));
        } else {
            let key = if let Some(get) = input.downcast_ref::<GetItemInput>() {
                partition(get.key())
            } else if let Some(put) = input.downcast_ref::<PutItemInput>() {
                partition(put.item())
            } else if let Some(update) = input.downcast_ref::<UpdateItemInput>() {
                partition(update.key())
            } else if let Some(delete) = input.downcast_ref::<DeleteItemInput>() {
                partition(delete.key())
            } else {
                None
            };
            calls.push((format!("dynamodb:{operation}"), None, key));
        }
        self.calls.lock().expect("recorder lock").extend(calls);
        Ok(())
    }
}

fn config() -> Config {
    Config::from_lookup(|name| {
        let value = match name {
            "TABLE_NAME" => TABLE,
            "MAX_TASKS" => "3",
            // Each route's calls, not the fair share's refusals.
            "WRITES_PER_CALLER" | "EXPORTS_PER_CALLER" => "1000",
            "IDENTITY_MODE" => "header",
            // Feed streams of a second, checking their place each second.
            "EVENTS_LIFETIME_SECONDS" | "EVENTS_HEARTBEAT_SECONDS" => "1",
            "AWS_REGION" => "us-east-1",
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => "local",
            _ => return None,
        };
        Some(value.to_owned())
    })
    .expect("test config")
}

/// A request as API Gateway hands it over: `path` may carry a query; a
/// `/tasks/<id>` path gets its `task_id` path parameter.
fn request(method: &str, path: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Request {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .header("x-user-id", "alice");
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = body.map_or(Body::Empty, |b| Body::Text(b.to_owned()));
    let mut req = builder.body(body).expect("request");
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    if let Some(rest) = route.strip_prefix("/tasks/") {
        let id = rest.split('/').next().unwrap_or(rest);
        req =
            req.with_path_parameters(HashMap::from([("task_id".to_owned(), vec![id.to_owned()])]));
    }
    let mut params: HashMap<String, Vec<String>> = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        params
            .entry(name.to_owned())
            .or_default()
            .push(value.to_owned());
    }
    req.with_query_string_parameters(params)
}

fn json(response: &Response<Body>) -> Value {
    match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

struct Harness {
    _dynamo: LocalDynamo,
    /// Leaked, as the runtime's is: the streamed feed needs `'static`.
    app: &'static App<DynamoStore>,
    recorder: Recorder,
    /// What each function called, by function.
    calls: HashMap<&'static str, BTreeSet<Call>>,
}

impl Harness {
    async fn start() -> Self {
        let dynamo = LocalDynamo::in_memory(TABLE)
            .await
            .expect("dynoxide starts");
        let recorder = Recorder::default();
        let client = aws_sdk_dynamodb::Client::from_conf(
            dynamo
                .client
                .config()
                .to_builder()
                .interceptor(recorder.clone())
                .build(),
        );
        let app = Box::leak(Box::new(App::new(
            config(),
            DynamoStore::new(client, TABLE),
        )));
        Harness {
            _dynamo: dynamo,
            app,
            recorder,
            calls: HashMap::new(),
        }
    }

    /// Serves `req` with `function`'s handler, records its calls under
    /// `function`, and checks the status.
    async fn serve<'a, H, Fut>(
        &'a mut self,
        function: &'static str,
        handler: H,
        req: Request,
        status: u16,
    ) -> Response<Body>
    where
        H: FnOnce(&'a App<DynamoStore>, Request) -> Fut,
        Fut: Future<Output = HandlerResult>,
    {
        let what = format!("{function} {} {}", req.method(), req.uri());
        self.recorder.take();
        let response = respond(self.app, handler, req).await;
        let calls = self.recorder.take();
        self.calls.entry(function).or_default().extend(calls);
        assert_eq!(
            response.status(),
            StatusCode::from_u16(status).expect("status"),
            "{what}: {:?}",
            response.body()
        );
        response
    }

    /// A ticket from `create_ticket` (its calls recorded under it).
    async fn ticket(&mut self) -> String {
        let issued = self
            .serve(
                "create_ticket",
                handlers::create_ticket::handle,
                request("POST", "/tasks/events/tickets", None, &[]),
                201,
            )
            .await;
        json(&issued)["ticket"]
            .as_str()
            .expect("a ticket")
            .to_owned()
    }

    /// Opens the feed with `req`, checks the status, reads the stream to
    /// its end (a second) and waits for its lease's release; records the
    /// calls under `task_events`.
    async fn follow(&mut self, req: Request, status: u16) {
        use http_body_util::BodyExt;
        self.recorder.take();
        let response = respond_with(self.app, handlers::task_events::handle, req, buffered).await;
        assert_eq!(response.status().as_u16(), status, "task_events");
        let body = response.into_body().collect();
        tokio::time::timeout(std::time::Duration::from_secs(5), body)
            .await
            .expect("the stream ends with its lifetime")
            .expect("a stream");
        // The lease is given back on the runtime, after the stream.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let calls = self.recorder.take();
        self.calls.entry("task_events").or_default().extend(calls);
    }
}

/// Whether `access` grants the call: an action on the table or the index
/// it named, or a confined action on an item under one of its leading keys.
fn covered(access: DynamoDbAccess, (action, index, key): &Call) -> bool {
    let granted = access.actions.contains(&action.as_str())
        && match index.as_deref() {
            None => access.table,
            Some(index) => access.indexes.contains(&index),
        };
    let confined = index.is_none()
        && access.confined.contains(&action.as_str())
        && key
            .as_deref()
            .is_some_and(|key| access.leading_keys.iter().any(|lead| lead.allows(key)));
    granted || confined
}

fn show(calls: &BTreeSet<Call>) -> String {
    let shown: BTreeSet<String> = calls
        .iter()
        .map(|(action, index, key)| match (index, key) {
            (Some(index), _) => format!("{action} (index {index})"),
            (None, Some(key)) if key.starts_with("USER#") => format!("{action} (USER#…)"),
            (None, Some(key)) => format!("{action} ({key})"),
            (None, None) => action.clone(),
        })
        .collect();
    let shown: Vec<String> = shown.into_iter().collect();
    if shown.is_empty() {
        "nothing".to_owned()
    } else {
        shown.join(", ")
    }
}

#[tokio::test]
async fn every_dynamodb_call_is_declared_and_so_granted() {
    let mut h = Harness::start().await;
    let missing = "00000000-0000-7000-8000-000000000000";

    // create_task: plain, idempotent (first, replay, other body), at the limit.
    let created = h
        .serve(
            "create_task",
            handlers::create_task::handle,
            request("POST", "/tasks", Some(r#"{"title":"one"}"#), &[]),
            201,
        )
        .await;
    let id = json(&created)["id"].as_str().expect("an id").to_owned();
    let key = [("idempotency-key", "key-1")];
    for (body, status) in [
        (r#"{"title":"two","done":true}"#, 201),
        (r#"{"title":"two","done":true}"#, 201),
        (r#"{"title":"other"}"#, 422),
    ] {
        h.serve(
            "create_task",
            handlers::create_task::handle,
            request("POST", "/tasks", Some(body), &key),
            status,
        )
        .await;
    }
    for (title, status) in [("three", 201), ("four", 409)] {
        let body = format!(r#"{{"title":"{title}"}}"#);
        h.serve(
            "create_task",
            handlers::create_task::handle,
            request("POST", "/tasks", Some(&body), &[]),
            status,
        )
        .await;
    }

    // list_tasks: all, each done-partition, and a second page.
    for query in ["", "?done=true", "?done=false"] {
        h.serve(
            "list_tasks",
            handlers::list_tasks::handle,
            request("GET", &format!("/tasks{query}"), None, &[]),
            200,
        )
        .await;
    }
    let page = h
        .serve(
            "list_tasks",
            handlers::list_tasks::handle,
            request("GET", "/tasks?limit=1&done=false", None, &[]),
            200,
        )
        .await;
    let cursor = json(&page)["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    h.serve(
        "list_tasks",
        handlers::list_tasks::handle,
        request(
            "GET",
            &format!("/tasks?limit=1&done=false&cursor={cursor}"),
            None,
            &[],
        ),
        200,
    )
    .await;

    // create_ticket: the first creates the ticket key, the next reads it
    // (each as a new instance would: the key is kept per instance).
    let mut ticket = String::new();
    for _ in 0..2 {
        h.app.tickets.forget();
        ticket = h.ticket().await;
    }

    // task_events: by ticket (on an instance that reads the key), and as
    // the caller, from the start and from now; its lease taken, checked at
    // the heartbeat and given back.
    h.app.tickets.forget();
    h.follow(
        request("GET", &format!("/tasks/events?ticket={ticket}"), None, &[]),
        200,
    )
    .await;
    h.follow(request("GET", "/tasks/events?since=0", None, &[]), 200)
        .await;
    h.follow(request("GET", "/tasks/events", None, &[]), 200)
        .await;

    // get_task
    for (task, status) in [(id.as_str(), 200), (missing, 404)] {
        h.serve(
            "get_task",
            handlers::get_task::handle,
            request("GET", &format!("/tasks/{task}"), None, &[]),
            status,
        )
        .await;
    }

    // replace_task: with a current and a stale ETag, and a missing task.
    let path = format!("/tasks/{id}");
    let body = Some(r#"{"title":"one, replaced"}"#);
    for (if_match, status) in [("\"1\"", 200), ("\"1\"", 412)] {
        h.serve(
            "replace_task",
            handlers::replace_task::handle,
            request("PUT", &path, body, &[("if-match", if_match)]),
            status,
        )
        .await;
    }
    h.serve(
        "replace_task",
        handlers::replace_task::handle,
        request("PUT", &format!("/tasks/{missing}"), body, &[]),
        404,
    )
    .await;

    // update_task: a change, an empty patch (a read), stale ETags.
    for (patch, if_match, status) in [
        (r#"{"done":true}"#, "\"2\"", 200),
        ("{}", "*", 200),
        ("{}", "\"1\"", 412),
        (r#"{"title":"x"}"#, "\"1\"", 412),
    ] {
        h.serve(
            "update_task",
            handlers::update_task::handle,
            request("PATCH", &path, Some(patch), &[("if-match", if_match)]),
            status,
        )
        .await;
    }

    // delete_task: stale, current, gone.
    for (if_match, status) in [("\"1\"", 412), ("\"3\"", 204), ("*", 404)] {
        h.serve(
            "delete_task",
            handlers::delete_task::handle,
            request("DELETE", &path, None, &[("if-match", if_match)]),
            status,
        )
        .await;
    }

    // The functions without storage.
    h.serve(
        "health",
        handlers::health::handle,
        request("GET", "/health", None, &[]),
        200,
    )
    .await;
    h.serve(
        "me",
        handlers::me::handle,
        request("GET", "/me", None, &[]),
        200,
    )
    .await;
    for (method, path, status) in [("POST", "/health", 405), ("GET", "/nope", 404)] {
        h.serve(
            "fallback",
            handlers::fallback::handle,
            request(method, path, None, &[]),
            status,
        )
        .await;
    }
    h.serve(
        "docs",
        shared::openapi::docs::handle,
        request("GET", "/openapi.json", None, &[]),
        200,
    )
    .await;

    // audit: the sample stream batch, twice (the second is all duplicates).
    let path = format!("{}/../events/audit.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("events/audit.json");
    for _ in 0..2 {
        let event: shared::handlers::audit::Event =
            serde_json::from_str(&text).expect("a stream event");
        h.recorder.take();
        let response = shared::handlers::audit::handle(&h.app.store, event).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        let calls = h.recorder.take();
        h.calls.entry("audit").or_default().extend(calls);
    }
    // task_history: what the audit recorded, a page at a time.
    for query in ["", "?limit=1"] {
        let path = format!("/tasks/0193f1d2-7c4e-7a3b-9c1d-2e3f4a5b6c7d/history{query}");
        h.serve(
            "task_history",
            handlers::task_history::handle,
            request("GET", &path, None, &[]),
            200,
        )
        .await;
    }

    let mut problems = Vec::new();
    let mut functions: Vec<_> = h.calls.keys().copied().collect();
    functions.sort();
    for function in functions {
        let calls = &h.calls[function];
        let access = dynamodb_access(function).expect("declared");
        println!("{function:>13}: {}", show(calls));
        let undeclared: BTreeSet<Call> = calls
            .iter()
            .filter(|call| !covered(access, call))
            .cloned()
            .collect();
        if !undeclared.is_empty() {
            problems.push(format!(
                "{function} called {} but declares {:?} (indexes {:?}), and {:?} on {:?}",
                show(&undeclared),
                access.actions,
                access.indexes,
                access.confined,
                access.leading_keys,
            ));
        }
        // The recorder saw the storage functions' writes (not vacuous).
        if access.uses_storage() {
            assert!(!calls.is_empty(), "{function}: no call recorded");
        }
    }
    assert!(
        problems.is_empty(),
        "calls beyond the declared (and granted) access:\n{}",
        problems.join("\n")
    );

    // The transactions are seen as their parts.
    let parts = |function: &str| -> BTreeSet<String> {
        h.calls[function]
            .iter()
            .map(|(a, _, _)| a.clone())
            .collect()
    };
    assert!(parts("create_task").is_superset(&BTreeSet::from([
        "dynamodb:PutItem".to_owned(),
        "dynamodb:UpdateItem".to_owned()
    ])));
    assert_eq!(
        parts("delete_task"),
        BTreeSet::from([
            "dynamodb:DeleteItem".to_owned(),
            "dynamodb:UpdateItem".to_owned()
        ])
    );
    let gsi1_query = ("dynamodb:Query".to_owned(), Some("GSI1".to_owned()), None);
    assert!(h.calls["list_tasks"].contains(&gsi1_query));
    assert!(h.calls["task_history"].contains(&gsi1_query));
    assert_eq!(
        parts("audit"),
        BTreeSet::from(["dynamodb:PutItem".to_owned()])
    );
    // The feed's writes were seen, and with their keys (not vacuous).
    for (function, action) in [
        ("task_events", "dynamodb:PutItem"),
        ("task_events", "dynamodb:DeleteItem"),
        ("create_ticket", "dynamodb:PutItem"),
    ] {
        assert!(
            h.calls[function]
                .iter()
                .any(|(a, _, key)| a == action && key.is_some()),
            "{function}: no {action} seen"
        );
    }
}

/// The feed's Function URL is public: whatever anybody sends it without a
/// valid token or ticket is refused (401) without a DynamoDB call. A
/// well-formed ticket needs the ticket key, read once per instance; after
/// that, forgeries cost nothing either.
#[tokio::test]
async fn the_feed_refuses_anonymous_and_forged_requests_without_reading_dynamodb() {
    let mut h = Harness::start().await;
    let ticket = h.ticket().await;
    let anonymous = |query: &str| {
        let mut req = request("GET", &format!("/tasks/events{query}"), None, &[]);
        req.headers_mut().remove("x-user-id");
        req
    };
    // A well-formed ticket whose seal is wrong: the key decides.
    let mut forged = ticket.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");
    let junk = [
        String::new(),
        "?ticket=".to_owned(),
        "?ticket=x".to_owned(),
        format!("?ticket={}", "A".repeat(5000)),
        format!("?ticket={}", &ticket[1..]),
        format!("?ticket={forged}"),
    ];

    // A new instance: nothing read, not even the key, for junk.
    h.app.tickets.forget();
    h.recorder.take();
    for query in &junk[..5] {
        let response = respond_with(
            h.app,
            handlers::task_events::handle,
            anonymous(query),
            buffered,
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{query}");
    }
    assert_eq!(h.recorder.take(), [], "junk read DynamoDB");

    // A forgery: the key, once; then nothing, however many come.
    let started = std::time::Instant::now();
    for _ in 0..100 {
        let response = respond_with(
            h.app,
            handlers::task_events::handle,
            anonymous(&junk[5]),
            buffered,
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let took = started.elapsed();
    let calls = h.recorder.take();
    assert_eq!(
        calls.iter().map(|(a, _, _)| a.as_str()).collect::<Vec<_>>(),
        ["dynamodb:GetItem"],
        "{calls:?}"
    );
    println!("100 forged tickets refused in {took:?} (one key read included)");
}

#[test]
fn the_coverage_rule_needs_action_and_index() {
    let access = DynamoDbAccess {
        actions: &["dynamodb:Query"],
        table: true,
        indexes: &["GSI1"],
        ..DynamoDbAccess::NONE
    };
    let call =
        |action: &str, index: Option<&str>| (action.to_owned(), index.map(str::to_owned), None);
    assert!(covered(access, &call("dynamodb:Query", None)));
    assert!(covered(access, &call("dynamodb:Query", Some("GSI1"))));
    assert!(!covered(access, &call("dynamodb:Query", Some("GSI2"))));
    assert!(!covered(access, &call("dynamodb:Scan", None)));
    assert!(!covered(
        DynamoDbAccess::NONE,
        &call("dynamodb:GetItem", None)
    ));
    // Granted on the index only: a Query of the table is not covered.
    let index_only = DynamoDbAccess {
        table: false,
        ..access
    };
    assert!(!covered(index_only, &call("dynamodb:Query", None)));
    assert!(covered(index_only, &call("dynamodb:Query", Some("GSI1"))));
}

#[test]
fn a_confined_action_is_covered_on_its_leading_keys_only() {
    let access = DynamoDbAccess::table(&["dynamodb:GetItem"]).confined(
        &["dynamodb:PutItem"],
        &[LeadingKey::Prefix("FEED#"), LeadingKey::Exact("KEY#one")],
    );
    let put = |key: Option<&str>| ("dynamodb:PutItem".to_owned(), None, key.map(str::to_owned));
    assert!(covered(access, &put(Some("FEED#alice"))));
    assert!(covered(access, &put(Some("KEY#one"))));
    assert!(!covered(access, &put(Some("KEY#one#two"))));
    assert!(!covered(access, &put(Some("USER#alice"))));
    assert!(!covered(access, &put(None)));
    let get = (
        "dynamodb:GetItem".to_owned(),
        None,
        Some("USER#alice".to_owned()),
    );
    assert!(covered(access, &get));
}
