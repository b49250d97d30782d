//! The local stand-in for Lambda's DynamoDB event source mapping: reads the
//! table's stream from the embedded dynoxide and hands each batch of task
//! records to the audit function, in order, as the deployed mapping in
//! `template.yaml` does (`AuditStreamMapping`):
//!
//! - the same filter: only records of task items (`sk` begins with `TASK#`);
//! - batches of at most [`BATCH_SIZE`] records, in stream order;
//! - `batchItemFailures` honoured: the batch is retried from the first
//!   failed record (after a pause), the records before it are not resent;
//! - a failed delivery (the function is not up yet, say) retries the same
//!   batch, so nothing is lost while `cargo lambda watch` starts.
//!
//! It starts from the oldest record (`TRIM_HORIZON`): on a kept database a
//! restart re-delivers old records, which the audit stores once (a record
//! delivered twice is a no-op there).

use std::future::Future;
use std::time::Duration;

use dynoxide::Database;
use dynoxide::actions::{describe_stream, get_records, get_shard_iterator, list_streams};
use serde_json::{Value, json};
use shared::adapters::dynamo::table::TASK_PREFIX;

/// Records per invocation, as the template's `BatchSize`.
pub const BATCH_SIZE: usize = 100;
/// The pause between two reads of an idle stream, and before a retry.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Sends one batch (a DynamoDB stream event, as Lambda builds it) to the
/// audit function and returns the sequence numbers it reported as failed,
/// or why the delivery itself failed.
pub trait Deliver {
    fn deliver(&self, event: Value) -> impl Future<Output = Result<Vec<String>, String>> + Send;
}

/// Delivery through the Lambda Invoke API of `cargo lambda watch`
/// (`POST /2015-03-31/functions/audit/invocations`).
pub struct Invoke {
    client: reqwest::Client,
    url: String,
}

impl Invoke {
    /// `base`: the watch address, e.g. `http://127.0.0.1:9000`.
    pub fn new(base: &str, function: &str) -> Self {
        Invoke {
            client: reqwest::Client::new(),
            url: format!(
                "{}/2015-03-31/functions/{function}/invocations",
                base.trim_end_matches('/')
            ),
        }
    }
}

impl Deliver for Invoke {
    async fn deliver(&self, event: Value) -> Result<Vec<String>, String> {
        let response = self
            .client
            .post(&self.url)
            .json(&event)
            .send()
            .await
            .map_err(|e| format!("invoking {}: {e}", self.url))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{} answered {status}: {text}", self.url));
        }
        failed_sequences(&text)
    }
}

/// The `batchItemFailures` of an answer: `{"batchItemFailures":
/// [{"itemIdentifier": "<sequence number>"}]}`.
pub fn failed_sequences(answer: &str) -> Result<Vec<String>, String> {
    let value: Value = serde_json::from_str(answer)
        .map_err(|e| format!("the audit function answered {answer:?}: {e}"))?;
    Ok(value["batchItemFailures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
        .collect())
}

/// Whether the mapping's filter passes the record (the template's
/// `FilterCriteria`: `sk` begins with `TASK#`).
fn is_task_record(record: &Value) -> bool {
    record["dynamodb"]["Keys"]["sk"]["S"]
        .as_str()
        .is_some_and(|sk| sk.starts_with(TASK_PREFIX))
}

/// Runs a blocking dynoxide call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("stream reader task: {e}"))?
}

/// The table's stream and its (one, in dynoxide) shard.
async fn stream_shard(db: &Database, table: &str) -> Result<(String, String), String> {
    let (db, table) = (db.clone(), table.to_owned());
    blocking(move || {
        let streams = db
            .list_streams(list_streams::ListStreamsRequest {
                table_name: Some(table.clone()),
                ..Default::default()
            })
            .map_err(|e| e.to_string())?;
        let arn = streams
            .streams
            .into_iter()
            .next()
            .ok_or_else(|| format!("table {table} has no stream"))?
            .stream_arn;
        let description = db
            .describe_stream(describe_stream::DescribeStreamRequest {
                stream_arn: arn.clone(),
                ..Default::default()
            })
            .map_err(|e| e.to_string())?;
        let shard = description
            .stream_description
            .shards
            .into_iter()
            .next()
            .ok_or_else(|| format!("the stream of {table} has no shard"))?
            .shard_id;
        Ok((arn, shard))
    })
    .await
}

