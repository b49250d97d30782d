//! The DynamoDB [`TaskStore`]: one table (see [`super::table`]), items
//! (de)serialised with `serde_dynamo`, every write a single conditional
//! operation so concurrent writers and `If-Match` are decided by DynamoDB.

use std::collections::HashMap;

/// The audit trail's entries ([`crate::audit::AuditStore`]).
mod audit;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Delete, Put, ReturnConsumedCapacity, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update as UpdateAction,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::table::{
    COUNT_ATTRIBUTE, COUNT_SK, GSI1, GSI1_PK, GSI1_SK, PK, SK, TASK_PREFIX, TTL_ATTRIBUTE, done_pk,
    idempotency_sk, owner_pk, task_sk,
};
use super::{
    CreateRules, IDEMPOTENCY_TTL_SECONDS, Idempotency, Precondition, StoredPage, TaskStore,
};
use crate::config::AwsSettings;
use crate::error::ApiError;
use crate::identity::Caller;
use crate::model::{ListQuery, Task, TaskCreate, TaskPatch, VersionedTask};

/// The SDK client, built once per cold start from checked settings. Retries:
/// the SDK's standard mode (3 attempts, exponential backoff with jitter,
/// throttling-aware token bucket); each attempt and the whole call are
/// bounded, because the SDK has no timeout by default and a hung endpoint
/// would otherwise hold the invocation until Lambda kills it.
pub fn client(settings: &AwsSettings) -> Client {
    let credentials = Credentials::new(
        &settings.access_key_id,
        &settings.secret_access_key,
        settings.session_token.clone(),
        None,
        "environment",
    );
    let mut config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http_client())
        .region(Region::new(settings.region.clone()))
        .credentials_provider(credentials)
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(settings.attempt_timeout)
                .operation_attempt_timeout(settings.attempt_timeout)
                .operation_timeout(settings.operation_timeout)
                .build(),
        );
    if let Some(endpoint) = &settings.endpoint_url {
        config = config.endpoint_url(endpoint);
    }
    Client::from_conf(config.build())
}

/// The root certificates DynamoDB's endpoints chain to (Amazon Trust
/// Services: Amazon Root CA 1-4 and the Starfield Services G2 cross-sign).
/// Cognito's JWKS endpoint chains to them too ([`crate::token`]).
pub(crate) const AMAZON_TRUST_SERVICES: &[u8] =
    include_bytes!("../../certs/amazon-trust-services.pem");

/// The SDK's own rustls client, trusting only Amazon's roots. The default
/// one reads and parses the whole system trust store (~150 files) while the
/// client is built: measured at 20-35 ms of every cold start, more than
/// everything else in it together.
fn http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_TRUST_SERVICES);
    let builder = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
    match TlsContext::builder().with_trust_store(trust).build() {
        Ok(context) => builder.tls_context(context).build_https(),
        Err(error) => {
            // Not expected (the roots are compiled in); fall back to the
            // system's roots rather than fail the cold start.
            tracing::warn!(%error, "using the system trust store");
            builder.build_https()
        }
    }
}

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }
}

/// A task's own fields as stored: the same in a task item and in the copy
/// an idempotency key keeps of the task it created.
#[derive(Debug, Serialize, Deserialize)]
struct TaskFields {
    id: Uuid,
    title: String,
    description: String,
    done: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<&Task> for TaskFields {
    fn from(task: &Task) -> Self {
        TaskFields {
            id: task.id,
            title: task.title.clone(),
            description: task.description.clone(),
            done: task.done,
            created_at: task.created_at,
            updated_at: task.updated_at,
        }
    }
}

impl From<TaskFields> for Task {
    fn from(fields: TaskFields) -> Self {
        Task {
            id: fields.id,
            title: fields.title,
            description: fields.description,
            done: fields.done,
            created_at: fields.created_at,
            updated_at: fields.updated_at,
        }
    }
}

/// A task as stored: the task's fields plus its keys and version.
#[derive(Debug, Serialize, Deserialize)]
struct TaskItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    version: u64,
    #[serde(flatten)]
    fields: TaskFields,
}

impl TaskItem {
    fn new(owner: &Caller, task: &Task, version: u64) -> Self {
        TaskItem {
            pk: owner_pk(owner),
            sk: task_sk(task.id),
            gsi1pk: done_pk(owner, task.done),
            gsi1sk: task_sk(task.id),
            version,
            fields: task.into(),
        }
    }

