//! How tasks, idempotency keys and changes are stored: the item structs,
//! (de)serialised with `serde_dynamo`. Key layout: [`super::table`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Item;
use super::table::{change_sk, done_pk, history_pk, idempotency_sk, owner_pk, task_sk};
use crate::domain::caller::Caller;
use crate::domain::change::{Action, Change, FieldChange, Sequence};
use crate::domain::task::{Task, VersionedTask};
use crate::ports::{IDEMPOTENCY_TTL_SECONDS, Idempotency, StoreError};

/// A task as stored: the task (its declared fields, as [`Task`]'s serde
/// writes them: one encoding of a task in the table, the same in a task
/// item, in the copy an idempotency key keeps of the task it created, and
/// in a change) plus its keys and version. A declared field that an item
/// lacks (written before the field existed) reads as its default.
#[derive(Debug, Serialize, Deserialize)]
pub struct TaskItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    version: u64,
    #[serde(flatten)]
    task: Task,
}

impl TaskItem {
    pub fn new(owner: &Caller, task: &Task, version: u64) -> Self {
        TaskItem {
            pk: owner_pk(owner),
            sk: task_sk(task.id),
            gsi1pk: done_pk(owner, task.done),
            gsi1sk: task_sk(task.id),
            version,
            task: task.clone(),
        }
    }

    pub fn into_versioned(self) -> VersionedTask {
        VersionedTask {
            version: self.version,
            task: self.task,
        }
    }
}

/// An idempotency key: the fingerprint of the first request and its
/// answer, replayed to retries: the task it created, replaced or updated
/// and its version, or nothing for a delete. No GSI keys: it never shows
/// in a listing.
#[derive(Debug, Serialize, Deserialize)]
pub struct IdempotencyItem {
    pk: String,
    sk: String,
    pub fingerprint: String,
    pub expires_at: i64,
    /// The answer's version (its `ETag`). Keys written before writes other
    /// than creates took keys have none: a create's is 1.
    #[serde(default = "first_version")]
    version: u64,
    /// The answer's task, in a task item's encoding; none after a delete.
    #[serde(flatten)]
    task: Option<Task>,
}

fn first_version() -> u64 {
    1
}

impl IdempotencyItem {
    pub fn new(
        owner: &Caller,
        idempotency: &Idempotency,
        answer: Option<&VersionedTask>,
        now: DateTime<Utc>,
    ) -> Self {
        IdempotencyItem {
            pk: owner_pk(owner),
            sk: idempotency_sk(&idempotency.key),
            fingerprint: idempotency.fingerprint.clone(),
            expires_at: now.timestamp() + IDEMPOTENCY_TTL_SECONDS,
            version: answer.map_or(0, |answer| answer.version),
            task: answer.map(|answer| answer.task.clone()),
        }
    }

    /// The first answer, if this retry carries the same request.
    pub fn replay(self, idempotency: &Idempotency) -> Result<Option<VersionedTask>, StoreError> {
        if self.fingerprint != idempotency.fingerprint {
            return Err(StoreError::IdempotencyKeyReused);
        }
        Ok(self.task.map(|task| VersionedTask {
            version: self.version,
            task,
        }))
    }
}

/// A task item read back.
pub fn decode_task(item: Item) -> Result<VersionedTask, StoreError> {
    serde_dynamo::from_item::<_, TaskItem>(item)
        .map(TaskItem::into_versioned)
        .map_err(|e| StoreError::internal("malformed task item", e))
}

/// A change as stored: keyed by its stream record (see [`super::table`]),
/// with the task after it in the same encoding as a task item, and an
/// expiry for DynamoDB's TTL (the retention period after the change).
#[derive(Debug, Serialize, Deserialize)]
pub struct ChangeItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    task_id: Uuid,
    action: Action,
    at: DateTime<Utc>,
    /// The field changes (the attribute keeps its first name).
    changes: Vec<FieldChange>,
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    task: Option<Task>,
    sequence: String,
    event_id: String,
    /// Epoch seconds after which DynamoDB's TTL may delete the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

impl ChangeItem {
    pub fn new(change: &Change, retention: chrono::Duration) -> Self {
        let sk = change_sk(&change.sequence);
        ChangeItem {
            pk: owner_pk(&change.owner),
            gsi1pk: history_pk(&change.owner, change.task_id),
            gsi1sk: sk.clone(),
            sk,
            task_id: change.task_id,
            action: change.action,
            at: change.at,
            changes: change.fields.clone(),
            version: change.version,
            task: change.task.clone(),
            sequence: change.sequence.as_str().to_owned(),
            event_id: change.event_id.clone(),
            expires_at: Some((change.at + retention).timestamp()),
        }
    }

    /// A change item read back (its owner is the partition's).
    pub fn decode(item: Item, owner: &Caller) -> Result<Change, StoreError> {
        let stored: ChangeItem = serde_dynamo::from_item(item)
            .map_err(|e| StoreError::internal("malformed change item", e))?;
        let sequence = Sequence::parse(&stored.sequence).ok_or_else(|| {
            StoreError::internal_because(format!("malformed change sequence {:?}", stored.sequence))
        })?;
        Ok(Change {
            owner: owner.clone(),
            task_id: stored.task_id,
            action: stored.action,
            at: stored.at,
            fields: stored.changes,
            version: stored.version,
            task: stored.task,
            sequence,
            event_id: stored.event_id,
        })
    }
}
