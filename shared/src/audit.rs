//! The audit trail (the seed's `BackgroundTasks`, moved off the request
//! path): the table's DynamoDB stream feeds the `audit` function, which
//! turns every task insert, modify and remove into an [`AuditEntry`]:
//! whose task, which, what happened, when, and which fields changed from
//! what to what. Entries are stored next to the task (see
//! [`crate::store::table`]: `HISTORY#<task id>#<sequence>`) and logged as
//! one structured line each. No API response waits for any of it.
//!
//! Only task items are audited: the caller's `COUNT`, its
//! `IDEMPOTENCY#<key>` items and the history entries themselves (which are
//! in the stream too) are ignored.

use std::future::Future;

pub use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::DynamoDbBatchItemFailure;
pub use aws_lambda_events::event::streams::DynamoDbEventResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::handlers::DynamoDbAccess;
use crate::identity::Caller;
use crate::model::Task;
use crate::observability::caller_hash;
use crate::store::table::{OWNER_PREFIX, TASK_PREFIX};

/// What happened to the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// `INSERT`
    Created,
    /// `MODIFY`
    Updated,
    /// `REMOVE`
    Deleted,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Deleted => "deleted",
        }
    }
}

/// One changed field: `from` is `null` on create, `to` is `null` on delete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldChange {
    /// `title`, `description` or `done`.
    pub field: String,
    /// The value before the change.
    #[schema(required = true)]
    pub from: Option<Value>,
    /// The value after the change.
    #[schema(required = true)]
    pub to: Option<Value>,
}

/// The fields an entry reports; keys, GSI keys, `version` and timestamps
/// are bookkeeping, not changes.
pub const AUDITED_FIELDS: [&str; 3] = ["title", "description", "done"];

/// A stream record's sequence number, left-padded with zeros to DynamoDB's
/// maximum of 40 digits so that string order is stream order (sort keys
/// compare as strings).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sequence(String);

impl Sequence {
    const WIDTH: usize = 40;

    /// `None` unless `raw` is 1 to 40 decimal digits (padded or not).
    pub fn parse(raw: &str) -> Option<Self> {
        let valid =
            !raw.is_empty() && raw.len() <= Self::WIDTH && raw.bytes().all(|b| b.is_ascii_digit());
        valid.then(|| Sequence(format!("{raw:0>width$}", width = Self::WIDTH)))
    }

    /// The padded form: what sort keys hold.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number without its padding: what clients see as a change id.
    pub fn id(&self) -> &str {
        let trimmed = self.0.trim_start_matches('0');
        if trimmed.is_empty() { "0" } else { trimmed }
    }
}

/// One audited change of one task.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// The task's owner, who is also the caller: only an owner can change
    /// a task.
    pub owner: Caller,
    pub task_id: Uuid,
    pub action: Action,
    /// When the change happened: the task's `updated_at` after a create or
    /// update, the stream record's approximate creation time for a delete.
    pub at: DateTime<Utc>,
    /// The audited fields that differ (all of them on create and delete;
    /// possibly none on an update that rewrote the same values).
    pub changes: Vec<FieldChange>,
    /// The task's version after the change (before it, for a delete).
    pub version: u64,
    /// The task after the change; `None` after a delete. What the live
    /// feed (`GET /tasks/events`) sends, so a client needs no extra read.
    pub task: Option<Task>,
    /// The stream record's sequence number: the entry's identity (a record
    /// delivered twice is one entry) and its place in the task's history.
    pub sequence: Sequence,
    /// The stream record's `eventID`, for tracing an entry to its record.
    pub event_id: String,
}

