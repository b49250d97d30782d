//! A record of the table's DynamoDB stream, read as a [`Change`]: the
//! task's keys name the owner and the task, the images before and after
//! give the field changes. Only task items make changes: the caller's
//! `COUNT`, its `IDEMPOTENCY#<key>` items and the changes themselves (which
//! are in the stream too) are ignored.

pub use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

use super::dynamo::items::TaskItem;
use super::dynamo::table::{OWNER_PREFIX, TASK_PREFIX};
use crate::domain::caller::Caller;
use crate::domain::change::{Action, Change, Sequence};
use crate::domain::task::VersionedTask;

/// A task's record that cannot be read as a change (a key or image that
/// is not a task's, an unknown event name...). Retrying cannot fix it, so it is
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

/// A stream image of a task item, decoded as the stores decode task items
/// (one encoding of a task in the table).
fn image(item: &serde_dynamo::Item, which: &str, id: Uuid) -> Result<VersionedTask, Malformed> {
    if item.is_empty() {
        return Err(malformed(format!("no {which} image")));
    }
    let image = serde_dynamo::from_item::<_, TaskItem>(item.clone())
        .map_err(|e| malformed(format!("{which} image is not a task: {e}")))?
        .into_versioned();
    if image.task.id != id {
        return Err(malformed(format!(
            "{which} image is task {}, its key task {id}",
            image.task.id
        )));
    }
    Ok(image)
}

/// The change a stream record makes: `Ok(None)` for an item that is not a
/// task (ignored), `Err` for a task change that cannot be read.
pub fn parse(record: &EventRecord) -> Result<Option<Change>, Malformed> {
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
    Ok(Some(Change {
        owner,
        task_id,
        action,
        at,
        fields: Change::diff(old.as_ref().map(|o| &o.task), new.as_ref().map(|n| &n.task)),
        version,
        task: new.map(|image| image.task),
        sequence,
        event_id: record.event_id.clone(),
    }))
}

/// The sample stream batch `events/audit.json`, for unit tests.
#[cfg(test)]
pub(crate) fn sample() -> Event {
    let path = format!("{}/../events/audit.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).expect("events/audit.json");
    serde_json::from_str(&text).expect("a DynamoDB stream event")
}

#[cfg(test)]
mod tests {
    use super::*;

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
