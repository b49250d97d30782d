//! The ports: what the rest of the crate asks of storage, as traits, and
//! the one error type storage answers with. Adapters
//! ([`crate::adapters::dynamo`], and the in-memory one for tests) implement
//! them; the HTTP edge turns a [`StoreError`] into a response. Every
//! operation is scoped by the caller: there is no way to name another
//! caller's task.

pub mod page;

use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::caller::Caller;
use crate::domain::change::{Change, Sequence};
use crate::domain::task::{ListQuery, Task, TaskCreate, TaskPatch, VersionedTask};

/// The cause of a storage fault, kept whole (the SDK's error with its own
/// sources) so a 500's log line shows the entire chain.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error and its causes on one line (most errors' own message is only
/// the outermost): what the log line of a fault says.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Why a storage operation did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such task for this caller (another caller's task included).
    #[error("task not found")]
    TaskNotFound,
    /// The write's precondition (`If-Match`) did not hold.
    #[error("precondition failed")]
    PreconditionFailed,
    /// The caller already owns this many tasks.
    #[error("task limit reached ({0})")]
    TaskLimitReached(u32),
    /// An idempotency key came back with another request.
    #[error("idempotency key reused with a different body")]
    IdempotencyKeyReused,
    /// The first request with this idempotency key is still being written
    /// (its transaction and this one collided on the key).
    #[error("a request with this idempotency key is in progress")]
    IdempotencyKeyInFlight,
    /// Throttled, timed out, unreachable, or conflicts that persisted:
    /// retrying later may well succeed.
    #[error("storage unavailable: {context}")]
    Unavailable {
        context: String,
        #[source]
        source: Option<Cause>,
    },
    /// A bug, a misconfiguration or an unexpected answer.
    #[error("storage failed: {context}")]
    Internal {
        context: String,
        #[source]
        source: Option<Cause>,
    },
}

impl StoreError {
    /// A retryable fault, caused by `source`.
    pub fn unavailable(context: impl Into<String>, source: impl Into<Cause>) -> Self {
        StoreError::Unavailable {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// A retryable fault with no underlying error (conflicts that persisted).
    pub fn unavailable_because(context: impl Into<String>) -> Self {
        StoreError::Unavailable {
            context: context.into(),
            source: None,
        }
    }

    /// A failure that retrying cannot fix, caused by `source`.
    pub fn internal(context: impl Into<String>, source: impl Into<Cause>) -> Self {
        StoreError::Internal {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// A failure that retrying cannot fix, with no underlying error.
    pub fn internal_because(context: impl Into<String>) -> Self {
        StoreError::Internal {
            context: context.into(),
            source: None,
        }
    }
}

/// What `If-Match` asks of a write; checked inside the write itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// No `If-Match`: the write applies to whatever version is stored.
    None,
    /// `If-Match: *`: any existing task.
    Exists,
    /// The stored version must be one of these.
    VersionIn(Vec<u64>),
    /// An `If-Match` that no stored version can satisfy.
    Never,
}

impl Precondition {
    pub fn allows(&self, version: u64) -> bool {
        match self {
            Precondition::None | Precondition::Exists => true,
            Precondition::VersionIn(versions) => versions.contains(&version),
            Precondition::Never => false,
        }
    }
}

/// An `Idempotency-Key` and the fingerprint of the request it was first
/// used with. Kept for [`IDEMPOTENCY_TTL_SECONDS`], with the first answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
}

impl Idempotency {
    /// A create's key. The fingerprint is a SHA-256 of the validated
    /// request (not of its bytes), so a retry that spells the same task
    /// differently (key order, whitespace, `"done": "no"` for `false`) is
    /// still the same request.
    pub fn new(key: String, input: &TaskCreate) -> Self {
        // The declared fields' values in declaration order.
        let canonical = match serde_json::to_value(input) {
            Ok(serde_json::Value::Object(mut fields)) => serde_json::Value::Array(
                crate::domain::task::FIELDS
                    .iter()
                    .map(|field| fields.remove(field.name).unwrap_or_default())
                    .collect(),
            ),
            _ => serde_json::Value::Null,
        };
        Self::hashed(key, &canonical)
    }

    /// The key of a write to an existing task (PUT, PATCH, DELETE): the
    /// fingerprint covers the method, the task, the `If-Match` and the
    /// validated body (`body`: the fields sent, `null` for a DELETE), so
    /// the same key on another task, method or body is another request
    /// (a 422), never a replay.
    pub fn for_write(
        key: String,
        method: &str,
        id: Uuid,
        precondition: &Precondition,
        body: serde_json::Value,
    ) -> Self {
        let canonical = serde_json::json!([
            method,
            format!("/tasks/{}", id.hyphenated()),
            format!("{precondition:?}"),
            body
        ]);
        Self::hashed(key, &canonical)
    }

    fn hashed(key: String, canonical: &serde_json::Value) -> Self {
        use base64::Engine;
        use sha2::Digest;
        let digest = sha2::Sha256::digest(canonical.to_string().as_bytes());
        Idempotency {
            key,
            fingerprint: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest),
        }
    }
}

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 60 * 60;

/// The rules a create must satisfy, checked in the same atomic write.
#[derive(Debug, Clone, Copy)]
pub struct CreateRules<'a> {
    /// The caller may own at most this many tasks (409 beyond).
    pub max_tasks: u32,
    /// Replays a create made with the same key (and body) instead of
    /// creating again; 422 if the key came with another body.
    pub idempotency: Option<&'a Idempotency>,
}

