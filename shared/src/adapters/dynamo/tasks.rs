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
    CONDITION_FAILED, build_error, cancellation_reasons, classify, code, condition_failed,
    conflict_or_fail,
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
            let key_item: Item =
                serde_dynamo::to_item(IdempotencyItem::new(owner, idempotency, &task))
                    .map_err(|e| StoreError::internal("encoding an idempotency key", e))?;
            let now = AttributeValue::N(task.created_at.timestamp().to_string());
            let put_key = Put::builder()
                .table_name(&self.table)
                .set_item(Some(key_item))
                .condition_expression(format!("attribute_not_exists({PK}) OR #expires < :now"))
                .expression_attribute_names("#expires", TTL_ATTRIBUTE)
                .expression_attribute_values(":now", now)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_error)?;
            items.push(TransactWriteItem::builder().put(put_key).build());
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
            if let Some(idempotency) = rules.idempotency
                && code(reasons, 2) == Some(CONDITION_FAILED)
            {
                let returned = reasons.get(2).and_then(CancellationReason::item).cloned();
                return match self.idempotency_item(owner, idempotency, returned).await? {
                    Some(first) => first.replay(idempotency).map(Some),
                    None => Ok(None), // expired or gone meanwhile: write again
                };
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
    ) -> Result<VersionedTask, StoreError> {
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
    ) -> Result<VersionedTask, StoreError> {
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
        let items = vec![
            TransactWriteItem::builder()
                .delete(delete.build().map_err(build_error)?)
                .build(),
            count_update(&self.table, owner, -1, None)?,
        ];
        let items = &items;
        retry::on_conflict(|| async move {
            let Some(reasons) = self.transact(items).await? else {
                return Ok(Some(()));
            };
            let reasons = reasons.as_slice();
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
    async fn apply(
        &self,
        owner: &Caller,
        id: Uuid,
        mut update: Update,
        now: DateTime<Utc>,
        precondition: &Precondition,
    ) -> Result<VersionedTask, StoreError> {
        update.set("updated_at", attr(now)?);
        let (condition, condition_values) = existing_condition(precondition);
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
                    condition_failed(c.item())
                }
                _ => classify("UpdateItem", e),
            })?;
        let item = output
            .attributes
            .ok_or_else(|| StoreError::internal_because("UpdateItem returned no attributes"))?;
        decode_task(item)
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
