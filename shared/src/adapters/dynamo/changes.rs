//! The DynamoDB [`AuditStore`]: changes at `pk = USER#<sub>`,
//! `sk = CHANGE#<sequence>`, and in `GSI1` at `HISTORY#<sub>#<task id>` /
//! `CHANGE#<sequence>` (see [`super::table`]).

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use uuid::Uuid;

use super::errors::classify;
use super::expressions::string;
use super::items::ChangeItem;
use super::query::Range;
use super::table::{
    CHANGE_PREFIX, GSI1, GSI1_PK, GSI1_SK, PK, SK, change_sk, history_pk, owner_pk,
};
use super::{DynamoStore, Item};
use crate::domain::caller::Caller;
use crate::domain::change::{Change, Sequence};
use crate::ports::page;
use crate::ports::{AuditStore, ChangeBatch, HistoryPage, HistoryQuery, Recorded, StoreError};

impl AuditStore for DynamoStore {
    async fn record(&self, change: &Change) -> Result<Recorded, StoreError> {
        let item: Item = serde_dynamo::to_item(ChangeItem::new(change, self.change_retention))
            .map_err(|e| StoreError::internal("encoding a change", e))?;
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
                _ => Err(classify("PutItem", error)),
            },
        }
    }

    async fn history(
        &self,
        owner: &Caller,
        task_id: Uuid,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, StoreError> {
        // Backwards from the newest (or from before the cursor).
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
        let (found, _) = self
            .query_items(range, start, page::lookahead(query.limit))
            .await?;
        let read = found
            .into_iter()
            .map(|item| ChangeItem::decode(item, owner))
            .collect::<Result<Vec<_>, _>>()?;
        let (items, next_before) = page::cut(read, query.limit, |change| change.sequence.clone());
        Ok(HistoryPage { items, next_before })
    }

    async fn changes(
        &self,
        owner: &Caller,
        after: Option<&Sequence>,
        limit: u32,
    ) -> Result<ChangeBatch, StoreError> {
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

    async fn latest_change(&self, owner: &Caller) -> Result<Option<Sequence>, StoreError> {
        let (found, _) = self
            .query_items(changes_range(owner, false), None, 1)
            .await?;
        found
            .into_iter()
            .next()
            .map(|item| ChangeItem::decode(item, owner).map(|change| change.sequence))
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
