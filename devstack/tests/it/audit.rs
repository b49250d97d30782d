//! The audit function's handler (`shared::handlers::audit::handle`) against the
//! DynamoDB store on an embedded dynoxide, fed the sample stream batch
//! `events/audit.json` (a task created, updated and deleted, and the
//! caller's `COUNT` item changing along, which is not audited).

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use devstack::{LocalDynamo, TempDatabase};
use serde_json::{Value, json};
use shared::adapters::dynamo::{DynamoStore, client};
use shared::domain::caller::Caller;
use shared::domain::change::{Action, FieldChange, Sequence};
use shared::domain::task::{FIELDS, ListQuery};
use shared::handlers::audit::{Event, handle};
use shared::ports::TaskStore;
use shared::ports::{AuditStore, HistoryQuery};
use uuid::Uuid;

const TABLE: &str = "tasks";
const TASK: &str = "0193f1d2-7c4e-7a3b-9c1d-2e3f4a5b6c7d";
/// The sequence numbers of the batch's three task records, in order.
const CREATED: &str = "111200000000017845893472";
const UPDATED: &str = "111300000000017845912208";
const DELETED: &str = "111400000000017845930415";

fn sample() -> Value {
    let path = format!("{}/../events/audit.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("events/audit.json");
    serde_json::from_str(&text).expect("JSON")
}

fn event(value: Value) -> Event {
    serde_json::from_value(value).expect("a DynamoDB stream event")
}

async fn store() -> (LocalDynamo, DynamoStore) {
    let dynamo = LocalDynamo::in_memory(TABLE)
        .await
        .expect("dynoxide starts");
    let store = dynamo.store();
    (dynamo, store)
}

fn alice() -> Caller {
    Caller::new("alice").expect("caller")
}

fn task_id() -> Uuid {
    Uuid::parse_str(TASK).expect("uuid")
}

fn page(limit: u32, before: Option<Sequence>) -> HistoryQuery {
    HistoryQuery { limit, before }
}

fn change(field: &str, from: Option<Value>, to: Option<Value>) -> FieldChange {
    FieldChange {
        field: field.to_owned(),
        from,
        to,
    }
}

fn time(text: &str) -> DateTime<Utc> {
    text.parse().expect("RFC 3339")
}

/// `(action, sequence)` of the task's whole history, newest first.
async fn history(store: &DynamoStore, owner: &Caller) -> Vec<(Action, String)> {
    store
        .history(owner, task_id(), &page(100, None))
        .await
        .expect("history")
        .items
        .into_iter()
        .map(|e| {
            (
                e.action,
                e.sequence.as_str().trim_start_matches('0').to_owned(),
            )
        })
        .collect()
}

/// How many items the partition holds (tasks, counters, entries...).
async fn items_of(dynamo: &LocalDynamo, pk: &str) -> usize {
    let output = dynamo
        .client
        .query()
        .table_name(TABLE)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(pk.to_owned()),
        )
        .send()
        .await
        .expect("query");
    output.items.unwrap_or_default().len()
}

/// The field changes of the fields the sample event's images carry.
fn sample_fields(fields: &[FieldChange]) -> Vec<FieldChange> {
    let sample = ["title", "description", "done"];
    fields
        .iter()
        .filter(|c| sample.contains(&c.field.as_str()))
        .cloned()
        .collect()
}