    fn into_versioned(self) -> VersionedTask {
        VersionedTask {
            version: self.version,
            task: self.fields.into(),
        }
    }
}

/// An idempotency key: the fingerprint of the first request and a copy of
/// the task it created, replayed to retries. No GSI keys: it never shows
/// in a listing.
#[derive(Debug, Serialize, Deserialize)]
struct IdempotencyItem {
    pk: String,
    sk: String,
    fingerprint: String,
    expires_at: i64,
    #[serde(flatten)]
    task: TaskFields,
}

impl IdempotencyItem {
    fn new(owner: &Caller, idempotency: &Idempotency, task: &Task) -> Self {
        IdempotencyItem {
            pk: owner_pk(owner),
            sk: idempotency_sk(&idempotency.key),
            fingerprint: idempotency.fingerprint.clone(),
            expires_at: task.created_at.timestamp() + IDEMPOTENCY_TTL_SECONDS,
            task: task.into(),
        }
    }

    /// The first result, if this retry carries the same request.
    fn replay(self, idempotency: &Idempotency) -> Result<VersionedTask, ApiError> {
        if self.fingerprint != idempotency.fingerprint {
            return Err(ApiError::IdempotencyKeyReused);
        }
        Ok(VersionedTask {
            version: 1,
            task: self.task.into(),
        })
    }
}

type Item = HashMap<String, AttributeValue>;

/// Transactions that collide with another in flight on the same items
/// (`TransactionConflict`) are retried this many times, with backoff,
/// before the client gets a 503.
const CONFLICT_RETRIES: u32 = 6;

async fn conflict_backoff(attempt: u32) {
    // 10, 20, 40 ms... plus up to 10 ms of jitter from the UUID's random bits.
    let jitter = (Uuid::now_v7().as_u128() % 10) as u64;
    let base = 10u64 << attempt.min(6);
    tokio::time::sleep(std::time::Duration::from_millis(base + jitter)).await;
}

type TransactError =
    SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>;

/// How a cancelled transaction's items fared (`None` when the error is not
/// a cancellation).
fn cancellation_reasons(error: &TransactError) -> Option<&[CancellationReason]> {
    match error.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(cancelled) => {
            Some(cancelled.cancellation_reasons())
        }
        _ => None,
    }
}

fn code(reasons: &[CancellationReason], index: usize) -> Option<&str> {
    reasons.get(index).and_then(CancellationReason::code)
}

fn any_code(reasons: &[CancellationReason], wanted: &[&str]) -> bool {
    reasons
        .iter()
        .filter_map(CancellationReason::code)
        .any(|c| wanted.contains(&c))
}

const CONDITION_FAILED: &str = "ConditionalCheckFailed";
const CONFLICT: &str = "TransactionConflict";
const THROTTLED: [&str; 3] = [
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "RequestLimitExceeded",
];

