//! Each function's handler, driven by its sample event from `events/` (the
//! same files `cargo lambda invoke --data-file` uses) with the in-memory
//! store, through the same `respond` wrapper the Lambda runtime calls.

use chrono::{TimeZone, Utc};
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use shared::adapters::memory::MemoryStore;
use shared::domain::caller::Caller;
use shared::domain::task::{ListQuery, Task, TaskCreate, TaskPatch, VersionedTask};
use shared::handlers;
use shared::ports::{CreateRules, Idempotency, Precondition, StoreError, StoredPage, TaskStore};
use shared::runtime::{App, respond};
use uuid::Uuid;

const RULES: CreateRules<'static> = CreateRules {
    max_tasks: 1000,
    idempotency: None,
};

/// The task id used by the sample events.
const EVENT_TASK_ID: &str = "0193f1d2-7c4e-7a3b-9c1d-2e3f4a5b6c7d";

fn alice() -> Caller {
    Caller::new("alice").expect("caller")
}

/// Stores the task the sample events refer to, as alice's.
async fn seed_event_task(app: &App<MemoryStore>) -> VersionedTask {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 25, 9, 0, 0)
        .single()
        .expect("time");
    let task = Task::with(
        Uuid::parse_str(EVENT_TASK_ID).expect("uuid"),
        TaskCreate {
            title: "Write the README".into(),
            description: "first draft".into(),
            done: false,
            ..TaskCreate::default()
        },
        at,
        at,
    );
    app.store.create(&alice(), task, RULES).await.expect("seed")
}

fn body_json(response: &Response<Body>) -> Value {
    match response.body() {
        Body::Text(text) => serde_json::from_str(text).expect("JSON body"),
        other => panic!("expected a text body, got {other:?}"),
    }
}

