//! The DynamoDB store under faults (issue 23: every write takes effect
//! once). The store's SDK client talks to dynoxide through the fault proxy
//! ([`devstack::fault_proxy`]) with a short attempt timeout, so a late
//! answer makes the SDK give up on the attempt and retry; what is checked
//! is the table itself, read behind the proxy's back. docs/faults.md.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use devstack::fault_proxy::{Fault, FaultProxy, Rule, Seen};
use devstack::{LocalDynamo, local_settings};
use shared::adapters::dynamo::table::{COUNT_ATTRIBUTE, COUNT_SK, PK, SK, owner_pk};
use shared::adapters::dynamo::{DynamoStore, client};
use shared::domain::caller::Caller;
use shared::domain::task::{ListQuery, Task, TaskCreate, TaskPatch, VersionedTask, now};
use shared::ports::{CreateRules, Idempotency, Precondition, StoreError, TaskStore};
use uuid::Uuid;

const TABLE: &str = "tasks";
/// The client's bounds in these tests: an attempt, and the whole call
/// (attempts and backoff). An attempt through the proxy takes a few
/// milliseconds; 500 ms leaves a loaded machine room, so that only the
/// faults make the SDK retry (the tests count its attempts).
const ATTEMPT: Duration = Duration::from_millis(500);
const OPERATION: Duration = Duration::from_secs(2);
/// A late answer comes this long after DynamoDB's: past the attempt.
const LATE: Duration = Duration::from_millis(1000);

const NO_RULES: CreateRules<'static> = CreateRules {
    max_tasks: 1000,
    idempotency: None,
};

/// The faults that come after DynamoDB applied the write.
fn after_the_write() -> [Fault; 3] {
    [
        Fault::InternalError,
        Fault::LateAnswer {
            delay_ms: LATE.as_millis() as u64,
        },
        Fault::Reset,
    ]
}

/// dynoxide, the proxy in front of it, a store through the proxy, and one
/// straight to dynoxide to check what was written.
struct Rig {
    dynamo: LocalDynamo,
    proxy: FaultProxy,
    store: DynamoStore,
    truth: DynamoStore,
}

async fn rig() -> Rig {
    let dynamo = LocalDynamo::in_memory(TABLE)
        .await
        .expect("dynoxide starts");
    let proxy = FaultProxy::loopback(&dynamo.endpoint)
        .await
        .expect("proxy starts");
    let mut settings = local_settings(&proxy.endpoint);
    settings.attempt_timeout = ATTEMPT;
    settings.operation_timeout = OPERATION;
    let store = DynamoStore::new(client(&settings), TABLE);
    let truth = dynamo.store();
    Rig {
        dynamo,
        proxy,
        store,
        truth,
    }
}

