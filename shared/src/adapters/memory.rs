//! An in-memory [`TaskStore`] and [`AuditStore`] with the same semantics as
//! DynamoDB's, for handler tests. Only built for tests (feature
//! `test-support`), never into a function; the store contract tests
//! (`devstack/tests/it/store_contract.rs`) run the same cases against it
//! and against the DynamoDB store on dynoxide, so the two cannot drift.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::caller::Caller;
use crate::domain::change::{Change, Sequence};
use crate::domain::task::{ListQuery, Task, TaskCreate, TaskPatch, VersionedTask};
use crate::domain::ticket::{KEY_LEN, TicketKey};
use crate::ports::page;
use crate::ports::{
    AuditStore, ChangeBatch, CreateRules, HistoryPage, HistoryQuery, IDEMPOTENCY_TTL_SECONDS,
    Idempotency, Lease, LeaseStore, MIN_LEASE_AGE, Precondition, Quota, RateLimiter, Recorded,
    StoreError, StoredPage, TaskStore, TicketStore,
};

type Tasks = BTreeMap<Uuid, VersionedTask>;

/// An idempotency key: the first request's fingerprint, its answer (the
/// task, or `None` for a delete) and its expiry.
type Key = (String, Option<VersionedTask>, DateTime<Utc>);

/// What a caller owns: tasks, and the idempotency keys it used.
#[derive(Debug, Default)]
struct Owned {
    tasks: Tasks,
    keys: HashMap<String, Key>,
    /// Changes by stream sequence: the change feed, in order.
    changes: BTreeMap<Sequence, Change>,
    /// Feed stream places: slot → (lease id, taken at, expiry).
    leases: HashMap<u32, (Uuid, DateTime<Utc>, DateTime<Utc>)>,
    /// Fair-share counts: (quota, window start) → requests admitted (kept,
    /// as DynamoDB keeps them until TTL: a test store lives seconds).
    counts: HashMap<(&'static str, DateTime<Utc>), u32>,
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    by_owner: Mutex<HashMap<String, Owned>>,
    /// The key feed tickets are sealed with, once made.
    ticket_key: Mutex<Option<[u8; KEY_LEN]>>,
}

impl MemoryStore {
    /// Runs `f` on the caller's data under the lock: every operation is
    /// atomic, as each DynamoDB write is.
    fn with_owned<T>(
        &self,
        owner: &Caller,
        f: impl FnOnce(&mut Owned) -> T,
    ) -> Result<T, StoreError> {
        let mut all = self
            .by_owner
            .lock()
            .map_err(|_| StoreError::internal_because("memory store lock poisoned"))?;
        Ok(f(all.entry(owner.id().to_owned()).or_default()))
    }

    fn with_tasks<T>(
        &self,
        owner: &Caller,
        f: impl FnOnce(&mut Tasks) -> T,
    ) -> Result<T, StoreError> {
        self.with_owned(owner, |owned| f(&mut owned.tasks))
    }

    /// The first answer of a live key (`Some`), or `None`: a new key.
    fn replay(
        owned: &Owned,
        idempotency: Option<&Idempotency>,
        now: DateTime<Utc>,
    ) -> Option<Result<Option<VersionedTask>, StoreError>> {
        let idempotency = idempotency?;
        let (fingerprint, first, expires) = owned.keys.get(&idempotency.key)?;
        (*expires > now).then(|| {
            if *fingerprint == idempotency.fingerprint {
                Ok(first.clone())
            } else {
                Err(StoreError::IdempotencyKeyReused)
            }
        })
    }

    /// Remembers a key with its answer.
    fn remember(
        owned: &mut Owned,
        idempotency: Option<&Idempotency>,
        answer: Option<VersionedTask>,
        now: DateTime<Utc>,
    ) {
        if let Some(idempotency) = idempotency {
            let expires = now + chrono::Duration::seconds(IDEMPOTENCY_TTL_SECONDS);
            owned.keys.insert(
                idempotency.key.clone(),
                (idempotency.fingerprint.clone(), answer, expires),
            );
        }
    }

