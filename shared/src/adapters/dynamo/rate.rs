//! The [`RateLimiter`] in the table: one counter item per caller, quota and
//! window (`RATE#<quota>#<window start>` in the caller's partition, layout:
//! [`super::table`]), counted by one conditional `UpdateItem`. The item
//! carries `expires_at` (the window's end), so DynamoDB's TTL deletes old
//! windows; a new window is a new key, so a late deletion never matters.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::errors::classify;
use super::expressions::string;
use super::table::{PK, RATE_COUNT_ATTRIBUTE, SK, TTL_ATTRIBUTE, owner_pk, rate_sk};
use super::{DynamoStore, Item};
use crate::domain::caller::Caller;
use crate::ports::{Quota, RateLimiter, StoreError};

impl RateLimiter for DynamoStore {
    async fn admit(
        &self,
        owner: &Caller,
        quota: &Quota,
        now: DateTime<Utc>,
    ) -> Result<Result<(), DateTime<Utc>>, StoreError> {
        let (start, end) = quota.window(now);
        let key = Item::from([
            (PK.to_owned(), string(owner_pk(owner))),
            (
                SK.to_owned(),
                string(rate_sk(quota.name, start.timestamp())),
            ),
        ]);
        let counted = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression("ADD #n :one SET #expires = :expires")
            .condition_expression("attribute_not_exists(#n) OR #n < :limit")
            .expression_attribute_names("#n", RATE_COUNT_ATTRIBUTE)
            .expression_attribute_names("#expires", TTL_ATTRIBUTE)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(quota.limit.to_string()))
            .expression_attribute_values(":expires", AttributeValue::N(end.timestamp().to_string()))
            .send()
            .await;
        match counted {
            Ok(_) => Ok(Ok(())),
            // The window is full: nothing was counted.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(Err(end))
            }
            Err(error) => Err(classify("UpdateItem", error)),
        }
    }
}
