//! The local stream delivery (`devstack::stream::pump`): tasks written to
//! the embedded dynoxide reach the audit handler through the table's
//! stream, in order, and a task's history lists its changes with their
//! diffs, as deployed. The delivery target here is the audit handler
//! in-process; `scripts/e2e.sh` runs the same pump against the real
//! function behind `cargo lambda watch`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use devstack::stream::{BATCHING_WINDOW, Checkpoint, Deliver, POLL_INTERVAL, pump};
use devstack::{LocalDynamo, TempDatabase, open_database};
use serde_json::{Value, json};
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::dynamo::table::{PK, SK, TASK_PREFIX};
use shared::domain::caller::Caller;
use shared::domain::change::Action;
use shared::domain::task::{Task, TaskCreate, TaskPatch, now};
use shared::handlers::audit::handle;
use shared::ports::{AuditStore, HistoryQuery};
use shared::ports::{CreateRules, Precondition, TaskStore};
use uuid::Uuid;

const TABLE: &str = "tasks";

/// `(field, from, to)` of one changed field.
type Diff = (String, Option<Value>, Option<Value>);

/// The audit handler on the store; the first `fail_first` deliveries of
/// task records report their first record as failed, as the function does
/// when DynamoDB is unavailable.
#[derive(Clone)]
struct InProcess {
    store: Arc<DynamoStore>,
    fail_first: Arc<AtomicUsize>,
    batches: Arc<AtomicUsize>,
    records: Arc<AtomicUsize>,
}

impl Deliver for InProcess {
    async fn deliver(&self, event: Value) -> Result<Vec<String>, String> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        let records = event["Records"].as_array().map_or(0, Vec::len);
        self.records.fetch_add(records, Ordering::SeqCst);
        let failing = self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            let first = event["Records"][0]["dynamodb"]["SequenceNumber"]
                .as_str()
                .map(str::to_owned);
            return Ok(first.into_iter().collect());
        }
        let event = serde_json::from_value(event).map_err(|e| e.to_string())?;
        let answer = handle(self.store.as_ref(), event).await;
        Ok(answer
            .batch_item_failures
            .into_iter()
            .filter_map(|f| f.item_identifier)
            .collect())
    }
}

fn alice() -> Caller {
    Caller::new("alice").expect("caller")
}

async fn history_of(store: &DynamoStore, task: Uuid) -> Vec<shared::domain::change::Change> {
    let query = HistoryQuery {
        limit: 100,
        before: None,
    };
    store
        .history(&alice(), task, &query)
        .await
        .expect("history")
        .items
}

