//! X-Ray subsegments (`shared::adapters::xray`): a create, a list and an
//! audit batch, served as deployed (the observability layer around the
//! handler; the audit through `invoke_event`) with Lambda's trace header,
//! against dynoxide, send one subsegment per DynamoDB call, in the
//! invocation's trace under its segment, to a UDP listener standing in for
//! Lambda's X-Ray daemon.

use std::convert::Infallible;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;

use devstack::LocalDynamo;
use lambda_http::lambda_runtime::LambdaEvent;
use lambda_http::tower::{Layer, Service};
use lambda_http::{Body, Request, RequestExt, service_fn};
use serde_json::Value;
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::xray::{self, DynamoDbTracing};
use shared::config::Config;
use shared::domain::caller::Caller;
use shared::domain::task::{Task, TaskCreate, now};
use shared::handlers::export_tasks::EXPORT_PAGE;
use shared::handlers::{self, dynamodb_access};
use shared::http::observability::ObservabilityLayer;
use shared::http::streaming::buffered;
use shared::ports::{CreateRules, TaskStore};
use shared::runtime::{App, HandlerResult, invoke_event, respond, respond_with};

const TABLE: &str = "tasks";
const ROOT: &str = "1-6752a1f3-5e1c2a0b9d8f7e6d5c4b3a29";
const PARENT: &str = "53995c3f42cd8ad8";

/// The daemon's side: the documents received, each checked for the
/// daemon's header line.
struct Listener(UdpSocket);

impl Listener {
    fn documents(&self) -> Vec<Value> {
        let mut documents = Vec::new();
        let mut buffer = vec![0u8; 65_536];
        while let Ok(n) = self.0.recv(&mut buffer) {
            let datagram = std::str::from_utf8(&buffer[..n]).expect("utf-8");
            let (header, document) = datagram.split_once('\n').expect("a header line");
            assert_eq!(format!("{header}\n"), xray::HEADER);
            documents.push(serde_json::from_str(document).expect("a JSON document"));
        }
        documents
    }
}

async fn harness(max_tasks: &str) -> (LocalDynamo, &'static App<DynamoStore>, Listener) {
    let dynamo = LocalDynamo::in_memory(TABLE)
        .await
        .expect("dynoxide starts");
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let daemon = Arc::new(xray::Daemon::at(socket.local_addr().expect("addr")).expect("daemon"));
    let client = aws_sdk_dynamodb::Client::from_conf(
        dynamo
            .client
            .config()
            .to_builder()
            .interceptor(DynamoDbTracing::new(daemon))
            .build(),
    );
    let max_tasks = max_tasks.to_owned();
    let config = Config::from_lookup(move |name| {
        let value = match name {
            "TABLE_NAME" => TABLE,
            "MAX_TASKS" => max_tasks.as_str(),
            "WRITES_PER_CALLER" | "EXPORTS_PER_CALLER" => "1000",
            "IDENTITY_MODE" => "header",
            "AWS_REGION" => "us-east-1",
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => "local",
            _ => return None,
        };
        Some(value.to_owned())
    })
    .expect("test config");
    let app = Box::leak(Box::new(App::new(config, DynamoStore::new(client, TABLE))));
    (dynamo, app, Listener(socket))
}

fn context(sampled: bool) -> lambda_http::Context {
    let mut context = lambda_http::Context::default();
    context.request_id = "8f1b0c4e".into();
    context.xray_trace_id = Some(format!(
        "Root={ROOT};Parent={PARENT};Sampled={}",
        u8::from(sampled)
    ));
    context
}

/// A request as Lambda hands it to the function, in a sampled trace.
fn invoked(method: &str, path: &str, body: Option<&str>, sampled: bool) -> Request {
    let body = body.map_or(Body::Empty, |b| Body::Text(b.to_owned()));
    lambda_http::http::Request::builder()
        .method(method)
        .uri(path)
        .header("x-user-id", "alice")
        .header("content-type", "application/json")
        .body(body)
        .expect("request")
        .with_lambda_context(context(sampled))
}