#[tokio::test]
async fn the_sample_batch_records_each_task_change_with_its_diff() {
    let (dynamo, store) = store().await;
    let response = handle(&store, event(sample())).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let found = store
        .history(&alice(), task_id(), &page(10, None))
        .await
        .expect("history");
    assert_eq!(found.next_before, None);
    let entries = found.items;
    let actions: Vec<Action> = entries.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [Action::Deleted, Action::Updated, Action::Created],
        "newest first; the COUNT records are not audited"
    );
    for entry in &entries {
        assert_eq!(entry.owner, alice());
        assert_eq!(entry.task_id, task_id());
    }
    let [deleted, updated, created] = &entries[..] else {
        panic!("three entries")
    };
    // A create and a delete list every declared field (one declared
    // after the sample was recorded at its default); the checks below
    // are of the sample's own fields.
    for entry in [created, deleted] {
        assert_eq!(entry.fields.len(), FIELDS.len(), "{:?}", entry.fields);
    }

    assert_eq!(created.at, time("2026-05-04T10:15:30.123456Z"));
    assert_eq!(created.version, 1);
    assert_eq!(created.event_id, "c4ca4238a0b923820dcc509a6f75849b");
    assert_eq!(created.sequence, Sequence::parse(CREATED).expect("seq"));
    assert_eq!(
        sample_fields(&created.fields),
        [
            change("title", None, Some(json!("Buy milk"))),
            change("description", None, Some(json!("2 litres, semi-skimmed"))),
            change("done", None, Some(json!(false))),
        ]
    );

    assert_eq!(updated.at, time("2026-05-04T10:20:02.5Z"));
    assert_eq!(updated.version, 2);
    assert_eq!(
        sample_fields(&updated.fields),
        [
            change(
                "title",
                Some(json!("Buy milk")),
                Some(json!("Buy oat milk"))
            ),
            change("done", Some(json!(false)), Some(json!(true))),
        ],
        "only the fields that changed; never keys, version or timestamps"
    );

    // A delete has no updated_at after it: the stream record's time.
    assert_eq!(deleted.at, time("2026-05-04T10:25:05Z"));
    assert_eq!(deleted.version, 2);
    assert_eq!(
        sample_fields(&deleted.fields),
        [
            change("title", Some(json!("Buy oat milk")), None),
            change("description", Some(json!("2 litres, semi-skimmed")), None),
            change("done", Some(json!(true)), None),
        ]
    );

    // Owner-only: another caller has no history of that task.
    let bob = Caller::new("bob").expect("caller");
    assert_eq!(history(&store, &bob).await, []);
    // The entries are not tasks: the owner's listing does not see them.
    let listed = store
        .list(
            &alice(),
            &ListQuery {
                limit: 100,
                done: None,
                after: None,
            },
        )
        .await
        .expect("list");
    assert_eq!(listed.items, []);
    for done in [false, true] {
        let filtered = store
            .list(
                &alice(),
                &ListQuery {
                    limit: 100,
                    done: Some(done),
                    after: None,
                },
            )
            .await
            .expect("list");
        assert_eq!(filtered.items, [], "changes are not in the done partitions");
    }
    dynamo.stop().await.expect("stop");
}

#[tokio::test]
async fn the_history_is_paginated_newest_first() {
    let (dynamo, store) = store().await;
    handle(&store, event(sample())).await;

    let first = store
        .history(&alice(), task_id(), &page(2, None))
        .await
        .expect("page 1");
    let seqs: Vec<&str> = first.items.iter().map(|e| e.sequence.as_str()).collect();
    assert_eq!(seqs.len(), 2);
    assert!(seqs[0].ends_with(DELETED) && seqs[1].ends_with(UPDATED));
    let cursor = first.next_before.expect("more to come");
    assert!(cursor.as_str().ends_with(UPDATED));

    let second = store
        .history(&alice(), task_id(), &page(2, Some(cursor)))
        .await
        .expect("page 2");
    assert_eq!(second.items.len(), 1);
    assert!(second.items[0].sequence.as_str().ends_with(CREATED));
    assert_eq!(second.next_before, None, "nothing left: no cursor");

    let exact = store
        .history(&alice(), task_id(), &page(3, None))
        .await
        .expect("exact page");
    assert_eq!(exact.items.len(), 3);
    assert_eq!(exact.next_before, None, "a full last page has no cursor");
    dynamo.stop().await.expect("stop");
}

#[tokio::test]
async fn a_batch_delivered_twice_stores_nothing_new() {
    let (dynamo, store) = store().await;
    let first = handle(&store, event(sample())).await;
    assert!(first.batch_item_failures.is_empty());
    let before = items_of(&dynamo, "USER#alice").await;
    assert_eq!(
        before, 3,
        "three entries (the sample only streams, it wrote no task)"
    );

    let again = handle(&store, event(sample())).await;
    assert!(
        again.batch_item_failures.is_empty(),
        "a duplicate is no failure"
    );
    assert_eq!(items_of(&dynamo, "USER#alice").await, before);
    assert_eq!(
        history(&store, &alice()).await,
        [
            (Action::Deleted, DELETED.to_owned()),
            (Action::Updated, UPDATED.to_owned()),
            (Action::Created, CREATED.to_owned()),
        ]
    );
    dynamo.stop().await.expect("stop");
}

