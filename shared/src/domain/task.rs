//! Tasks as clients see them, the write models and the list query. Storage
//! keys, owner and version never appear in a body; they live in the store
//! and in headers. The fields are declared once, below ([`super::fields`]
//! says what is derived from the declaration); reading a body into these
//! models (pydantic's rules) is the HTTP edge's ([`crate::http::body`]).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;
use uuid::Uuid;

pub use super::fields::{Field, Kind};

// The task's fields, declared once (`super::fields` says what is derived
// from this block). Adding a field: docs/architecture.md, "Adding a field".
crate::task_fields! {
    /// What is to be done.
    title: String {
        kind: Kind::Text { min: 1, max: 200 },
        example: "Write the README",
    },
    /// Anything more to say about it.
    description: String {
        kind: Kind::Text { min: 0, max: 2000 },
        default: String::new(),
        example: "Sections: Layout, Local development, Tests.",
    },
    /// Whether it is finished.
    done: bool {
        kind: Kind::Bool,
        default: false,
        example: false,
    },
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
        Task::with(Uuid::now_v7(), input, now, now)
    }

    /// The field named `name` (one of [`FIELDS`]) as JSON, as a response
    /// shows it.
    pub fn field(&self, name: &str) -> Option<serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut object)) => object.remove(name),
            _ => None,
        }
    }
}

/// The declared field named `name`.
pub fn field(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|field| field.name == name)
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
