//! The DynamoDB store against a real DynamoDB API: dynoxide, embedded on a
//! random loopback port, through the same aws-sdk-dynamodb code path the
//! Lambda functions use.

use std::time::Duration;

use chrono::{DateTime, Utc};
use devstack::{LocalDynamo, local_settings};
use shared::error::ApiError;
use shared::identity::Caller;
use shared::model::{ListQuery, Task, TaskCreate, TaskPatch, now};
use shared::store::dynamo::{DynamoStore, client};
use shared::store::{CreateRules, Precondition, TaskStore};
use uuid::Uuid;

const TABLE: &str = "tasks";

const NO_RULES: CreateRules<'static> = CreateRules {
    max_tasks: 1000,
    idempotency: None,
};

async fn store() -> (LocalDynamo, DynamoStore) {
    let dynamo = LocalDynamo::in_memory(TABLE)
        .await
        .expect("dynoxide starts");
    let store = dynamo.store();
    (dynamo, store)
}

fn caller(name: &str) -> Caller {
    Caller::new(name).expect("valid caller")
}

fn input(title: &str, done: bool) -> TaskCreate {
    TaskCreate {
        title: title.to_owned(),
        description: format!("about {title}"),
        done,
    }
}

async fn create(store: &DynamoStore, owner: &Caller, title: &str, done: bool) -> Task {
    store
        .create(owner, Task::new(input(title, done), now()), NO_RULES)
        .await
        .expect("create")
        .task
}

fn query(limit: u32, done: Option<bool>, after: Option<Uuid>) -> ListQuery {
    ListQuery { limit, done, after }
}

/// Every page of a listing, following `next_after` to the end.
async fn all_pages(
    store: &DynamoStore,
    owner: &Caller,
    limit: u32,
    done: Option<bool>,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(owner, &query(limit, done, after))
            .await
            .expect("list");
        pages.push(page.items.iter().map(|t| t.title.clone()).collect());
        match page.next_after {
            Some(next) => after = Some(next),
            None => return pages,
        }
        assert!(pages.len() < 100, "pagination does not end");
    }
}

#[tokio::test]
async fn create_then_get_round_trips_every_field() {
    let (_dynamo, store) = store().await;
    let alice = caller("alice");
    let created = store
        .create(&alice, Task::new(input("Buy milk", true), now()), NO_RULES)
        .await
        .expect("create");
    assert_eq!(created.version, 1);
    let fetched = store.get(&alice, created.task.id).await.expect("get");
    assert_eq!(fetched, created);
}

#[tokio::test]
async fn a_caller_cannot_reach_another_callers_task() {
    let (_dynamo, store) = store().await;
    let task = create(&store, &caller("alice"), "secret", false).await;
    let bob = caller("bob");
    assert!(matches!(
        store.get(&bob, task.id).await,
        Err(ApiError::TaskNotFound)
    ));
    let patch = TaskPatch {
        title: Some("mine now".into()),
        ..TaskPatch::default()
    };
    let updated = store
        .update(&bob, task.id, patch, now(), &Precondition::None)
        .await;
    assert!(matches!(updated, Err(ApiError::TaskNotFound)));
    let deleted = store.delete(&bob, task.id, &Precondition::None).await;
    assert!(matches!(deleted, Err(ApiError::TaskNotFound)));
    assert!(
        store
            .list(&bob, &query(20, None, None))
            .await
            .expect("list")
            .items
            .is_empty()
    );
    assert_eq!(
        store
            .get(&caller("alice"), task.id)
            .await
            .expect("still there")
            .task,
        task
    );
}

#[tokio::test]
async fn list_pages_oldest_first_and_ends_with_no_cursor() {
    let (_dynamo, store) = store().await;
    let alice = caller("alice");
    for i in 0..5 {
        create(&store, &alice, &format!("t{i}"), false).await;
    }
    assert_eq!(
        all_pages(&store, &alice, 2, None).await,
        vec![vec!["t0", "t1"], vec!["t2", "t3"], vec!["t4"]]
    );
    // Exactly at the end: a full last page still has no cursor.
    assert_eq!(
        all_pages(&store, &alice, 5, None).await,
        vec![vec!["t0", "t1", "t2", "t3", "t4"]]
    );
}