/// One page of stored tasks and the id to continue after, if more match.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPage {
    pub items: Vec<Task>,
    pub next_after: Option<Uuid>,
    /// DynamoDB read capacity the page consumed (0 for the memory store):
    /// logged and measured, since a page must cost the page, not the
    /// caller's total.
    pub read_capacity: f64,
}

/// Task persistence. Writes are single atomic operations: no
/// read-modify-write window in which a concurrent change could be lost.
/// Errors: [`StoreError`]: `TaskNotFound`, `PreconditionFailed`,
/// `Unavailable`, `Internal`.
pub trait TaskStore: Send + Sync {
    /// Stores a new task at version 1, atomically with the caller's task
    /// count (`TaskLimitReached`) and the idempotency key, if any. A retry
    /// with a known key returns the task first created with it
    /// (`IdempotencyKeyReused` if the fingerprint differs) and writes nothing.
    fn create(
        &self,
        owner: &Caller,
        task: Task,
        rules: CreateRules<'_>,
    ) -> impl Future<Output = Result<VersionedTask, StoreError>> + Send;

    fn get(
        &self,
        owner: &Caller,
        id: Uuid,
    ) -> impl Future<Output = Result<VersionedTask, StoreError>> + Send;

    /// Exactly `min(limit, matching tasks left)` items, oldest first;
    /// `next_after` is `None` exactly when nothing is left.
    fn list(
        &self,
        owner: &Caller,
        query: &ListQuery,
    ) -> impl Future<Output = Result<StoredPage, StoreError>> + Send;

    /// Replaces every field but `id` and `created_at`. With an
    /// idempotency key, the write and the key (with the answer) are stored
    /// atomically; a retry with the key gets the first answer and writes
    /// nothing (`IdempotencyKeyReused` for another request with the key,
    /// `IdempotencyKeyInFlight` while the first is being written).
    fn replace(
        &self,
        owner: &Caller,
        id: Uuid,
        input: TaskCreate,
        now: DateTime<Utc>,
        precondition: &Precondition,
        idempotency: Option<&Idempotency>,
    ) -> impl Future<Output = Result<VersionedTask, StoreError>> + Send;

    /// Changes only the fields present in `patch`, bumping `updated_at` and
    /// the version. (Handlers answer an empty patch with a read instead: it
    /// is a no-op, not a write.) An idempotency key as in [`Self::replace`].
    fn update(
        &self,
        owner: &Caller,
        id: Uuid,
        patch: TaskPatch,
        now: DateTime<Utc>,
        precondition: &Precondition,
        idempotency: Option<&Idempotency>,
    ) -> impl Future<Output = Result<VersionedTask, StoreError>> + Send;

    /// Deletes the task and frees its room under `MAX_TASKS`, atomically
    /// (with the idempotency key, if any, as in [`Self::replace`]).
    fn delete(
        &self,
        owner: &Caller,
        id: Uuid,
        precondition: &Precondition,
        idempotency: Option<&Idempotency>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Whether [`AuditStore::record`] wrote the change or already had it.
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
    pub items: Vec<Change>,
    pub next_before: Option<Sequence>,
}

/// Changes of the feed, oldest first, and what reading them cost.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeBatch {
    pub items: Vec<Change>,
    /// DynamoDB read capacity units consumed (0 in memory).
    pub read_capacity: f64,
}

/// Change persistence (what the audit function records). Errors:
/// [`StoreError`] `Unavailable` (retry), `Internal`.
///
/// Two reads of the same changes: one task's history (newest first, for
/// `GET /tasks/{task_id}/history`) and the caller's change feed (oldest
/// first, in stream order, for `GET /tasks/events`). Both only ever reach
/// the given owner's changes.
pub trait AuditStore: Send + Sync {
    /// Stores the change unless a change of the same stream record exists
    /// (then nothing is written: a redelivered record is a no-op).
    fn record(&self, change: &Change) -> impl Future<Output = Result<Recorded, StoreError>> + Send;

    /// The owner's changes of one task, newest first: exactly
    /// `min(limit, changes left)`, `next_before` `None` exactly at the end.
    /// Another caller's task has no history here.
    fn history(
        &self,
        owner: &Caller,
        task_id: Uuid,
        query: &HistoryQuery,
    ) -> impl Future<Output = Result<HistoryPage, StoreError>> + Send;

