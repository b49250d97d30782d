//! The single table's layout, declared once. `template.yaml` declares the
//! same table for AWS (`shared/tests/it/route_table.rs` and
//! `shared/tests/it/deployment.rs` check the two agree: keys, indexes, TTL,
//! stream), and the local stack creates its table from [`create_table`].
//!
//! | item       | pk            | sk           | gsi1pk                 | gsi1sk       |
//! |------------|---------------|--------------|------------------------|--------------|
//! | task       | `USER#<sub>`  | `TASK#<id>`  | `OPEN#<sub>` / `DONE#<sub>` | `TASK#<id>` |
//! | task count | `USER#<sub>`  | `COUNT`      |                        |              |
//! | idempotency key | `USER#<sub>` | `IDEMPOTENCY#<key>` |                |              |
//! | change | `USER#<sub>` | `CHANGE#<sequence>` | `HISTORY#<sub>#<task id>` | `CHANGE#<sequence>` |
//! | feed stream lease | `FEED#<sub>` | `SLOT#<slot>` |                  |              |
//! | feed ticket key | `KEY#feed-tickets` | `KEY`         |                |              |
//! | fair-share counter | `USER#<sub>` | `RATE#<quota>#<window start>` |  |              |
//!
//! The owner is in every partition key but the ticket key's, so a caller
//! can only ever query its own items. The feed's leases have a partition
//! of their own (`FEED#`) and the key that seals feed tickets one item
//! ([`TICKET_KEY_PK`]): the two functions of the feed may write those and
//! nothing else, which IAM can check (`dynamodb:LeadingKeys` conditions on
//! the partition key; `shared::handlers::DynamoDbAccess::confined`). Task ids are UUIDv7, so sort-key order is creation order.
//! `GSI1` partitions a caller's tasks by `done`: a filtered page is a Query
//! of exactly the matching tasks, costing the page and never the caller's
//! total. The caller's task count and idempotency keys live in the same
//! partition and are written in one transaction with the task, so
//! `MAX_TASKS` and duplicate suppression hold under concurrency. Keys expire
//! through DynamoDB's TTL on [`TTL_ATTRIBUTE`].
//!
//! Changes ([`crate::domain::change`]) are keyed by the stream record that
//! made them (its sequence number, zero-padded to 40 digits), so a record
//! delivered twice is one change. All of a caller's items share
//! one partition key, hence one stream shard, whose records come in write
//! order: the caller's `CHANGE#` items are its change feed, in order, read
//! consistently from the table (`GET /tasks/events`). Their `GSI1` keys
//! group them by task: one task's history is a Query of
//! `HISTORY#<sub>#<task id>`, newest first when read backwards. A listing's
//! `begins_with(sk, "TASK#")` and the `OPEN#`/`DONE#` partitions never
//! reach them. They outlive the task, until the retention period ends
//! (`CHANGE_RETENTION_DAYS`, default 90): DynamoDB's TTL then deletes them.
//!
//! A fair-share counter ([`crate::ports::RateLimiter`]) counts one caller's
//! writes (or export opens) in one fixed window (its start in epoch
//! seconds); it expires at the window's end. Listings and exports
//! (`begins_with(sk, "TASK#")`), the feed (`CHANGE#`) and the audit's
//! stream filter (`TASK#` keys only) never reach it.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use uuid::Uuid;

use crate::domain::caller::Caller;
use crate::domain::change::Sequence;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1: &str = "GSI1";
pub const GSI1_PK: &str = "gsi1pk";
pub const GSI1_SK: &str = "gsi1sk";

/// `(name, key type)` of the table's key, then of each index's key, as in
/// `template.yaml`. All key attributes are strings.
pub const TABLE_KEY: [(&str, &str); 2] = [(PK, "HASH"), (SK, "RANGE")];
pub const INDEXES: [(&str, [(&str, &str); 2]); 1] =
    [(GSI1, [(GSI1_PK, "HASH"), (GSI1_SK, "RANGE")])];

/// Prefix of every partition key: the owner's id follows.
pub const OWNER_PREFIX: &str = "USER#";

pub fn owner_pk(owner: &Caller) -> String {
    format!("{OWNER_PREFIX}{}", owner.id())
}

pub const TASK_PREFIX: &str = "TASK#";

/// Sort key of the caller's task counter item.
pub const COUNT_SK: &str = "COUNT";
/// The counter's attribute.
pub const COUNT_ATTRIBUTE: &str = "task_count";