impl Rig {
    /// The caller's task count as stored (what MAX_TASKS is checked on).
    async fn count(&self, owner: &Caller) -> i64 {
        let item = self
            .dynamo
            .client
            .get_item()
            .table_name(TABLE)
            .key(PK, AttributeValue::S(owner_pk(owner)))
            .key(SK, AttributeValue::S(COUNT_SK.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("count read")
            .item;
        item.and_then(|i| i.get(COUNT_ATTRIBUTE).cloned())
            .map_or(0, |n| match n {
                AttributeValue::N(n) => n.parse().expect("a number"),
                other => panic!("count is {other:?}"),
            })
    }

    /// The caller's tasks as stored.
    async fn tasks(&self, owner: &Caller) -> Vec<VersionedTask> {
        let page = self
            .truth
            .list(
                owner,
                &ListQuery {
                    limit: 100,
                    done: None,
                    after: None,
                },
            )
            .await
            .expect("list");
        let mut tasks = Vec::new();
        for task in page.items {
            tasks.push(self.truth.get(owner, task.id).await.expect("get"));
        }
        tasks
    }
}

fn caller(name: &str) -> Caller {
    Caller::new(name).expect("valid caller")
}

fn input(title: &str) -> TaskCreate {
    TaskCreate {
        title: title.to_owned(),
        description: format!("about {title}"),
        ..TaskCreate::default()
    }
}

fn token(seen: &Seen) -> String {
    seen.body["ClientRequestToken"]
        .as_str()
        .expect("TransactWriteItems carries a ClientRequestToken")
        .to_owned()
}

/// Case 1: a create (one TransactWriteItems) that DynamoDB applied but
/// answered with a 500, a late answer or a reset connection: the SDK's
/// retry carries the same ClientRequestToken, DynamoDB recognises it, and
/// the caller gets its task, created once.
#[tokio::test]
async fn a_create_applied_then_failed_is_one_task_and_a_success() {
    let rig = rig().await;
    for (n, fault) in after_the_write().into_iter().enumerate() {
        let owner = caller(&format!("creator{n}"));
        rig.proxy.clear_seen();
        rig.proxy
            .set_rules(vec![Rule::next("TransactWriteItems", fault.clone(), 1)]);
        let created = rig
            .store
            .create(&owner, Task::new(input("once"), now()), NO_RULES)
            .await;
        let created = created.unwrap_or_else(|e| panic!("{fault:?}: the caller gets {e:?}"));
        let sent = rig.proxy.seen_of("TransactWriteItems");
        assert_eq!(sent.len(), 2, "{fault:?}: one retry by the SDK");
        assert_eq!(sent[0].fault, Some(fault.clone()));
        assert_eq!(
            (sent[0].upstream, sent[1].upstream),
            (Some(200), Some(200)),
            "{fault:?}: applied, then recognised"
        );
        assert_eq!(
            token(&sent[0]),
            token(&sent[1]),
            "{fault:?}: the retry is the same transaction"
        );
        let stored = rig.tasks(&owner).await;
        assert_eq!(stored, [created], "{fault:?}: exactly that task, once");
        assert_eq!(rig.count(&owner).await, 1, "{fault:?}: counted once");
    }
}

/// Case 2: a delete applied, then answered late (or with a 500, or not at
/// all): the caller's delete succeeds, the one task is gone, the count
/// dropped by one, not two.
#[tokio::test]
async fn a_delete_applied_then_failed_removes_one_task_once() {
    let rig = rig().await;
    for (n, fault) in after_the_write().into_iter().enumerate() {
        let owner = caller(&format!("deleter{n}"));
        let mut ids = Vec::new();
        for title in ["keep", "drop", "keep too"] {
            let created = rig
                .store
                .create(&owner, Task::new(input(title), now()), NO_RULES)
                .await
                .expect("create");
            ids.push(created.task.id);
        }
        rig.proxy.clear_seen();
        rig.proxy
            .set_rules(vec![Rule::next("TransactWriteItems", fault.clone(), 1)]);
        let deleted = rig
            .store
            .delete(&owner, ids[1], &Precondition::VersionIn(vec![1]), None)
            .await;
        assert!(deleted.is_ok(), "{fault:?}: the caller gets {deleted:?}");
        let sent = rig.proxy.seen_of("TransactWriteItems");
        assert_eq!(sent.len(), 2, "{fault:?}: one retry by the SDK");
        assert_eq!(sent[0].upstream, Some(200), "{fault:?}: applied");
        assert_eq!(token(&sent[0]), token(&sent[1]), "{fault:?}");
        let left: Vec<Uuid> = rig.tasks(&owner).await.iter().map(|t| t.task.id).collect();
        assert_eq!(left, [ids[0], ids[2]], "{fault:?}");
        assert_eq!(rig.count(&owner).await, 2, "{fault:?}: one decrement");
    }
}

/// Case 3: throttling before the write. Once: the SDK retries and the
/// write is applied once. Persistent: the store answers Unavailable (a
/// 503 at the edge), never Internal, and nothing was written.
#[tokio::test]
async fn throttling_is_retried_then_unavailable_never_internal() {
    let rig = rig().await;
    let owner = caller("throttled");
    for fault in [Fault::ProvisionedThroughputExceeded, Fault::Throttling] {
        rig.proxy.clear_seen();
        rig.proxy
            .set_rules(vec![Rule::next("TransactWriteItems", fault.clone(), 1)]);
        rig.store
            .create(
                &owner,
                Task::new(input("after a throttle"), now()),
                NO_RULES,
            )
            .await
            .unwrap_or_else(|e| panic!("{fault:?} once: {e:?}"));
        assert_eq!(rig.proxy.seen_of("TransactWriteItems").len(), 2);
    }
    let task = rig.tasks(&owner).await[0].task.clone();
    rig.proxy
        .set_rules(vec![Rule::next("UpdateItem", Fault::Throttling, 1)]);
    let patch = TaskPatch {
        done: Some(true),
        ..TaskPatch::default()
    };
    let updated = rig
        .store
        .update(
            &owner,
            task.id,
            patch,
            now(),
            &Precondition::VersionIn(vec![1]),
            None,
        )
        .await
        .expect("an update throttled once");
    assert_eq!(updated.version, 2);

    // Persistent, both codes at once (each call waits out the SDK's
    // backoff, up to the operation timeout).
    rig.proxy.clear_seen();
    rig.proxy.set_rules(vec![
        Rule::always("TransactWriteItems", Fault::ProvisionedThroughputExceeded),
        Rule::always("UpdateItem", Fault::Throttling),
    ]);
    let started = Instant::now();
    let patch = TaskPatch {
        title: Some("never".into()),
        ..TaskPatch::default()
    };
    let (created, updated) = tokio::join!(
        rig.store
            .create(&owner, Task::new(input("never"), now()), NO_RULES),
        rig.store
            .update(&owner, task.id, patch, now(), &Precondition::None, None),
    );
    let took = started.elapsed();
    assert!(
        matches!(created, Err(StoreError::Unavailable { .. })),
        "create, throttled persistently: {created:?}"
    );
    assert!(
        matches!(updated, Err(StoreError::Unavailable { .. })),
        "update, throttled persistently: {updated:?}"
    );
    assert!(took < OPERATION + Duration::from_millis(500), "{took:?}");
    let attempts = |operation: &str| {
        rig.proxy
            .seen_of(operation)
            .iter()
            .filter(|s| s.fault.is_some())
            .count()
    };
    assert!(attempts("TransactWriteItems") >= 2, "the SDK retried");
    assert!(attempts("UpdateItem") >= 2, "the SDK retried");
    println!(
        "persistent throttling: Unavailable after {took:?}, {} TransactWriteItems and {} UpdateItem attempts refused",
        attempts("TransactWriteItems"),
        attempts("UpdateItem")
    );
    rig.proxy.clear_rules();
    let stored = rig.tasks(&owner).await;
    assert_eq!(stored.len(), 2, "the throttled creates wrote nothing");
    assert!(stored.iter().all(|t| t.task.title != "never"));
    assert_eq!(rig.count(&owner).await, 2);
}

/// Case 4: DynamoDB stops answering for longer than the operation
/// timeout: reads and writes are Unavailable within about that timeout
/// (no hang, no panic), and the store works again once it is back.
#[tokio::test]
async fn a_freeze_is_unavailable_within_the_operation_timeout() {
    let rig = rig().await;
    let owner = caller("frozen");
    let task = rig
        .store
        .create(&owner, Task::new(input("before"), now()), NO_RULES)
        .await
        .expect("create");
    rig.proxy.set_rules(vec![Rule::all(Fault::Freeze {
        hold_ms: 3 * OPERATION.as_millis() as u64,
    })]);
    let started = Instant::now();
    let (read, created, deleted) = tokio::join!(
        rig.store.get(&owner, task.task.id),
        rig.store
            .create(&owner, Task::new(input("during"), now()), NO_RULES),
        rig.store
            .delete(&owner, task.task.id, &Precondition::None, None),
    );
    let took = started.elapsed();
    for result in [read.map(|_| ()), created.map(|_| ()), deleted] {
        assert!(
            matches!(result, Err(StoreError::Unavailable { .. })),
            "{result:?}"
        );
    }
    assert!(
        took < OPERATION + Duration::from_millis(500),
        "answered after {took:?}"
    );
    println!("freeze: Unavailable after {took:?} (operation timeout {OPERATION:?})");
    rig.proxy.clear_rules();
    let stored = rig.tasks(&owner).await;
    assert_eq!(stored.len(), 1, "nothing reached DynamoDB");
    assert_eq!(
        rig.store.get(&owner, task.task.id).await.expect("back"),
        stored[0]
    );
}

/// Case 5: a conditional UpdateItem (PUT or PATCH with If-Match) that
/// DynamoDB applied but answered with a 500, late, or not at all. The SDK
/// retries it; without a write token the retry finds version 2 and fails
/// its own condition: the writer would get a 412 for its own write.
#[tokio::test]
async fn an_update_applied_then_failed_is_the_writers_success() {
    let rig = rig().await;
    for (n, fault) in after_the_write().into_iter().enumerate() {
        let owner = caller(&format!("updater{n}"));
        let task = rig
            .store
            .create(&owner, Task::new(input("v1"), now()), NO_RULES)
            .await
            .expect("create")
            .task;
        rig.proxy.clear_seen();
        rig.proxy
            .set_rules(vec![Rule::next("UpdateItem", fault.clone(), 1)]);
        let replaced = rig
            .store
            .replace(
                &owner,
                task.id,
                input("v2"),
                now(),
                &Precondition::VersionIn(vec![1]),
                None,
            )
            .await;
        let replaced = replaced.unwrap_or_else(|e| panic!("{fault:?}: PUT gets {e:?}"));
        assert_eq!(replaced.version, 2, "{fault:?}");
        assert_eq!(rig.proxy.seen_of("UpdateItem").len(), 2, "{fault:?}");

        rig.proxy
            .set_rules(vec![Rule::next("UpdateItem", fault.clone(), 1)]);
        let patch = TaskPatch {
            title: Some("v3".into()),
            ..TaskPatch::default()
        };
        let patched = rig
            .store
            .update(
                &owner,
                task.id,
                patch,
                now(),
                &Precondition::VersionIn(vec![2]),
                None,
            )
            .await;
        let patched = patched.unwrap_or_else(|e| panic!("{fault:?}: PATCH gets {e:?}"));
        assert_eq!(patched.version, 3, "{fault:?}");

        // Without If-Match the retry must not apply the write twice.
        rig.proxy
            .set_rules(vec![Rule::next("UpdateItem", fault.clone(), 1)]);
        let patch = TaskPatch {
            done: Some(true),
            ..TaskPatch::default()
        };
        let patched = rig
            .store
            .update(&owner, task.id, patch, now(), &Precondition::None, None)
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: PATCH without If-Match gets {e:?}"));
        assert_eq!(patched.version, 4, "{fault:?}: one write, one version");
        let stored = rig.truth.get(&owner, task.id).await.expect("get");
        assert_eq!(stored, patched, "{fault:?}");
    }
}

/// The control endpoint drives the same rules over HTTP (as against
/// `make dev`): set, hit by the store, shown with the record, cleared.
#[tokio::test]
async fn the_control_endpoint_sets_rules_and_shows_the_record() {
    let rig = rig().await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let url = format!(
        "{}{}",
        rig.proxy.endpoint,
        devstack::fault_proxy::CONTROL_PATH
    );
    let rules = serde_json::json!({ "rules": [
        { "operation": "GetItem", "fault": { "kind": "throttling" } },
    ]});
    let set = http.post(&url).json(&rules).send().await.expect("POST");
    assert_eq!(set.status(), 200);
    let owner = caller("controlled");
    let read = rig.store.get(&owner, Uuid::now_v7()).await;
    assert!(
        matches!(read, Err(StoreError::Unavailable { .. })),
        "{read:?}"
    );
    let shown: serde_json::Value = http
        .get(&url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let fired = shown["rules"][0]["fired"].as_u64().expect("fired");
    assert!(fired >= 2, "the SDK's attempts were throttled: {shown}");
    let seen = shown["seen"].as_array().expect("seen");
    assert!(seen.iter().all(|s| s["operation"] == "GetItem"), "{shown}");
    assert!(
        seen.iter().all(|s| s["fault"]["kind"] == "throttling"),
        "{shown}"
    );

    let bad = serde_json::json!({ "rules": [{ "fault": { "kind": "meteor" } }] });
    let refused = http.post(&url).json(&bad).send().await.expect("POST");
    assert_eq!(refused.status(), 400);
    let cleared = http.delete(&url).send().await.expect("DELETE");
    assert_eq!(cleared.status(), 200);
    assert!(rig.proxy.seen().is_empty());
    let read = rig.store.get(&owner, Uuid::now_v7()).await;
    assert!(matches!(read, Err(StoreError::TaskNotFound)), "{read:?}");
}

/// How the careful client sends its writes. [`PlainWrites`] is the store
/// API as it is; the keyed writes (an `Idempotency-Key` per logical write,
/// the same on each of the client's retries) plug in here as another
/// implementation: `key` is that key.
trait Writes {
    /// The operation a PUT or PATCH is on the wire (where to aim its fault).
    fn update_operation(&self) -> &'static str {
        "UpdateItem"
    }
    async fn create(
        &self,
        store: &DynamoStore,
        owner: &Caller,
        key: &str,
        task: Task,
    ) -> Result<VersionedTask, StoreError>;
    async fn replace(
        &self,
        store: &DynamoStore,
        owner: &Caller,
        key: &str,
        id: Uuid,
        input: TaskCreate,
        if_match: u64,
    ) -> Result<VersionedTask, StoreError>;
    async fn update(
        &self,
        store: &DynamoStore,
        owner: &Caller,
        key: &str,
        id: Uuid,
        patch: TaskPatch,
        if_match: u64,
    ) -> Result<VersionedTask, StoreError>;
    async fn delete(
        &self,
        store: &DynamoStore,
        owner: &Caller,
        key: &str,
        id: Uuid,
        if_match: u64,
    ) -> Result<(), StoreError>;
}

/// The store's calls, no idempotency key: safe to retry only because the
/// faults below that come after the write are single attempts the SDK's
/// own retry absorbs.
struct PlainWrites;

impl Writes for PlainWrites {
    async fn create(
        &self,
        store: &DynamoStore,
        owner: &Caller,
        _key: &str,
        task: Task,
    ) -> Result<VersionedTask, StoreError> {
        store.create(owner, task, NO_RULES).await
    }
    async fn replace(
        &self,
        store: &DynamoStore,
        owner: &Caller,
        _key: &str,
        id: Uuid,
        input: TaskCreate,
        if_match: u64,
    ) -> Result<VersionedTask, StoreError> {
        let precondition = Precondition::VersionIn(vec![if_match]);
        store
            .replace(owner, id, input, now(), &precondition, None)
            .await
    }
    async fn update(
        &self,
        store: &DynamoStore,
        owner: &Caller,
        _key: &str,
        id: Uuid,
        patch: TaskPatch,
        if_match: u64,
    ) -> Result<VersionedTask, StoreError> {
        let precondition = Precondition::VersionIn(vec![if_match]);
        store
            .update(owner, id, patch, now(), &precondition, None)
            .await
    }
    async fn delete(
        &self,
        store: &DynamoStore,
        owner: &Caller,
        _key: &str,
        id: Uuid,
        if_match: u64,
    ) -> Result<(), StoreError> {
        store
            .delete(owner, id, &Precondition::VersionIn(vec![if_match]), None)
            .await
    }
}

/// The writes as a careful client sends them: each with an
/// `Idempotency-Key` that stays the same across its retries, as the
/// handlers make it.
struct KeyedWrites;

impl Writes for KeyedWrites {
    fn update_operation(&self) -> &'static str {
        "TransactWriteItems"
    }
    async fn create(
        &self,
        store: &DynamoStore,
        owner: &Caller,
        key: &str,
        task: Task,
    ) -> Result<VersionedTask, StoreError> {
        let idempotency = Idempotency::new(key.to_owned(), &task.input());
        let rules = CreateRules {
            idempotency: Some(&idempotency),
            ..NO_RULES
        };
        store.create(owner, task, rules).await
    }
    async fn replace(
        &self,
        store: &DynamoStore,
        owner: &Caller,
        key: &str,
        id: Uuid,
        input: TaskCreate,
        if_match: u64,
    ) -> Result<VersionedTask, StoreError> {
        let precondition = Precondition::VersionIn(vec![if_match]);
        let body = serde_json::to_value(&input).expect("JSON");
        let idempotency = Idempotency::for_write(key.to_owned(), "PUT", id, &precondition, body);
        store
            .replace(owner, id, input, now(), &precondition, Some(&idempotency))
            .await
    }
    async fn update(
        &self,
        store: &DynamoStore,
        owner: &Caller,
        key: &str,
        id: Uuid,
        patch: TaskPatch,
        if_match: u64,
    ) -> Result<VersionedTask, StoreError> {
        let precondition = Precondition::VersionIn(vec![if_match]);
        let body = serde_json::to_value(&patch).expect("JSON");
        let idempotency = Idempotency::for_write(key.to_owned(), "PATCH", id, &precondition, body);
        store
            .update(owner, id, patch, now(), &precondition, Some(&idempotency))
            .await
    }
    async fn delete(
        &self,
        store: &DynamoStore,
        owner: &Caller,
        key: &str,
        id: Uuid,
        if_match: u64,
    ) -> Result<(), StoreError> {
        let precondition = Precondition::VersionIn(vec![if_match]);
        let idempotency = Idempotency::for_write(
            key.to_owned(),
            "DELETE",
            id,
            &precondition,
            serde_json::Value::Null,
        );
        store
            .delete(owner, id, &precondition, Some(&idempotency))
            .await
    }
}

/// One fault of the rotation: rules for the next write's operation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Applied, then a 500 (one attempt).
    InternalError,
    /// Applied, then an answer past the attempt timeout (one attempt).
    Late,
    /// Applied, then a reset connection (one attempt).
    Reset,
    /// Throttled before the write, one attempt: the SDK retries.
    Throttled,
    /// Throttled on every attempt: Unavailable, the client retries.
    ThrottledPersistently,
    /// No answer on every attempt: Unavailable, the client retries.
    Frozen,
    /// Applied by the first attempt, then a 500 on every attempt: the
    /// write is in the table and the client hears a 503. Only a key makes
    /// its retry safe.
    AppliedThenUnavailable,
}

