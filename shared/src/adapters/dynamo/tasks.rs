//! The DynamoDB [`TaskStore`]. A create and a delete are each one
//! transaction with the caller's task count (and, for a create, its
//! idempotency key); an update is one conditional `UpdateItem`.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Delete, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::errors::{
    CONDITION_FAILED, CONFLICT, build_error, cancellation_reasons, classify, code,
    condition_failed, conflict_or_fail,
};
use super::expressions::{Update, attr, count_update, existing_condition, key, string};
use super::items::{IdempotencyItem, TaskItem, decode_task};
use super::query::Range;
use super::retry;
use super::table::{
    GSI1, GSI1_PK, GSI1_SK, PK, SK, TASK_PREFIX, TTL_ATTRIBUTE, done_pk, idempotency_sk, owner_pk,
    task_sk,
};
use super::{DynamoStore, Item};
use crate::domain::caller::Caller;
use crate::domain::task::{ListQuery, Task, TaskCreate, TaskPatch, VersionedTask};
use crate::ports::page;
use crate::ports::{CreateRules, Idempotency, Precondition, StoreError, StoredPage, TaskStore};

/// The attribute holding the token of the last UpdateItem that wrote a
/// task (`DynamoStore::apply`).
const WRITE_TOKEN: &str = "write_token";

/// Whether `item` was last written with `token`.
fn carries(item: &Item, token: &str) -> bool {
    matches!(item.get(WRITE_TOKEN), Some(AttributeValue::S(stored)) if stored == token)
}

/// How an UpdateItem ended that did not answer normally.
enum Outcome {
    /// Its condition failed on the item its own earlier attempt wrote.
    Applied(Item),
    Failed(StoreError),
}
use Outcome::{Applied, Failed};

/// What a keyed transaction learned of its key.
enum KeyOutcome {
    /// The key is new: the cancellation has another cause.
    New,
    /// The key was there, expired and gone by the time it was read: try again.
    Expired,
    /// The first request's answer (`None`: a delete's), or why not.
    Replay(Result<Option<VersionedTask>, StoreError>),
}

/// A replayed answer of a write that answers with a task.
fn answered(first: Result<Option<VersionedTask>, StoreError>) -> Result<VersionedTask, StoreError> {
    first?.ok_or(StoreError::IdempotencyKeyReused)
}

impl TaskStore for DynamoStore {
    async fn create(
        &self,
        owner: &Caller,
        task: Task,
        rules: CreateRules<'_>,
    ) -> Result<VersionedTask, StoreError> {
        // One transaction: count + 1 (below MAX_TASKS), the task, and the
        // idempotency key (new, or expired). All are written or none.
        let task_item: Item = serde_dynamo::to_item(TaskItem::new(owner, &task, 1))
            .map_err(|e| StoreError::internal("encoding a task", e))?;
        let put_task = Put::builder()
            .table_name(&self.table)
            .set_item(Some(task_item))
            .condition_expression(format!("attribute_not_exists({PK})"))
            .build()
            .map_err(build_error)?;
        let mut items = vec![
            count_update(&self.table, owner, 1, Some(rules.max_tasks))?,
            TransactWriteItem::builder().put(put_task).build(),
        ];
        if let Some(idempotency) = rules.idempotency {
            let answer = VersionedTask {
                task: task.clone(),
                version: 1,
            };
            items.push(self.put_key(owner, idempotency, Some(&answer), task.created_at)?);
        }
        let items = &items;
        let task = &task;
        retry::on_conflict(|| async move {
            let Some(reasons) = self.transact(items).await? else {
                return Ok(Some(VersionedTask {
                    task: task.clone(),
                    version: 1,
                }));
            };
            let reasons = reasons.as_slice();
            // A known key wins over the limit: a retry is never a 409.
            if let Some(idempotency) = rules.idempotency {
                match self.key_outcome(owner, idempotency, reasons, 2).await? {
                    KeyOutcome::Replay(first) => return answered(first).map(Some),
                    KeyOutcome::Expired => return Ok(None), // gone meanwhile: write again
                    KeyOutcome::New => {}
                }
            }
            if code(reasons, 0) == Some(CONDITION_FAILED) {
                return Err(StoreError::TaskLimitReached(rules.max_tasks));
            }
            conflict_or_fail(reasons).map(|()| None)
        })
        .await
    }