#[tokio::test]
async fn done_filter_returns_full_pages() {
    let (_dynamo, store) = store().await;
    let alice = caller("alice");
    // Done tasks are rare and spread out: a filter applied after the read
    // would return short or empty pages here.
    for i in 0..30 {
        create(&store, &alice, &format!("t{i:02}"), i % 6 == 0).await;
    }
    assert_eq!(
        all_pages(&store, &alice, 2, Some(true)).await,
        vec![vec!["t00", "t06"], vec!["t12", "t18"], vec!["t24"]]
    );
    let open = all_pages(&store, &alice, 20, Some(false)).await;
    assert_eq!(open.iter().map(Vec::len).collect::<Vec<_>>(), vec![20, 5]);
    assert!(
        open.concat()
            .iter()
            .all(|t| t[1..].parse::<u32>().is_ok_and(|n| n % 6 != 0))
    );
}

#[tokio::test]
async fn update_changes_only_the_fields_sent_and_moves_between_filters() {
    let (_dynamo, store) = store().await;
    let alice = caller("alice");
    let task = create(&store, &alice, "draft", false).await;
    let later: DateTime<Utc> = task.updated_at + chrono::Duration::seconds(5);
    let patch = TaskPatch {
        done: Some(true),
        ..TaskPatch::default()
    };
    let updated = store
        .update(&alice, task.id, patch, later, &Precondition::None)
        .await
        .expect("update");
    assert_eq!(updated.version, 2);
    assert_eq!(updated.task.title, "draft");
    assert_eq!(updated.task.description, "about draft");
    assert!(updated.task.done);
    assert_eq!(updated.task.created_at, task.created_at);
    assert_eq!(updated.task.updated_at, later);
    assert_eq!(store.get(&alice, task.id).await.expect("get"), updated);
    assert_eq!(
        all_pages(&store, &alice, 10, Some(true)).await,
        vec![vec!["draft"]]
    );
    assert_eq!(
        all_pages(&store, &alice, 10, Some(false)).await,
        vec![Vec::<String>::new()]
    );
}

#[tokio::test]
async fn replace_keeps_id_and_creation_time() {
    let (_dynamo, store) = store().await;
    let alice = caller("alice");
    let task = create(&store, &alice, "old", true).await;
    let replaced = store
        .replace(
            &alice,
            task.id,
            input("new", false),
            now(),
            &Precondition::None,
        )
        .await
        .expect("replace");
    assert_eq!(replaced.task.id, task.id);
    assert_eq!(replaced.task.created_at, task.created_at);
    assert_eq!(
        (replaced.task.title.as_str(), replaced.task.done),
        ("new", false)
    );
    assert_eq!(replaced.version, 2);
    assert_eq!(
        all_pages(&store, &alice, 10, Some(false)).await,
        vec![vec!["new"]]
    );
}

#[tokio::test]
async fn delete_removes_the_task_once() {
    let (_dynamo, store) = store().await;
    let alice = caller("alice");
    let task = create(&store, &alice, "bye", false).await;
    store
        .delete(&alice, task.id, &Precondition::None)
        .await
        .expect("delete");
    assert!(matches!(
        store.get(&alice, task.id).await,
        Err(ApiError::TaskNotFound)
    ));
    let again = store.delete(&alice, task.id, &Precondition::None).await;
    assert!(matches!(again, Err(ApiError::TaskNotFound)));
}

#[tokio::test]
async fn if_match_is_checked_in_the_write() {
    let (_dynamo, store) = store().await;
    let alice = caller("alice");
    let task = create(&store, &alice, "v1", false).await;
    let rename = |title: &str| TaskPatch {
        title: Some(title.to_owned()),
        ..TaskPatch::default()
    };
    let v2 = store
        .update(
            &alice,
            task.id,
            rename("v2"),
            now(),
            &Precondition::VersionIn(vec![1]),
        )
        .await
        .expect("matching version");
    assert_eq!(v2.version, 2);
    let stale = store
        .update(
            &alice,
            task.id,
            rename("lost"),
            now(),
            &Precondition::VersionIn(vec![1]),
        )
        .await;
    assert!(
        matches!(stale, Err(ApiError::PreconditionFailed)),
        "{stale:?}"
    );
    let never = store.delete(&alice, task.id, &Precondition::Never).await;
    assert!(
        matches!(never, Err(ApiError::PreconditionFailed)),
        "{never:?}"
    );
    let stale_delete = store
        .delete(&alice, task.id, &Precondition::VersionIn(vec![1]))
        .await;
    assert!(matches!(stale_delete, Err(ApiError::PreconditionFailed)));
    assert_eq!(
        store.get(&alice, task.id).await.expect("get").task.title,
        "v2"
    );
    // `*` matches any existing task, and a missing task stays a 404.
    store
        .delete(&alice, task.id, &Precondition::Exists)
        .await
        .expect("delete *");
    let missing = store
        .replace(
            &alice,
            task.id,
            input("x", false),
            now(),
            &Precondition::Exists,
        )
        .await;
    assert!(matches!(missing, Err(ApiError::TaskNotFound)));
}