/// What to do about a cancelled transaction that no item-specific rule
/// explained: back off and retry on conflicts, else give up.
async fn retry_or_fail(reasons: &[CancellationReason], attempt: u32) -> Result<(), ApiError> {
    if any_code(reasons, &THROTTLED) {
        return Err(ApiError::Unavailable(format!(
            "transaction throttled: {reasons:?}"
        )));
    }
    if any_code(reasons, &[CONFLICT]) {
        if attempt < CONFLICT_RETRIES {
            conflict_backoff(attempt).await;
            return Ok(());
        }
        return Err(ApiError::Unavailable(
            "transaction conflicts persisted".into(),
        ));
    }
    Err(ApiError::Internal(format!(
        "transaction cancelled: {reasons:?}"
    )))
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> ApiError {
    ApiError::Internal(format!("building a DynamoDB request: {e}"))
}

fn counter_key(owner: &Caller) -> Item {
    HashMap::from([
        (PK.to_owned(), string(owner_pk(owner))),
        (SK.to_owned(), string(COUNT_SK)),
    ])
}

/// Adds `delta` to the caller's task count; with `max`, only while the
/// count is below it.
fn count_update(
    table: &str,
    owner: &Caller,
    delta: i64,
    max: Option<u32>,
) -> Result<TransactWriteItem, ApiError> {
    let mut update = UpdateAction::builder()
        .table_name(table)
        .set_key(Some(counter_key(owner)))
        .update_expression("ADD #count :delta")
        .expression_attribute_names("#count", COUNT_ATTRIBUTE)
        .expression_attribute_values(":delta", AttributeValue::N(delta.to_string()));
    if let Some(max) = max {
        update = update
            .condition_expression("attribute_not_exists(#count) OR #count < :max")
            .expression_attribute_values(":max", AttributeValue::N(max.to_string()));
    }
    let update = update.build().map_err(build_error)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

fn decode(item: Item) -> Result<VersionedTask, ApiError> {
    serde_dynamo::from_item::<_, TaskItem>(item)
        .map(TaskItem::into_versioned)
        .map_err(|e| ApiError::Internal(format!("malformed task item: {e}")))
}

fn attr<T: Serialize>(value: T) -> Result<AttributeValue, ApiError> {
    serde_dynamo::to_attribute_value(value)
        .map_err(|e| ApiError::Internal(format!("encoding attribute: {e}")))
}

fn string(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn key(owner: &Caller, id: Uuid) -> Item {
    HashMap::from([
        (PK.to_owned(), string(owner_pk(owner))),
        (SK.to_owned(), string(task_sk(id))),
    ])
}

/// Maps an SDK failure that is not a condition failure. Throttling, 5xx,
/// timeouts and unreachable endpoints are retryable (503); anything else is
/// a bug or a misconfiguration (500). The SDK's text only goes to the logs.
fn classify<E, R>(error: SdkError<E, R>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let retryable = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => matches!(
            service.err().code(),
            Some(
                "ThrottlingException"
                    | "ProvisionedThroughputExceededException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "LimitExceededException"
            )
        ),
        _ => false,
    };
    let text = DisplayErrorContext(&error).to_string();
    if retryable {
        ApiError::Unavailable(text)
    } else {
        ApiError::Internal(text)
    }
}

/// A failed condition means no task (404) or a stale `If-Match` (412):
/// DynamoDB returns the old item exactly when the task exists.
fn condition_failed(old_item: Option<&Item>) -> ApiError {
    match old_item {
        Some(_) => ApiError::PreconditionFailed,
        None => ApiError::TaskNotFound,
    }
}

/// The condition of a write to an existing task, and its value
/// placeholders. `#version` must be bound by the caller.
fn existing_condition(precondition: &Precondition) -> (String, Item) {
    let exists = format!("attribute_exists({PK})");
    match precondition {
        Precondition::None | Precondition::Exists => (exists, Item::new()),
        Precondition::Never => (
            format!("{exists} AND #version = :never"),
            HashMap::from([(":never".to_owned(), AttributeValue::N("-1".to_owned()))]),
        ),
        Precondition::VersionIn(versions) => {
            let values: Item = versions
                .iter()
                .enumerate()
                .map(|(i, v)| (format!(":v{i}"), AttributeValue::N(v.to_string())))
                .collect();
            let mut names: Vec<&String> = values.keys().collect();
            names.sort();
            let list = names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            (format!("{exists} AND #version IN ({list})"), values)
        }
    }
}

/// SET clauses of an update, with their names and values.
#[derive(Default)]
struct Update {
    sets: Vec<String>,
    names: HashMap<String, String>,
    values: Item,
}

impl Update {
    fn set(&mut self, field: &str, value: AttributeValue) {
        self.sets.push(format!("#{field} = :{field}"));
        self.names.insert(format!("#{field}"), field.to_owned());
        self.values.insert(format!(":{field}"), value);
    }
}

impl DynamoStore {
    /// One conditional UpdateItem: the stored item changes only if it
    /// exists and satisfies `precondition`; the new item comes back.
    async fn apply(
        &self,
        owner: &Caller,
        id: Uuid,
        mut update: Update,
        now: DateTime<Utc>,
        precondition: &Precondition,
    ) -> Result<VersionedTask, ApiError> {
        update.set("updated_at", attr(now)?);
        let (condition, condition_values) = existing_condition(precondition);
        update.values.extend(condition_values);
        update
            .values
            .insert(":one".to_owned(), AttributeValue::N("1".to_owned()));
        update
            .names
            .insert("#version".to_owned(), "version".to_owned());
        let expression = format!("SET {}, #version = #version + :one", update.sets.join(", "));
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(owner, id)))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c)) => {
                    condition_failed(c.item())
                }
                _ => classify(e),
            })?;
        let item = output
            .attributes
            .ok_or_else(|| ApiError::Internal("UpdateItem returned no attributes".into()))?;
        decode(item)
    }
}

