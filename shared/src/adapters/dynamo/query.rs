//! Reading: one item by its key, or a key range (the one Query loop of
//! the stores). Reads on the table are consistent.

use aws_sdk_dynamodb::types::ReturnConsumedCapacity;

use super::errors::classify;
use super::expressions::string;
use super::{DynamoStore, Item};
use crate::ports::StoreError;

/// The key range of a Query: one partition (of the table or of an index),
/// the sort keys with a prefix, in one direction.
pub struct Range<'a> {
    pub index: Option<&'a str>,
    /// `(attribute, value)` of the partition key.
    pub pk: (&'a str, String),
    /// `(attribute, prefix)` of the sort key.
    pub sk: (&'a str, &'a str),
    /// Ascending sort keys (`true`) or descending.
    pub forward: bool,
}

impl DynamoStore {
    /// Up to `wanted` items of `range` after `start` (exclusive), and the
    /// read capacity they cost. A Query answers at most 1 MB: a short answer
    /// with a `LastEvaluatedKey` goes on from there. Reads on the table are
    /// consistent (an index can only be read eventually consistently).
    pub async fn query_items(
        &self,
        range: Range<'_>,
        mut start: Option<Item>,
        wanted: usize,
    ) -> Result<(Vec<Item>, f64), StoreError> {
        let mut items = Vec::with_capacity(wanted);
        let mut read_capacity = 0.0;
        loop {
            let remaining = i32::try_from(wanted - items.len()).unwrap_or(i32::MAX);
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(range.index.map(str::to_owned))
                .consistent_read(range.index.is_none())
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", range.pk.0)
                .expression_attribute_names("#sk", range.sk.0)
                .expression_attribute_values(":pk", string(range.pk.1.clone()))
                .expression_attribute_values(":prefix", string(range.sk.1))
                .scan_index_forward(range.forward)
                .set_exclusive_start_key(start.take())
                .limit(remaining)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| classify("Query", e))?;
            read_capacity += output
                .consumed_capacity
                .as_ref()
                .and_then(|c| c.capacity_units)
                .unwrap_or(0.0);
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(last) if items.len() < wanted => start = Some(last),
                _ => break,
            }
        }
        Ok((items, read_capacity))
    }
}

impl DynamoStore {
    /// The item with this key, read consistently, if it exists.
    pub async fn read(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        Ok(output.item)
    }
}