/// Every fault, the one only a key survives included.
const EVERY_FAULT: [Kind; 7] = [
    Kind::InternalError,
    Kind::Late,
    Kind::Reset,
    Kind::Throttled,
    Kind::ThrottledPersistently,
    Kind::Frozen,
    Kind::AppliedThenUnavailable,
];

const ROTATION: [Kind; 6] = [
    Kind::InternalError,
    Kind::Late,
    Kind::Reset,
    Kind::Throttled,
    Kind::ThrottledPersistently,
    Kind::Frozen,
];

impl Kind {
    fn rule(self, operation: &str) -> Rule {
        // The SDK makes 3 attempts: 3 faults leave it nothing.
        match self {
            Kind::InternalError => Rule::next(operation, Fault::InternalError, 1),
            Kind::Late => Rule::next(
                operation,
                Fault::LateAnswer {
                    delay_ms: LATE.as_millis() as u64,
                },
                1,
            ),
            Kind::Reset => Rule::next(operation, Fault::Reset, 1),
            Kind::Throttled => Rule::next(operation, Fault::ProvisionedThroughputExceeded, 1),
            Kind::ThrottledPersistently => Rule::next(operation, Fault::Throttling, 3),
            Kind::Frozen => Rule::next(
                operation,
                Fault::Freeze {
                    hold_ms: 2 * ATTEMPT.as_millis() as u64,
                },
                3,
            ),
            Kind::AppliedThenUnavailable => Rule::next(operation, Fault::InternalError, 3),
        }
    }
}

