//! The audit function (the seed's `BackgroundTasks`, moved off the request
//! path): the table's DynamoDB stream feeds it batches of records, and
//! each task insert, modify or remove becomes a recorded [`Change`] (whose
//! task, which, what happened, when, and which fields changed from what to
//! what), logged as one structured line. No API response waits for any of
//! it.

use std::collections::HashMap;

use aws_lambda_events::event::streams::DynamoDbBatchItemFailure;
pub use aws_lambda_events::event::streams::DynamoDbEventResponse;

use futures::StreamExt;

use super::DynamoDbAccess;
pub use crate::adapters::stream_record::Event;
use crate::adapters::stream_record::parse;
use crate::domain::caller::Caller;
use crate::domain::change::{Change, Sequence};
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
    ..DynamoDbAccess::NONE
};

/// How many callers' changes one invocation writes at once. A caller's
/// own changes are written one after another, in stream order (see
/// [`handle`]); with deployed PutItem round trips of about 5 ms, a batch of
/// 100 records of many callers takes about 50 ms with the invocation's own
/// overhead, about 2,000 records/s per shard, against the 1,000 write
/// units/s one partition (so one stream shard) can take
/// (docs/audit-throughput.md).
pub const CONCURRENCY: usize = 16;

/// Records a stream batch and returns what Lambda must redeliver:
/// [`handle_with`] at [`CONCURRENCY`].
pub async fn handle<S: AuditStore>(store: &S, event: Event) -> DynamoDbEventResponse {
    handle_with(store, event, CONCURRENCY).await
}

/// Records a stream batch, each caller's changes in stream order and up to
/// `concurrency` callers at once, and returns what Lambda must redeliver.
///
/// - A record of another item than a task (count, idempotency key, a
///   change itself) is ignored.
/// - A malformed record (see [`crate::adapters::stream_record::Malformed`]) is logged at error level and
///   **skipped**: it cannot get better, and reporting it would block the
///   shard (Lambda retries from it) until the record expires.
/// - The changes are grouped by caller (the table's partition key, which
///   is also the order a `ParallelizationFactor` keeps): one caller's are
///   written one after another, in stream order, because the live feed
///   reads a caller's changes by sequence number and resumes after the
///   last one it sent (a later change stored before an earlier one could
///   be passed over for good); different callers' are written at once.
/// - A record the store fails on (DynamoDB unavailable) stops its caller's
///   group there, and is reported in `batch_item_failures` (one per failed
///   group, lowest sequence number first). Lambda retries from the lowest
///   reported record, so that record and everything after it comes again:
///   the failed caller's unwritten records, and other callers' records that
///   were written, which then store nothing (an entry is keyed by its
///   sequence number and written only if absent). Nothing before it is
///   redelivered, and everything before it was written.
/// - A record delivered twice stores nothing new and is logged once.
pub async fn handle_with<S: AuditStore>(
    store: &S,
    event: Event,
    concurrency: usize,
) -> DynamoDbEventResponse {
    let groups = by_caller(&event);
    let mut failed: Vec<(Sequence, String)> = futures::stream::iter(groups)
        .map(|group| record_in_order(store, group))
        .buffer_unordered(concurrency.max(1))
        .filter_map(std::future::ready)
        .collect()
        .await;
    failed.sort();
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|(_, identifier)| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(identifier);
            failure
        })
        .collect();
    response
}

/// One caller's changes of a batch, in stream order, each with its record's
/// sequence number as Lambda sent it (what a failure report names).
type Group = Vec<(Change, String)>;

/// The batch's task changes grouped by caller, each group in stream order
/// (the groups in the order of their first record). Malformed records are
/// logged and left out; records of other items are ignored.
fn by_caller(event: &Event) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<Caller, usize> = HashMap::new();
    for record in &event.records {
        let change = match parse(record) {
            Ok(Some(change)) => change,
            Ok(None) => continue,
            Err(error) => {
                tracing::error!(event_id = %record.event_id, %error, "stream record skipped");
                continue;
            }
        };
        // parse() checked it is there.
        let identifier = record.change.sequence_number.clone().unwrap_or_default();
        let slot = *index.entry(change.owner.clone()).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[slot].push((change, identifier));
    }
    groups
}

