//! The domain: tasks as clients see them, the write models with their field
//! rules, and the list query. Storage keys, owner and version never appear in
//! a body; they live in the store and in headers.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::validation::{
    FieldError, Validated, forbid_extra, length_errors, loc, optional_bool, optional_string,
};

/// The fields of [`TaskCreate`] / [`TaskPatch`], in pydantic's field order.
const TASK_FIELDS: [&str; 3] = ["title", "description", "done"];

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
pub(crate) fn rfc3339<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
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
#[derive(Debug, Clone, PartialEq, Validate, ToSchema)]
pub struct TaskCreate {
    /// 1 to 200 characters (Unicode code points).
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000, default = "", required = false)]
    pub description: String,
    /// Also accepts pydantic's lax forms: `0`/`1` and the strings `true`,
    /// `false`, `yes`, `no`, `on`, `off`, `1`, `0`, `t`, `f`, `y`, `n` in any case.
    #[schema(default = false, required = false)]
    pub done: bool,
}

/// PATCH bodies: only the fields sent change; `{}` is a valid no-op.
/// An explicit `null` is a 422, never "unchanged".
#[derive(Debug, Clone, PartialEq, Default, Validate, ToSchema)]
pub struct TaskPatch {
    #[validate(length(min = 1, max = 200))]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 200)]
    pub title: Option<String>,
    #[validate(length(max = 2000))]
    #[schema(value_type = String, required = false, max_length = 2000)]
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

/// The type-checked fields of a task body, and the names of those that
/// failed their type check.
struct TypedFields {
    title: Option<String>,
    description: Option<String>,
    done: Option<bool>,
    errors: Vec<FieldError>,
    failed: Vec<&'static str>,
}

fn typed_fields(object: &Map<String, Value>) -> TypedFields {
    let mut fields = TypedFields {
        title: None,
        description: None,
        done: None,
        errors: Vec::new(),
        failed: Vec::new(),
    };
    match optional_string(object, "title") {
        Ok(title) => fields.title = title,
        Err(e) => fields.fail("title", e),
    }
    match optional_string(object, "description") {
        Ok(description) => fields.description = description,
        Err(e) => fields.fail("description", e),
    }
    match optional_bool(object, "done") {
        Ok(done) => fields.done = done,
        Err(e) => fields.fail("done", e),
    }
    fields
}

impl TypedFields {
    fn fail(&mut self, field: &'static str, error: FieldError) {
        self.errors.push(error);
        self.failed.push(field);
    }
}

/// Orders field errors as pydantic does: model fields in declaration order,
/// then extra keys in input order.
fn sorted(mut errors: Vec<FieldError>, extras: Vec<FieldError>) -> Vec<FieldError> {
    let rank = |e: &FieldError| {
        let field = e.loc.get(1).and_then(Value::as_str).unwrap_or("");
        TASK_FIELDS
            .iter()
            .position(|f| *f == field)
            .unwrap_or(TASK_FIELDS.len())
    };
    errors.sort_by_key(rank);
    errors.extend(extras);
    errors
}

impl TaskCreate {
    /// Validates a JSON object as a create/replace body.
    pub fn from_object(object: &Map<String, Value>) -> Validated<Self> {
        let mut fields = typed_fields(object);
        if fields.title.is_none() && !fields.failed.contains(&"title") {
            fields.errors.push(FieldError::missing(
                loc(&["body", "title"]),
                Value::Object(object.clone()),
            ));
            fields.failed.push("title");
        }
        let candidate = TaskCreate {
            title: fields.title.unwrap_or_default(),
            description: fields.description.unwrap_or_default(),
            done: fields.done.unwrap_or(false),
        };
        fields.errors.extend(length_errors(
            candidate.validate(),
            object,
            &TASK_FIELDS,
            &fields.failed,
        ));
        let errors = sorted(fields.errors, forbid_extra(object, &TASK_FIELDS));
        if errors.is_empty() {
            Ok(candidate)
        } else {
            Err(errors)
        }
    }
}

impl TaskPatch {
    /// Validates a JSON object as a PATCH body.
    pub fn from_object(object: &Map<String, Value>) -> Validated<Self> {
        let mut fields = typed_fields(object);
        let candidate = TaskPatch {
            title: fields.title,
            description: fields.description,
            done: fields.done,
        };
        fields.errors.extend(length_errors(
            candidate.validate(),
            object,
            &TASK_FIELDS,
            &fields.failed,
        ));
        let errors = sorted(fields.errors, forbid_extra(object, &TASK_FIELDS));
        if errors.is_empty() {
            Ok(candidate)
        } else {
            Err(errors)
        }
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

/// One page of tasks, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TaskPage {
    pub items: Vec<Task>,
    /// Pass it back as `cursor` for the next page; `null` when nothing is left.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The current time at the precision tasks show (microseconds), so what is
/// stored is exactly what responses print.
pub fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}
