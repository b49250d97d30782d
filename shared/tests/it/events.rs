//! `GET /tasks/events` (the live change feed) with the in-memory store and
//! tokio's paused clock: which changes a stream sends, in what order, from
//! where it resumes, its heartbeat and its end. Over HTTP, with a real SSE
//! client, through `cargo lambda watch`: `devstack/tests/e2e.rs`.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use http_body_util::BodyExt;
use lambda_http::http::{StatusCode, header};
use lambda_http::{Request, Response};
use serde_json::Value;
use shared::adapters::memory::MemoryStore;
use shared::domain::caller::Caller;
use shared::domain::change::{Action, Change, Sequence};
use shared::domain::task::{Task, TaskCreate};
use shared::handlers::task_events::handle;
use shared::http::streaming::{StreamedBody, buffered};
use shared::ports::AuditStore;
use shared::runtime::{App, respond_with};
use uuid::Uuid;

/// The sample event as `caller`, with `last_event_id` and the query.
fn request(caller: Option<&str>, last_event_id: Option<&str>, query: &str) -> Request {
    let mut event = crate::support::event_json("task_events");
    crate::support::set_query(&mut event, query);
    crate::support::set_caller(&mut event, caller);
    if let Some(id) = last_event_id {
        event["headers"]["last-event-id"] = Value::from(id);
    }
    crate::support::request(&event)
}

/// A change of `owner`'s task number `task`, as the audit records it.
fn change(owner: &str, sequence: u64, action: Action, task: u128) -> Change {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 25, 9, 0, 0)
        .single()
        .expect("time");
    let id = Uuid::from_u128(task);
    Change {
        owner: Caller::new(owner).expect("caller"),
        task_id: id,
        action,
        at,
        fields: Vec::new(),
        version: 1,
        task: (action != Action::Deleted).then(|| {
            let input = TaskCreate {
                title: format!("task {task}"),
                ..TaskCreate::default()
            };
            Task::with(id, input, at, at)
        }),
        sequence: Sequence::parse(&format!(
            "{}",
            100_000_000_000_000_000_000u128 + u128::from(sequence)
        ))
        .expect("sequence"),
        event_id: format!("event-{sequence}"),
    }
}

fn id(sequence: u64) -> String {
    (100_000_000_000_000_000_000u128 + u128::from(sequence)).to_string()
}

async fn record(app: &App<MemoryStore>, entry: Change) {
    app.store.record(&entry).await.expect("recorded");
}

async fn open(app: &'static App<MemoryStore>, req: Request) -> Response<StreamedBody> {
    respond_with(app, handle, req, buffered).await
}

/// One parsed SSE block: its fields in order (`("id", ..)`, `(":", comment)`).
type Block = Vec<(String, String)>;

/// The blocks of the stream as they arrive, until it ends.
async fn blocks(response: Response<StreamedBody>) -> Vec<Block> {
    let mut body = response.into_body();
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("no stream error").into_data() {
            text.push_str(std::str::from_utf8(&data).expect("UTF-8"));
        }
    }
    text.split("\n\n")
        .filter(|b| !b.is_empty())
        .map(|b| {
            b.lines()
                .map(|line| match line.strip_prefix(':') {
                    Some(comment) => (":".to_owned(), comment.trim().to_owned()),
                    None => {
                        let (field, value) = line.split_once(": ").unwrap_or((line, ""));
                        (field.to_owned(), value.to_owned())
                    }
                })
                .collect()
        })
        .collect()
}

/// `(id, event)` of the change frames.
fn changes(blocks: &[Block]) -> Vec<(String, String)> {
    blocks
        .iter()
        .filter_map(|b| {
            let field = |name: &str| b.iter().find(|(f, _)| f == name).map(|(_, v)| v.clone());
            Some((field("id")?, field("event")?))
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_new_stream_starts_now_and_sends_changes_in_order() {
    let app = crate::support::app(&[("EVENTS_LIFETIME_SECONDS", &60.to_string())]);
    record(app, change("alice", 1, Action::Created, 1)).await;
    let response = open(app, request(Some("alice"), None, "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    crate::openapi::assert_documented_content_type("/tasks/events", &response);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        record(app, change("alice", 2, Action::Updated, 1)).await;
        record(app, change("bob", 3, Action::Created, 9)).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        record(app, change("alice", 4, Action::Deleted, 1)).await;
    });
    let blocks = blocks(response).await;
    assert_eq!(
        changes(&blocks),
        [
            (id(2), "task.updated".to_owned()),
            (id(4), "task.deleted".to_owned())
        ],
        "not the change before the stream, not bob's"
    );
    // The opening block: the reconnection delay and the starting position
    // (after the change made before the stream), which a client that
    // reconnects before any change resumes from.
    assert_eq!(
        blocks[0],
        [
            ("retry".to_owned(), "1000".to_owned()),
            ("id".to_owned(), id(1))
        ]
    );
    let data: Value =
        serde_json::from_str(&blocks[1].iter().find(|(f, _)| f == "data").expect("data").1)
            .expect("JSON data");
    assert_eq!(data["id"], id(2));
    assert_eq!(data["action"], "updated");
    assert_eq!(data["task"]["title"], "task 1");
}

#[tokio::test(start_paused = true)]
async fn last_event_id_resumes_after_it_exactly_once() {
    let app = crate::support::app(&[("EVENTS_LIFETIME_SECONDS", &30.to_string())]);
    for (seq, action) in [
        (1, Action::Created),
        (2, Action::Updated),
        (3, Action::Updated),
    ] {
        record(app, change("alice", seq, action, 1)).await;
    }
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        record(app, change("alice", 4, Action::Deleted, 1)).await;
    });
    let header = blocks(open(app, request(Some("alice"), Some(&id(1)), "")).await).await;
    let ids: Vec<String> = changes(&header).into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        ids,
        [id(2), id(3), id(4)],
        "the missed ones, then the live one"
    );

    // `?since=` does the same for a client that cannot set the header.
    let query = blocks(
        open(
            app,
            request(Some("alice"), None, &format!("since={}", id(3))),
        )
        .await,
    )
    .await;
    let ids: Vec<String> = changes(&query).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, [id(4)]);
}

