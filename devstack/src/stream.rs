//! The local stand-in for Lambda's DynamoDB event source mapping: reads the
//! table's stream from the embedded dynoxide and hands each batch of task
//! records to the audit function, in order, as the deployed mapping in
//! `template.yaml` does (`AuditStreamMapping`):
//!
//! - the same filter, applied before batching: only records of task items
//!   (`sk` begins with `TASK#`) count and are sent;
//! - the same batching: up to [`BATCH_SIZE`] of those records, in stream
//!   order, gathered for at most [`BATCHING_WINDOW`] from the first (the
//!   template's `BatchSize` and `MaximumBatchingWindowInSeconds`): under
//!   load every batch is full, when quiet a change waits up to the window;
//! - `batchItemFailures` honoured: the batch is retried from the first
//!   failed record (after a pause), the records before it are not resent;
//! - a failed delivery (the function is not up yet, say) retries the same
//!   batch, so nothing is lost while `cargo lambda watch` starts.
//!
//! Like the mapping, it keeps its place across restarts: with a
//! [`Checkpoint`] (a small file next to the database file), the last
//! delivered sequence number is written after each delivered batch and a
//! restart resumes after it (`AFTER_SEQUENCE_NUMBER`). A fresh database, an
//! in-memory one, or a checkpoint of another stream (the table was made
//! again) starts from the oldest record (`TRIM_HORIZON`). A crash between a
//! delivery and its checkpoint re-delivers that one batch, which the audit
//! stores once (a record delivered twice is a no-op there).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dynoxide::Database;
use dynoxide::actions::{describe_stream, get_records, get_shard_iterator, list_streams};
use serde_json::{Value, json};
use shared::adapters::dynamo::table::TASK_PREFIX;

/// Task records per invocation, as the template's `BatchSize` (counted
/// after the filter, as Lambda counts them).
pub const BATCH_SIZE: usize = 100;
/// How long a batch is gathered, from its first record, before it is sent
/// short: the template's `MaximumBatchingWindowInSeconds`.
pub const BATCHING_WINDOW: Duration = Duration::from_secs(1);
/// The pause between two reads of an idle stream, and before a retry.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Records per GetRecords call (DynamoDB allows 1,000): task records and
/// the others (counters, idempotency keys, the audit's own entries)
/// together, about three for each task change. What a full batch leaves
/// unread is read again for the next, so reading much more than a batch's
/// worth would only waste work.
const READ_LIMIT: usize = 3 * BATCH_SIZE;

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