/// What the careful client saw and what the table holds at the end.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    writes: usize,
    faults: usize,
    /// Client retries after an Unavailable.
    retries: usize,
    /// Its own write refused (412 or 404) or failed for good.
    refusals: usize,
    /// Tasks or versions beyond what the client wrote.
    duplicates: usize,
    /// Writes the client was told succeeded that the table does not hold.
    lost: usize,
}

/// A task as the client believes it is stored.
#[derive(Debug, Clone)]
struct Believed {
    id: Uuid,
    title: String,
    done: bool,
    version: u64,
}

/// Retries `write` on Unavailable, as a careful client does (a 503 means
/// "maybe applied, retry"), up to 4 times.
async fn carefully<T, F, Fut>(tally: &mut Tally, mut write: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut tries = 0;
    loop {
        match write().await {
            Err(StoreError::Unavailable { .. }) if tries < 4 => {
                tries += 1;
                tally.retries += 1;
            }
            other => return other,
        }
    }
}

/// 5 writes a round of one caller (create, replace with If-Match, update
/// with If-Match, delete with If-Match), `rounds` rounds (6: ~30 writes), a
/// fault on every third one, rotating through `faults` (`update_faults` for
/// the update's operation).
/// Counts refusals of the client's own writes, duplicates and lost writes
/// against the table as stored.
async fn careful_client(
    rig: &Rig,
    writes: &impl Writes,
    owner: &Caller,
    faults: &[Kind],
    update_faults: &[Kind],
    rounds: u32,
) -> Tally {
    let mut tally = Tally::default();
    let mut believed: Vec<Believed> = Vec::new();
    let mut kinds = faults.iter().copied().cycle();
    let update_operation = writes.update_operation();
    let mut update_kinds = update_faults.iter().copied().cycle();
    // The write's operation on the wire, to aim the fault at it.
    let mut arm = |tally: &mut Tally, operation: &str| {
        tally.writes += 1;
        if !tally.writes.is_multiple_of(3) {
            rig.proxy.clear_rules();
            return;
        }
        let kind = if operation == "update" {
            update_kinds.next()
        } else {
            kinds.next()
        };
        match kind {
            Some(kind) => {
                tally.faults += 1;
                let operation = match operation {
                    "update" => update_operation,
                    other => other,
                };
                rig.proxy.set_rules(vec![kind.rule(operation)]);
            }
            None => rig.proxy.clear_rules(),
        }
    };
    for round in 0..rounds {
        let key = |step: &str| format!("{round}-{step}");
        // Two creates.
        for name in ["a", "b"] {
            arm(&mut tally, "TransactWriteItems");
            let task = Task::new(input(&format!("{round}{name}")), now());
            let k = key(name);
            match carefully(&mut tally, || {
                writes.create(&rig.store, owner, &k, task.clone())
            })
            .await
            {
                Ok(created) => believed.push(Believed {
                    id: created.task.id,
                    title: created.task.title,
                    done: false,
                    version: created.version,
                }),
                Err(e) => {
                    println!("create {round}{name}: {e:?}");
                    tally.refusals += 1;
                }
            }
        }
        let n = believed.len();
        if n < 2 {
            continue;
        }
        // Replace the first with If-Match.
        arm(&mut tally, "update");
        let a = believed[n - 2].clone();
        let title = format!("{round}a replaced");
        let k = key("replace");
        match carefully(&mut tally, || {
            writes.replace(&rig.store, owner, &k, a.id, input(&title), a.version)
        })
        .await
        {
            Ok(stored) if stored.version == a.version + 1 => {
                believed[n - 2].title = title;
                believed[n - 2].version = stored.version;
            }
            Ok(stored) => {
                println!("replace {round}a: version {}", stored.version);
                tally.duplicates += 1;
                believed[n - 2].title = title;
                believed[n - 2].version = stored.version;
            }
            Err(e) => {
                println!("replace {round}a: {e:?}");
                tally.refusals += 1;
            }
        }
        // Patch the second with If-Match, then delete it with If-Match.
        arm(&mut tally, "update");
        let b = believed[n - 1].clone();
        let patch = TaskPatch {
            done: Some(true),
            ..TaskPatch::default()
        };
        let k = key("update");
        match carefully(&mut tally, || {
            writes.update(&rig.store, owner, &k, b.id, patch.clone(), b.version)
        })
        .await
        {
            Ok(stored) => {
                if stored.version != b.version + 1 {
                    println!("update {round}b: version {}", stored.version);
                    tally.duplicates += 1;
                }
                believed[n - 1].done = true;
                believed[n - 1].version = stored.version;
            }
            Err(e) => {
                println!("update {round}b: {e:?}");
                tally.refusals += 1;
            }
        }
        arm(&mut tally, "TransactWriteItems");
        let b = believed[n - 1].clone();
        let k = key("delete");
        match carefully(&mut tally, || {
            writes.delete(&rig.store, owner, &k, b.id, b.version)
        })
        .await
        {
            Ok(()) => {
                believed.pop();
            }
            Err(e) => {
                println!("delete {round}b: {e:?}");
                tally.refusals += 1;
            }
        }
    }
    rig.proxy.clear_rules();
    let stored = rig.tasks(owner).await;
    for task in &believed {
        match stored.iter().find(|s| s.task.id == task.id) {
            None => tally.lost += 1,
            Some(s) => {
                if s.task.title != task.title || s.task.done != task.done {
                    tally.lost += 1;
                }
                if s.version > task.version {
                    tally.duplicates += 1;
                }
            }
        }
    }
    tally.duplicates += stored
        .iter()
        .filter(|s| believed.iter().all(|b| b.id != s.task.id))
        .count();
    let count = rig.count(owner).await;
    if count != believed.len() as i64 {
        println!("count {count}, {} tasks believed", believed.len());
        tally.duplicates += 1;
    }
    tally
}