#[tokio::test]
async fn concurrent_patches_of_different_fields_lose_nothing() {
    let (_dynamo, store) = store().await;
    let alice = caller("alice");
    let task = create(&store, &alice, "race", false).await;
    let title = TaskPatch {
        title: Some("renamed".into()),
        ..TaskPatch::default()
    };
    let description = TaskPatch {
        description: Some("described".into()),
        ..TaskPatch::default()
    };
    let done = TaskPatch {
        done: Some(true),
        ..TaskPatch::default()
    };
    let (a, b, c) = tokio::join!(
        store.update(&alice, task.id, title, now(), &Precondition::None),
        store.update(&alice, task.id, description, now(), &Precondition::None),
        store.update(&alice, task.id, done, now(), &Precondition::None),
    );
    let mut versions = vec![
        a.expect("a").version,
        b.expect("b").version,
        c.expect("c").version,
    ];
    versions.sort_unstable();
    assert_eq!(versions, vec![2, 3, 4], "each write is its own version");
    let stored = store.get(&alice, task.id).await.expect("get");
    assert_eq!(
        (
            stored.task.title.as_str(),
            stored.task.description.as_str(),
            stored.task.done
        ),
        ("renamed", "described", true)
    );
}

#[tokio::test]
async fn an_unreachable_dynamodb_is_unavailable_not_a_crash() {
    // A port that was just free: nothing listens there.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", free.local_addr().expect("addr"));
    drop(free);
    let mut settings = local_settings(&endpoint);
    settings.operation_timeout = Duration::from_secs(3);
    let store = DynamoStore::new(client(&settings), TABLE);
    let result = store.get(&caller("alice"), Uuid::now_v7()).await;
    assert!(
        matches!(result, Err(ApiError::Unavailable(_))),
        "{result:?}"
    );
}

/// Seeds `count` tasks for `owner`, every other one done, 50 at a time.
async fn seed(store: &DynamoStore, owner: &Caller, count: usize) {
    let unlimited = CreateRules {
        max_tasks: u32::MAX,
        idempotency: None,
    };
    for chunk in (0..count).collect::<Vec<_>>().chunks(50) {
        let creates = chunk.iter().map(|i| {
            let task = Task::new(input(&format!("t{i}"), i % 2 == 0), now());
            store.create(owner, task, unlimited)
        });
        for created in futures::future::join_all(creates).await {
            created.expect("seed");
        }
    }
}

/// The read capacity of the first page and of the page after it.
async fn page_costs(store: &DynamoStore, owner: &Caller, done: Option<bool>) -> (f64, f64) {
    let first = store
        .list(owner, &query(20, done, None))
        .await
        .expect("page 1");
    assert_eq!(first.items.len(), 20);
    let second = store
        .list(owner, &query(20, done, first.next_after))
        .await
        .expect("page 2");
    assert_eq!(second.items.len(), 20);
    (first.read_capacity, second.read_capacity)
}

/// The large caller's task count: 2,000 in `make test`;
/// `PAGE_COST_TASKS=10000` for the README's figure (about a minute more).
fn large_count() -> usize {
    std::env::var("PAGE_COST_TASKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_costs_the_page_not_the_callers_total() {
    let (_dynamo, store) = store().await;
    let (small, large) = (caller("small"), caller("large"));
    let large_count = large_count();
    seed(&store, &small, 100).await;
    seed(&store, &large, large_count).await;
    for done in [None, Some(true), Some(false)] {
        let small_cost = page_costs(&store, &small, done).await;
        let large_cost = page_costs(&store, &large, done).await;
        println!(
            "20-item page, done={done:?}: 100 tasks {small_cost:?} RCU, {large_count} tasks {large_cost:?} RCU"
        );
        assert!(small_cost.0 > 0.0, "capacity is reported");
        assert_eq!(small_cost, large_cost, "done={done:?}");
    }
}