#[tokio::test]
async fn a_malformed_record_is_skipped_and_the_others_are_recorded() {
    let (dynamo, store) = store().await;
    let mut batch = sample();
    // The create's image is not a task's: its title is a number.
    batch["Records"][1]["dynamodb"]["NewImage"]["title"] = json!({"N": "5"});
    // And a record of an event name DynamoDB never sends.
    let mut odd = batch["Records"][2].clone();
    odd["eventName"] = json!("TRUNCATE");
    odd["dynamodb"]["SequenceNumber"] = json!("111300000000017845912209");
    batch["Records"]
        .as_array_mut()
        .expect("records")
        .insert(3, odd);

    let response = handle(&store, event(batch)).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "malformed records are skipped, not retried: {response:?}"
    );
    assert_eq!(
        history(&store, &alice()).await,
        [
            (Action::Deleted, DELETED.to_owned()),
            (Action::Updated, UPDATED.to_owned()),
        ]
    );
    dynamo.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_is_reported_and_the_retry_records_everything() {
    let db = TempDatabase::new().expect("temp dir");
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let dynamo = LocalDynamo::start(db.open().expect("db"), any_port, TABLE)
        .await
        .expect("dynoxide");
    let addr = dynamo.addr;
    let store = DynamoStore::new(client(&devstack::local_settings(&dynamo.endpoint)), TABLE);

    dynamo.stop().await.expect("stop");
    let down = handle(&store, event(sample())).await;
    let failed: Vec<Option<&str>> = down
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_deref())
        .collect();
    assert_eq!(
        failed,
        [Some(CREATED)],
        "the first task record that could not be stored, and no further: \
         Lambda redelivers the batch from it"
    );

    // Lambda redelivers from the failed record; DynamoDB is back.
    let dynamo = LocalDynamo::start(db.open().expect("db"), addr, TABLE)
        .await
        .expect("dynoxide again");
    let mut retry = sample();
    retry["Records"].as_array_mut().expect("records").remove(0);
    let up = handle(&store, event(retry)).await;
    assert!(up.batch_item_failures.is_empty(), "{up:?}");
    assert_eq!(history(&store, &alice()).await.len(), 3);
    dynamo.stop().await.expect("stop");
}

#[tokio::test]
async fn the_change_feed_is_the_callers_changes_in_stream_order() {
    let (_dynamo, store) = store().await;
    handle(&store, event(sample())).await;
    let seq = |s: &str| Sequence::parse(s).expect("sequence");
    let ids = |batch: shared::ports::ChangeBatch| -> Vec<String> {
        batch
            .items
            .iter()
            .map(|e| e.sequence.id().to_owned())
            .collect()
    };

    let all = store
        .changes(&alice(), None, 10)
        .await
        .expect("changes")
        .items;
    assert_eq!(
        all.iter().map(|e| e.action).collect::<Vec<_>>(),
        [Action::Created, Action::Updated, Action::Deleted]
    );
    assert_eq!(all[1].task.as_ref().map(|t| t.done), Some(true));
    assert_eq!(all[2].task, None, "nothing after a delete");
    let after_first = store.changes(&alice(), Some(&seq(CREATED)), 10).await;
    assert_eq!(ids(after_first.expect("changes")), [UPDATED, DELETED]);
    let one = store.changes(&alice(), Some(&seq(CREATED)), 1).await;
    assert_eq!(ids(one.expect("changes")), [UPDATED]);
    let none = store.changes(&alice(), Some(&seq(DELETED)), 10).await;
    let none = none.expect("changes");
    // What an idle feed pays per read (a consistent Query that finds
    // nothing): the read cost of an open stream per poll.
    println!("idle change-feed read: {} RCU", none.read_capacity);
    assert!(none.read_capacity > 0.0 && none.read_capacity <= 1.0);
    assert_eq!(ids(none), Vec::<String>::new());
    assert_eq!(
        store.latest_change(&alice()).await.expect("latest"),
        Some(seq(DELETED))
    );

    let bob = Caller::new("bob").expect("caller");
    assert!(
        store
            .changes(&bob, None, 10)
            .await
            .expect("changes")
            .items
            .is_empty()
    );
    assert_eq!(store.latest_change(&bob).await.expect("latest"), None);
}
