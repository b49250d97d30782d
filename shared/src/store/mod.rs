//! The storage port. Handlers talk to a [`TaskStore`]; [`dynamo::DynamoStore`]
//! is the real one and [`memory::MemoryStore`] the fake for handler unit
//! tests. Every operation is scoped by the caller: there is no way to name
//! another caller's task.

pub mod dynamo;
pub mod memory;
pub mod table;

use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::ApiError;
use crate::identity::Caller;
use crate::model::{ListQuery, Task, TaskCreate, TaskPatch, VersionedTask};

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
/// used with. Kept for [`IDEMPOTENCY_TTL_SECONDS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
}

impl Idempotency {
    /// The fingerprint is a SHA-256 of the validated request (not of its
    /// bytes), so a retry that spells the same task differently (key order,
    /// whitespace, `"done": "no"` for `false`) is still the same request.
    pub fn new(key: String, input: &TaskCreate) -> Self {
        use base64::Engine;
        use sha2::Digest;
        let canonical = serde_json::json!([input.title, input.description, input.done]);
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
/// Errors: `TaskNotFound`, `PreconditionFailed`, `Unavailable`, `Internal`.
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
    ) -> impl Future<Output = Result<VersionedTask, ApiError>> + Send;

    fn get(
        &self,
        owner: &Caller,
        id: Uuid,
    ) -> impl Future<Output = Result<VersionedTask, ApiError>> + Send;

    /// Exactly `min(limit, matching tasks left)` items, oldest first;
    /// `next_after` is `None` exactly when nothing is left.
    fn list(
        &self,
        owner: &Caller,
        query: &ListQuery,
    ) -> impl Future<Output = Result<StoredPage, ApiError>> + Send;

    /// Replaces every field but `id` and `created_at`.
    fn replace(
        &self,
        owner: &Caller,
        id: Uuid,
        input: TaskCreate,
        now: DateTime<Utc>,
        precondition: &Precondition,
    ) -> impl Future<Output = Result<VersionedTask, ApiError>> + Send;

    /// Changes only the fields present in `patch`, bumping `updated_at` and
    /// the version. (Handlers answer an empty patch with a read instead: it
    /// is a no-op, not a write.)
    fn update(
        &self,
        owner: &Caller,
        id: Uuid,
        patch: TaskPatch,
        now: DateTime<Utc>,
        precondition: &Precondition,
    ) -> impl Future<Output = Result<VersionedTask, ApiError>> + Send;

    /// Deletes the task and frees its room under `MAX_TASKS`, atomically.
    fn delete(
        &self,
        owner: &Caller,
        id: Uuid,
        precondition: &Precondition,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}
