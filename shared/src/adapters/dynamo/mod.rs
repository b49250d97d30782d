//! The DynamoDB stores: one table ([`table`]), items (de)serialised with
//! `serde_dynamo` ([`items`]), every write a single conditional operation
//! so that concurrent writers and `If-Match` are decided by DynamoDB.
//!
//! - [`client`]: the SDK client (TLS, timeouts, retries).
//! - [`table`]: the key layout and the table definition.
//! - [`items`]: how tasks, idempotency keys and changes are stored.
//! - [`expressions`]: keys, conditions and update expressions.
//! - [`errors`]: SDK failures as [`crate::ports::StoreError`]s.
//! - [`retry`]: transactions retried on conflicts.
//! - [`query`]: reading a key range, page by page.
//! - [`tasks`]: the [`crate::ports::TaskStore`].
//! - [`changes`]: the [`crate::ports::AuditStore`].
//! - [`feed_access`]: the [`crate::ports::TicketStore`] and
//!   [`crate::ports::LeaseStore`] of the live feed.
//! - [`rate`]: the [`crate::ports::RateLimiter`] of each caller's fair share.

pub mod changes;
pub mod client;
pub mod errors;
pub mod expressions;
pub mod feed_access;
pub mod items;
pub mod query;
pub mod rate;
pub mod retry;
pub mod table;
pub mod tasks;

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

pub use client::client;

/// An item as the SDK sends and receives it.
pub type Item = HashMap<String, AttributeValue>;

/// Both stores on one table, sharing the client.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// How long a change is kept before DynamoDB's TTL may delete it.
    change_retention: chrono::Duration,
}

impl DynamoStore {
    /// Changes are kept [`DEFAULT_CHANGE_RETENTION_DAYS`] unless
    /// [`Self::with_change_retention`] says otherwise.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            change_retention: chrono::Duration::days(i64::from(
                crate::config::DEFAULT_CHANGE_RETENTION_DAYS,
            )),
        }
    }

    /// Changes expire (DynamoDB's TTL deletes them) `days` after they
    /// happened.
    pub fn with_change_retention(mut self, days: u32) -> Self {
        self.change_retention = chrono::Duration::days(i64::from(days));
        self
    }
}
