//! Tasks as clients see them, the write models and the list query. Storage
//! keys, owner and version never appear in a body; they live in the store
//! and in headers. Reading a body into these models (pydantic's rules) is
//! the HTTP edge's ([`crate::http::body`]); their field rules are
//! [`super::rules`].

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;
use uuid::Uuid;

/// A task as every response shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    /// UUIDv7: time-ordered, so "oldest first" is key order.
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub done: bool,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
}

/// RFC 3339, UTC, with `Z` and microseconds (what FastAPI clients parse).
pub fn rfc3339<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_time(at))
}

pub fn format_time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Task {
    /// A new task from a validated create request, stamped `now`.
    pub fn new(input: TaskCreate, now: DateTime<Utc>) -> Self {
        Task {
            id: Uuid::now_v7(),
            title: input.title,
            description: input.description,
            done: input.done,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A stored task and its version: the version is the ETag, bumped by every
/// write, and the value `If-Match` is checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedTask {
    pub task: Task,
    pub version: u64,
}

impl VersionedTask {
    /// The `ETag` header value: the version as a quoted string.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }
}

/// POST and PUT bodies: a whole task with create's defaults.
// Length bounds: super::rules (the OpenAPI schema gets them from there).
#[derive(Debug, Clone, PartialEq, ToSchema)]
pub struct TaskCreate {
    /// 1 to 200 characters (Unicode code points).
    pub title: String,
    #[schema(default = "", required = false)]
    pub description: String,
    /// Also accepts pydantic's lax forms: `0`/`1` and the strings `true`,
    /// `false`, `yes`, `no`, `on`, `off`, `1`, `0`, `t`, `f`, `y`, `n` in any case.
    #[schema(default = false, required = false)]
    pub done: bool,
}

/// PATCH bodies: only the fields sent change; `{}` is a valid no-op.
/// An explicit `null` is a 422, never "unchanged".
#[derive(Debug, Clone, PartialEq, Default, ToSchema)]
pub struct TaskPatch {
    #[schema(value_type = String, required = false)]
    pub title: Option<String>,
    #[schema(value_type = String, required = false)]
    pub description: Option<String>,
    /// Lax booleans, as in `TaskCreate`.
    #[schema(value_type = bool, required = false)]
    pub done: Option<bool>,
}

impl TaskPatch {
    pub fn is_empty(&self) -> bool {
        self.title.is_none() && self.description.is_none() && self.done.is_none()
    }
}

/// `GET /tasks` parameters, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// 1..=100.
    pub limit: u32,
    /// Only tasks with this `done` value, when set.
    pub done: Option<bool>,
    /// Start after this task (decoded from the opaque cursor).
    pub after: Option<Uuid>,
}

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// The current time at the precision tasks show (microseconds), so what is
/// stored is exactly what responses print.
pub fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}
