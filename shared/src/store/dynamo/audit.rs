//! Changes (audit entries) in the table: `pk = USER#<sub>`,
//! `sk = CHANGE#<sequence>`, and in `GSI1` `HISTORY#<sub>#<task id>` /
//! `CHANGE#<sequence>` (see [`super::super::table`]).

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{DynamoStore, Item, PK, Range, SK, classify, string};
use crate::audit::{
    Action, AuditEntry, AuditStore, ChangeBatch, FieldChange, HistoryPage, HistoryQuery, Recorded,
    Sequence,
};
use crate::error::ApiError;
use crate::identity::Caller;
use crate::model::Task;
use crate::store::table::{CHANGE_PREFIX, GSI1, GSI1_PK, GSI1_SK, change_sk, history_pk, owner_pk};

/// A change as stored.
#[derive(Debug, Serialize, Deserialize)]
struct ChangeItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    task_id: Uuid,
    action: Action,
    at: DateTime<Utc>,
    changes: Vec<FieldChange>,
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    task: Option<Task>,
    sequence: String,
    event_id: String,
}

impl ChangeItem {
    fn new(entry: &AuditEntry) -> Self {
        let sk = change_sk(&entry.sequence);
        ChangeItem {
            pk: owner_pk(&entry.owner),
            gsi1pk: history_pk(&entry.owner, entry.task_id),
            gsi1sk: sk.clone(),
            sk,
            task_id: entry.task_id,
            action: entry.action,
            at: entry.at,
            changes: entry.changes.clone(),
            version: entry.version,
            task: entry.task.clone(),
            sequence: entry.sequence.as_str().to_owned(),
            event_id: entry.event_id.clone(),
        }
    }

    fn decode(item: Item, owner: &Caller) -> Result<AuditEntry, ApiError> {
        let stored: ChangeItem = serde_dynamo::from_item(item)
            .map_err(|e| ApiError::Internal(format!("malformed change item: {e}")))?;
        let sequence = Sequence::parse(&stored.sequence).ok_or_else(|| {
            ApiError::Internal(format!("malformed change sequence {:?}", stored.sequence))
        })?;
        Ok(AuditEntry {
            owner: owner.clone(),
            task_id: stored.task_id,
            action: stored.action,
            at: stored.at,
            changes: stored.changes,
            version: stored.version,
            task: stored.task,
            sequence,
            event_id: stored.event_id,
        })
    }
}

impl AuditStore for DynamoStore {
    async fn record(&self, entry: &AuditEntry) -> Result<Recorded, ApiError> {
        let item: Item = serde_dynamo::to_item(ChangeItem::new(entry))
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
        let start = query.before.as_ref().map(|before| {
            let sk = change_sk(before);
            Item::from([
                (PK.to_owned(), string(owner_pk(owner))),
                (SK.to_owned(), string(sk.clone())),
                (GSI1_PK.to_owned(), string(history_pk(owner, task_id))),
                (GSI1_SK.to_owned(), string(sk)),
            ])
        });
        let range = Range {
            index: Some(GSI1),
            pk: (GSI1_PK, history_pk(owner, task_id)),
            sk: (GSI1_SK, CHANGE_PREFIX),
            forward: false,
        };
        let wanted = query.limit as usize + 1;
        let (found, _) = self.query_items(range, start, wanted).await?;
        let mut items = found
            .into_iter()
            .map(|item| ChangeItem::decode(item, owner))
            .collect::<Result<Vec<_>, _>>()?;
        let more = items.len() > query.limit as usize;
        items.truncate(query.limit as usize);
        let next_before = if more {
            items.last().map(|e| e.sequence.clone())
        } else {
            None
        };
        Ok(HistoryPage { items, next_before })
    }

    async fn changes(
        &self,
        owner: &Caller,
        after: Option<&Sequence>,
        limit: u32,
    ) -> Result<ChangeBatch, ApiError> {
        let start = after.map(|after| {
            Item::from([
                (PK.to_owned(), string(owner_pk(owner))),
                (SK.to_owned(), string(change_sk(after))),
            ])
        });
        let (found, read_capacity) = self
            .query_items(changes_range(owner, true), start, limit as usize)
            .await?;
        let items = found
            .into_iter()
            .map(|item| ChangeItem::decode(item, owner))
            .collect::<Result<_, _>>()?;
        Ok(ChangeBatch {
            items,
            read_capacity,
        })
    }

    async fn latest_change(&self, owner: &Caller) -> Result<Option<Sequence>, ApiError> {
        let (found, _) = self
            .query_items(changes_range(owner, false), None, 1)
            .await?;
        found
            .into_iter()
            .next()
            .map(|item| ChangeItem::decode(item, owner).map(|e| e.sequence))
            .transpose()
    }
}

/// The caller's changes on the table (read consistently), in stream order
/// or backwards.
fn changes_range(owner: &Caller, forward: bool) -> Range<'static> {
    Range {
        index: None,
        pk: (PK, owner_pk(owner)),
        sk: (SK, CHANGE_PREFIX),
        forward,
    }
}