/// Epoch seconds after which DynamoDB may delete an item (idempotency keys,
/// changes past their retention, feed leases, fair-share counters).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// The table's change stream: every change with the item before and after,
/// what the audit function reads.
pub const STREAM_VIEW_TYPE: &str = "NEW_AND_OLD_IMAGES";

pub fn idempotency_sk(key: &str) -> String {
    format!("IDEMPOTENCY#{key}")
}

pub fn task_sk(id: Uuid) -> String {
    format!("{TASK_PREFIX}{}", id.hyphenated())
}

/// Prefix of the partition of a caller's feed stream places (the owner's
/// id follows): apart from the caller's tasks, so a policy can confine the
/// feed function's writes to it.
pub const FEED_PREFIX: &str = "FEED#";

/// Partition key of the caller's feed stream places.
pub fn feed_pk(owner: &Caller) -> String {
    format!("{FEED_PREFIX}{}", owner.id())
}

/// Sort key of one of the caller's feed stream places.
pub fn lease_sk(slot: u32) -> String {
    format!("SLOT#{slot}")
}

/// The key of the item holding the key feed tickets are sealed with
/// ([`crate::domain::ticket`]): one per table.
pub const TICKET_KEY_PK: &str = "KEY#feed-tickets";
pub const TICKET_KEY_SK: &str = "KEY";

/// Sort key of a caller's counter of `quota` in the window starting at
/// `window_start` (epoch seconds).
pub fn rate_sk(quota: &str, window_start: i64) -> String {
    format!("RATE#{quota}#{window_start}")
}

/// A fair-share counter's count.
pub const RATE_COUNT_ATTRIBUTE: &str = "n";

/// Sort-key prefix of the caller's changes.
pub const CHANGE_PREFIX: &str = "CHANGE#";

/// Sort key (and `GSI1` sort key) of the change a stream record made.
pub fn change_sk(sequence: &Sequence) -> String {
    format!("{CHANGE_PREFIX}{}", sequence.as_str())
}

/// The `GSI1` partition of one task's changes.
pub fn history_pk(owner: &Caller, task: Uuid) -> String {
    format!("HISTORY#{}#{}", owner.id(), task.hyphenated())
}

/// The done-partition of a caller's tasks in `GSI1`.
pub fn done_pk(owner: &Caller, done: bool) -> String {
    let state = if done { "DONE" } else { "OPEN" };
    format!("{state}#{}", owner.id())
}

fn key_element(
    name: &str,
    key_type: &str,
) -> Result<KeySchemaElement, aws_sdk_dynamodb::error::BuildError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(KeyType::from(key_type))
        .build()
}

/// Creates the table (on-demand, with `GSI1`, TTL on [`TTL_ATTRIBUTE`], a
/// [`STREAM_VIEW_TYPE`] stream) unless it exists. Used by the local stack
/// and the storage tests; on AWS the template creates it (with, in
/// addition, point-in-time recovery and KMS encryption, which a local
/// emulator has no use for).
pub async fn create_table(client: &Client, name: &str) -> Result<(), String> {
    let exists = client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .is_ok();
    if exists {
        return Ok(());
    }
    let err = |e: &dyn std::fmt::Display| format!("creating table {name}: {e}");
    let mut attributes = Vec::new();
    for (attr, _) in TABLE_KEY
        .iter()
        .chain(INDEXES.iter().flat_map(|(_, keys)| keys.iter()))
    {
        attributes.push(
            AttributeDefinition::builder()
                .attribute_name(*attr)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| err(&e))?,
        );
    }
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attributes))
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(STREAM_VIEW_TYPE))
                .build()
                .map_err(|e| err(&e))?,
        );
    for (attr, key_type) in TABLE_KEY {
        request = request.key_schema(key_element(attr, key_type).map_err(|e| err(&e))?);
    }
    for (index, keys) in INDEXES {
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(index)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            );
        for (attr, key_type) in keys {
            gsi = gsi.key_schema(key_element(attr, key_type).map_err(|e| err(&e))?);
        }
        request = request.global_secondary_indexes(gsi.build().map_err(|e| err(&e))?);
    }
    request
        .send()
        .await
        .map_err(|e| err(&aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .map_err(|e| err(&e))?,
        )
        .send()
        .await
        .map_err(|e| err(&aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
    Ok(())
}