fn assert_once(tally: &Tally) {
    println!("careful client: {tally:?}");
    assert_eq!(tally.writes, 30);
    assert_eq!(tally.faults, 10);
    assert!(tally.retries > 0, "some faults reached the client");
    assert_eq!(
        (tally.refusals, tally.duplicates, tally.lost),
        (0, 0, 0),
        "refusals, duplicates, lost writes"
    );
}

/// The careful client with every fault on every kind of write, UpdateItem
/// included: needs the write token for an applied UpdateItem's retry.
#[tokio::test]
async fn a_careful_client_under_faults_writes_each_write_once() {
    let rig = rig().await;
    let tally = careful_client(
        &rig,
        &PlainWrites,
        &caller("careful"),
        &ROTATION,
        &ROTATION,
        6,
    )
    .await;
    assert_once(&tally);
}

/// The contract's careful client: a key on every write and a retry on
/// every 5xx, under every fault, the write applied behind a 503 included:
/// no refusal of its own writes, no duplicate, nothing lost, nothing left
/// unknown after its retries.
#[tokio::test]
async fn a_careful_client_with_keys_writes_each_write_once_under_every_fault() {
    let rig = rig().await;
    let tally = careful_client(
        &rig,
        &KeyedWrites,
        &caller("keyed"),
        &EVERY_FAULT,
        &EVERY_FAULT,
        6,
    )
    .await;
    assert_once(&tally);
}

