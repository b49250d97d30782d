//! Keys, conditions and update expressions, built the same way by every
//! operation.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update as UpdateAction};
use serde::Serialize;
use uuid::Uuid;

use super::Item;
use super::errors::build_error;
use super::table::{COUNT_ATTRIBUTE, COUNT_SK, PK, SK, owner_pk, task_sk};
use crate::domain::caller::Caller;
use crate::domain::task::FIELDS;
use crate::ports::{Precondition, StoreError};

pub fn counter_key(owner: &Caller) -> Item {
    HashMap::from([
        (PK.to_owned(), string(owner_pk(owner))),
        (SK.to_owned(), string(COUNT_SK)),
    ])
}

/// Adds `delta` to the caller's task count; with `max`, only while the
/// count is below it.
pub fn count_update(
    table: &str,
    owner: &Caller,
    delta: i64,
    max: Option<u32>,
) -> Result<TransactWriteItem, StoreError> {
    let mut update = UpdateAction::builder()
        .table_name(table)
        .set_key(Some(counter_key(owner)))
        .update_expression("ADD #count :delta")
        .expression_attribute_names("#count", COUNT_ATTRIBUTE)
        .expression_attribute_values(":delta", AttributeValue::N(delta.to_string()));
    if let Some(max) = max {
        update = update
            .condition_expression("attribute_not_exists(#count) OR #count < :max")
            .expression_attribute_values(":max", AttributeValue::N(max.to_string()));
    }
    let update = update.build().map_err(build_error)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

pub fn attr<T: Serialize>(value: T) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(value)
        .map_err(|e| StoreError::internal("encoding an attribute", e))
}

pub fn string(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn key(owner: &Caller, id: Uuid) -> Item {
    HashMap::from([
        (PK.to_owned(), string(owner_pk(owner))),
        (SK.to_owned(), string(task_sk(id))),
    ])
}

/// The condition of a write to an existing task, and its value
/// placeholders. `#version` must be bound by the caller.
pub fn existing_condition(precondition: &Precondition) -> (String, Item) {
    let exists = format!("attribute_exists({PK})");
    match precondition {
        Precondition::None | Precondition::Exists => (exists, Item::new()),
        Precondition::Never => (
            format!("{exists} AND #version = :never"),
            HashMap::from([(":never".to_owned(), AttributeValue::N("-1".to_owned()))]),
        ),
        Precondition::VersionIn(versions) => {
            let values: Item = versions
                .iter()
                .enumerate()
                .map(|(i, v)| (format!(":v{i}"), AttributeValue::N(v.to_string())))
                .collect();
            let mut names: Vec<&String> = values.keys().collect();
            names.sort();
            let list = names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            (format!("{exists} AND #version IN ({list})"), values)
        }
    }
}

/// SET clauses of an update, with their names and values.
#[derive(Default)]
pub struct Update {
    /// `#name = :name` clauses.
    pub sets: Vec<String>,
    pub names: HashMap<String, String>,
    pub values: Item,
}

impl Update {
    /// A SET clause for every declared field that `fields` (a
    /// `TaskCreate`, or a `TaskPatch`, which leaves out the fields not
    /// sent) carries, encoded as a task item encodes them.
    pub fn set_fields<T: Serialize>(&mut self, fields: &T) -> Result<(), StoreError> {
        let mut item: Item = serde_dynamo::to_item(fields)
            .map_err(|e| StoreError::internal("encoding task fields", e))?;
        for field in FIELDS {
            if let Some(value) = item.remove(field.name) {
                self.set(field.name, value);
            }
        }
        Ok(())
    }

    pub fn set(&mut self, field: &str, value: AttributeValue) {
        self.sets.push(format!("#{field} = :{field}"));
        self.names.insert(format!("#{field}"), field.to_owned());
        self.values.insert(format!(":{field}"), value);
    }
}