    /// A write to an existing task: replayed for a known key, else `change`
    /// applied if the precondition holds, bumping the version.
    fn write(
        &self,
        owner: &Caller,
        id: Uuid,
        now: DateTime<Utc>,
        precondition: &Precondition,
        idempotency: Option<&Idempotency>,
        change: impl FnOnce(&mut Task),
    ) -> Result<VersionedTask, StoreError> {
        self.with_owned(owner, |owned| {
            if let Some(first) = Self::replay(owned, idempotency, now) {
                return first?.ok_or(StoreError::IdempotencyKeyReused);
            }
            let stored = Self::checked(&mut owned.tasks, id, precondition)?;
            change(&mut stored.task);
            stored.task.updated_at = now;
            stored.version += 1;
            let answer = stored.clone();
            Self::remember(owned, idempotency, Some(answer.clone()), now);
            Ok(answer)
        })?
    }

    /// The stored task if the precondition holds.
    fn checked<'a>(
        tasks: &'a mut Tasks,
        id: Uuid,
        precondition: &Precondition,
    ) -> Result<&'a mut VersionedTask, StoreError> {
        let stored = tasks.get_mut(&id).ok_or(StoreError::TaskNotFound)?;
        if precondition.allows(stored.version) {
            Ok(stored)
        } else {
            Err(StoreError::PreconditionFailed)
        }
    }
}

impl TaskStore for MemoryStore {
    async fn create(
        &self,
        owner: &Caller,
        task: Task,
        rules: CreateRules<'_>,
    ) -> Result<VersionedTask, StoreError> {
        let now = task.created_at;
        let stored = VersionedTask { task, version: 1 };
        self.with_owned(owner, |owned| {
            if let Some(first) = Self::replay(owned, rules.idempotency, now) {
                return first?.ok_or(StoreError::IdempotencyKeyReused);
            }
            if owned.tasks.len() >= rules.max_tasks as usize {
                return Err(StoreError::TaskLimitReached(rules.max_tasks));
            }
            owned.tasks.insert(stored.task.id, stored.clone());
            Self::remember(owned, rules.idempotency, Some(stored.clone()), now);
            Ok(stored)
        })?
    }

    async fn get(&self, owner: &Caller, id: Uuid) -> Result<VersionedTask, StoreError> {
        self.with_tasks(owner, |tasks| tasks.get(&id).cloned())?
            .ok_or(StoreError::TaskNotFound)
    }