/// Without keys, a write applied behind a 503 is not safe to retry: the
/// retry is refused (412 for its own If-Match, 404 for its own delete) or
/// applied twice. What docs/api.md says a client without a key can see.
#[tokio::test]
async fn without_keys_a_write_applied_behind_a_503_is_refused_or_doubled() {
    let rig = rig().await;
    let tally = careful_client(
        &rig,
        &PlainWrites,
        &caller("plain"),
        &[Kind::AppliedThenUnavailable],
        &[Kind::AppliedThenUnavailable],
        // Two rounds: three faults, each behind all three SDK attempts
        // with their backoff; one refusal or duplicate is the point.
        2,
    )
    .await;
    println!("plain client: {tally:?}");
    assert!(
        tally.refusals + tally.duplicates > 0,
        "a retry without a key after an applied write: {tally:?}"
    );
}

/// The round trips of each write, as the proxy saw them: a key adds at
/// most one (the consistent read of a keyed PUT or PATCH), a write without
/// a key makes exactly the one call it always made.
#[tokio::test]
async fn a_key_adds_at_most_one_round_trip_and_no_key_adds_none() {
    let rig = rig().await;
    let owner = caller("counted");
    let trips = |rig: &Rig| -> Vec<String> {
        let seen: Vec<String> = rig.proxy.seen().into_iter().map(|s| s.operation).collect();
        rig.proxy.clear_seen();
        seen
    };
    let task = Task::new(input("counted"), now());
    let id = task.id;
    PlainWrites
        .create(&rig.store, &owner, "", task)
        .await
        .expect("create");
    assert_eq!(trips(&rig), ["TransactWriteItems"], "POST");
    let keyed = Task::new(input("counted, keyed"), now());
    let keyed_id = keyed.id;
    KeyedWrites
        .create(&rig.store, &owner, "post", keyed)
        .await
        .expect("create");
    assert_eq!(trips(&rig), ["TransactWriteItems"], "POST with a key");

    PlainWrites
        .replace(&rig.store, &owner, "", id, input("put"), 1)
        .await
        .expect("PUT");
    assert_eq!(trips(&rig), ["UpdateItem"], "PUT");
    KeyedWrites
        .replace(&rig.store, &owner, "put", keyed_id, input("put"), 1)
        .await
        .expect("PUT");
    assert_eq!(
        trips(&rig),
        ["GetItem", "TransactWriteItems"],
        "PUT with a key"
    );

    let patch = TaskPatch {
        done: Some(true),
        ..TaskPatch::default()
    };
    PlainWrites
        .update(&rig.store, &owner, "", id, patch.clone(), 2)
        .await
        .expect("PATCH");
    assert_eq!(trips(&rig), ["UpdateItem"], "PATCH");
    KeyedWrites
        .update(&rig.store, &owner, "patch", keyed_id, patch, 2)
        .await
        .expect("PATCH");
    assert_eq!(
        trips(&rig),
        ["GetItem", "TransactWriteItems"],
        "PATCH with a key"
    );

    PlainWrites
        .delete(&rig.store, &owner, "", id, 3)
        .await
        .expect("DELETE");
    assert_eq!(trips(&rig), ["TransactWriteItems"], "DELETE");
    KeyedWrites
        .delete(&rig.store, &owner, "delete", keyed_id, 3)
        .await
        .expect("DELETE");
    assert_eq!(trips(&rig), ["TransactWriteItems"], "DELETE with a key");
}