/// The key range of a Query: one partition (of the table or of an index),
/// the sort keys with a prefix, in one direction.
pub(crate) struct Range<'a> {
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
    pub(crate) async fn query_items(
        &self,
        range: Range<'_>,
        mut start: Option<Item>,
        wanted: usize,
    ) -> Result<(Vec<Item>, f64), ApiError> {
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
                .map_err(classify)?;
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

impl TaskStore for DynamoStore {
    async fn create(
        &self,
        owner: &Caller,
        task: Task,
        rules: CreateRules<'_>,
    ) -> Result<VersionedTask, ApiError> {
        // One transaction: count + 1 (below MAX_TASKS), the task, and the
        // idempotency key (new, or expired). All are written or none.
        let task_item: Item = serde_dynamo::to_item(TaskItem::new(owner, &task, 1))
            .map_err(|e| ApiError::Internal(format!("encoding task: {e}")))?;
        let put_task = Put::builder()
            .table_name(&self.table)
            .set_item(Some(task_item))
            .condition_expression(format!("attribute_not_exists({PK})"))
            .build()
            .map_err(build_error)?;
        let mut items = vec![
            count_update(&self.table, owner, 1, Some(rules.max_tasks))?,
            TransactWriteItem::builder().put(put_task).build(),
        ];
        if let Some(idempotency) = rules.idempotency {
            let key_item: Item =
                serde_dynamo::to_item(IdempotencyItem::new(owner, idempotency, &task))
                    .map_err(|e| ApiError::Internal(format!("encoding idempotency key: {e}")))?;
            let now = AttributeValue::N(task.created_at.timestamp().to_string());
            let put_key = Put::builder()
                .table_name(&self.table)
                .set_item(Some(key_item))
                .condition_expression(format!("attribute_not_exists({PK}) OR #expires < :now"))
                .expression_attribute_names("#expires", TTL_ATTRIBUTE)
                .expression_attribute_values(":now", now)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_error)?;
            items.push(TransactWriteItem::builder().put(put_key).build());
        }

        for attempt in 0..=CONFLICT_RETRIES {
            let Some(reasons) = self.transact(&items).await? else {
                return Ok(VersionedTask { task, version: 1 });
            };
            let reasons = reasons.as_slice();
            // A known key wins over the limit: a retry is never a 409.
            if let Some(idempotency) = rules.idempotency
                && code(reasons, 2) == Some(CONDITION_FAILED)
            {
                let returned = reasons.get(2).and_then(CancellationReason::item).cloned();
                match self.idempotency_item(owner, idempotency, returned).await? {
                    Some(first) => return first.replay(idempotency),
                    None => continue, // expired or gone meanwhile: write again
                }
            }
            if code(reasons, 0) == Some(CONDITION_FAILED) {
                return Err(ApiError::TaskLimitReached(rules.max_tasks));
            }
            retry_or_fail(reasons, attempt).await?;
        }
        Err(ApiError::Unavailable(
            "transaction conflicts persisted".into(),
        ))
    }

    async fn get(&self, owner: &Caller, id: Uuid) -> Result<VersionedTask, ApiError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(owner, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        decode(output.item.ok_or(ApiError::TaskNotFound)?)
    }

    async fn list(&self, owner: &Caller, query: &ListQuery) -> Result<StoredPage, ApiError> {
        // One item more than the page tells whether anything is left, so
        // `next_cursor` is null exactly at the end. With a `done` filter the
        // query runs on that done-partition of GSI1: every item read matches,
        // so the cost is the page, whatever else the caller owns.
        let (index, pk_name, pk_value, sk_name) = match query.done {
            None => (None, PK, owner_pk(owner), SK),
            Some(done) => (Some(GSI1), GSI1_PK, done_pk(owner, done), GSI1_SK),
        };
        let start: Option<Item> = query.after.map(|after| {
            let mut key = key(owner, after);
            if let Some(done) = query.done {
                key.insert(GSI1_PK.to_owned(), string(done_pk(owner, done)));
                key.insert(GSI1_SK.to_owned(), string(task_sk(after)));
            }
            key
        });
        let wanted = query.limit as usize + 1;
        let (found, read_capacity) = self
            .query_items(
                Range {
                    index,
                    pk: (pk_name, pk_value),
                    sk: (sk_name, TASK_PREFIX),
                    forward: true,
                },
                start,
                wanted,
            )
            .await?;
        let mut items = Vec::with_capacity(wanted);
        for item in found {
            items.push(decode(item)?.task);
        }
        let more = items.len() > query.limit as usize;
        items.truncate(query.limit as usize);
        let next_after = if more {
            items.last().map(|t| t.id)
        } else {
            None
        };
        metrics::histogram!("list_read_capacity_units").record(read_capacity);
        Ok(StoredPage {
            items,
            next_after,
            read_capacity,
        })
    }

    async fn replace(
        &self,
        owner: &Caller,
        id: Uuid,
        input: TaskCreate,
        now: DateTime<Utc>,
        precondition: &Precondition,
    ) -> Result<VersionedTask, ApiError> {
        let mut update = Update::default();
        update.set("title", string(input.title));
        update.set("description", string(input.description));
        update.set("done", AttributeValue::Bool(input.done));
        update.set(GSI1_PK, string(done_pk(owner, input.done)));
        self.apply(owner, id, update, now, precondition).await
    }

    async fn update(
        &self,
        owner: &Caller,
        id: Uuid,
        patch: TaskPatch,
        now: DateTime<Utc>,
        precondition: &Precondition,
    ) -> Result<VersionedTask, ApiError> {
        let mut update = Update::default();
        if let Some(title) = patch.title {
            update.set("title", string(title));
        }
        if let Some(description) = patch.description {
            update.set("description", string(description));
        }
        if let Some(done) = patch.done {
            update.set("done", AttributeValue::Bool(done));
            update.set(GSI1_PK, string(done_pk(owner, done)));
        }
        self.apply(owner, id, update, now, precondition).await
    }

    async fn delete(
        &self,
        owner: &Caller,
        id: Uuid,
        precondition: &Precondition,
    ) -> Result<(), ApiError> {
        // One transaction: the task goes (if it exists and matches
        // `If-Match`) and the caller's count drops by one.
        let (condition, values) = existing_condition(precondition);
        let mut delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(owner, id)))
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if !values.is_empty() {
            delete = delete
                .expression_attribute_names("#version", "version")
                .set_expression_attribute_values(Some(values));
        }
        let items = vec![
            TransactWriteItem::builder()
                .delete(delete.build().map_err(build_error)?)
                .build(),
            count_update(&self.table, owner, -1, None)?,
        ];
        for attempt in 0..=CONFLICT_RETRIES {
            let Some(reasons) = self.transact(&items).await? else {
                return Ok(());
            };
            let reasons = reasons.as_slice();
            if code(reasons, 0) == Some(CONDITION_FAILED) {
                let old = reasons.first().and_then(CancellationReason::item);
                return Err(condition_failed(old));
            }
            retry_or_fail(reasons, attempt).await?;
        }
        Err(ApiError::Unavailable(
            "transaction conflicts persisted".into(),
        ))
    }
}