/// A change as clients see it: an entry of a task's history
/// (`GET /tasks/{task_id}/history`) and the data of a live feed frame
/// (`GET /tasks/events`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Change {
    /// The change id: it grows with every change of the caller's tasks (it
    /// is the table stream's sequence number), so it orders them.
    #[schema(example = "111300000000017845912208")]
    pub id: String,
    pub task_id: Uuid,
    pub action: Action,
    /// When the change was made.
    #[serde(serialize_with = "crate::model::rfc3339")]
    pub at: DateTime<Utc>,
    /// The task's version (its `ETag`) after the change; before it, for a delete.
    pub version: u64,
    /// The fields that changed, from what to what (all of them on create and delete).
    pub changes: Vec<FieldChange>,
    /// The task after the change; `null` after a delete.
    #[schema(required = true)]
    pub task: Option<Task>,
}

impl From<&AuditEntry> for Change {
    fn from(entry: &AuditEntry) -> Self {
        Change {
            id: entry.sequence.id().to_owned(),
            task_id: entry.task_id,
            action: entry.action,
            at: entry.at,
            version: entry.version,
            changes: entry.changes.clone(),
            task: entry.task.clone(),
        }
    }
}

/// One page of a task's history, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct History {
    pub items: Vec<Change>,
    /// Pass it back as `cursor` for the next (older) page; `null` when nothing is left.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A task change that cannot be audited (a key or image that is not a
/// task's, an unknown event name...). Retrying cannot fix it, so it is
/// logged and skipped, never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed stream record: {0}")]
pub struct Malformed(pub String);

fn malformed(what: impl Into<String>) -> Malformed {
    Malformed(what.into())
}

#[derive(Deserialize)]
struct Keys {
    pk: String,
    sk: String,
}

/// The version of a task item, read beside its [`Task`] fields.
#[derive(Deserialize)]
struct Versioned {
    version: u64,
}

/// A task item as in a stream image (its keys are ignored).
struct TaskImage {
    task: Task,
    version: u64,
}

impl TaskImage {
    fn fields(&self) -> [Value; 3] {
        let task = &self.task;
        [json!(task.title), json!(task.description), json!(task.done)]
    }
}

fn image(item: &serde_dynamo::Item, which: &str, id: Uuid) -> Result<TaskImage, Malformed> {
    if item.is_empty() {
        return Err(malformed(format!("no {which} image")));
    }
    let not_a_task =
        |e: serde_dynamo::Error| malformed(format!("{which} image is not a task: {e}"));
    let image = TaskImage {
        task: serde_dynamo::from_item(item.clone()).map_err(not_a_task)?,
        version: serde_dynamo::from_item::<_, Versioned>(item.clone())
            .map_err(not_a_task)?
            .version,
    };
    if image.task.id != id {
        return Err(malformed(format!(
            "{which} image is task {}, its key task {id}",
            image.task.id
        )));
    }
    Ok(image)
}

/// The audited fields that differ between the two images.
fn diff(old: Option<&TaskImage>, new: Option<&TaskImage>) -> Vec<FieldChange> {
    let old = old.map(TaskImage::fields);
    let new = new.map(TaskImage::fields);
    AUDITED_FIELDS
        .iter()
        .enumerate()
        .filter_map(|(i, field)| {
            let from = old.as_ref().map(|f| f[i].clone());
            let to = new.as_ref().map(|f| f[i].clone());
            (from != to).then(|| FieldChange {
                field: (*field).to_owned(),
                from,
                to,
            })
        })
        .collect()
}