fn header_of(response: &Response<Body>, name: header::HeaderName) -> Option<&str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn health_needs_no_identity() {
    let app = crate::support::app(&[]);
    let response = respond(
        app,
        handlers::health::handle,
        crate::support::event("health"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_json(&response), json!({"status": "ok"}));
}

#[tokio::test]
async fn me_is_the_jwt_subject() {
    let app = crate::support::app(&[]);
    let response = respond(app, handlers::me::handle, crate::support::event("me")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_json(&response), json!({"user_id": "alice"}));
}

#[tokio::test]
async fn the_header_counts_only_in_header_mode() {
    let mut req = crate::support::event("me");
    // No authorizer claims: as if the event came without a JWT.
    req.extensions_mut()
        .remove::<lambda_http::request::RequestContext>();
    req.headers_mut()
        .insert("x-user-id", HeaderValue::from_static("bob"));

    let jwt_only = crate::support::app(&[]);
    let response = respond(jwt_only, handlers::me::handle, clone(&req)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body_json(&response), json!({"detail": "not authenticated"}));
    assert_eq!(
        header_of(&response, header::WWW_AUTHENTICATE),
        Some("Bearer")
    );

    let local = crate::support::app(&[("IDENTITY_MODE", "header")]);
    let response = respond(local, handlers::me::handle, req).await;
    assert_eq!(body_json(&response), json!({"user_id": "bob"}));
}

fn clone(req: &Request) -> Request {
    let mut copy = Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.headers_mut() = req.headers().clone();
    copy
}

#[tokio::test]
async fn create_task_answers_201_with_location_and_etag() {
    let app = crate::support::app(&[]);
    let response = respond(
        app,
        handlers::create_task::handle,
        crate::support::event("create_task"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = body_json(&response);
    let id = body["id"].as_str().expect("id");
    let uuid = Uuid::parse_str(id).expect("uuid id");
    assert_eq!(uuid.get_version_num(), 7);
    assert_eq!(id, uuid.hyphenated().to_string(), "lowercase hyphenated");
    assert_eq!(body["title"], "Write the README");
    assert_eq!(body["description"], "with a curl walkthrough");
    assert_eq!(body["done"], false);
    assert_eq!(body["created_at"], body["updated_at"]);
    let created = body["created_at"].as_str().expect("created_at");
    assert!(created.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(created).is_ok());
    let keys: Vec<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    // `id`, the declared fields in declaration order, the times.
    let mut want = vec!["id"];
    want.extend(shared::domain::task::FIELDS.iter().map(|f| f.name));
    want.extend(["created_at", "updated_at"]);
    assert_eq!(keys, want);
    assert_eq!(
        header_of(&response, header::LOCATION),
        Some(format!("/tasks/{id}").as_str())
    );
    assert_eq!(header_of(&response, header::ETAG), Some("\"1\""));
    assert!(app.store.get(&alice(), uuid).await.is_ok(), "stored");
}

#[tokio::test]
async fn get_task_finds_the_callers_task_only() {
    let app = crate::support::app(&[]);
    let missing = respond(
        app,
        handlers::get_task::handle,
        crate::support::event("get_task"),
    )
    .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(body_json(&missing), json!({"detail": "task not found"}));

    let seeded = seed_event_task(app).await;
    let response = respond(
        app,
        handlers::get_task::handle,
        crate::support::event("get_task"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        body_json(&response),
        serde_json::to_value(&seeded.task).expect("JSON")
    );
    assert_eq!(body_json(&response)["title"], json!("Write the README"));
    assert_eq!(
        body_json(&response)["created_at"],
        json!("2026-11-25T09:00:00.000000Z")
    );
    assert_eq!(
        header_of(&response, header::ETAG),
        Some(seeded.etag().as_str())
    );
}

#[tokio::test]
async fn replace_task_sets_every_field() {
    let app = crate::support::app(&[]);
    seed_event_task(app).await;
    let response = respond(
        app,
        handlers::replace_task::handle,
        crate::support::event("replace_task"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = body_json(&response);
    assert_eq!(
        (body["description"].as_str(), body["done"].as_bool()),
        (Some("replaced"), Some(true))
    );
    assert_eq!(body["created_at"], "2026-11-25T09:00:00.000000Z");
    assert_ne!(body["updated_at"], body["created_at"]);
    assert_eq!(header_of(&response, header::ETAG), Some("\"2\""));
}

#[tokio::test]
async fn update_task_changes_only_what_is_sent() {
    let app = crate::support::app(&[]);
    seed_event_task(app).await;
    let response = respond(
        app,
        handlers::update_task::handle,
        crate::support::event("update_task"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = body_json(&response);
    assert_eq!(body["done"], true);
    assert_eq!(body["title"], "Write the README");
    assert_eq!(body["description"], "first draft");
    assert_eq!(header_of(&response, header::ETAG), Some("\"2\""));
}

#[tokio::test]
async fn writes_with_a_stale_if_match_fail_and_change_nothing() {
    let app = crate::support::app(&[]);
    seed_event_task(app).await;
    let stale = |name: &str| {
        let mut req = crate::support::event(name);
        req.headers_mut()
            .insert(header::IF_MATCH, HeaderValue::from_static("\"7\""));
        req
    };
    let responses = [
        respond(app, handlers::update_task::handle, stale("update_task")).await,
        respond(app, handlers::replace_task::handle, stale("replace_task")).await,
        respond(app, handlers::delete_task::handle, stale("delete_task")).await,
    ];
    for response in &responses {
        assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(
            body_json(response),
            json!({"detail": "precondition failed"})
        );
    }
    let mut req = crate::support::event("update_task");
    req.headers_mut()
        .insert(header::IF_MATCH, HeaderValue::from_static("\"1\""));
    let response = respond(app, handlers::update_task::handle, req).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_of(&response, header::ETAG), Some("\"2\""));
}

/// DynamoDB's `IN` takes at most 100 values (a local emulator has no such
/// limit): `If-Match` is capped at 20 tags, past which it is a clear 400,
/// never a 500 deployed.
#[tokio::test]
async fn an_if_match_list_past_its_cap_is_a_400_and_changes_nothing() {
    let app = crate::support::app(&[]);
    seed_event_task(app).await;
    let list = |n: usize| {
        (1..=n)
            .map(|v| format!("\"{v}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let with = |name: &str, value: &str| {
        let mut req = crate::support::event(name);
        req.headers_mut().insert(
            header::IF_MATCH,
            HeaderValue::from_str(value).expect("header"),
        );
        req
    };
    let too_many = list(21);
    let responses = [
        respond(
            app,
            handlers::update_task::handle,
            with("update_task", &too_many),
        )
        .await,
        respond(
            app,
            handlers::replace_task::handle,
            with("replace_task", &too_many),
        )
        .await,
        respond(
            app,
            handlers::delete_task::handle,
            with("delete_task", &too_many),
        )
        .await,
    ];
    for response in &responses {
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            body_json(response),
            json!({"detail": "If-Match lists more than 20 entity tags"})
        );
    }
    // Not `*` nor entity tags (empty, unquoted, a stray quote): a 400; a
    // weak tag is well-formed but never matches (412).
    for (value, status) in [
        ("", StatusCode::BAD_REQUEST),
        ("1", StatusCode::BAD_REQUEST),
        ("\"1\", 2", StatusCode::BAD_REQUEST),
        ("\"1\"\"", StatusCode::BAD_REQUEST),
        ("W/\"1\"", StatusCode::PRECONDITION_FAILED),
    ] {
        let response = respond(
            app,
            handlers::update_task::handle,
            with("update_task", value),
        )
        .await;
        assert_eq!(response.status(), status, "If-Match: {value:?}");
    }
    // 20 tags, the current version among them: applied.
    let response = respond(
        app,
        handlers::update_task::handle,
        with("update_task", &list(20)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_of(&response, header::ETAG), Some("\"2\""));
}

#[tokio::test]
async fn delete_task_answers_204_then_404() {
    let app = crate::support::app(&[]);
    seed_event_task(app).await;
    let response = respond(
        app,
        handlers::delete_task::handle,
        crate::support::event("delete_task"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(matches!(response.body(), Body::Empty));
    let again = respond(
        app,
        handlers::delete_task::handle,
        crate::support::event("delete_task"),
    )
    .await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn list_tasks_pages_with_the_done_filter() {
    let app = crate::support::app(&[]);
    for (title, done) in [("a", false), ("b", true), ("c", false), ("d", false)] {
        let input = TaskCreate {
            title: title.into(),
            description: String::new(),
            done,
            ..TaskCreate::default()
        };
        app.store
            .create(
                &alice(),
                Task::new(input, shared::domain::task::now()),
                RULES,
            )
            .await
            .expect("seed");
    }
    // The event asks for limit=2&done=false.
    let response = respond(
        app,
        handlers::list_tasks::handle,
        crate::support::event("list_tasks"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = body_json(&response);
    let titles: Vec<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|t| t["title"].as_str())
        .collect();
    assert_eq!(titles, ["a", "c"]);
    let cursor = body["next_cursor"].as_str().expect("a cursor: d is left");

    let mut next = crate::support::event("list_tasks");
    let query = format!("limit=2&done=false&cursor={cursor}");
    *next.uri_mut() = format!("https://localhost/tasks?{query}")
        .parse()
        .expect("uri");
    let next = lambda_http::RequestExt::with_query_string_parameters(
        next,
        lambda_http::aws_lambda_events::query_map::QueryMap::from(std::collections::HashMap::from(
            [
                ("limit".to_owned(), "2".to_owned()),
                ("done".to_owned(), "false".to_owned()),
                ("cursor".to_owned(), cursor.to_owned()),
            ],
        )),
    );
    let response = respond(app, handlers::list_tasks::handle, next).await;
    let body = body_json(&response);
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["items"][0]["title"], "d");
    assert_eq!(body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn fallback_answers_405_on_known_paths_and_404_elsewhere() {
    let app = crate::support::app(&[]);
    let response = respond(
        app,
        handlers::fallback::handle,
        crate::support::event("fallback"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        body_json(&response),
        json!({"detail": "Method Not Allowed"})
    );
    assert_eq!(header_of(&response, header::ALLOW), Some("GET"));

    let mut unknown = crate::support::event("fallback");
    *unknown.method_mut() = Method::GET;
    *unknown.uri_mut() = "https://localhost/nowhere".parse().expect("uri");
    let response = respond(app, handlers::fallback::handle, unknown).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(body_json(&response), json!({"detail": "Not Found"}));

    // Deployed, the HTTP API sends a streamed route here: say where it is.
    let mut streamed = crate::support::event("fallback");
    *streamed.method_mut() = Method::GET;
    *streamed.uri_mut() = "https://localhost/tasks/export".parse().expect("uri");
    let response = respond(app, handlers::fallback::handle, streamed).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let detail = body_json(&response)["detail"].as_str().map(str::to_owned);
    assert!(
        detail
            .as_deref()
            .is_some_and(|d| d.starts_with("GET /tasks/export streams")),
        "{detail:?}"
    );
}

/// A store whose every call fails with the given error.
struct FailingStore(fn() -> StoreError);

impl TaskStore for FailingStore {
    async fn create(
        &self,
        _: &Caller,
        _: Task,
        _: CreateRules<'_>,
    ) -> Result<VersionedTask, StoreError> {
        Err((self.0)())
    }
    async fn get(&self, _: &Caller, _: Uuid) -> Result<VersionedTask, StoreError> {
        Err((self.0)())
    }
    async fn list(&self, _: &Caller, _: &ListQuery) -> Result<StoredPage, StoreError> {
        Err((self.0)())
    }
    async fn replace(
        &self,
        _: &Caller,
        _: Uuid,
        _: TaskCreate,
        _: chrono::DateTime<Utc>,
        _: &Precondition,
        _: Option<&Idempotency>,
    ) -> Result<VersionedTask, StoreError> {
        Err((self.0)())
    }
    async fn update(
        &self,
        _: &Caller,
        _: Uuid,
        _: TaskPatch,
        _: chrono::DateTime<Utc>,
        _: &Precondition,
        _: Option<&Idempotency>,
    ) -> Result<VersionedTask, StoreError> {
        Err((self.0)())
    }
    async fn delete(
        &self,
        _: &Caller,
        _: Uuid,
        _: &Precondition,
        _: Option<&Idempotency>,
    ) -> Result<(), StoreError> {
        Err((self.0)())
    }
}

impl shared::ports::RateLimiter for FailingStore {
    async fn admit(
        &self,
        _: &Caller,
        _: &shared::ports::Quota,
        _: chrono::DateTime<Utc>,
    ) -> Result<Result<(), chrono::DateTime<Utc>>, StoreError> {
        // Faults fail the share's check too; an answer only a task write
        // gives (in flight, not found...) is the write's, not the check's.
        match (self.0)() {
            fault @ (StoreError::Unavailable { .. } | StoreError::Internal { .. }) => Err(fault),
            _ => Ok(Ok(())),
        }
    }
}

/// The fair-share check is storage too: a DynamoDB that is down or
/// throttling refuses the write with a 503 and `Retry-After`, a fault of
/// ours (a permission the policy lacks) with a 500, as every storage call
/// answers; never is the write served uncounted.
#[tokio::test]
async fn a_failed_share_check_refuses_the_write_as_storage_does() {
    let unavailable = crate::support::app_with(
        &[("IDENTITY_MODE", "jwt")],
        FailingStore(|| StoreError::unavailable_because("ThrottlingException (SDK detail)")),
    );
    let internal = crate::support::app_with(
        &[("IDENTITY_MODE", "jwt")],
        FailingStore(|| StoreError::internal_because("AccessDeniedException (SDK detail)")),
    );
    for (app, status, detail, retry_after) in [
        (
            unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            "service unavailable",
            Some("1"),
        ),
        (
            internal,
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal server error",
            None,
        ),
    ] {
        for handler in ["create_task", "delete_task"] {
            let req = crate::support::event(handler);
            let response = match handler {
                "create_task" => respond(app, handlers::create_task::handle, req).await,
                _ => respond(app, handlers::delete_task::handle, req).await,
            };
            assert_eq!(response.status(), status, "{handler}");
            assert_eq!(body_json(&response)["detail"], json!(detail), "{handler}");
            assert_eq!(header_of(&response, header::RETRY_AFTER), retry_after);
        }
    }
}

/// Each caller's writes (all four methods together) are counted apart:
/// past its share, a caller gets 429 with `Retry-After` (the seconds left
/// in the window), before its body is even read; another caller is
/// served as usual. (On DynamoDB, at ten times the share:
/// devstack's concurrency.rs.)
#[tokio::test]
async fn a_caller_past_its_write_share_gets_429_and_others_do_not() {
    let app = crate::support::app(&[("WRITES_PER_CALLER", "2"), ("RATE_WINDOW_SECONDS", "3600")]);
    seed_event_task(app).await;
    let patch = respond(
        app,
        handlers::update_task::handle,
        crate::support::event("update_task"),
    )
    .await;
    assert_eq!(patch.status(), StatusCode::OK);
    let create = respond(
        app,
        handlers::create_task::handle,
        crate::support::event("create_task"),
    )
    .await;
    assert_eq!(create.status(), StatusCode::CREATED);
    // The third write of the window, even one whose body is invalid.
    let mut invalid = crate::support::event_json("create_task");
    invalid["body"] = json!("{\"title\": \"\"}");
    for req in [
        crate::support::event("create_task"),
        crate::support::request(&invalid),
    ] {
        let refused = respond(app, handlers::create_task::handle, req).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            body_json(&refused),
            json!({"detail": "too many writes: at most 2 per 3600 s per caller"})
        );
        let retry: u64 = header_of(&refused, header::RETRY_AFTER)
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        assert!((1..=3600).contains(&retry), "{retry}");
    }
    let refused = respond(
        app,
        handlers::delete_task::handle,
        crate::support::event("delete_task"),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // Bob has his own share.
    let mut bob = crate::support::event_json("create_task");
    bob["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!("bob");
    for _ in 0..2 {
        let created = respond(
            app,
            handlers::create_task::handle,
            crate::support::request(&bob),
        )
        .await;
        assert_eq!(created.status(), StatusCode::CREATED);
    }
}

#[tokio::test]
async fn storage_faults_are_503_with_retry_after_and_leak_nothing() {
    let app = crate::support::app_with(
        &[("IDENTITY_MODE", "jwt")],
        FailingStore(|| {
            StoreError::unavailable("GetItem", "ThrottlingException: slow down (SDK detail)")
        }),
    );
    let response = respond(
        app,
        handlers::create_task::handle,
        crate::support::event("create_task"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body_json(&response),
        json!({"detail": "service unavailable"})
    );
    assert_eq!(header_of(&response, header::RETRY_AFTER), Some("1"));
}

#[tokio::test]
async fn bugs_are_500_with_the_request_id_only() {
    let app = crate::support::app_with(
        &[("IDENTITY_MODE", "jwt")],
        FailingStore(|| StoreError::internal_because("malformed task item: missing field `title`")),
    );
    let response = respond(
        app,
        handlers::get_task::handle,
        crate::support::event("get_task"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body_json(&response),
        json!({"detail": "internal server error", "request_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"})
    );
}

#[tokio::test]
async fn idempotency_keys_are_validated_like_headers() {
    let app = crate::support::app(&[]);
    let long = "k".repeat(256);
    let mut req = crate::support::event("create_task");
    req.headers_mut().insert(
        "idempotency-key",
        HeaderValue::from_str(&long).expect("header"),
    );
    let response = respond(app, handlers::create_task::handle, req).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body_json(&response),
        json!({"detail": [{
            "type": "string_too_long",
            "loc": ["header", "idempotency-key"],
            "msg": "String should have at most 255 characters",
            "input": long,
            "ctx": {"max_length": 255},
        }]})
    );

    let mut req = crate::support::event("create_task");
    req.headers_mut()
        .insert("idempotency-key", HeaderValue::from_static("order-42"));
    let first = respond(app, handlers::create_task::handle, req).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let mut retry = crate::support::event("create_task");
    retry
        .headers_mut()
        .insert("idempotency-key", HeaderValue::from_static("order-42"));
    let second = respond(app, handlers::create_task::handle, retry).await;
    assert_eq!(
        (second.status(), body_json(&second)),
        (StatusCode::CREATED, body_json(&first))
    );
}

/// `event` with an `Idempotency-Key`.
fn keyed(name: &str, key: &'static str) -> Request {
    let mut req = crate::support::event(name);
    req.headers_mut()
        .insert("idempotency-key", HeaderValue::from_static(key));
    req
}

#[tokio::test]
async fn put_patch_and_delete_replay_their_first_answer_with_the_same_key() {
    let app = crate::support::app(&[]);
    let seeded = seed_event_task(app).await;

    let first = respond(
        app,
        handlers::replace_task::handle,
        keyed("replace_task", "put-1"),
    )
    .await;
    assert_eq!(first.status(), StatusCode::OK);
    let again = respond(
        app,
        handlers::replace_task::handle,
        keyed("replace_task", "put-1"),
    )
    .await;
    assert_eq!(
        (
            again.status(),
            body_json(&again),
            header_of(&again, header::ETAG)
        ),
        (
            StatusCode::OK,
            body_json(&first),
            header_of(&first, header::ETAG)
        ),
        "a PUT's retry: the first answer, ETag included"
    );
    let stored = app.store.get(&alice(), seeded.task.id).await.expect("get");
    assert_eq!(stored.version, seeded.version + 1, "applied once");

    // The same key on another method is another request: 422, nothing applied.
    let reused = respond(
        app,
        handlers::update_task::handle,
        keyed("update_task", "put-1"),
    )
    .await;
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body_json(&reused),
        json!({"detail": "idempotency key reused with a different body"})
    );

    let patched = respond(
        app,
        handlers::update_task::handle,
        keyed("update_task", "patch-1"),
    )
    .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let again = respond(
        app,
        handlers::update_task::handle,
        keyed("update_task", "patch-1"),
    )
    .await;
    assert_eq!(body_json(&again), body_json(&patched));
    assert_eq!(
        header_of(&again, header::ETAG),
        header_of(&patched, header::ETAG)
    );

    let deleted = respond(
        app,
        handlers::delete_task::handle,
        keyed("delete_task", "delete-1"),
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let again = respond(
        app,
        handlers::delete_task::handle,
        keyed("delete_task", "delete-1"),
    )
    .await;
    assert_eq!(
        again.status(),
        StatusCode::NO_CONTENT,
        "a DELETE's retry is 204, not 404"
    );
    let unkeyed = respond(
        app,
        handlers::delete_task::handle,
        crate::support::event("delete_task"),
    )
    .await;
    assert_eq!(unkeyed.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_key_whose_first_request_is_in_flight_is_409_with_retry_after() {
    let app = crate::support::app_with(&[], FailingStore(|| StoreError::IdempotencyKeyInFlight));
    for (name, response) in [
        (
            "replace_task",
            respond(
                app,
                handlers::replace_task::handle,
                keyed("replace_task", "k"),
            )
            .await,
        ),
        (
            "update_task",
            respond(
                app,
                handlers::update_task::handle,
                keyed("update_task", "k"),
            )
            .await,
        ),
        (
            "delete_task",
            respond(
                app,
                handlers::delete_task::handle,
                keyed("delete_task", "k"),
            )
            .await,
        ),
        (
            "create_task",
            respond(
                app,
                handlers::create_task::handle,
                keyed("create_task", "k"),
            )
            .await,
        ),
    ] {
        assert_eq!(response.status(), StatusCode::CONFLICT, "{name}");
        assert_eq!(
            header_of(&response, header::RETRY_AFTER),
            Some("1"),
            "{name}"
        );
        assert_eq!(
            body_json(&response),
            json!({"detail": "a request with this idempotency key is in progress"}),
            "{name}"
        );
    }
}

/// The sample stream batch (`events/audit.json`: the event task created,
/// updated, deleted) audited into the store, as the audit function does.
async fn audit_sample_batch(app: &App<MemoryStore>) {
    let path = format!("{}/../events/audit.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).expect("events/audit.json");
    let batch: shared::handlers::audit::Event =
        serde_json::from_str(&text).expect("a stream event");
    let answer = shared::handlers::audit::handle(&app.store, batch).await;
    assert!(answer.batch_item_failures.is_empty());
}

fn history_request(query: &str) -> Request {
    history_request_of("alice", query)
}

fn history_request_of(subject: &str, query: &str) -> Request {
    let mut event = crate::support::event_json("task_history");
    crate::support::set_query(&mut event, query);
    crate::support::set_caller(&mut event, Some(subject));
    crate::support::request(&event)
}

#[tokio::test]
async fn task_history_lists_changes_newest_first_in_pages() {
    let app = crate::support::app(&[]);
    audit_sample_batch(app).await;
    let first = respond(
        app,
        handlers::task_history::handle,
        history_request("limit=2"),
    )
    .await;
    assert_eq!(first.status(), StatusCode::OK);
    let first = body_json(&first);
    let actions: Vec<&str> = first["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["deleted", "updated"]);
    assert_eq!(first["items"][0]["task"], Value::Null);
    assert_eq!(first["items"][1]["task"]["id"], EVENT_TASK_ID);
    assert_eq!(first["items"][1]["id"], "111300000000017845912208");
    let cursor = first["next_cursor"].as_str().expect("a next page");

    let second = respond(
        app,
        handlers::task_history::handle,
        history_request(&format!("limit=2&cursor={cursor}")),
    )
    .await;
    let second = body_json(&second);
    assert_eq!(second["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(second["items"][0]["action"], "created");
    assert_eq!(second["next_cursor"], Value::Null);
}

#[tokio::test]
async fn task_history_is_the_callers_only_and_checks_its_input() {
    let app = crate::support::app(&[]);
    audit_sample_batch(app).await;
    let bob = respond(
        app,
        handlers::task_history::handle,
        history_request_of("bob", ""),
    )
    .await;
    assert_eq!(bob.status(), StatusCode::OK);
    assert_eq!(body_json(&bob), json!({"items": [], "next_cursor": null}));

    // A listing's cursor is not a history cursor; limits as on the list.
    let list_cursor = shared::http::request::encode_cursor(Uuid::nil());
    let bad = respond(
        app,
        handlers::task_history::handle,
        history_request(&format!("limit=0&cursor={list_cursor}")),
    )
    .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let locs: Vec<Value> = body_json(&bad)["detail"]
        .as_array()
        .expect("detail")
        .iter()
        .map(|e| e["loc"].clone())
        .collect();
    assert_eq!(
        locs,
        [json!(["query", "limit"]), json!(["query", "cursor"])]
    );
}

#[test]
fn a_deploy_build_behind_the_authorizer_refuses_token_mode() {
    use shared::runtime::authorizer_stand_in_missing;
    let tokens = crate::support::config(&[
        ("JWT_ISSUER", "https://issuer.example.com"),
        ("JWT_AUDIENCE", "client"),
        ("JWT_SCOPES", "api/tasks"),
    ]);
    // Built without the stand-in (sam build): no token check is linked, so
    // a JWT_ISSUER asking for one stops the cold start, naming the fix.
    let refusal = authorizer_stand_in_missing(&tokens, false).expect("refused");
    assert!(refusal.contains("JWT_ISSUER"), "{refusal}");
    assert!(
        refusal.contains("--features shared/local-authorizer"),
        "{refusal}"
    );
    // With the stand-in (tests, make dev), or with no JWT_ISSUER (deployed).
    assert_eq!(authorizer_stand_in_missing(&tokens, true), None);
    let deployed = crate::support::config(&[]);
    assert_eq!(authorizer_stand_in_missing(&deployed, false), None);
}