    /// The owner's changes (all tasks) after `after` (from the first, with
    /// `None`), oldest first, at most `limit`. Read consistently: a change
    /// the audit has stored is in the next call's answer.
    fn changes(
        &self,
        owner: &Caller,
        after: Option<&Sequence>,
        limit: u32,
    ) -> impl Future<Output = Result<ChangeBatch, StoreError>> + Send;

    /// The sequence of the owner's newest change, if any: where a feed
    /// that starts "now" starts.
    fn latest_change(
        &self,
        owner: &Caller,
    ) -> impl Future<Output = Result<Option<Sequence>, StoreError>> + Send;
}

/// The key feed tickets are sealed with ([`crate::domain::ticket`]), kept
/// in the table: whoever can read the table can read every feed anyway, so
/// the key widens nothing. One key per table, made of random bytes by the
/// first caller that finds none; every later caller reads the same.
pub trait TicketStore: Send + Sync {
    /// The table's ticket key, created if there is none yet (two callers
    /// creating it at once both get the one that was stored).
    fn ticket_key(
        &self,
    ) -> impl Future<Output = Result<[u8; crate::domain::ticket::KEY_LEN], StoreError>> + Send;
}

/// A held place among a caller's open feed streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: Caller,
    /// Which of the caller's places (`0..max`).
    pub slot: u32,
    /// Identifies this holder: only it releases the place early.
    pub id: Uuid,
    /// When the place was taken: the oldest stream is the one a new stream
    /// replaces when every place is held.
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// How old the caller's oldest stream must be before a new stream may take
/// its place: opening more than `MAX_FEED_STREAMS_PER_CALLER` streams
/// within this long (far faster than a person reloads a page) is refused
/// (429, `Retry-After`), so a runaway client cannot churn the places.
pub const MIN_LEASE_AGE: chrono::Duration = chrono::Duration::seconds(1);

/// The caller's open feed streams, bounded across every instance of the
/// function: each stream holds a lease on one of `max` places, which
/// expires on its own (a crashed instance never keeps a place for longer
/// than its stream could have lasted).
///
/// A new stream is never refused because of streams whose clients have
/// gone (a reloaded tab's old stream keeps running, deployed, until it
/// ends: AWS does not stop a streamed response when its client leaves):
/// when every place is held it takes the place of the caller's oldest
/// stream, which notices at its next heartbeat ([`LeaseStore::holds`]) and
/// ends.
pub trait LeaseStore: Send + Sync {
    /// Takes a free (or expired) place for `lease` (its `slot` is ignored
    /// and set to the place taken); when all `max` are held, the place of
    /// the oldest lease, unless that one is younger than
    /// [`MIN_LEASE_AGE`] (then `Err` with when to try again).
    fn acquire(
        &self,
        lease: &Lease,
        max: u32,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Result<Lease, DateTime<Utc>>, StoreError>> + Send;

    /// Whether `lease` still holds its place (a newer stream may have
    /// taken it): a consistent read.
    fn holds(&self, lease: &Lease) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives the place back early, if `lease` still holds it.
    fn release(&self, lease: &Lease) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One of a caller's counted shares: what is counted (part of the
/// counter's key, so each quota counts apart), how many per window, and
/// the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// `writes` or `exports`: a short name, in the counter's key.
    pub name: &'static str,
    pub limit: u32,
    pub window_seconds: u32,
}

impl Quota {
    /// The fixed window `now` falls in: `[start, end)`, aligned on the
    /// epoch, so every instance counts in the same window.
    pub fn window(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let length = i64::from(self.window_seconds.max(1));
        let start = now.timestamp().div_euclid(length) * length;
        let start = DateTime::from_timestamp(start, 0).unwrap_or(now);
        (start, start + chrono::Duration::seconds(length))
    }

    /// Whole seconds from `now` until `end` (the window's end), at least
    /// one: what `Retry-After` says.
    pub fn seconds_until(now: DateTime<Utc>, end: DateTime<Utc>) -> u64 {
        let millis = (end - now).num_milliseconds().max(0);
        u64::try_from((millis + 999) / 1000).unwrap_or(1).max(1)
    }
}

/// Per-caller fixed-window counters, shared by every instance of every
/// function (an in-memory count per Lambda instance would give a caller
/// spread over N instances N shares). One atomic operation per request:
/// the count goes up only while it is below the quota's limit, so
/// concurrent requests can never be admitted past it.
pub trait RateLimiter: Send + Sync {
    /// Counts one request of `owner` against `quota` in the window of
    /// `now`: `Ok(Ok(()))` when admitted, `Ok(Err(end))` when the window
    /// already holds `quota.limit` (nothing counted; `end`: when the
    /// window ends and the caller may try again).
    fn admit(
        &self,
        owner: &Caller,
        quota: &Quota,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Result<(), DateTime<Utc>>, StoreError>> + Send;
}
