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

/// One page of stored tasks and the id to continue after, if more match.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPage {
    pub items: Vec<Task>,
    pub next_after: Option<Uuid>,
}

/// Task persistence. Writes are single atomic operations: no
/// read-modify-write window in which a concurrent change could be lost.
/// Errors: `TaskNotFound`, `PreconditionFailed`, `Unavailable`, `Internal`.
pub trait TaskStore: Send + Sync {
    /// Stores a new task at version 1.
    fn create(
        &self,
        owner: &Caller,
        task: Task,
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

    fn delete(
        &self,
        owner: &Caller,
        id: Uuid,
        precondition: &Precondition,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}
