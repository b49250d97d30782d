//! The other half of least privilege: every DynamoDB call a handler's code
//! makes is one its declaration (`shared::handlers::<function>::DYNAMODB`,
//! which `template.yaml` grants exactly: `shared/tests/least_privilege.rs`)
//! covers. Each handler serves its requests (success, not found,
//! precondition failed, idempotent replay, filters, pages...) against
//! dynoxide through an SDK client whose interceptor records every
//! operation, with a transaction counted as the actions of its parts, as
//! IAM counts it. The audit function gets the sample stream batch. A call
//! the declaration lacks would be an AccessDenied on AWS (a 500, or an
//! audit entry never written): here it fails the test.
//!
//! `cargo test -p devstack --test dynamodb_calls -- --nocapture` prints
//! what each function called.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::query::QueryInput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use devstack::LocalDynamo;
use lambda_http::http::{self, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::Value;
use shared::adapters::dynamo::DynamoStore;
use shared::config::Config;
use shared::handlers::{self, DynamoDbAccess, dynamodb_access};
use shared::runtime::{App, HandlerResult, respond};

const TABLE: &str = "tasks";

/// `(IAM action, index)` of one call.
type Call = (String, Option<String>);

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
                let part = if item.put().is_some() {
                    "PutItem"
                } else if item.update().is_some() {
                    "UpdateItem"
                } else if item.delete().is_some() {
                    "DeleteItem"
                } else if item.condition_check().is_some() {
                    "ConditionCheckItem"
                } else {
                    "<unknown transaction part>"
                };
                calls.push((format!("dynamodb:{part}"), None));
            }
        } else if let Some(query) = input.downcast_ref::<QueryInput>() {
            calls.push((
                format!("dynamodb:{operation}"),
                query.index_name().map(str::to_owned),
            ));
        } else {
            calls.push((format!("dynamodb:{operation}"), None));
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
    app: App<DynamoStore>,
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
        let app = App::new(config(), DynamoStore::new(client, TABLE));
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
        let response = respond(&self.app, handler, req).await;
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
}

fn covered(access: DynamoDbAccess, (action, index): &Call) -> bool {
    access.actions.contains(&action.as_str())
        && match index.as_deref() {
            None => access.table,
            Some(index) => access.indexes.contains(&index),
        }
}

fn show(calls: &BTreeSet<Call>) -> String {
    let shown: Vec<String> = calls
        .iter()
        .map(|(action, index)| match index {
            Some(index) => format!("{action} (index {index})"),
            None => action.clone(),
        })
        .collect();
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

    // create_ticket: the ticket, by its hash.
    h.serve(
        "create_ticket",
        handlers::create_ticket::handle,
        request("POST", "/tasks/events/tickets", None, &[]),
        201,
    )
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
                "{function} called {} but declares {:?} (indexes {:?})",
                show(&undeclared),
                access.actions,
                access.indexes
            ));
        }
        // The recorder saw the storage functions' writes (not vacuous).
        if !access.actions.is_empty() {
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
        h.calls[function].iter().map(|(a, _)| a.clone()).collect()
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
    assert!(
        h.calls["list_tasks"].contains(&("dynamodb:Query".to_owned(), Some("GSI1".to_owned())))
    );
    assert!(
        h.calls["task_history"].contains(&("dynamodb:Query".to_owned(), Some("GSI1".to_owned())))
    );
    assert_eq!(
        parts("audit"),
        BTreeSet::from(["dynamodb:PutItem".to_owned()])
    );
}

#[test]
fn the_coverage_rule_needs_action_and_index() {
    let access = DynamoDbAccess {
        actions: &["dynamodb:Query"],
        table: true,
        indexes: &["GSI1"],
        stream: false,
    };
    let call = |action: &str, index: Option<&str>| (action.to_owned(), index.map(str::to_owned));
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
