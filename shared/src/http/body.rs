//! JSON bodies read into the domain's write models as pydantic would: every
//! declared field ([`crate::domain::task::FIELDS`]) read by its kind (lax
//! coercion, its rule checked), unknown fields rejected, and every failure
//! listed in pydantic's order (the fields in declaration order, then extra
//! keys in input order).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::validation::{FieldError, Validated, forbid_extra, loc, read_field};
use crate::domain::task::{FIELDS, TaskCreate, TaskPatch};

/// Which model a body is read into.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Every field: absent ones get their default, or are `missing`.
    Whole,
    /// Only the fields sent.
    Partial,
}

fn read_model<T: DeserializeOwned>(object: &Map<String, Value>, shape: Shape) -> Validated<T> {
    let mut values = Map::new();
    let mut errors = Vec::new();
    for field in FIELDS {
        let value = match object.get(field.name) {
            Some(value) => read_field(field, value),
            None if shape == Shape::Partial => continue,
            None => field.default_value().ok_or_else(|| {
                FieldError::missing(loc(&["body", field.name]), Value::Object(object.clone()))
            }),
        };
        match value {
            Ok(value) => {
                values.insert(field.name.to_owned(), value);
            }
            Err(error) => errors.push(error),
        }
    }
    errors.extend(forbid_extra(object, FIELDS));
    if !errors.is_empty() {
        return Err(errors);
    }
    // Each value was normalised to its kind's JSON type, so this only fails
    // if a declaration's kind does not fit its Rust type, which
    // shared/tests/it/fields.rs rules out for every declared field.
    serde_json::from_value(Value::Object(values)).map_err(|error| {
        vec![FieldError::value_error(
            loc(&["body"]),
            "",
            &format!("field declaration: {error}"),
        )]
    })
}

impl TaskCreate {
    /// Validates a JSON object as a create/replace body.
    pub fn from_object(object: &Map<String, Value>) -> Validated<Self> {
        read_model(object, Shape::Whole)
    }
}

impl TaskPatch {
    /// Validates a JSON object as a PATCH body.
    pub fn from_object(object: &Map<String, Value>) -> Validated<Self> {
        read_model(object, Shape::Partial)
    }
}
