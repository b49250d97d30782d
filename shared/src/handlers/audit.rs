//! The audit function (the seed's `BackgroundTasks`, moved off the request
//! path): the table's DynamoDB stream feeds it batches of records, and
//! each task insert, modify or remove becomes a recorded [`Change`] (whose
//! task, which, what happened, when, and which fields changed from what to
//! what), logged as one structured line. No API response waits for any of
//! it.

use aws_lambda_events::event::streams::DynamoDbBatchItemFailure;
pub use aws_lambda_events::event::streams::DynamoDbEventResponse;

use super::DynamoDbAccess;
pub use crate::adapters::stream_record::Event;
use crate::adapters::stream_record::parse;
use crate::domain::change::Change;
use crate::http::observability::caller_hash;
use crate::ports::{AuditStore, Recorded, chain};

/// The DynamoDB access of the audit function, which its policy in
/// `template.yaml` grants exactly (`shared/tests/least_privilege.rs`): its
/// event source mapping reads the table's stream with the function's role,
/// and [`handle`] writes each entry with one conditional `PutItem`
/// (`AuditStore::record`).
pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess {
    actions: &["dynamodb:PutItem"],
    table: true,
    indexes: &[],
    stream: true,
};

/// Records a stream batch, in order, and returns what Lambda must redeliver.
///
/// - A record of another item than a task (count, idempotency key, a
///   change itself) is ignored.
/// - A malformed record (see [`crate::adapters::stream_record::Malformed`]) is logged at error level and
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
        let change = match parse(record) {
            Ok(Some(change)) => change,
            Ok(None) => continue,
            Err(error) => {
                tracing::error!(event_id = %record.event_id, %error, "stream record skipped");
                continue;
            }
        };
        match store.record(&change).await {
            Ok(Recorded::New) => log(&change),
            Ok(Recorded::Duplicate) => {
                tracing::debug!(event_id = %change.event_id, "stream record already recorded");
            }
            Err(error) => {
                tracing::warn!(event_id = %change.event_id, cause = %chain(&error), "change not stored, batch retried from it");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = record.change.sequence_number.clone();
                response.batch_item_failures.push(failure);
                break;
            }
        }
    }
    response
}

/// A recorded change's log line: hashed caller, task, action and the names of
/// the changed fields (their values are in the stored entry only).
fn log(change: &Change) {
    let changed: Vec<&str> = change.fields.iter().map(|c| c.field.as_str()).collect();
    tracing::info!(
        caller = %caller_hash(change.owner.id()),
        task_id = %change.task_id,
        action = change.action.as_str(),
        changed = %changed.join(","),
        version = change.version,
        at = %change.at.to_rfc3339(),
        sequence = %change.sequence.as_str(),
        event_id = %change.event_id,
        "audit"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryStore;
    use crate::adapters::stream_record::sample;

    #[tokio::test]
    async fn the_sample_batch_records_its_three_task_changes_once() {
        let store = MemoryStore::default();
        let answer = handle(&store, sample()).await;
        assert!(answer.batch_item_failures.is_empty());
        let again = handle(&store, sample()).await;
        assert!(again.batch_item_failures.is_empty());
        let owner = sample()
            .records
            .iter()
            .find_map(|r| parse(r).ok().flatten())
            .map(|change| change.owner)
            .expect("a task change in the sample");
        let recorded = store.changes(&owner, None, 100).await.expect("changes");
        assert_eq!(recorded.items.len(), 3);
    }
}