impl DynamoStore {
    /// Sends one transaction: `None` once written, or why each item was
    /// cancelled (for the caller to decide: a condition, or a conflict to
    /// retry). Any other failure is classified as usual.
    async fn transact(
        &self,
        items: &[TransactWriteItem],
    ) -> Result<Option<Vec<CancellationReason>>, ApiError> {
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items.to_vec()))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(None),
            Err(error) => match cancellation_reasons(&error) {
                Some(reasons) => Ok(Some(reasons.to_vec())),
                None => Err(classify(error)),
            },
        }
    }

    /// The stored idempotency key: as returned by the cancelled transaction,
    /// else by a consistent read. `None` if it is gone or expired (TTL
    /// deletion lags expiry, so expiry is checked here too).
    async fn idempotency_item(
        &self,
        owner: &Caller,
        idempotency: &Idempotency,
        returned: Option<Item>,
    ) -> Result<Option<IdempotencyItem>, ApiError> {
        let item = match returned {
            Some(item) => Some(item),
            None => {
                let key = HashMap::from([
                    (PK.to_owned(), string(owner_pk(owner))),
                    (SK.to_owned(), string(idempotency_sk(&idempotency.key))),
                ]);
                self.client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(key))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(classify)?
                    .item
            }
        };
        let Some(item) = item else {
            return Ok(None);
        };
        let stored: IdempotencyItem = serde_dynamo::from_item(item)
            .map_err(|e| ApiError::Internal(format!("malformed idempotency item: {e}")))?;
        let live = stored.expires_at > Utc::now().timestamp();
        Ok(live.then_some(stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_trust_store_loads() {
        let pem = std::str::from_utf8(AMAZON_TRUST_SERVICES).expect("PEM is text");
        assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 5);
        let trust = aws_smithy_http_client::tls::TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(AMAZON_TRUST_SERVICES);
        let context = aws_smithy_http_client::tls::TlsContext::builder()
            .with_trust_store(trust)
            .build();
        assert!(context.is_ok(), "{context:?}");
    }
}