/// Up to [`READ_LIMIT`] records from `iterator`, as JSON, and the next iterator.
async fn records(db: &Database, iterator: String) -> Result<(Vec<Value>, Option<String>), String> {
    let db = db.clone();
    blocking(move || {
        let answer = db
            .get_records(get_records::GetRecordsRequest {
                shard_iterator: iterator,
                limit: Some(READ_LIMIT),
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

/// Starts the function before the first change needs it: `cargo lambda
/// watch` starts a function on its first invocation (`cargo run`: seconds,
/// more on a busy machine), which after a restart would delay the first
/// new change's history by as much. Sends an empty batch (the function
/// answers it with no failures), every second until answered, for up to
/// two minutes (watch may still be building); whether it was answered.
pub async fn warm_up<D: Deliver>(target: &D) -> bool {
    for _ in 0..120 {
        if target.deliver(json!({ "Records": [] })).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    false
}

/// The delivery position kept between runs: the stream and the sequence
/// number of the last record delivered, in a file (JSON) next to the
/// database. Written whole or not at all (a new file renamed over the old
/// one, synced first), so a crash leaves the previous position.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    path: PathBuf,
}

/// A position read from a [`Checkpoint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub stream_arn: String,
    pub sequence_number: String,
}

impl Checkpoint {
    /// The checkpoint of the database in `db_file`: `<db_file>.stream-position`.
    pub fn beside(db_file: &Path) -> Self {
        let mut name = db_file.as_os_str().to_owned();
        name.push(".stream-position");
        Checkpoint {
            path: PathBuf::from(name),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved position; `None` if there is none yet.
    pub fn load(&self) -> Result<Option<Saved>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("reading {}: {e}", self.path.display())),
        };
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a checkpoint: {e}", self.path.display()))?;
        match (
            value["stream_arn"].as_str(),
            value["sequence_number"].as_str(),
        ) {
            (Some(arn), Some(sequence)) => Ok(Some(Saved {
                stream_arn: arn.to_owned(),
                sequence_number: sequence.to_owned(),
            })),
            _ => Err(format!("{} is not a checkpoint", self.path.display())),
        }
    }

    /// Saves `sequence` as the last record of `stream_arn` delivered.
    pub fn store(&self, stream_arn: &str, sequence: &str) -> Result<(), String> {
        use std::io::Write;
        let body = json!({"stream_arn": stream_arn, "sequence_number": sequence}).to_string();
        let mut temp = self.path.as_os_str().to_owned();
        temp.push(".tmp");
        let temp = PathBuf::from(temp);
        let written = std::fs::File::create(&temp).and_then(|mut file| {
            file.write_all(body.as_bytes())?;
            file.sync_all()
        });
        written
            .and_then(|()| std::fs::rename(&temp, &self.path))
            .map_err(|e| format!("writing {}: {e}", self.path.display()))
    }
}

/// Where to start: after the checkpoint's record if it is one of this
/// stream's, else from the oldest record.
async fn starting_position(
    db: &Database,
    arn: &str,
    shard: &str,
    checkpoint: Option<&Checkpoint>,
) -> Position {
    let Some(checkpoint) = checkpoint else {
        return Position::Start;
    };
    let saved = match checkpoint.load() {
        Ok(Some(saved)) => saved,
        Ok(None) => return Position::Start,
        Err(error) => {
            eprintln!("stream: {error}; starting from the oldest record");
            return Position::Start;
        }
    };
    if saved.stream_arn != arn {
        eprintln!(
            "stream: {} is of another stream ({}); starting from the oldest record",
            checkpoint.path().display(),
            saved.stream_arn
        );
        return Position::Start;
    }
    let after = Position::After(saved.sequence_number);
    match iterator(db, arn, shard, &after).await {
        Ok(_) => after,
        Err(error) => {
            eprintln!(
                "stream: cannot resume from {}: {error}; starting from the oldest record",
                checkpoint.path().display()
            );
            Position::Start
        }
    }
}

/// Delivers the stream of `table` to `target` until the task is dropped,
/// resuming after `checkpoint`'s position and keeping it there (`None`:
/// from the oldest record, nothing kept). Errors (a delivery that fails,
/// the function reporting a failure) are printed and retried after
/// [`POLL_INTERVAL`]; it never gives up.
pub async fn pump<D: Deliver>(
    db: Database,
    table: String,
    target: D,
    checkpoint: Option<Checkpoint>,
) {
    let (arn, shard) = loop {
        match stream_shard(&db, &table).await {
            Ok(found) => break found,
            Err(error) => {
                eprintln!("stream: {error}; retrying");
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    };
    let mut resume = starting_position(&db, &arn, &shard, checkpoint.as_ref()).await;
    let stream = Stream {
        db: &db,
        arn: &arn,
        shard: &shard,
        checkpoint: checkpoint.as_ref(),
    };
    loop {
        if let Err(error) = stream.deliver_from(&mut resume, &target).await {
            eprintln!("stream: {error}; retrying");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The stream being delivered and where its position is kept.
struct Stream<'a> {
    db: &'a Database,
    arn: &'a str,
    shard: &'a str,
    checkpoint: Option<&'a Checkpoint>,
}

/// A batch gathered from the stream: its task records (possibly none) and
/// the sequence number of the last record it covers, task or not (where
/// the next batch starts).
struct Gathered {
    tasks: Vec<Value>,
    last: String,
}

impl Stream<'_> {
    /// Reads from `resume` and delivers batch after batch until the stream
    /// is idle or a batch fails; `resume` is then where to start again.
    /// After each batch the checkpoint (if any) moves past it.
    async fn deliver_from<D: Deliver>(
        &self,
        resume: &mut Position,
        target: &D,
    ) -> Result<(), String> {
        while let Some(batch) = self.gather(resume).await? {
            if !batch.tasks.is_empty() {
                let failed = target.deliver(json!({ "Records": batch.tasks })).await?;
                if let Some(first) = failed
                    .into_iter()
                    .min_by(|a, b| sequence_key(a).cmp(&sequence_key(b)))
                {
                    *resume = Position::At(first.clone());
                    return Err(format!("the audit function failed on record {first}"));
                }
            }
            self.save(&batch.last).await;
            *resume = Position::After(batch.last);
        }
        Ok(())
    }

    /// The next batch from `from`, as the mapping gathers it: task records
    /// until there are [`BATCH_SIZE`], or the stream has no more and
    /// [`BATCHING_WINDOW`] has passed since the first. `None`: nothing new.
    async fn gather(&self, from: &Position) -> Result<Option<Gathered>, String> {
        let mut tasks = Vec::new();
        let mut last: Option<String> = None;
        let mut first_at: Option<Instant> = None;
        let mut next = None;
        loop {
            let current = match next.take() {
                Some(iterator) => iterator,
                None => {
                    let at = last.clone().map_or_else(|| from.clone(), Position::After);
                    iterator(self.db, self.arn, self.shard, &at).await?
                }
            };
            let (read, following) = records(self.db, current).await?;
            let caught_up = read.is_empty();
            for mut record in read {
                let Some(sequence) = record["dynamodb"]["SequenceNumber"].as_str() else {
                    return Err("a stream record without a sequence number".to_owned());
                };
                last = Some(sequence.to_owned());
                if is_task_record(&record) {
                    first_at.get_or_insert_with(Instant::now);
                    record["eventSourceARN"] = Value::String(self.arn.to_owned());
                    tasks.push(record);
                    if tasks.len() == BATCH_SIZE {
                        break;
                    }
                }
            }
            let waited = first_at.map(|first| first.elapsed());
            let full = tasks.len() == BATCH_SIZE;
            match (&last, waited) {
                // Nothing read at all.
                (None, _) if caught_up => return Ok(None),
                // Full, or the window is over: send it.
                (Some(last), Some(waited)) if full || waited >= BATCHING_WINDOW => {
                    return Ok(Some(Gathered {
                        tasks,
                        last: last.clone(),
                    }));
                }
                // Only records the filter drops so far, and no more: move past them.
                (Some(last), None) if caught_up => {
                    return Ok(Some(Gathered {
                        tasks,
                        last: last.clone(),
                    }));
                }
                // Caught up within the window: wait for more.
                (_, Some(waited)) if caught_up => {
                    tokio::time::sleep(POLL_INTERVAL.min(BATCHING_WINDOW.saturating_sub(waited)))
                        .await;
                }
                _ => {}
            }
            next = if full { None } else { following };
        }
    }

    /// Moves the checkpoint past `sequence`. A checkpoint that cannot be
    /// written is reported, not retried: the delivery goes on, and a
    /// restart would re-deliver from the last one written.
    async fn save(&self, sequence: &str) {
        let Some(checkpoint) = self.checkpoint.cloned() else {
            return;
        };
        let (arn, sequence) = (self.arn.to_owned(), sequence.to_owned());
        if let Err(error) = blocking(move || checkpoint.store(&arn, &sequence)).await {
            eprintln!("stream: {error}");
        }
    }
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