/// Records one caller's changes in order, stopping at the first the store
/// fails on: its sequence (to sort by) and identifier, or `None` if all
/// were stored.
async fn record_in_order<S: AuditStore>(store: &S, group: Group) -> Option<(Sequence, String)> {
    for (change, identifier) in group {
        match store.record(&change).await {
            Ok(Recorded::New) => log(&change),
            Ok(Recorded::Duplicate) => {
                tracing::debug!(event_id = %change.event_id, "stream record already recorded");
            }
            Err(error) => {
                tracing::warn!(
                    event_id = %change.event_id,
                    cause = %chain(&error),
                    "change not stored, batch retried from it"
                );
                return Some((change.sequence, identifier));
            }
        }
    }
    None
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
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::adapters::memory::MemoryStore;
    use crate::adapters::stream_record::{EventRecord, sample};
    use crate::ports::{ChangeBatch, HistoryPage, HistoryQuery, StoreError};
    use uuid::Uuid;

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

    /// The memory store, with a pause in every write, a record of the order
    /// writes started in and of how many ran at once, and writes that fail
    /// (the sequence numbers in `failing`, until they are removed).
    #[derive(Default)]
    struct Observed {
        inner: MemoryStore,
        pause: Duration,
        failing: Mutex<HashSet<String>>,
        started: Mutex<Vec<(String, String)>>,
        running: Mutex<(usize, usize)>,
        written: Mutex<usize>,
    }

    impl Observed {
        fn failing(sequences: &[&str]) -> Self {
            Observed {
                failing: Mutex::new(sequences.iter().map(|s| (*s).to_owned()).collect()),
                ..Observed::default()
            }
        }

        fn started(&self) -> Vec<(String, String)> {
            self.started.lock().expect("lock").clone()
        }

        fn most_at_once(&self) -> usize {
            self.running.lock().expect("lock").1
        }

        fn written(&self) -> usize {
            *self.written.lock().expect("lock")
        }

        /// `(owner, id)` of the owner's stored changes, in stream order.
        async fn stored(&self, owner: &str) -> Vec<String> {
            let owner = Caller::new(owner).expect("caller");
            let batch = self
                .inner
                .changes(&owner, None, 100)
                .await
                .expect("changes");
            batch
                .items
                .iter()
                .map(|c| c.sequence.id().to_owned())
                .collect()
        }
    }

    impl AuditStore for Observed {
        async fn record(&self, change: &Change) -> Result<Recorded, StoreError> {
            let id = change.sequence.id().to_owned();
            self.started
                .lock()
                .expect("lock")
                .push((change.owner.id().to_owned(), id.clone()));
            {
                let mut running = self.running.lock().expect("lock");
                running.0 += 1;
                running.1 = running.1.max(running.0);
            }
            tokio::time::sleep(self.pause).await;
            self.running.lock().expect("lock").0 -= 1;
            if self.failing.lock().expect("lock").contains(&id) {
                return Err(StoreError::unavailable_because("injected"));
            }
            let recorded = self.inner.record(change).await?;
            if recorded == Recorded::New {
                *self.written.lock().expect("lock") += 1;
            }
            Ok(recorded)
        }

        async fn history(
            &self,
            owner: &Caller,
            task_id: Uuid,
            query: &HistoryQuery,
        ) -> Result<HistoryPage, StoreError> {
            self.inner.history(owner, task_id, query).await
        }

        async fn changes(
            &self,
            owner: &Caller,
            after: Option<&Sequence>,
            limit: u32,
        ) -> Result<ChangeBatch, StoreError> {
            self.inner.changes(owner, after, limit).await
        }

        async fn latest_change(&self, owner: &Caller) -> Result<Option<Sequence>, StoreError> {
            self.inner.latest_change(owner).await
        }
    }

    /// A batch of task creates, one per `(owner, sequence number)`, in that
    /// order (the sample's create record, re-keyed).
    fn batch(records: &[(&str, u64)]) -> Event {
        let template: EventRecord = sample().records.remove(1);
        let mut event = sample();
        event.records = records
            .iter()
            .map(|(owner, sequence)| {
                let mut record = template.clone();
                record.change.keys.inner_mut().insert(
                    "pk".to_owned(),
                    serde_dynamo::AttributeValue::S(format!("USER#{owner}")),
                );
                record.change.sequence_number = Some(sequence.to_string());
                record.event_id = format!("{owner}-{sequence}");
                record
            })
            .collect();
        event
    }

    fn reported(response: &DynamoDbEventResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_deref().unwrap_or("<none>"))
            .collect()
    }

    /// Four callers' changes, interleaved as in a stream.
    fn interleaved() -> Vec<(&'static str, u64)> {
        (1..=20)
            .map(|n| (["ann", "bob", "cid", "dee"][(n % 4) as usize], 100 + n))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn callers_are_written_at_once_and_each_callers_changes_in_order() {
        let store = Observed {
            pause: Duration::from_millis(5),
            ..Observed::default()
        };
        let answer = handle(&store, batch(&interleaved())).await;
        assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
        assert_eq!(store.written(), 20);
        assert_eq!(store.most_at_once(), 4, "one write per caller at a time");
        for owner in ["ann", "bob", "cid", "dee"] {
            let order: Vec<String> = store
                .started()
                .into_iter()
                .filter(|(o, _)| o == owner)
                .map(|(_, id)| id)
                .collect();
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(order, sorted, "{owner}'s changes written in stream order");
            assert_eq!(order.len(), 5);
            assert_eq!(store.stored(owner).await, order);
        }

        let bounded = Observed {
            pause: Duration::from_millis(5),
            ..Observed::default()
        };
        handle_with(&bounded, batch(&interleaved()), 2).await;
        assert_eq!(bounded.most_at_once(), 2, "at most `concurrency` at once");
        assert_eq!(bounded.written(), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_holds_back_its_callers_later_changes_only_and_the_retry_stores_each_once() {
        let records = [
            ("ann", 101),
            ("bob", 102),
            ("ann", 103),
            ("bob", 104),
            ("ann", 105),
            ("bob", 106),
        ];
        let store = Observed::failing(&["103"]);
        let answer = handle(&store, batch(&records)).await;
        assert_eq!(
            reported(&answer),
            ["103"],
            "the failed record, by its sequence number"
        );
        assert_eq!(
            store.stored("ann").await,
            ["101"],
            "nothing of ann's after it"
        );
        assert_eq!(
            store.stored("bob").await,
            ["102", "104", "106"],
            "bob's records, after the failure too"
        );

        // Lambda redelivers from the lowest reported record: 103 and after.
        store.failing.lock().expect("lock").clear();
        let retry = handle(&store, batch(&records[2..])).await;
        assert!(retry.batch_item_failures.is_empty(), "{retry:?}");
        assert_eq!(store.stored("ann").await, ["101", "103", "105"]);
        assert_eq!(store.stored("bob").await, ["102", "104", "106"]);
        assert_eq!(
            store.written(),
            6,
            "bob's redelivered records wrote nothing again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_that_keeps_failing_is_reported_every_time_never_skipped() {
        // ann's failure comes after three writes, bob's at once: reported
        // by sequence number all the same, not in the order they happened.
        let records = [
            ("ann", 101),
            ("ann", 102),
            ("ann", 103),
            ("ann", 104),
            ("bob", 105),
            ("ann", 106),
            ("bob", 107),
        ];
        let store = Observed {
            pause: Duration::from_millis(5),
            ..Observed::failing(&["105", "104"])
        };
        for _ in 0..3 {
            let answer = handle(&store, batch(&records)).await;
            assert_eq!(
                reported(&answer),
                ["104", "105"],
                "each failed caller's first failed record, lowest first (where Lambda resumes)"
            );
            assert_eq!(store.stored("ann").await, ["101", "102", "103"]);
            assert_eq!(store.stored("bob").await, Vec::<String>::new());
        }
    }
}