    async fn list(&self, owner: &Caller, query: &ListQuery) -> Result<StoredPage, StoreError> {
        self.with_tasks(owner, |tasks| {
            let start = match query.after {
                Some(after) => Bound::Excluded(after),
                None => Bound::Unbounded,
            };
            let read: Vec<Task> = tasks
                .range((start, Bound::Unbounded))
                .map(|(_, stored)| &stored.task)
                .filter(|task| query.done.is_none_or(|done| task.done == done))
                .take(page::lookahead(query.limit))
                .cloned()
                .collect();
            let (items, next_after) = page::cut(read, query.limit, |task| task.id);
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
        idempotency: Option<&Idempotency>,
    ) -> Result<VersionedTask, StoreError> {
        self.write(owner, id, now, precondition, idempotency, |task| {
            *task = Task::with(task.id, input, task.created_at, task.updated_at);
        })
    }

    async fn update(
        &self,
        owner: &Caller,
        id: Uuid,
        patch: TaskPatch,
        now: DateTime<Utc>,
        precondition: &Precondition,
        idempotency: Option<&Idempotency>,
    ) -> Result<VersionedTask, StoreError> {
        self.write(owner, id, now, precondition, idempotency, |task| {
            patch.apply(task)
        })
    }

    async fn delete(
        &self,
        owner: &Caller,
        id: Uuid,
        precondition: &Precondition,
        idempotency: Option<&Idempotency>,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        self.with_owned(owner, |owned| {
            if let Some(first) = Self::replay(owned, idempotency, now) {
                return match first? {
                    None => Ok(()),
                    Some(_) => Err(StoreError::IdempotencyKeyReused),
                };
            }
            Self::checked(&mut owned.tasks, id, precondition)?;
            owned.tasks.remove(&id);
            Self::remember(owned, idempotency, None, now);
            Ok(())
        })?
    }
}

impl AuditStore for MemoryStore {
    async fn record(&self, change: &Change) -> Result<Recorded, StoreError> {
        self.with_owned(&change.owner, |owned| {
            if owned.changes.contains_key(&change.sequence) {
                Recorded::Duplicate
            } else {
                owned
                    .changes
                    .insert(change.sequence.clone(), change.clone());
                Recorded::New
            }
        })
    }

    async fn history(
        &self,
        owner: &Caller,
        task_id: Uuid,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, StoreError> {
        self.with_owned(owner, |owned| {
            let end = match &query.before {
                Some(before) => Bound::Excluded(before.clone()),
                None => Bound::Unbounded,
            };
            let read: Vec<Change> = owned
                .changes
                .range((Bound::Unbounded, end))
                .rev()
                .map(|(_, change)| change)
                .filter(|change| change.task_id == task_id)
                .take(page::lookahead(query.limit))
                .cloned()
                .collect();
            let (items, next_before) =
                page::cut(read, query.limit, |change| change.sequence.clone());
            HistoryPage { items, next_before }
        })
    }

    async fn changes(
        &self,
        owner: &Caller,
        after: Option<&Sequence>,
        limit: u32,
    ) -> Result<ChangeBatch, StoreError> {
        self.with_owned(owner, |owned| {
            let start = match after {
                Some(after) => Bound::Excluded(after.clone()),
                None => Bound::Unbounded,
            };
            let items = owned
                .changes
                .range((start, Bound::Unbounded))
                .take(limit as usize)
                .map(|(_, change)| change.clone())
                .collect();
            ChangeBatch {
                items,
                read_capacity: 0.0,
            }
        })
    }

    async fn latest_change(&self, owner: &Caller) -> Result<Option<Sequence>, StoreError> {
        self.with_owned(owner, |owned| owned.changes.keys().next_back().cloned())
    }
}

impl TicketStore for MemoryStore {
    async fn ticket_key(&self) -> Result<[u8; KEY_LEN], StoreError> {
        let mut key = self
            .ticket_key
            .lock()
            .map_err(|_| StoreError::internal_because("memory store lock poisoned"))?;
        match *key {
            Some(bytes) => Ok(bytes),
            None => Ok(*key.insert(
                TicketKey::random_bytes().map_err(|e| StoreError::internal("a ticket key", e))?,
            )),
        }
    }
}

impl LeaseStore for MemoryStore {
    async fn acquire(
        &self,
        lease: &Lease,
        max: u32,
        now: DateTime<Utc>,
    ) -> Result<Result<Lease, DateTime<Utc>>, StoreError> {
        self.with_owned(&lease.owner, |owned| {
            let free = (0..max).find(|slot| {
                owned
                    .leases
                    .get(slot)
                    .is_none_or(|(_, _, expires)| *expires <= now)
            });
            let oldest = || {
                (0..max)
                    .filter_map(|slot| owned.leases.get(&slot).map(|(_, at, _)| (slot, *at)))
                    .min_by_key(|(_, at)| *at)
            };
            let slot = match (free, oldest()) {
                (Some(slot), _) => slot,
                (None, Some((slot, at))) if now - at >= MIN_LEASE_AGE => slot,
                (None, Some((_, at))) => return Err(at + MIN_LEASE_AGE),
                (None, None) => return Err(now + MIN_LEASE_AGE),
            };
            owned
                .leases
                .insert(slot, (lease.id, lease.acquired_at, lease.expires_at));
            Ok(Lease {
                slot,
                ..lease.clone()
            })
        })
    }

    async fn holds(&self, lease: &Lease) -> Result<bool, StoreError> {
        self.with_owned(&lease.owner, |owned| {
            owned
                .leases
                .get(&lease.slot)
                .is_some_and(|(id, _, _)| *id == lease.id)
        })
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.with_owned(&lease.owner, |owned| {
            if owned
                .leases
                .get(&lease.slot)
                .is_some_and(|(id, _, _)| *id == lease.id)
            {
                owned.leases.remove(&lease.slot);
            }
        })
    }
}

impl RateLimiter for MemoryStore {
    async fn admit(
        &self,
        owner: &Caller,
        quota: &Quota,
        now: DateTime<Utc>,
    ) -> Result<Result<(), DateTime<Utc>>, StoreError> {
        let (start, end) = quota.window(now);
        self.with_owned(owner, |owned| {
            let count = owned.counts.entry((quota.name, start)).or_insert(0);
            if *count >= quota.limit {
                return Err(end);
            }
            *count += 1;
            Ok(())
        })
    }
}