/// Waits (up to 10 s) until the task's history has `n` entries.
async fn wait_for_history(
    store: &DynamoStore,
    task: Uuid,
    n: usize,
) -> Vec<shared::domain::change::Change> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let entries = history_of(store, task).await;
        if entries.len() >= n || Instant::now() > deadline {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start(fail_first: usize) -> (LocalDynamo, Arc<DynamoStore>, InProcess) {
    let db = open_database(None).expect("memory db");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let dynamo = LocalDynamo::start(db.clone(), addr, TABLE)
        .await
        .expect("dynoxide starts");
    let store = Arc::new(dynamo.store());
    let target = InProcess {
        store: store.clone(),
        fail_first: Arc::new(AtomicUsize::new(fail_first)),
        batches: Arc::new(AtomicUsize::new(0)),
        records: Arc::new(AtomicUsize::new(0)),
    };
    tokio::spawn(pump(db, TABLE.to_owned(), target.clone(), None));
    (dynamo, store, target)
}

/// Create, patch, delete one task through the store.
async fn three_changes(store: &DynamoStore) -> Uuid {
    let input = TaskCreate {
        title: "Write the README".into(),
        description: "first draft".into(),
        done: false,
    };
    let rules = CreateRules {
        max_tasks: 10,
        idempotency: None,
    };
    let task = store
        .create(&alice(), Task::new(input, now()), rules)
        .await
        .expect("create")
        .task;
    let patch = TaskPatch {
        done: Some(true),
        ..TaskPatch::default()
    };
    store
        .update(&alice(), task.id, patch, now(), &Precondition::None)
        .await
        .expect("patch");
    store
        .delete(&alice(), task.id, &Precondition::None)
        .await
        .expect("delete");
    task.id
}

#[tokio::test]
async fn create_patch_delete_reach_the_history_through_the_stream() {
    let (_dynamo, store, _target) = start(0).await;
    let task = three_changes(&store).await;
    let entries = wait_for_history(&store, task, 3).await;
    let summary: Vec<(Action, Vec<Diff>)> = entries
        .iter()
        .map(|e| {
            let changes = e
                .fields
                .iter()
                .map(|c| (c.field.clone(), c.from.clone(), c.to.clone()))
                .collect();
            (e.action, changes)
        })
        .collect();
    let field = |name: &str, from: Option<Value>, to: Option<Value>| (name.to_owned(), from, to);
    assert_eq!(
        summary,
        [
            (
                Action::Deleted,
                vec![
                    field("title", Some(json!("Write the README")), None),
                    field("description", Some(json!("first draft")), None),
                    field("done", Some(json!(true)), None),
                ]
            ),
            (
                Action::Updated,
                vec![field("done", Some(json!(false)), Some(json!(true)))]
            ),
            (
                Action::Created,
                vec![
                    field("title", None, Some(json!("Write the README"))),
                    field("description", None, Some(json!("first draft"))),
                    field("done", None, Some(json!(false))),
                ]
            ),
        ]
    );
    // The count item's and the audit's own records never reach the
    // function: the feed holds exactly the three task changes.
    let feed = store.changes(&alice(), None, 100).await.expect("feed");
    assert_eq!(feed.items.len(), 3);
}

#[tokio::test]
async fn a_reported_failure_is_retried_from_that_record_without_loss() {
    let (_dynamo, store, target) = start(2).await;
    let task = three_changes(&store).await;
    let entries = wait_for_history(&store, task, 3).await;
    assert_eq!(entries.len(), 3, "every change recorded after the retries");
    assert!(
        target.batches.load(Ordering::SeqCst) >= 3,
        "two failed deliveries, then the batch again"
    );
    let feed = store.changes(&alice(), None, 100).await.expect("feed");
    let actions: Vec<Action> = feed.items.iter().map(|e| e.action).collect();
    assert_eq!(actions, [Action::Created, Action::Updated, Action::Deleted]);
}

/// Takes every batch and audits nothing: the first run of the restart
/// test, which only needs the stream delivered (and its position kept).
#[derive(Clone, Default)]
struct Discard {
    records: Arc<AtomicUsize>,
    last: Arc<std::sync::Mutex<Option<String>>>,
}

impl Deliver for Discard {
    async fn deliver(&self, event: Value) -> Result<Vec<String>, String> {
        let records = event["Records"].as_array().cloned().unwrap_or_default();
        self.records.fetch_add(records.len(), Ordering::SeqCst);
        let last = records
            .last()
            .and_then(|r| r["dynamodb"]["SequenceNumber"].as_str())
            .map(str::to_owned);
        if let Ok(mut kept) = self.last.lock() {
            *kept = last;
        }
        Ok(Vec::new())
    }
}

/// `n` task items written straight into the database (one bulk import,
/// stream records included), each one stream record that passes the
/// mapping's filter. Through the API they take a minute in a debug build;
/// the stream and its delivery are the same either way.
fn write_task_items(db: &devstack::Database, n: usize) {
    use dynoxide::types::AttributeValue::S;
    let items = (0..n)
        .map(|i| {
            [
                (PK.to_owned(), S("USER#bulk".into())),
                (SK.to_owned(), S(format!("{TASK_PREFIX}{i:08}"))),
            ]
            .into_iter()
            .collect()
        })
        .collect();
    let options = dynoxide::ImportOptions {
        record_streams: true,
        ..Default::default()
    };
    let imported = db.import_items(TABLE, items, options).expect("import");
    assert_eq!(imported.items_imported, n);
}

/// Waits (up to `limit`) until `done()`; whether it happened.
async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// A restart on a kept database resumes after the last record delivered:
/// nothing of the `STREAM_RESTART_CHANGES` (10,000) earlier changes comes
/// again, and a new change reaches the history promptly (the figure is
/// printed; run with `--nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_after_the_last_delivered_record() {
    let changes: usize = std::env::var("STREAM_RESTART_CHANGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let file = TempDatabase::new().expect("temp dir");
    let checkpoint = Checkpoint::beside(std::path::Path::new(file.path()));
    let any_port = std::net::SocketAddr::from(([127, 0, 0, 1], 0));

    // First run: the changes, all delivered, the position kept.
    let db = file.open().expect("db");
    let dynamo = LocalDynamo::start(db.clone(), any_port, TABLE)
        .await
        .expect("dynoxide");
    let started = Instant::now();
    write_task_items(&db, changes);
    let written = started.elapsed();
    let first = Discard::default();
    let pumping = tokio::spawn(pump(
        db,
        TABLE.to_owned(),
        first.clone(),
        Some(checkpoint.clone()),
    ));
    let last_delivered = || first.last.lock().ok().and_then(|last| last.clone());
    let all_delivered = wait_until(Duration::from_secs(120), || {
        first.records.load(Ordering::SeqCst) == changes
            && checkpoint
                .load()
                .ok()
                .flatten()
                .map(|saved| saved.sequence_number)
                == last_delivered()
    })
    .await;
    assert!(
        all_delivered,
        "{} of {changes} delivered, checkpoint {:?}",
        first.records.load(Ordering::SeqCst),
        checkpoint.load()
    );
    let delivered = started.elapsed() - written;
    pumping.abort();
    let _ = pumping.await;
    dynamo.stop().await.expect("stop");

    // Restart: the same file, a new server and delivery.
    let db = file.open().expect("db again");
    let dynamo = LocalDynamo::start(db.clone(), any_port, TABLE)
        .await
        .expect("dynoxide again");
    let store = Arc::new(dynamo.store());
    let second = InProcess {
        store: store.clone(),
        fail_first: Arc::new(AtomicUsize::new(0)),
        batches: Arc::new(AtomicUsize::new(0)),
        records: Arc::new(AtomicUsize::new(0)),
    };
    let restarted = Instant::now();
    tokio::spawn(pump(
        db,
        TABLE.to_owned(),
        second.clone(),
        Some(checkpoint.clone()),
    ));
    let task = store
        .create(
            &alice(),
            Task::new(
                TaskCreate {
                    title: "after the restart".into(),
                    description: String::new(),
                    done: false,
                },
                now(),
            ),
            CreateRules {
                max_tasks: 10,
                idempotency: None,
            },
        )
        .await
        .expect("create")
        .task;
    let changed = Instant::now();
    let mut recorded = Vec::new();
    while recorded.is_empty() && changed.elapsed() < Duration::from_secs(10) {
        recorded = history_of(&store, task.id).await;
        if recorded.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let latency = changed.elapsed();
    println!(
        "stream restart: {changes} changes written in {written:.2?} and delivered in \
         {delivered:.2?}; after the restart the new change's history entry was stored \
         {latency:.0?} after the write ({:.0?} after the restart), re-delivered: {}",
        restarted.elapsed(),
        second.records.load(Ordering::SeqCst).saturating_sub(1)
    );
    assert_eq!(recorded.len(), 1, "the new change is in the history");
    assert!(
        latency < BATCHING_WINDOW + Duration::from_secs(2),
        "history entry after {latency:?}"
    );
    // Give a re-delivery every chance to show up.
    tokio::time::sleep(POLL_INTERVAL * 3).await;
    assert_eq!(
        second.records.load(Ordering::SeqCst),
        1,
        "only the new change is delivered after the restart"
    );
    dynamo.stop().await.expect("stop");
}

#[test]
fn a_checkpoint_is_written_whole_and_read_back() {
    let file = TempDatabase::new().expect("temp dir");
    let checkpoint = Checkpoint::beside(std::path::Path::new(file.path()));
    assert_eq!(checkpoint.load(), Ok(None), "a fresh database has none");
    checkpoint.store("arn:a", "100").expect("stored");
    checkpoint.store("arn:a", "200").expect("stored again");
    let saved = checkpoint.load().expect("readable").expect("saved");
    assert_eq!(
        (saved.stream_arn.as_str(), saved.sequence_number.as_str()),
        ("arn:a", "200")
    );
    std::fs::write(checkpoint.path(), "{").expect("garbled");
    assert!(checkpoint.load().is_err(), "a garbled file is an error");
}
