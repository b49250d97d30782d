//! The local stream delivery (`devstack::stream::pump`): tasks written to
//! the embedded dynoxide reach the audit handler through the table's
//! stream, in order, and a task's history lists its changes with their
//! diffs, as deployed. The delivery target here is the audit handler
//! in-process; `scripts/e2e.sh` runs the same pump against the real
//! function behind `cargo lambda watch`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use devstack::stream::{Deliver, pump};
use devstack::{LocalDynamo, open_database};
use serde_json::{Value, json};
use shared::adapters::dynamo::DynamoStore;
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
}

impl Deliver for InProcess {
    async fn deliver(&self, event: Value) -> Result<Vec<String>, String> {
        self.batches.fetch_add(1, Ordering::SeqCst);
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
    };
    tokio::spawn(pump(db, TABLE.to_owned(), target.clone()));
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
