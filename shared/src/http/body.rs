//! JSON bodies read into the domain's write models as pydantic would: every
//! field type-checked (lax booleans), every length rule of
//! [`crate::domain::rules`] applied, unknown fields rejected, and every
//! failure listed in pydantic's order.

use serde_json::{Map, Value};

use super::validation::{
    FieldError, Validated, forbid_extra, length_errors, loc, optional_bool, optional_string,
};
use crate::domain::rules::TASK_FIELDS;
use crate::domain::task::{TaskCreate, TaskPatch};

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
        fields.errors.extend(length_errors(object, &fields.failed));
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
        fields.errors.extend(length_errors(object, &fields.failed));
        let errors = sorted(fields.errors, forbid_extra(object, &TASK_FIELDS));
        if errors.is_empty() {
            Ok(candidate)
        } else {
            Err(errors)
        }
    }
}
