//! A change: what happened to one task, recorded by the audit function
//! from the table's change stream (the seed's `BackgroundTasks`, moved off
//! the request path). One vocabulary throughout: a **change** is one
//! create, update or delete of a task; its **field changes** say which of
//! the audited fields went from what to what; a task's **history** and the
//! caller's live **feed** are lists of changes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::caller::Caller;
use super::task::{FIELDS, Task};

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
    /// One of the task's declared fields (`title`, `done`, ...).
    pub field: String,
    /// The value before the change.
    #[schema(required = true)]
    pub from: Option<Value>,
    /// The value after the change.
    #[schema(required = true)]
    pub to: Option<Value>,
}

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

/// One change of one task, as the audit function records it from the
/// table's stream: a task's history and the caller's live feed are lists
/// of these.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
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
    pub fields: Vec<FieldChange>,
    /// The task's version after the change (before it, for a delete).
    pub version: u64,
    /// The task after the change; `None` after a delete. What the live
    /// feed (`GET /tasks/events`) sends, so a client needs no extra read.
    pub task: Option<Task>,
    /// The stream record's sequence number: the change's identity (a record
    /// delivered twice is one change) and its place in the task's history.
    pub sequence: Sequence,
    /// The stream record's `eventID`, for tracing a change to its record.
    pub event_id: String,
}

impl Change {
    /// The declared fields ([`FIELDS`]) that differ between a task before
    /// and after a change (`None`: it did not exist before, or no longer
    /// exists). Keys, `version` and timestamps are bookkeeping, not changes.
    pub fn diff(old: Option<&Task>, new: Option<&Task>) -> Vec<FieldChange> {
        let values = |task: &Task| match serde_json::to_value(task) {
            Ok(Value::Object(object)) => object,
            _ => Map::new(),
        };
        let old = old.map(values);
        let new = new.map(values);
        FIELDS
            .iter()
            .filter_map(|field| {
                let from = old.as_ref().and_then(|o| o.get(field.name).cloned());
                let to = new.as_ref().and_then(|n| n.get(field.name).cloned());
                (from != to).then(|| FieldChange {
                    field: field.name.to_owned(),
                    from,
                    to,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