    async fn get(&self, owner: &Caller, id: Uuid) -> Result<VersionedTask, StoreError> {
        let item = self.read(key(owner, id)).await?;
        decode_task(item.ok_or(StoreError::TaskNotFound)?)
    }

    async fn list(&self, owner: &Caller, query: &ListQuery) -> Result<StoredPage, StoreError> {
        // With a `done` filter the query runs on that done-partition of
        // GSI1: every item read matches, so the cost is the page, whatever
        // else the caller owns.
        let (index, pk_name, pk_value, sk_name) = match query.done {
            None => (None, PK, owner_pk(owner), SK),
            Some(done) => (Some(GSI1), GSI1_PK, done_pk(owner, done), GSI1_SK),
        };
        let start: Option<Item> = query.after.map(|after| {
            let mut key = key(owner, after);
            if let Some(done) = query.done {
                key.insert(GSI1_PK.to_owned(), string(done_pk(owner, done)));
                key.insert(GSI1_SK.to_owned(), string(task_sk(after)));
            }
            key
        });
        let range = Range {
            index,
            pk: (pk_name, pk_value),
            sk: (sk_name, TASK_PREFIX),
            forward: true,
        };
        let (found, read_capacity) = self
            .query_items(range, start, page::lookahead(query.limit))
            .await?;
        let read = found
            .into_iter()
            .map(|item| decode_task(item).map(|stored| stored.task))
            .collect::<Result<Vec<_>, _>>()?;
        let (items, next_after) = page::cut(read, query.limit, |task| task.id);
        metrics::histogram!("list_read_capacity_units").record(read_capacity);
        Ok(StoredPage {
            items,
            next_after,
            read_capacity,
        })
    }

    async fn replace(
        &self,
        owner: &Caller,
        id: Uuid,
        input: TaskCreate,
        now: DateTime<Utc>,
        precondition: &Precondition,
        idempotency: Option<&Idempotency>,
    ) -> Result<VersionedTask, StoreError> {
        if let Some(idempotency) = idempotency {
            let change = |task: &mut Task| {
                *task = Task::with(task.id, input.clone(), task.created_at, task.updated_at);
            };
            return self
                .write_keyed(owner, id, now, precondition, idempotency, &change)
                .await;
        }
        let mut update = Update::default();
        update.set_fields(&input)?;
        update.set(GSI1_PK, string(done_pk(owner, input.done)));
        self.apply(owner, id, update, now, precondition).await
    }

    async fn update(
        &self,
        owner: &Caller,
        id: Uuid,
        patch: TaskPatch,
        now: DateTime<Utc>,
        precondition: &Precondition,
        idempotency: Option<&Idempotency>,
    ) -> Result<VersionedTask, StoreError> {
        if let Some(idempotency) = idempotency {
            let change = |task: &mut Task| patch.clone().apply(task);
            return self
                .write_keyed(owner, id, now, precondition, idempotency, &change)
                .await;
        }
        let mut update = Update::default();
        update.set_fields(&patch)?;
        if let Some(done) = patch.done {
            update.set(GSI1_PK, string(done_pk(owner, done)));
        }
        self.apply(owner, id, update, now, precondition).await
    }

    async fn delete(
        &self,
        owner: &Caller,
        id: Uuid,
        precondition: &Precondition,
        idempotency: Option<&Idempotency>,
    ) -> Result<(), StoreError> {
        // One transaction: the task goes (if it exists and matches
        // `If-Match`) and the caller's count drops by one.
        let (condition, values) = existing_condition(precondition);
        let mut delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(owner, id)))
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if !values.is_empty() {
            delete = delete
                .expression_attribute_names("#version", "version")
                .set_expression_attribute_values(Some(values));
        }
        let mut items = vec![
            TransactWriteItem::builder()
                .delete(delete.build().map_err(build_error)?)
                .build(),
            count_update(&self.table, owner, -1, None)?,
        ];
        if let Some(idempotency) = idempotency {
            items.push(self.put_key(owner, idempotency, None, Utc::now())?);
        }
        let items = &items;
        retry::on_conflict(|| async move {
            let Some(reasons) = self.transact(items).await? else {
                return Ok(Some(()));
            };
            let reasons = reasons.as_slice();
            // The key first: a retry of an applied delete finds its task
            // gone, and must hear its own success, not a 404.
            if let Some(idempotency) = idempotency {
                match self.key_outcome(owner, idempotency, reasons, 2).await? {
                    KeyOutcome::Replay(first) => {
                        return match first? {
                            None => Ok(Some(())),
                            Some(_) => Err(StoreError::IdempotencyKeyReused),
                        };
                    }
                    KeyOutcome::Expired => return Ok(None),
                    KeyOutcome::New => {}
                }
            }
            if code(reasons, 0) == Some(CONDITION_FAILED) {
                let old = reasons.first().and_then(CancellationReason::item);
                return Err(condition_failed(old));
            }
            conflict_or_fail(reasons).map(|()| None)
        })
        .await
    }
}