/// The entry a stream record makes: `Ok(None)` for an item that is not a
/// task (ignored), `Err` for a task change that cannot be read.
pub fn parse(record: &EventRecord) -> Result<Option<AuditEntry>, Malformed> {
    let change = &record.change;
    let keys: Keys = serde_dynamo::from_item(change.keys.clone())
        .map_err(|e| malformed(format!("keys: {e}")))?;
    let Some(task) = keys.sk.strip_prefix(TASK_PREFIX) else {
        return Ok(None);
    };
    let task_id = Uuid::parse_str(task).map_err(|e| malformed(format!("task id {task:?}: {e}")))?;
    let owner = keys
        .pk
        .strip_prefix(OWNER_PREFIX)
        .and_then(Caller::new)
        .ok_or_else(|| malformed(format!("partition key {:?} names no owner", keys.pk)))?;
    let sequence = change
        .sequence_number
        .as_deref()
        .and_then(Sequence::parse)
        .ok_or_else(|| malformed(format!("sequence number {:?}", change.sequence_number)))?;
    let (action, old, new) = match record.event_name.as_str() {
        "INSERT" => (
            Action::Created,
            None,
            Some(image(&change.new_image, "new", task_id)?),
        ),
        "MODIFY" => (
            Action::Updated,
            Some(image(&change.old_image, "old", task_id)?),
            Some(image(&change.new_image, "new", task_id)?),
        ),
        "REMOVE" => (
            Action::Deleted,
            Some(image(&change.old_image, "old", task_id)?),
            None,
        ),
        other => return Err(malformed(format!("event name {other:?}"))),
    };
    // A record may lack its creation time (it then reads as the epoch).
    let stream_time = Some(change.approximate_creation_date_time).filter(|t| t.timestamp() > 0);
    let (at, version) = match (&old, &new) {
        (_, Some(new)) => (new.task.updated_at, new.version),
        (Some(old), None) => (stream_time.unwrap_or_else(Utc::now), old.version),
        (None, None) => return Err(malformed("no image")),
    };
    Ok(Some(AuditEntry {
        owner,
        task_id,
        action,
        at,
        changes: diff(old.as_ref(), new.as_ref()),
        version,
        task: new.map(|image| image.task),
        sequence,
        event_id: record.event_id.clone(),
    }))
}

impl AuditEntry {
    /// The entry's log line: hashed caller, task, action and the names of
    /// the changed fields (their values are in the stored entry only).
    pub fn log(&self) {
        let changed: Vec<&str> = self.changes.iter().map(|c| c.field.as_str()).collect();
        tracing::info!(
            caller = %caller_hash(self.owner.id()),
            task_id = %self.task_id,
            action = self.action.as_str(),
            changed = %changed.join(","),
            version = self.version,
            at = %self.at.to_rfc3339(),
            sequence = %self.sequence.as_str(),
            event_id = %self.event_id,
            "audit"
        );
    }
}

/// Whether [`AuditStore::record`] wrote the entry or already had it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    Duplicate,
}

/// Which page of a task's history: at most `limit` entries, newest first,
/// older than `before` (the `next_before` of the previous page).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryQuery {
    pub limit: u32,
    pub before: Option<Sequence>,
}

/// One page of a task's history and where the next one starts, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    pub items: Vec<AuditEntry>,
    pub next_before: Option<Sequence>,
}

/// Changes of the feed, oldest first, and what reading them cost.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeBatch {
    pub items: Vec<AuditEntry>,
    /// DynamoDB read capacity units consumed (0 in memory).
    pub read_capacity: f64,
}

/// Audit entry persistence. Errors: `Unavailable` (retry), `Internal`.
///
/// Two reads of the same entries: one task's history (newest first, for
/// `GET /tasks/{task_id}/history`) and the caller's change feed (oldest
/// first, in stream order, for `GET /tasks/events`). Both only ever reach
/// the given owner's entries.
pub trait AuditStore: Send + Sync {
    /// Stores the entry unless an entry of the same stream record exists
    /// (then nothing is written: a redelivered record is a no-op).
    fn record(&self, entry: &AuditEntry)
    -> impl Future<Output = Result<Recorded, ApiError>> + Send;

    /// The owner's entries of one task, newest first: exactly
    /// `min(limit, entries left)`, `next_before` `None` exactly at the end.
    /// Another caller's task has no history here.
    fn history(
        &self,
        owner: &Caller,
        task_id: Uuid,
        query: &HistoryQuery,
    ) -> impl Future<Output = Result<HistoryPage, ApiError>> + Send;

    /// The owner's changes (all tasks) after `after` (from the first, with
    /// `None`), oldest first, at most `limit`. Read consistently: a change
    /// the audit has stored is in the next call's answer.
    fn changes(
        &self,
        owner: &Caller,
        after: Option<&Sequence>,
        limit: u32,
    ) -> impl Future<Output = Result<ChangeBatch, ApiError>> + Send;

