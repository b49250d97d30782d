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
use crate::ports::{Lease, LeaseStore, MIN_LEASE_AGE, StoreError, Ticket, TicketStore};

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
    /// Milliseconds since the epoch when the place was taken (0 for a
    /// lease written before the field: the oldest).
    #[serde(default)]
    acquired_at: i64,
    expires_at: i64,
}

impl LeaseItem {
    fn of(lease: &Lease, slot: u32) -> Self {
        LeaseItem {
            pk: owner_pk(&lease.owner),
            sk: lease_sk(slot),
            lease: lease.id,
            acquired_at: lease.acquired_at.timestamp_millis(),
            expires_at: lease.expires_at.timestamp(),
        }
    }
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
        // The places held, by whom and since when: a new stream takes the
        // oldest one's place when none is free.
        let mut held: Vec<(u32, LeaseItem)> = Vec::new();
        for slot in 0..max {
            // A place is free when nobody holds it or its lease has expired.
            let free = format!("attribute_not_exists({PK}) OR #expires <= :now");
            let names = [("#expires", TTL_ATTRIBUTE)];
            let values = [(":now", AttributeValue::N(now.timestamp().to_string()))];
            match self.put_lease(lease, slot, &free, &names, &values).await? {
                None => {
                    return Ok(Ok(Lease {
                        slot,
                        ..lease.clone()
                    }));
                }
                Some(item) => held.push((slot, item)),
            }
        }
        let Some((slot, oldest)) = held.into_iter().min_by_key(|(_, item)| item.acquired_at) else {
            return Ok(Err(now + MIN_LEASE_AGE));
        };
        let taken = DateTime::from_timestamp_millis(oldest.acquired_at).unwrap_or(now);
        if now - taken < MIN_LEASE_AGE {
            return Ok(Err(taken + MIN_LEASE_AGE));
        }
        // Only that holder's place: a stream that took it meanwhile keeps it.
        let names = [("#lease", "lease")];
        let values = [(":held", string(oldest.lease.to_string()))];
        match self
            .put_lease(lease, slot, "#lease = :held", &names, &values)
            .await?
        {
            None => Ok(Ok(Lease {
                slot,
                ..lease.clone()
            })),
            Some(_) => Ok(Err(now + MIN_LEASE_AGE)),
        }
    }

    async fn holds(&self, lease: &Lease) -> Result<bool, StoreError> {
        let key = Item::from([
            (PK.to_owned(), string(owner_pk(&lease.owner))),
            (SK.to_owned(), string(lease_sk(lease.slot))),
        ]);
        let Some(item) = self.read(key).await? else {
            return Ok(false);
        };
        let stored: LeaseItem = serde_dynamo::from_item(item)
            .map_err(|e| StoreError::internal("malformed lease item", e))?;
        Ok(stored.lease == lease.id)
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

impl DynamoStore {
    /// Writes `lease` into place `slot` if `condition` holds: `None` once
    /// written, else the lease item that holds the place.
    async fn put_lease(
        &self,
        lease: &Lease,
        slot: u32,
        condition: &str,
        names: &[(&str, &str)],
        values: &[(&str, AttributeValue)],
    ) -> Result<Option<LeaseItem>, StoreError> {
        let item: Item = serde_dynamo::to_item(LeaseItem::of(lease, slot))
            .map_err(|e| StoreError::internal("encoding a lease", e))?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (placeholder, name) in names {
            put = put.expression_attribute_names(*placeholder, *name);
        }
        for (placeholder, value) in values {
            put = put.expression_attribute_values(*placeholder, value.clone());
        }
        match put.send().await {
            Ok(_) => Ok(None),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(held)) => {
                    let item = held.item().cloned().unwrap_or_default();
                    // Freed meanwhile (no item): held by nobody, so not ours either.
                    let held: LeaseItem = serde_dynamo::from_item(item).unwrap_or(LeaseItem {
                        pk: String::new(),
                        sk: String::new(),
                        lease: Uuid::nil(),
                        acquired_at: i64::MAX,
                        expires_at: 0,
                    });
                    Ok(Some(held))
                }
                _ => Err(classify("PutItem", error)),
            },
        }
    }
}
