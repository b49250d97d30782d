//! An in-memory [`TaskStore`] with the same semantics as DynamoDB's, for
//! handler unit tests (the DynamoDB code is tested against dynoxide).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{CreateRules, IDEMPOTENCY_TTL_SECONDS, Precondition, StoredPage, TaskStore};
use crate::error::ApiError;
use crate::identity::Caller;
use crate::model::{ListQuery, Task, TaskCreate, TaskPatch, VersionedTask};

type Tasks = BTreeMap<Uuid, VersionedTask>;

/// What a caller owns: tasks, and the idempotency keys it used
/// (key → fingerprint, first result, expiry).
#[derive(Debug, Default)]
struct Owned {
    tasks: Tasks,
    keys: HashMap<String, (String, VersionedTask, DateTime<Utc>)>,
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    by_owner: Mutex<HashMap<String, Owned>>,
}

impl MemoryStore {
    /// Runs `f` on the caller's data under the lock: every operation is
    /// atomic, as each DynamoDB write is.
    fn with_owned<T>(
        &self,
        owner: &Caller,
        f: impl FnOnce(&mut Owned) -> T,
    ) -> Result<T, ApiError> {
        let mut all = self
            .by_owner
            .lock()
            .map_err(|_| ApiError::Internal("memory store lock poisoned".into()))?;
        Ok(f(all.entry(owner.id().to_owned()).or_default()))
    }

    fn with_tasks<T>(
        &self,
        owner: &Caller,
        f: impl FnOnce(&mut Tasks) -> T,
    ) -> Result<T, ApiError> {
        self.with_owned(owner, |owned| f(&mut owned.tasks))
    }

    /// The stored task if the precondition holds.
    fn checked<'a>(
        tasks: &'a mut Tasks,
        id: Uuid,
        precondition: &Precondition,
    ) -> Result<&'a mut VersionedTask, ApiError> {
        let stored = tasks.get_mut(&id).ok_or(ApiError::TaskNotFound)?;
        if precondition.allows(stored.version) {
            Ok(stored)
        } else {
            Err(ApiError::PreconditionFailed)
        }
    }
}

impl TaskStore for MemoryStore {
    async fn create(
        &self,
        owner: &Caller,
        task: Task,
        rules: CreateRules<'_>,
    ) -> Result<VersionedTask, ApiError> {
        let now = task.created_at;
        let stored = VersionedTask { task, version: 1 };
        self.with_owned(owner, |owned| {
            if let Some(idempotency) = rules.idempotency {
                match owned.keys.get(&idempotency.key) {
                    Some((fingerprint, first, expires)) if *expires > now => {
                        return if *fingerprint == idempotency.fingerprint {
                            Ok(first.clone())
                        } else {
                            Err(ApiError::IdempotencyKeyReused)
                        };
                    }
                    _ => {}
                }
            }
            if owned.tasks.len() >= rules.max_tasks as usize {
                return Err(ApiError::TaskLimitReached(rules.max_tasks));
            }
            owned.tasks.insert(stored.task.id, stored.clone());
            if let Some(idempotency) = rules.idempotency {
                let expires = now + chrono::Duration::seconds(IDEMPOTENCY_TTL_SECONDS);
                owned.keys.insert(
                    idempotency.key.clone(),
                    (idempotency.fingerprint.clone(), stored.clone(), expires),
                );
            }
            Ok(stored)
        })?
    }

    async fn get(&self, owner: &Caller, id: Uuid) -> Result<VersionedTask, ApiError> {
        self.with_tasks(owner, |tasks| tasks.get(&id).cloned())?
            .ok_or(ApiError::TaskNotFound)
    }

    async fn list(&self, owner: &Caller, query: &ListQuery) -> Result<StoredPage, ApiError> {
        self.with_tasks(owner, |tasks| {
            let start = match query.after {
                Some(after) => std::ops::Bound::Excluded(after),
                None => std::ops::Bound::Unbounded,
            };
            let mut matching = tasks
                .range((start, std::ops::Bound::Unbounded))
                .map(|(_, stored)| &stored.task)
                .filter(|task| query.done.is_none_or(|done| task.done == done));
            let items: Vec<Task> = matching
                .by_ref()
                .take(query.limit as usize)
                .cloned()
                .collect();
            let more = matching.next().is_some();
            let next_after = if more {
                items.last().map(|t| t.id)
            } else {
                None
            };
            StoredPage {
                items,
                next_after,
                read_capacity: 0.0,
            }
        })
    }

    async fn replace(
        &self,
        owner: &Caller,
        id: Uuid,
        input: TaskCreate,
        now: DateTime<Utc>,
        precondition: &Precondition,
    ) -> Result<VersionedTask, ApiError> {
        self.with_tasks(owner, |tasks| {
            let stored = Self::checked(tasks, id, precondition)?;
            stored.task.title = input.title;
            stored.task.description = input.description;
            stored.task.done = input.done;
            stored.task.updated_at = now;
            stored.version += 1;
            Ok(stored.clone())
        })?
    }

    async fn update(
        &self,
        owner: &Caller,
        id: Uuid,
        patch: TaskPatch,
        now: DateTime<Utc>,
        precondition: &Precondition,
    ) -> Result<VersionedTask, ApiError> {
        self.with_tasks(owner, |tasks| {
            let stored = Self::checked(tasks, id, precondition)?;
            if let Some(title) = patch.title {
                stored.task.title = title;
            }
            if let Some(description) = patch.description {
                stored.task.description = description;
            }
            if let Some(done) = patch.done {
                stored.task.done = done;
            }
            stored.task.updated_at = now;
            stored.version += 1;
            Ok(stored.clone())
        })?
    }

    async fn delete(
        &self,
        owner: &Caller,
        id: Uuid,
        precondition: &Precondition,
    ) -> Result<(), ApiError> {
        self.with_tasks(owner, |tasks| {
            Self::checked(tasks, id, precondition)?;
            tasks.remove(&id);
            Ok(())
        })?
    }
}