#[tokio::test(start_paused = true)]
async fn an_idle_stream_keeps_alive_then_ends_with_a_retry_hint() {
    let app = crate::support::app(&[("EVENTS_LIFETIME_SECONDS", &40.to_string())]);
    let started = tokio::time::Instant::now();
    let blocks = blocks(open(app, request(Some("alice"), None, "")).await).await;
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(40),
        "the configured lifetime"
    );
    let comments = blocks
        .iter()
        .filter(|b| b == &&vec![(":".to_owned(), "keep-alive".to_owned())])
        .count();
    assert_eq!(comments, 2, "one every 15 s of silence: {blocks:?}");
    let last = blocks.last().expect("a closing frame");
    assert!(
        last.contains(&("retry".to_owned(), "1000".to_owned())),
        "{last:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_is_the_callers_and_checks_its_input() {
    let app = crate::support::app(&[("EVENTS_LIFETIME_SECONDS", &5.to_string())]);
    let anonymous = open(app, request(None, None, "")).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let bad = open(app, request(Some("alice"), Some("abc"), "")).await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bad = open(app, request(Some("alice"), None, "since=-1")).await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    record(app, change("alice", 1, Action::Created, 1)).await;
    let bob = blocks(open(app, request(Some("bob"), Some(&id(0)), "")).await).await;
    assert!(changes(&bob).is_empty(), "{bob:?}");
}

