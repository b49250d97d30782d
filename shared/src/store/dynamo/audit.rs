//! Audit entries in the table: `pk = USER#<sub>`,
//! `sk = HISTORY#<task id>#<sequence>` (see [`super::super::table`]).

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{DynamoStore, Item, PK, SK, classify, string};
use crate::audit::{
    Action, AuditEntry, AuditStore, FieldChange, HistoryPage, HistoryQuery, Recorded, Sequence,
};
use crate::error::ApiError;
use crate::identity::Caller;
use crate::store::table::{history_prefix, history_sk, owner_pk};

/// An audit entry as stored. No GSI keys: it never shows in a listing.
#[derive(Debug, Serialize, Deserialize)]
struct HistoryItem {
    pk: String,
    sk: String,
    task_id: Uuid,
    action: Action,
    at: DateTime<Utc>,
    changes: Vec<FieldChange>,
    version: u64,
    sequence: String,
    event_id: String,
}

impl HistoryItem {
    fn new(entry: &AuditEntry) -> Self {
        HistoryItem {
            pk: owner_pk(&entry.owner),
            sk: history_sk(entry.task_id, &entry.sequence),
            task_id: entry.task_id,
            action: entry.action,
            at: entry.at,
            changes: entry.changes.clone(),
            version: entry.version,
            sequence: entry.sequence.as_str().to_owned(),
            event_id: entry.event_id.clone(),
        }
    }

    fn into_entry(self, owner: &Caller) -> Result<AuditEntry, ApiError> {
        let sequence = Sequence::parse(&self.sequence).ok_or_else(|| {
            ApiError::Internal(format!("malformed audit item sequence {:?}", self.sequence))
        })?;
        Ok(AuditEntry {
            owner: owner.clone(),
            task_id: self.task_id,
            action: self.action,
            at: self.at,
            changes: self.changes,
            version: self.version,
            sequence,
            event_id: self.event_id,
        })
    }
}

impl AuditStore for DynamoStore {
    async fn record(&self, entry: &AuditEntry) -> Result<Recorded, ApiError> {
        let item: Item = serde_dynamo::to_item(HistoryItem::new(entry))
            .map_err(|e| ApiError::Internal(format!("encoding audit entry: {e}")))?;
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(format!("attribute_not_exists({PK})"))
            .send()
            .await;
        match written {
            Ok(_) => Ok(Recorded::New),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(Recorded::Duplicate),
                _ => Err(classify(error)),
            },
        }
    }

    async fn history(
        &self,
        owner: &Caller,
        task_id: Uuid,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, ApiError> {
        // Backwards from the newest (or from before the cursor), one item
        // more than the page to know whether anything is left.
        let mut start: Option<Item> = query.before.as_ref().map(|before| {
            Item::from([
                (PK.to_owned(), string(owner_pk(owner))),
                (SK.to_owned(), string(history_sk(task_id, before))),
            ])
        });
        let wanted = query.limit as usize + 1;
        let mut items = Vec::with_capacity(wanted);
        loop {
            let remaining = i32::try_from(wanted - items.len()).unwrap_or(i32::MAX);
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", string(owner_pk(owner)))
                .expression_attribute_values(":prefix", AttributeValue::S(history_prefix(task_id)))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                .limit(remaining)
                .send()
                .await
                .map_err(classify)?;
            for item in output.items.unwrap_or_default() {
                let stored: HistoryItem = serde_dynamo::from_item(item)
                    .map_err(|e| ApiError::Internal(format!("malformed audit item: {e}")))?;
                items.push(stored.into_entry(owner)?);
            }
            match output.last_evaluated_key {
                Some(last) if items.len() < wanted => start = Some(last),
                _ => break,
            }
        }
        let more = items.len() > query.limit as usize;
        items.truncate(query.limit as usize);
        let next_before = if more {
            items.last().map(|e| e.sequence.clone())
        } else {
            None
        };
        Ok(HistoryPage { items, next_before })
    }
}