impl DynamoStore {
    /// One conditional UpdateItem: the stored item changes only if it
    /// exists and satisfies `precondition`; the new item comes back.
    ///
    /// The item also gets this call's write token ([`WRITE_TOKEN`]), and the
    /// condition refuses an item that already carries it. The SDK resends
    /// the same request when an attempt times out or gets a 500, though
    /// DynamoDB may have applied it: that retry then fails its condition,
    /// and the item DynamoDB returns with the failure
    /// (`ReturnValuesOnConditionCheckFailure`) carries the token, so it is
    /// recognised as this call's own write and answered as its success,
    /// never as a 412 or a second version bump. No extra read, no extra
    /// capacity.
    async fn apply(
        &self,
        owner: &Caller,
        id: Uuid,
        mut update: Update,
        now: DateTime<Utc>,
        precondition: &Precondition,
    ) -> Result<VersionedTask, StoreError> {
        update.set("updated_at", attr(now)?);
        let token = Uuid::now_v7().to_string();
        update.set(WRITE_TOKEN, string(token.clone()));
        let (condition, condition_values) = existing_condition(precondition);
        let condition = format!(
            "({condition}) AND (attribute_not_exists(#{WRITE_TOKEN}) OR #{WRITE_TOKEN} <> :{WRITE_TOKEN})"
        );
        update.values.extend(condition_values);
        update
            .values
            .insert(":one".to_owned(), AttributeValue::N("1".to_owned()));
        update
            .names
            .insert("#version".to_owned(), "version".to_owned());
        let expression = format!("SET {}, #version = #version + :one", update.sets.join(", "));
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(owner, id)))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                    match c.item().filter(|item| carries(item, &token)) {
                        // This call's own write, applied by an earlier attempt.
                        Some(item) => Applied(item.clone()),
                        None => Failed(condition_failed(c.item())),
                    }
                }
                _ => Failed(classify("UpdateItem", e)),
            });
        let item = match output {
            Ok(output) => output.attributes,
            Err(Applied(item)) => Some(item),
            Err(Failed(error)) => return Err(error),
        };
        let item =
            item.ok_or_else(|| StoreError::internal_because("UpdateItem returned no attributes"))?;
        decode_task(item)
    }

    /// A write to an existing task with an idempotency key: the task as
    /// read, changed by `change`, stored at the next version together with
    /// the key and the answer, in one transaction (so a retry of an applied
    /// write finds the key and hears the first answer, whatever happened
    /// to the task since). One consistent read more than a write without a
    /// key, which DynamoDB cannot avoid: a transaction returns no item, and
    /// the key must keep the answer.
    async fn write_keyed(
        &self,
        owner: &Caller,
        id: Uuid,
        now: DateTime<Utc>,
        precondition: &Precondition,
        idempotency: &Idempotency,
        change: &(dyn Fn(&mut Task) + Sync),
    ) -> Result<VersionedTask, StoreError> {
        retry::on_conflict(|| async move {
            let read = self.read(key(owner, id)).await?;
            let current = match read.map(decode_task).transpose()? {
                Some(current) if precondition.allows(current.version) => current,
                // Not there, or another version: unless this is a retry of
                // a write already applied, which the key remembers.
                found => {
                    let refusal = match found {
                        Some(_) => StoreError::PreconditionFailed,
                        None => StoreError::TaskNotFound,
                    };
                    return match self.idempotency_item(owner, idempotency, None).await? {
                        Some(first) => answered(first.replay(idempotency)).map(Some),
                        None => Err(refusal),
                    };
                }
            };
            let mut task = current.task.clone();
            change(&mut task);
            task.updated_at = now;
            let answer = VersionedTask {
                task,
                version: current.version + 1,
            };
            let item: Item =
                serde_dynamo::to_item(TaskItem::new(owner, &answer.task, answer.version))
                    .map_err(|e| StoreError::internal("encoding a task", e))?;
            let put_task = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("#version = :read")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(
                    ":read",
                    AttributeValue::N(current.version.to_string()),
                )
                .build()
                .map_err(build_error)?;
            let items = [
                TransactWriteItem::builder().put(put_task).build(),
                self.put_key(owner, idempotency, Some(&answer), now)?,
            ];
            let Some(reasons) = self.transact(&items).await? else {
                return Ok(Some(answer));
            };
            let reasons = reasons.as_slice();
            match self.key_outcome(owner, idempotency, reasons, 1).await? {
                KeyOutcome::Replay(first) => return answered(first).map(Some),
                KeyOutcome::Expired => return Ok(None),
                KeyOutcome::New => {}
            }
            if code(reasons, 0) == Some(CONDITION_FAILED) {
                return Ok(None); // written by another since the read: read again
            }
            conflict_or_fail(reasons).map(|()| None)
        })
        .await
    }

    /// The transaction item that stores an idempotency key with its
    /// answer, unless a live key of that name exists (then the cancelled
    /// transaction returns it: [`Self::key_outcome`]).
    fn put_key(
        &self,
        owner: &Caller,
        idempotency: &Idempotency,
        answer: Option<&VersionedTask>,
        now: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        let key_item: Item =
            serde_dynamo::to_item(IdempotencyItem::new(owner, idempotency, answer, now))
                .map_err(|e| StoreError::internal("encoding an idempotency key", e))?;
        let put_key = Put::builder()
            .table_name(&self.table)
            .set_item(Some(key_item))
            .condition_expression(format!("attribute_not_exists({PK}) OR #expires < :now"))
            .expression_attribute_names("#expires", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put_key).build())
    }

    /// What a cancelled keyed transaction says of its key (the `index`-th
    /// item): new (the cancellation is about something else), held by a
    /// first request in flight (409), or known: the first answer (or 422
    /// for another request).
    async fn key_outcome(
        &self,
        owner: &Caller,
        idempotency: &Idempotency,
        reasons: &[CancellationReason],
        index: usize,
    ) -> Result<KeyOutcome, StoreError> {
        match code(reasons, index) {
            Some(CONDITION_FAILED) => {
                let returned = reasons
                    .get(index)
                    .and_then(CancellationReason::item)
                    .cloned();
                Ok(
                    match self.idempotency_item(owner, idempotency, returned).await? {
                        Some(first) => KeyOutcome::Replay(first.replay(idempotency)),
                        None => KeyOutcome::Expired,
                    },
                )
            }
            Some(CONFLICT) => Err(StoreError::IdempotencyKeyInFlight),
            _ => Ok(KeyOutcome::New),
        }
    }

    /// Sends one transaction: `None` once written, or why each item was
    /// cancelled (for the caller to decide: a condition, or a conflict to
    /// retry). Any other failure is classified as usual.
    async fn transact(
        &self,
        items: &[TransactWriteItem],
    ) -> Result<Option<Vec<CancellationReason>>, StoreError> {
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items.to_vec()))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(None),
            Err(error) => match cancellation_reasons(&error) {
                Some(reasons) => Ok(Some(reasons.to_vec())),
                None => Err(classify("TransactWriteItems", error)),
            },
        }
    }

    /// The stored idempotency key: as returned by the cancelled transaction,
    /// else by a consistent read. `None` if it is gone or expired (TTL
    /// deletion lags expiry, so expiry is checked here too).
    async fn idempotency_item(
        &self,
        owner: &Caller,
        idempotency: &Idempotency,
        returned: Option<Item>,
    ) -> Result<Option<IdempotencyItem>, StoreError> {
        let item = match returned {
            Some(item) => Some(item),
            None => {
                let key = Item::from([
                    (PK.to_owned(), string(owner_pk(owner))),
                    (SK.to_owned(), string(idempotency_sk(&idempotency.key))),
                ]);
                self.read(key).await?
            }
        };
        let Some(item) = item else {
            return Ok(None);
        };
        let stored: IdempotencyItem = serde_dynamo::from_item(item)
            .map_err(|e| StoreError::internal("malformed idempotency item", e))?;
        let live = stored.expires_at > Utc::now().timestamp();
        Ok(live.then_some(stored))
    }
}