/// Where reading resumes.
#[derive(Debug, Clone, PartialEq)]
enum Position {
    /// The oldest record.
    Start,
    /// A record the function failed on: it comes again.
    At(String),
    /// After the last record delivered.
    After(String),
}

async fn iterator(
    db: &Database,
    arn: &str,
    shard: &str,
    from: &Position,
) -> Result<String, String> {
    let db = db.clone();
    let (kind, sequence) = match from {
        Position::Start => ("TRIM_HORIZON", None),
        Position::At(s) => ("AT_SEQUENCE_NUMBER", Some(s.clone())),
        Position::After(s) => ("AFTER_SEQUENCE_NUMBER", Some(s.clone())),
    };
    let request = get_shard_iterator::GetShardIteratorRequest {
        stream_arn: arn.to_owned(),
        shard_id: shard.to_owned(),
        shard_iterator_type: kind.to_owned(),
        sequence_number: sequence,
    };
    blocking(move || {
        db.get_shard_iterator(request)
            .map_err(|e| e.to_string())?
            .shard_iterator
            .ok_or_else(|| "no shard iterator".to_owned())
    })
    .await
}

/// Up to [`BATCH_SIZE`] records from `iterator`, as JSON, and the next iterator.
async fn records(db: &Database, iterator: String) -> Result<(Vec<Value>, Option<String>), String> {
    let db = db.clone();
    blocking(move || {
        let answer = db
            .get_records(get_records::GetRecordsRequest {
                shard_iterator: iterator,
                limit: Some(BATCH_SIZE),
            })
            .map_err(|e| e.to_string())?;
        let records = answer
            .records
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        Ok((records, answer.next_shard_iterator))
    })
    .await
}

/// Delivers the stream of `table` to `target` until the task is dropped.
/// Errors (a delivery that fails, the function reporting a failure) are
/// printed and retried after [`POLL_INTERVAL`]; it never gives up.
pub async fn pump<D: Deliver>(db: Database, table: String, target: D) {
    let (arn, shard) = loop {
        match stream_shard(&db, &table).await {
            Ok(found) => break found,
            Err(error) => {
                eprintln!("stream: {error}; retrying");
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    };
    let mut resume = Position::Start;
    loop {
        if let Err(error) = deliver_from(&db, &arn, &shard, &mut resume, &target).await {
            eprintln!("stream: {error}; retrying");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Reads from `resume` and delivers batch after batch until the stream is
/// idle or a batch fails; `resume` is then where to start again.
async fn deliver_from<D: Deliver>(
    db: &Database,
    arn: &str,
    shard: &str,
    resume: &mut Position,
    target: &D,
) -> Result<(), String> {
    let mut next = Some(iterator(db, arn, shard, resume).await?);
    while let Some(current) = next.take() {
        let (batch, following) = records(db, current).await?;
        if batch.is_empty() {
            return Ok(());
        }
        let last = batch
            .last()
            .and_then(|r| r["dynamodb"]["SequenceNumber"].as_str())
            .map(str::to_owned);
        let tasks: Vec<Value> = batch
            .into_iter()
            .filter(is_task_record)
            .map(|mut record| {
                record["eventSourceARN"] = Value::String(arn.to_owned());
                record
            })
            .collect();
        if !tasks.is_empty() {
            let failed = target.deliver(json!({ "Records": tasks })).await?;
            if let Some(first) = failed
                .into_iter()
                .min_by(|a, b| sequence_key(a).cmp(&sequence_key(b)))
            {
                *resume = Position::At(first.clone());
                return Err(format!("the audit function failed on record {first}"));
            }
        }
        if let Some(last) = last {
            *resume = Position::After(last);
        }
        next = following;
    }
    Ok(())
}

/// Sequence numbers compare as numbers (they are decimal strings).
fn sequence_key(sequence: &str) -> (usize, &str) {
    let digits = sequence.trim_start_matches('0');
    (digits.len(), digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_compare_as_numbers() {
        assert!(sequence_key("99") < sequence_key("100"));
        assert!(sequence_key("0100") == sequence_key("100"));
    }

    #[test]
    fn failures_are_read_from_the_batch_response() {
        let answer = r#"{"batchItemFailures":[{"itemIdentifier":"12"}]}"#;
        assert_eq!(failed_sequences(answer), Ok(vec!["12".to_owned()]));
        assert_eq!(failed_sequences(r#"{"batchItemFailures":[]}"#), Ok(vec![]));
        assert!(failed_sequences("not json").is_err());
    }
}
