//! One module per route, each with `handle(app, request)`, and the audit
//! function's stream handler ([`audit`]). The functions in `functions/`
//! only hand these to [`crate::runtime`]'s `start*`; the handler tests call
//! them with an in-memory store. (The docs function's handler is
//! [`crate::http::schemas::docs`], above the handlers: it serves their document.)
//!
//! Order inside a handler follows FastAPI: the caller first (401 before any
//! validation), then every input together (one 422 listing all failures),
//! then the store.

pub mod audit;
pub mod create_task;
pub mod create_ticket;
pub mod delete_task;
pub mod export_tasks;
pub mod fallback;
pub mod get_task;
pub mod health;
pub mod list_tasks;
pub mod me;
pub mod replace_task;
pub mod task_events;
pub mod task_history;
pub mod update_task;

/// The DynamoDB access a handler's code needs, declared next to it (each
/// module's `DYNAMODB`) and granted by its function's policy in
/// `template.yaml`, and nothing more: `shared/tests/it/least_privilege.rs`
/// fails when a policy differs from the declaration,
/// `devstack/tests/it/dynamodb_calls.rs` when the code makes a call the
/// declaration lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DynamoDbAccess {
    /// IAM actions (`dynamodb:GetItem`...) on the table. A
    /// `TransactWriteItems` needs the actions of its parts (`PutItem`,
    /// `UpdateItem`, `DeleteItem`, `ConditionCheckItem`), not one of its own.
    pub actions: &'static [&'static str],
    /// Whether the actions apply to the table itself (a Query of an index
    /// is authorised by the index's ARN alone).
    pub table: bool,
    /// Indexes the actions also apply to (queried by name).
    pub indexes: &'static [&'static str],
    /// Whether the function reads the table's stream (its event source
    /// mapping does, with the function's role): [`STREAM_ACTIONS`] on the
    /// stream's ARN.
    pub stream: bool,
    /// Actions on the table allowed only on items whose partition key is
    /// one of `leading_keys`: a second statement, with IAM's
    /// `ForAllValues:StringLike` condition on `dynamodb:LeadingKeys`.
    pub confined: &'static [&'static str],
    pub leading_keys: &'static [LeadingKey],
}

/// A partition key value, or a family of them, a confined action may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadingKey {
    /// Exactly this partition key.
    Exact(&'static str),
    /// Any partition key starting with this.
    Prefix(&'static str),
}

impl LeadingKey {
    /// As IAM's `StringLike` writes it (`*` matches any characters).
    pub fn pattern(self) -> String {
        match self {
            LeadingKey::Exact(key) => key.to_owned(),
            LeadingKey::Prefix(prefix) => format!("{prefix}*"),
        }
    }

    /// Whether `partition_key` is one this allows.
    pub fn allows(self, partition_key: &str) -> bool {
        match self {
            LeadingKey::Exact(key) => partition_key == key,
            LeadingKey::Prefix(prefix) => partition_key.starts_with(prefix),
        }
    }
}

/// What a Lambda event source mapping needs to read a DynamoDB stream.
pub const STREAM_ACTIONS: &[&str] = &[
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
];

impl DynamoDbAccess {
    /// No storage at all: no policy.
    pub const NONE: DynamoDbAccess = DynamoDbAccess::table(&[]);

    /// `actions` on the table, no index.
    pub const fn table(actions: &'static [&'static str]) -> Self {
        DynamoDbAccess {
            actions,
            table: true,
            indexes: &[],
            stream: false,
            confined: &[],
            leading_keys: &[],
        }
    }

    /// Whether the function touches the table at all (so may answer 503
    /// when DynamoDB fails).
    pub const fn uses_storage(&self) -> bool {
        !self.actions.is_empty() || !self.confined.is_empty()
    }

    /// These access, plus `actions` only on items under `leading_keys`.
    pub const fn confined(
        self,
        actions: &'static [&'static str],
        leading_keys: &'static [LeadingKey],
    ) -> Self {
        DynamoDbAccess {
            confined: actions,
            leading_keys,
            ..self
        }
    }
}

/// The declared access of each function (by crate name: the routes', the
/// fallback's and the event functions'), or `None` for a name that is no
/// function.
pub fn dynamodb_access(function: &str) -> Option<DynamoDbAccess> {
    Some(match function {
        "health" => health::DYNAMODB,
        "me" => me::DYNAMODB,
        "create_task" => create_task::DYNAMODB,
        "create_ticket" => create_ticket::DYNAMODB,
        "list_tasks" => list_tasks::DYNAMODB,
        "get_task" => get_task::DYNAMODB,
        "replace_task" => replace_task::DYNAMODB,
        "update_task" => update_task::DYNAMODB,
        "delete_task" => delete_task::DYNAMODB,
        "task_history" => task_history::DYNAMODB,
        "export_tasks" => export_tasks::DYNAMODB,
        "task_events" => task_events::DYNAMODB,
        // route:insert dynamodb_access (make route adds arms above this line)
        // The docs function serves a document: no storage.
        "docs" => DynamoDbAccess::NONE,
        "fallback" => fallback::DYNAMODB,
        "audit" => audit::DYNAMODB,
        _ => return None,
    })
}

/// What a request counts against: one of the caller's fair shares
/// ([`crate::config::FairShare`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// POST, PUT, PATCH and DELETE on tasks, together.
    Writes,
    /// Opening `GET /tasks/export`.
    Exports,
}

/// Counts the request against the caller's `share`, across every instance
/// (one conditional `UpdateItem`): a 429 with `Retry-After` (the seconds
/// left in the window) once the caller has used it up. Each handler it
/// applies to calls it right after identifying the caller and before
/// reading anything else, so a caller over its share costs one
/// conditional write and no parsing. A storage failure here answers as
/// every storage failure does (`From<StoreError>`: unavailable or throttled
/// 503, a fault of ours such as a missing permission 500): the request is
/// never served without its count.
pub async fn within_share<S: crate::ports::RateLimiter>(
    app: &crate::runtime::App<S>,
    owner: &crate::domain::caller::Caller,
    share: Share,
) -> Result<(), crate::http::error::ApiError> {
    use crate::http::error::ApiError;
    use crate::ports::Quota;
    let settings = app.config.fair_share;
    let (what, limit) = match share {
        Share::Writes => ("writes", settings.writes),
        Share::Exports => ("exports", settings.exports),
    };
    let quota = Quota {
        name: what,
        limit,
        window_seconds: settings.window_seconds,
    };
    let now = chrono::Utc::now();
    match app.store.admit(owner, &quota, now).await? {
        Ok(()) => Ok(()),
        Err(end) => Err(ApiError::OverShare {
            what,
            limit,
            window_seconds: settings.window_seconds,
            retry_after: Quota::seconds_until(now, end),
        }),
    }
}