    /// The sequence of the owner's newest change, if any: where a feed
    /// that starts "now" starts.
    fn latest_change(
        &self,
        owner: &Caller,
    ) -> impl Future<Output = Result<Option<Sequence>, ApiError>> + Send;
}

/// The DynamoDB access of the audit function, which its policy in
/// `template.yaml` grants exactly (`shared/tests/least_privilege.rs`): its
/// event source mapping reads the table's stream with the function's role,
/// and [`handle`] writes each entry with one conditional `PutItem`
/// (`AuditStore::record`). ([`AuditStore::history`] serves no function yet.)
pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess {
    actions: &["dynamodb:PutItem"],
    indexes: &[],
    stream: true,
};

/// Records a stream batch, in order, and returns what Lambda must redeliver.
///
/// - A record of another item than a task (count, idempotency key, history
///   entry) is ignored.
/// - A malformed record (see [`Malformed`]) is logged at error level and
///   **skipped**: it cannot get better, and reporting it would block the
///   shard (Lambda retries from it) until the record expires.
/// - A record the store fails on (DynamoDB unavailable) is reported in
///   `batch_item_failures` and processing **stops** there: Lambda retries
///   the batch from the lowest reported sequence number, so the records
///   after it come again anyway (and those before it are not redelivered).
/// - A record delivered twice stores nothing new and is logged once.
pub async fn handle<S: AuditStore>(store: &S, event: Event) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in &event.records {
        let entry = match parse(record) {
            Ok(Some(entry)) => entry,
            Ok(None) => continue,
            Err(error) => {
                tracing::error!(event_id = %record.event_id, %error, "stream record skipped");
                continue;
            }
        };
        match store.record(&entry).await {
            Ok(Recorded::New) => entry.log(),
            Ok(Recorded::Duplicate) => {
                tracing::debug!(event_id = %entry.event_id, "stream record already audited");
            }
            Err(error) => {
                tracing::warn!(event_id = %entry.event_id, %error, "audit entry not stored, batch retried from it");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = record.change.sequence_number.clone();
                response.batch_item_failures.push(failure);
                break;
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        let path = format!("{}/../events/audit.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).expect("events/audit.json");
        serde_json::from_str(&text).expect("a DynamoDB stream event")
    }

    #[test]
    fn sequence_order_is_stream_order() {
        let seq = |s: &str| Sequence::parse(s).expect(s);
        assert!(seq("9") < seq("10"));
        assert!(seq("111200000000017845893472") < seq("1111200000000017845893472"));
        assert_eq!(seq("0042").as_str().len(), 40);
        assert_eq!(seq("0042"), seq("42"));
        for bad in ["", "12a", "-1", &"1".repeat(41)] {
            assert_eq!(Sequence::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_task_items_are_audited() {
        let parsed: Vec<Option<Action>> = sample()
            .records
            .iter()
            .map(|r| parse(r).expect("well-formed").map(|e| e.action))
            .collect();
        assert_eq!(
            parsed,
            [
                None,
                Some(Action::Created),
                Some(Action::Updated),
                Some(Action::Deleted),
                None
            ]
        );
        // The entries the audit writes are in the stream too.
        let mut record = sample().records.remove(1);
        let keys = record.change.keys.inner_mut();
        keys.insert(
            "sk".to_owned(),
            serde_dynamo::AttributeValue::S(format!("HISTORY#{}#{}", Uuid::nil(), "0".repeat(40))),
        );
        assert_eq!(parse(&record), Ok(None));
    }

    #[test]
    fn a_key_without_an_owner_is_malformed() {
        let mut record = sample().records.remove(1);
        record.change.keys.inner_mut().insert(
            "pk".to_owned(),
            serde_dynamo::AttributeValue::S("USER#".to_owned()),
        );
        assert!(parse(&record).is_err());
    }
}
