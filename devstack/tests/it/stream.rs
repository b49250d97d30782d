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
        ..TaskCreate::default()
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
        .update(&alice(), task.id, patch, now(), &Precondition::None, None)
        .await
        .expect("patch");
    store
        .delete(&alice(), task.id, &Precondition::None, None)
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
                // The fields this test writes (a create and a delete also
                // list any other declared field, at its default).
                .filter(|c| ["title", "description", "done"].contains(&c.field.as_str()))
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
                    ..TaskCreate::default()
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

/// Takes every batch, audits nothing, and notes each batch's size and
/// when it came.
#[derive(Clone, Default)]
struct Sizes {
    batches: Arc<std::sync::Mutex<Vec<(usize, Instant)>>>,
}

impl Sizes {
    fn sizes(&self) -> Vec<usize> {
        self.batches
            .lock()
            .map(|b| b.iter().map(|(n, _)| *n).collect())
            .unwrap_or_default()
    }
}

impl Deliver for Sizes {
    async fn deliver(&self, event: Value) -> Result<Vec<String>, String> {
        let n = event["Records"].as_array().map_or(0, Vec::len);
        if let Ok(mut batches) = self.batches.lock() {
            batches.push((n, Instant::now()));
        }
        Ok(Vec::new())
    }
}

/// Items written straight into the database, stream records included:
/// `(partition key, sort key)` each.
fn import(db: &devstack::Database, keys: &[(String, String)]) {
    use dynoxide::types::AttributeValue::S;
    let items = keys
        .iter()
        .map(|(pk, sk)| {
            [
                (PK.to_owned(), S(pk.clone())),
                (SK.to_owned(), S(sk.clone())),
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
    assert_eq!(imported.items_imported, keys.len());
}

/// As the mapping batches: the filter first, then up to 100 task records a
/// batch, and a short batch only once the window has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_fill_with_task_records_and_wait_out_the_window() {
    let db = open_database(None).expect("memory db");
    let any_port = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let _dynamo = LocalDynamo::start(db.clone(), any_port, TABLE)
        .await
        .expect("dynoxide");
    // 250 task records, each followed by one the filter drops (a change
    // entry, as the audit's own writes are in the stream too).
    let keys: Vec<(String, String)> = (0..250)
        .flat_map(|i| {
            [
                ("USER#bulk".to_owned(), format!("{TASK_PREFIX}{i:08}")),
                ("USER#bulk".to_owned(), format!("CHANGE#{i:040}")),
            ]
        })
        .collect();
    import(&db, &keys);
    let target = Sizes::default();
    tokio::spawn(pump(db.clone(), TABLE.to_owned(), target.clone(), None));
    let all = wait_until(Duration::from_secs(30), || {
        target.sizes().iter().sum::<usize>() == 250
    })
    .await;
    assert!(all, "delivered: {:?}", target.sizes());
    assert_eq!(target.sizes(), [100, 100, 50], "batches of task records");

    // One more change, alone: sent once the window has passed.
    let written = Instant::now();
    import(
        &db,
        &[("USER#bulk".to_owned(), format!("{TASK_PREFIX}one-more"))],
    );
    let sent = wait_until(Duration::from_secs(10), || target.sizes().len() == 4).await;
    assert!(sent, "delivered: {:?}", target.sizes());
    let waited = target
        .batches
        .lock()
        .ok()
        .and_then(|b| b.last().map(|(_, at)| at.duration_since(written)))
        .expect("the last batch");
    assert_eq!(target.sizes()[3], 1);
    assert!(
        waited >= BATCHING_WINDOW,
        "a lone change waits out the window ({BATCHING_WINDOW:?}), sent after {waited:?}"
    );
}

/// The DynamoDB store, failing every write of one task's changes while
/// `failing` names it (DynamoDB refusing that record, say).
struct FailOn {
    inner: Arc<DynamoStore>,
    failing: std::sync::Mutex<Option<Uuid>>,
}

impl AuditStore for FailOn {
    async fn record(
        &self,
        change: &shared::domain::change::Change,
    ) -> Result<shared::ports::Recorded, shared::ports::StoreError> {
        let failing = self.failing.lock().ok().and_then(|f| *f);
        if failing == Some(change.task_id) {
            return Err(shared::ports::StoreError::unavailable_because("injected"));
        }
        self.inner.record(change).await
    }

    async fn history(
        &self,
        owner: &Caller,
        task_id: Uuid,
        query: &HistoryQuery,
    ) -> Result<shared::ports::HistoryPage, shared::ports::StoreError> {
        self.inner.history(owner, task_id, query).await
    }

    async fn changes(
        &self,
        owner: &Caller,
        after: Option<&shared::domain::change::Sequence>,
        limit: u32,
    ) -> Result<shared::ports::ChangeBatch, shared::ports::StoreError> {
        self.inner.changes(owner, after, limit).await
    }

    async fn latest_change(
        &self,
        owner: &Caller,
    ) -> Result<Option<shared::domain::change::Sequence>, shared::ports::StoreError> {
        self.inner.latest_change(owner).await
    }
}

/// The audit handler in-process on [`FailOn`], counting deliveries.
#[derive(Clone)]
struct Failing {
    store: Arc<FailOn>,
    deliveries: Arc<AtomicUsize>,
}

impl Deliver for Failing {
    async fn deliver(&self, event: Value) -> Result<Vec<String>, String> {
        self.deliveries.fetch_add(1, Ordering::SeqCst);
        let event = serde_json::from_value(event).map_err(|e| e.to_string())?;
        let answer = handle(self.store.as_ref(), event).await;
        Ok(answer
            .batch_item_failures
            .into_iter()
            .filter_map(|f| f.item_identifier)
            .collect())
    }
}

async fn create(store: &DynamoStore, owner: &Caller, title: &str) -> Uuid {
    let input = TaskCreate {
        title: title.into(),
        description: String::new(),
        done: false,
    };
    let rules = CreateRules {
        max_tasks: 10,
        idempotency: None,
    };
    store
        .create(owner, Task::new(input, now()), rules)
        .await
        .expect("create")
        .task
        .id
}

/// A record the audit cannot write is reported, delivered again and again
/// and never passed over: its caller's later changes wait behind it, other
/// callers' are stored (once), and all of it is stored when it heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_keeps_failing_is_retried_never_skipped() {
    let db = open_database(None).expect("memory db");
    let any_port = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let dynamo = LocalDynamo::start(db.clone(), any_port, TABLE)
        .await
        .expect("dynoxide");
    let store = Arc::new(dynamo.store());
    let bob = Caller::new("bob").expect("caller");
    // Written before the pump starts: one batch, alice's first change failing.
    let stuck = create(&store, &alice(), "stuck").await;
    let others = create(&store, &bob, "bob's").await;
    let behind = create(&store, &alice(), "behind it").await;
    let target = Failing {
        store: Arc::new(FailOn {
            inner: store.clone(),
            failing: std::sync::Mutex::new(Some(stuck)),
        }),
        deliveries: Arc::new(AtomicUsize::new(0)),
    };
    tokio::spawn(pump(db, TABLE.to_owned(), target.clone(), None));

    let retried = wait_until(Duration::from_secs(20), || {
        target.deliveries.load(Ordering::SeqCst) >= 4
    })
    .await;
    assert!(retried, "the failed batch is delivered again");
    assert_eq!(history_of(&store, stuck).await.len(), 0, "not stored");
    assert_eq!(
        history_of(&store, behind).await.len(),
        0,
        "alice's later change waits behind it"
    );
    let bobs = store.changes(&bob, None, 100).await.expect("bob's feed");
    assert_eq!(bobs.items.len(), 1, "bob's change is stored");
    assert_eq!(bobs.items[0].task_id, others);

    if let Ok(mut failing) = target.store.failing.lock() {
        *failing = None;
    }
    assert_eq!(wait_for_history(&store, behind, 1).await.len(), 1);
    assert_eq!(history_of(&store, stuck).await.len(), 1);
    let feed = store.changes(&alice(), None, 100).await.expect("feed");
    let order: Vec<Uuid> = feed.items.iter().map(|c| c.task_id).collect();
    assert_eq!(order, [stuck, behind], "alice's changes in stream order");
    let bobs = store.changes(&bob, None, 100).await.expect("bob's feed");
    assert_eq!(bobs.items.len(), 1, "bob's change stored once");
}