async fn serve<H, Fut>(app: &'static App<DynamoStore>, handler: H, req: Request) -> u16
where
    H: Fn(&'static App<DynamoStore>, Request) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = HandlerResult> + Send,
{
    let mut service = ObservabilityLayer::new().layer(service_fn(move |req: Request| async move {
        Ok::<_, Infallible>(respond(app, handler, req).await)
    }));
    let response = service.call(req).await.expect("infallible");
    response.status().as_u16()
}

/// What every DynamoDB subsegment of `function` must say.
fn check(function: &str, documents: &[Value]) {
    assert!(!documents.is_empty(), "{function}: no subsegment");
    let access = dynamodb_access(function).expect("declared");
    for doc in documents {
        assert_eq!(doc["type"], "subsegment", "{doc}");
        assert_eq!(doc["name"], "DynamoDB", "{doc}");
        assert_eq!(doc["namespace"], "aws", "{doc}");
        assert_eq!(doc["trace_id"], ROOT, "{doc}");
        assert_eq!(doc["parent_id"], PARENT, "{doc}");
        let id = doc["id"].as_str().expect("id");
        assert!(
            id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "{doc}"
        );
        let (start, end) = (
            doc["start_time"].as_f64().expect("start"),
            doc["end_time"].as_f64().expect("end"),
        );
        assert!(start > 1.7e9 && end >= start && end - start < 5.0, "{doc}");
        assert_eq!(doc["aws"]["table_name"], TABLE, "{doc}");
        assert_eq!(doc["aws"]["retries"], 0, "{doc}");
        let operation = doc["aws"]["operation"].as_str().expect("operation");
        assert!(
            operation == "TransactWriteItems"
                || access
                    .actions
                    .contains(&format!("dynamodb:{operation}").as_str()),
            "{function} does not call {operation}: {doc}"
        );
    }
}

fn operations(documents: &[Value]) -> Vec<&str> {
    documents
        .iter()
        .map(|d| d["aws"]["operation"].as_str().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn create_list_and_audit_calls_are_subsegments_of_the_invocation() {
    let (_dynamo, app, daemon) = harness("1").await;

    // create: its writes, each a successful subsegment.
    let status = serve(
        app,
        handlers::create_task::handle,
        invoked("POST", "/tasks", Some(r#"{"title":"one"}"#), true),
    )
    .await;
    assert_eq!(status, 201);
    let created = daemon.documents();
    check("create_task", &created);
    for doc in &created {
        assert_eq!(
            (&doc["error"], &doc["fault"]),
            (&Value::Bool(false), &Value::Bool(false)),
            "{doc}"
        );
        assert_eq!(doc["http"]["response"]["status"], 200, "{doc}");
    }

    // list: one Query, with the read capacity it consumed.
    let status = serve(
        app,
        handlers::list_tasks::handle,
        invoked("GET", "/tasks", None, true),
    )
    .await;
    assert_eq!(status, 200);
    let listed = daemon.documents();
    check("list_tasks", &listed);
    assert_eq!(operations(&listed), ["Query"]);
    let capacity = listed[0]["metadata"]["dynamodb"]["consumed_capacity"]
        .as_f64()
        .expect("consumed capacity");
    assert!(capacity > 0.0, "{}", listed[0]);

    // A create refused at the limit: its failed write is an error (a 4xx
    // from DynamoDB), with the cause.
    let status = serve(
        app,
        handlers::create_task::handle,
        invoked("POST", "/tasks", Some(r#"{"title":"two"}"#), true),
    )
    .await;
    assert_eq!(status, 409);
    let refused = daemon.documents();
    check("create_task", &refused);
    let failed = refused
        .iter()
        .find(|d| d["error"] == true)
        .unwrap_or_else(|| panic!("no failed call in {refused:?}"));
    assert_eq!(failed["fault"], false, "{failed}");
    assert_eq!(failed["http"]["response"]["status"], 400, "{failed}");
    assert!(
        failed["cause"]["exceptions"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Exception")),
        "{failed}"
    );

    // export: a streamed body, read page by page after the handler
    // returned (polled by the runtime outside the handler's future): the
    // second page's Query is still a subsegment of the invocation. (More
    // than a page of tasks, written outside any invocation: not traced.)
    let alice = Caller::new("alice").expect("caller");
    for n in 0..EXPORT_PAGE {
        let task = Task::new(
            TaskCreate {
                title: format!("task {n}"),
                ..TaskCreate::default()
            },
            now(),
        );
        let rules = CreateRules {
            max_tasks: 1000,
            idempotency: None,
        };
        app.store.create(&alice, task, rules).await.expect("create");
    }
    assert_eq!(daemon.documents(), Vec::<Value>::new(), "no invocation");
    let mut service = ObservabilityLayer::new().layer(service_fn(move |req: Request| async move {
        Ok::<_, Infallible>(respond_with(app, handlers::export_tasks::handle, req, buffered).await)
    }));
    let response = service
        .call(invoked("GET", "/tasks/export", None, true))
        .await
        .expect("infallible");
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("the export")
        .to_bytes();
    assert!(!body.is_empty());
    let exported = daemon.documents();
    check("export_tasks", &exported);
    assert_eq!(
        operations(&exported),
        ["UpdateItem", "Query", "Query"],
        "the caller's export count, then two pages"
    );

    // Not sampled: nothing sent.
    serve(
        app,
        handlers::list_tasks::handle,
        invoked("GET", "/tasks", None, false),
    )
    .await;
    assert_eq!(daemon.documents(), Vec::<Value>::new(), "unsampled");

    // The audit's batch: one PutItem per recorded change (the sample's
    // three task records; its other records are not task changes).
    let path = format!("{}/../events/audit.json", env!("CARGO_MANIFEST_DIR"));
    let batch: handlers::audit::Event =
        serde_json::from_str(&std::fs::read_to_string(path).expect("events/audit.json"))
            .expect("a stream event");
    let response = invoke_event(
        app,
        |app: &App<DynamoStore>, event| handlers::audit::handle(&app.store, event),
        LambdaEvent::new(batch, context(true)),
        true,
    )
    .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let audited = daemon.documents();
    check("audit", &audited);
    assert_eq!(operations(&audited), ["PutItem"; 3]);
}
