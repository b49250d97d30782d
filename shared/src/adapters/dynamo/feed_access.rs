//! The live feed's tickets and stream leases in the table (layout:
//! [`super::table`]). Both carry `expires_at`, so DynamoDB's TTL clears
//! them; expiry is also checked on every read, since TTL deletion lags.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::errors::classify;
use super::expressions::string;
use super::table::{PK, SK, TICKET_SK, TTL_ATTRIBUTE, lease_sk, owner_pk, ticket_pk};
use super::{DynamoStore, Item};
use crate::domain::caller::Caller;
use crate::ports::{Lease, LeaseStore, StoreError, Ticket, TicketStore};

#[derive(Debug, Serialize, Deserialize)]
struct TicketItem {
    pk: String,
    sk: String,
    owner: String,
    expires_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct LeaseItem {
    pk: String,
    sk: String,
    lease: Uuid,
    expires_at: i64,
}

impl TicketStore for DynamoStore {
    async fn issue(&self, hash: &str, ticket: &Ticket) -> Result<(), StoreError> {
        let item: Item = serde_dynamo::to_item(TicketItem {
            pk: ticket_pk(hash),
            sk: TICKET_SK.to_owned(),
            owner: ticket.owner.id().to_owned(),
            expires_at: ticket.expires_at.timestamp(),
        })
        .map_err(|e| StoreError::internal("encoding a ticket", e))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| classify("PutItem", e))?;
        Ok(())
    }

    async fn redeem(&self, hash: &str, now: DateTime<Utc>) -> Result<Option<Ticket>, StoreError> {
        let key = Item::from([
            (PK.to_owned(), string(ticket_pk(hash))),
            (SK.to_owned(), string(TICKET_SK)),
        ]);
        let Some(item) = self.read(key).await? else {
            return Ok(None);
        };
        let stored: TicketItem = serde_dynamo::from_item(item)
            .map_err(|e| StoreError::internal("malformed ticket item", e))?;
        let expires_at = DateTime::from_timestamp(stored.expires_at, 0)
            .ok_or_else(|| StoreError::internal_because("ticket expiry out of range"))?;
        Ok(Caller::new(stored.owner)
            .filter(|_| expires_at > now)
            .map(|owner| Ticket { owner, expires_at }))
    }
}

impl LeaseStore for DynamoStore {
    async fn acquire(
        &self,
        lease: &Lease,
        max: u32,
        now: DateTime<Utc>,
    ) -> Result<Result<Lease, DateTime<Utc>>, StoreError> {
        let mut first_free: Option<DateTime<Utc>> = None;
        for slot in 0..max {
            let item: Item = serde_dynamo::to_item(LeaseItem {
                pk: owner_pk(&lease.owner),
                sk: lease_sk(slot),
                lease: lease.id,
                expires_at: lease.expires_at.timestamp(),
            })
            .map_err(|e| StoreError::internal("encoding a lease", e))?;
            // A place is free when nobody holds it or its lease has expired.
            let written = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(format!("attribute_not_exists({PK}) OR #expires <= :now"))
                .expression_attribute_names("#expires", TTL_ATTRIBUTE)
                .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match written {
                Ok(_) => {
                    return Ok(Ok(Lease {
                        slot,
                        ..lease.clone()
                    }));
                }
                Err(error) => match error.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(held)) => {
                        let expires = held
                            .item()
                            .and_then(|item| item.get(TTL_ATTRIBUTE))
                            .and_then(|value| value.as_n().ok())
                            .and_then(|n| n.parse::<i64>().ok())
                            .and_then(|secs| DateTime::from_timestamp(secs, 0))
                            .unwrap_or(lease.expires_at);
                        first_free = Some(first_free.map_or(expires, |t| t.min(expires)));
                    }
                    _ => return Err(classify("PutItem", error)),
                },
            }
        }
        Ok(Err(first_free.unwrap_or(lease.expires_at)))
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let key = Item::from([
            (PK.to_owned(), string(owner_pk(&lease.owner))),
            (SK.to_owned(), string(lease_sk(lease.slot))),
        ]);
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression("#lease = :lease")
            .expression_attribute_names("#lease", "lease")
            .expression_attribute_values(":lease", string(lease.id.to_string()))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            // Taken over after it expired: not ours to free any more.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(error) => Err(classify("DeleteItem", error)),
        }
    }
}
