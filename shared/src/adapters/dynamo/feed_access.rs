//! The live feed's ticket key and stream leases in the table (layout:
//! [`super::table`]). Leases carry `expires_at`, so DynamoDB's TTL clears
//! them; expiry is also checked on every read, since TTL deletion lags.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::errors::classify;
use super::expressions::string;
use super::table::{PK, SK, TICKET_KEY_PK, TICKET_KEY_SK, TTL_ATTRIBUTE, feed_pk, lease_sk};
use super::{DynamoStore, Item};
use crate::domain::ticket::{KEY_LEN, TicketKey};
use crate::ports::{Lease, LeaseStore, MIN_LEASE_AGE, StoreError, TicketStore};

/// The ticket key's item: the key's bytes, base64.
#[derive(Debug, Serialize, Deserialize)]
struct TicketKeyItem {
    pk: String,
    sk: String,
    key: String,
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
            pk: feed_pk(&lease.owner),
            sk: lease_sk(slot),
            lease: lease.id,
            acquired_at: lease.acquired_at.timestamp_millis(),
            expires_at: lease.expires_at.timestamp(),
        }
    }
}

impl TicketStore for DynamoStore {
    async fn ticket_key(&self) -> Result<[u8; KEY_LEN], StoreError> {
        let key = || {
            Item::from([
                (PK.to_owned(), string(TICKET_KEY_PK)),
                (SK.to_owned(), string(TICKET_KEY_SK)),
            ])
        };
        if let Some(item) = self.read(key()).await? {
            return decode_key(item);
        }
        // None yet: store one, unless another instance just did.
        let item: Item = serde_dynamo::to_item(TicketKeyItem {
            pk: TICKET_KEY_PK.to_owned(),
            sk: TICKET_KEY_SK.to_owned(),
            key: STANDARD.encode(
                TicketKey::random_bytes().map_err(|e| StoreError::internal("a ticket key", e))?,
            ),
        })
        .map_err(|e| StoreError::internal("encoding the ticket key", e))?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(format!("attribute_not_exists({PK})"))
            .send()
            .await;
        match put {
            Ok(_) => {}
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
            Err(error) => return Err(classify("PutItem", error)),
        }
        // Read back what is stored: ours, or the one that won the race.
        let item = self
            .read(key())
            .await?
            .ok_or_else(|| StoreError::internal_because("the ticket key vanished"))?;
        decode_key(item)
    }
}

fn decode_key(item: Item) -> Result<[u8; KEY_LEN], StoreError> {
    let stored: TicketKeyItem = serde_dynamo::from_item(item)
        .map_err(|e| StoreError::internal("malformed ticket key item", e))?;
    STANDARD
        .decode(stored.key)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| StoreError::internal_because("a ticket key that is not 32 bytes"))
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
            (PK.to_owned(), string(feed_pk(&lease.owner))),
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
            (PK.to_owned(), string(feed_pk(&lease.owner))),
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
