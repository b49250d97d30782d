//! The warm path of a function, minus the network: API Gateway event JSON →
//! request → handler (in-memory store) → response JSON, for create, get and
//! a 20-item list. Prints allocations per request after criterion's timing.
//!
//! `cargo bench -p shared --bench hot_path`

use std::alloc::System;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lambda_http::{Body, Request, Response};
use shared::adapters::memory::MemoryStore;
use shared::config::Config;
use shared::domain::caller::Caller;
use shared::domain::task::{Task, TaskCreate, now};
use shared::handlers;
use shared::ports::{CreateRules, TaskStore};
use shared::runtime::{App, HandlerResult, respond};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use uuid::Uuid;

/// Counts allocations, to report allocations per request.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const EVENT_TASK_ID: &str = "0193f1d2-7c4e-7a3b-9c1d-2e3f4a5b6c7d";

fn event_text(name: &str) -> String {
    let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).expect("event file")
}

fn app() -> App<MemoryStore> {
    let config = Config::from_lookup(|name| {
        let value = match name {
            "TABLE_NAME" => "tasks",
            "AWS_REGION" => "us-east-1",
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => "bench",
            // The hot path of a caller within its share, millions of times.
            "WRITES_PER_CALLER" | "EXPORTS_PER_CALLER" => "4000000000",
            _ => return None,
        };
        Some(value.to_owned())
    })
    .expect("config");
    App::new(config, MemoryStore::default())
}

const RULES: CreateRules<'static> = CreateRules {
    max_tasks: u32::MAX,
    idempotency: None,
};

/// Alice's tasks: the one the events name, and 30 more for the list.
fn seeded() -> App<MemoryStore> {
    let app = app();
    let alice = Caller::new("alice").expect("caller");
    let mut tasks = vec![Task::new(
        TaskCreate {
            title: "bench".into(),
            description: "the task the events name".into(),
            ..TaskCreate::default()
        },
        now(),
    )];
    tasks[0].id = Uuid::parse_str(EVENT_TASK_ID).expect("uuid");
    for i in 0..30 {
        let input = TaskCreate {
            title: format!("task {i}"),
            description: "x".repeat(100),
            ..TaskCreate::default()
        };
        tasks.push(Task::new(input, now()));
    }
    for task in tasks {
        futures::executor::block_on(app.store.create(&alice, task, RULES)).expect("seed");
    }
    app
}

/// What the runtime sends back to Lambda, serialised as JSON.
fn response_json(response: Response<Body>) -> String {
    let body = match response.body() {
        Body::Text(text) => text.clone(),
        _ => String::new(),
    };
    let headers: serde_json::Map<String, serde_json::Value> = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().into()))
        .collect();
    serde_json::json!({"statusCode": response.status().as_u16(), "headers": headers, "body": body})
        .to_string()
}

/// One request through the whole warm path.
fn serve<F>(app: &App<MemoryStore>, event: &str, handler: F) -> String
where
    F: for<'a> FnOnce(
        &'a App<MemoryStore>,
        Request,
    )
        -> std::pin::Pin<Box<dyn std::future::Future<Output = HandlerResult> + 'a>>,
{
    let req = lambda_http::request::from_str(event).expect("event");
    let response = futures::executor::block_on(respond(app, handler, req));
    response_json(response)
}

fn create(
    app: &App<MemoryStore>,
    req: Request,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = HandlerResult> + '_>> {
    Box::pin(handlers::create_task::handle(app, req))
}
fn get(
    app: &App<MemoryStore>,
    req: Request,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = HandlerResult> + '_>> {
    Box::pin(handlers::get_task::handle(app, req))
}
fn list(
    app: &App<MemoryStore>,
    req: Request,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = HandlerResult> + '_>> {
    Box::pin(handlers::list_tasks::handle(app, req))
}

fn list_event() -> String {
    // The sample list event, asking for a 20-item page of all tasks.
    let mut event: serde_json::Value =
        serde_json::from_str(&event_text("list_tasks")).expect("json");
    event["queryStringParameters"] = serde_json::json!({"limit": "20"});
    event["rawQueryString"] = "limit=20".into();
    event.to_string()
}

fn allocations_per_request(name: &str, mut run: impl FnMut()) {
    const N: usize = 1000;
    run();
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        run();
    }
    let change = region.change();
    let per = (change.allocations + change.reallocations) as f64 / N as f64;
    println!("{name}: {per:.1} allocations per request");
}

fn hot_path(c: &mut Criterion) {
    let app = seeded();
    let create_event = event_text("create_task");
    let get_event = event_text("get_task");
    let list_event = list_event();
    assert!(serve(&app, &get_event, get).contains("\"statusCode\":200"));
    let page = serve(&app, &list_event, list);
    assert_eq!(page.matches("created_at").count(), 20, "a 20-item page");

    c.bench_function("create_task", |b| {
        b.iter(|| black_box(serve(&app, &create_event, create)))
    });
    c.bench_function("get_task", |b| {
        b.iter(|| black_box(serve(&app, &get_event, get)))
    });
    c.bench_function("list_tasks_20", |b| {
        b.iter(|| black_box(serve(&app, &list_event, list)))
    });

    let fresh = seeded();
    allocations_per_request("create_task", || {
        black_box(serve(&fresh, &create_event, create));
    });
    allocations_per_request("get_task", || {
        black_box(serve(&app, &get_event, get));
    });
    allocations_per_request("list_tasks_20", || {
        black_box(serve(&app, &list_event, list));
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