/// A ticket from `POST /tasks/events/tickets` as `caller`.
async fn ticket_for(app: &'static App<MemoryStore>, caller: &str) -> Value {
    let mut event = crate::support::event_json("create_ticket");
    crate::support::set_caller(&mut event, Some(caller));
    let response = shared::runtime::respond(
        app,
        shared::handlers::create_ticket::handle,
        crate::support::request(&event),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    match response.body() {
        lambda_http::Body::Text(text) => serde_json::from_str(text).expect("JSON"),
        other => panic!("a JSON body, got {other:?}"),
    }
}

/// Deployed, `EVENTS_URL` is the feed's Function URL, a bare origin: the
/// ticket's URL is the feed's path on it (the path the stack's output
/// names; the variants are `config`'s tests).
#[tokio::test]
async fn a_tickets_url_is_the_feeds_path_on_the_feed_functions_url() {
    let origin = "https://abc123.lambda-url.eu-west-1.on.aws";
    let app = crate::support::app(&[("EVENTS_URL", &format!("{origin}/"))]);
    let issued = ticket_for(app, "alice").await;
    let ticket = issued["ticket"].as_str().expect("ticket");
    assert_eq!(
        issued["url"],
        format!("{origin}/tasks/events?ticket={ticket}")
    );
}

/// A browser's `EventSource`: no header at all, the ticket in the URL.
fn with_ticket(ticket: &str) -> Request {
    request(None, None, &format!("ticket={ticket}"))
}

#[tokio::test(start_paused = true)]
async fn a_ticket_opens_its_callers_feed_only_until_it_expires() {
    let app = crate::support::app(&[("EVENTS_LIFETIME_SECONDS", "5")]);
    let issued = ticket_for(app, "alice").await;
    let ticket = issued["ticket"].as_str().expect("ticket").to_owned();
    assert_eq!(issued["url"], format!("/tasks/events?ticket={ticket}"));
    assert!(ticket.len() >= 43, "{ticket}: 256 bits, base64url");
    let expires = chrono::DateTime::parse_from_rfc3339(issued["expires_at"].as_str().expect("at"))
        .expect("RFC 3339");
    let left = expires.with_timezone(&Utc) - Utc::now();
    assert!(left <= chrono::Duration::minutes(15) && left > chrono::Duration::minutes(5));

    record(app, change("alice", 1, Action::Created, 1)).await;
    record(app, change("bob", 2, Action::Created, 2)).await;
    // Alice's feed from the start: her change, never Bob's.
    let response = open(app, request(None, Some("0"), &format!("ticket={ticket}"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        changes(&blocks(response).await),
        [(id(1), "task.created".to_owned())]
    );
    // It keeps working for EventSource's reconnects.
    assert_eq!(
        open(app, with_ticket(&ticket)).await.status(),
        StatusCode::OK
    );

    for forged in ["", "x", &ticket[1..], &format!("{ticket}x")] {
        let response = open(app, with_ticket(forged)).await;
        if forged.is_empty() {
            // No ticket at all: no caller either.
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            continue;
        }
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{forged:?}");
        let challenge = response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .expect("ascii");
        assert!(
            challenge.contains("invalid or expired ticket"),
            "{challenge}"
        );
    }

    // An expired ticket is refused like a forged one, and so is a ticket
    // sealed with another table's key.
    let old = sealed(app, "alice", -1).await;
    assert_eq!(
        open(app, with_ticket(&old)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let elsewhere = crate::support::app(&[]);
    let foreign = sealed(elsewhere, "alice", 600).await;
    assert_eq!(
        open(app, with_ticket(&foreign)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// A ticket of `owner`'s, sealed with `app`'s key, expiring in `seconds`.
async fn sealed(app: &'static App<MemoryStore>, owner: &str, seconds: i64) -> String {
    let key = app.tickets.get(&app.store).await.expect("the ticket key");
    key.seal(&shared::domain::ticket::Ticket {
        owner: Caller::new(owner).expect("caller"),
        expires_at: Utc::now() + chrono::Duration::seconds(seconds),
    })
    .expect("sealed")
}

#[tokio::test(start_paused = true)]
async fn a_stream_ends_when_its_ticket_expires() {
    let app = crate::support::app(&[("EVENTS_LIFETIME_SECONDS", "240")]);
    let ticket = sealed(app, "alice", 3).await;
    let started = tokio::time::Instant::now();
    let response = open(app, with_ticket(&ticket)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let end = blocks(response).await;
    assert!(end.iter().any(|b| b.iter().any(|(f, _)| f == "retry")));
    assert!(
        started.elapsed() <= Duration::from_secs(4),
        "the stream outlived its ticket: {:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_caller_holds_at_most_its_streams_and_the_next_waits() {
    let app = crate::support::app(&[
        ("EVENTS_LIFETIME_SECONDS", "30"),
        ("MAX_FEED_STREAMS_PER_CALLER", "2"),
    ]);
    let first = open(app, request(Some("alice"), None, "")).await;
    let second = open(app, request(Some("alice"), None, "")).await;
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let third = open(app, request(Some("alice"), None, "")).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: i64 = third.headers()[header::RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=45).contains(&retry_after), "{retry_after}");
    // Another caller is not affected.
    assert_eq!(
        open(app, request(Some("bob"), None, "")).await.status(),
        StatusCode::OK
    );
    // A stream that goes away gives its place back.
    drop(first);
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    assert_eq!(
        open(app, request(Some("alice"), None, "")).await.status(),
        StatusCode::OK
    );
    drop(second);
}

/// A reload storm (a tab reloaded every 0.4 s, ten times): every open is
/// served, none refused because of the streams whose clients have gone;
/// each new stream takes the oldest's place, and that stream ends at its
/// next heartbeat: at the end exactly the last `MAX_FEED_STREAMS_PER_CALLER`
/// are open. (Real time: the places are stamped with the wall clock.)
#[tokio::test]
async fn a_reload_storm_never_locks_the_caller_out() {
    let app = crate::support::app(&[
        ("EVENTS_LIFETIME_SECONDS", "60"),
        ("EVENTS_HEARTBEAT_SECONDS", "1"),
        ("MAX_FEED_STREAMS_PER_CALLER", "3"),
    ]);
    let mut streams = Vec::new();
    for _ in 0..10 {
        let response = open(app, request(Some("alice"), None, "")).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "a reload is never refused"
        );
        // The "tab" keeps the connection but nobody reads it any more.
        streams.push(tokio::spawn(blocks(response)));
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
    // One heartbeat (1 s) and a margin for the replaced ones to notice.
    tokio::time::sleep(std::time::Duration::from_millis(1800)).await;
    let ended: Vec<bool> = streams
        .iter()
        .map(tokio::task::JoinHandle::is_finished)
        .collect();
    assert_eq!(
        ended,
        [
            true, true, true, true, true, true, true, false, false, false
        ],
        "the seven replaced streams ended, the last three are open"
    );
    for stream in streams.drain(..7) {
        let blocks = stream.await.expect("joined");
        let last = blocks.last().expect("a closing block");
        assert!(
            last.iter().any(|(f, _)| f == "retry"),
            "ends with a retry hint: {last:?}"
        );
    }
    for stream in streams {
        stream.abort();
    }
    // Far faster than a person reloads: all three places taken within
    // MIN_LEASE_AGE, the next open is refused for about a second.
    let other = crate::support::app(&[("MAX_FEED_STREAMS_PER_CALLER", "2")]);
    let _a = open(other, request(Some("carol"), None, "")).await;
    let _b = open(other, request(Some("carol"), None, "")).await;
    let refused = open(other, request(Some("carol"), None, "")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
}
