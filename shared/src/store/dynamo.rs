//! The DynamoDB [`TaskStore`]: one table (see [`super::table`]), items
//! (de)serialised with `serde_dynamo`, every write a single conditional
//! operation so concurrent writers and `If-Match` are decided by DynamoDB.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::table::{GSI1, GSI1_PK, GSI1_SK, PK, SK, TASK_PREFIX, done_pk, owner_pk, task_sk};
use super::{Precondition, StoredPage, TaskStore};
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

/// A task as stored: the task's fields plus its keys and version.
#[derive(Debug, Serialize, Deserialize)]
struct TaskItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    id: Uuid,
    title: String,
    description: String,
    done: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: u64,
}

impl TaskItem {
    fn new(owner: &Caller, task: &Task, version: u64) -> Self {
        TaskItem {
            pk: owner_pk(owner),
            sk: task_sk(task.id),
            gsi1pk: done_pk(owner, task.done),
            gsi1sk: task_sk(task.id),
            id: task.id,
            title: task.title.clone(),
            description: task.description.clone(),
            done: task.done,
            created_at: task.created_at,
            updated_at: task.updated_at,
            version,
        }
    }

    fn into_versioned(self) -> VersionedTask {
        VersionedTask {
            version: self.version,
            task: Task {
                id: self.id,
                title: self.title,
                description: self.description,
                done: self.done,
                created_at: self.created_at,
                updated_at: self.updated_at,
            },
        }
    }
}

type Item = HashMap<String, AttributeValue>;

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

impl TaskStore for DynamoStore {
    async fn create(&self, owner: &Caller, task: Task) -> Result<VersionedTask, ApiError> {
        let item: Item = serde_dynamo::to_item(TaskItem::new(owner, &task, 1))
            .map_err(|e| ApiError::Internal(format!("encoding task: {e}")))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(format!("attribute_not_exists({PK})"))
            .send()
            .await
            .map_err(classify)?;
        Ok(VersionedTask { task, version: 1 })
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
        let mut start: Option<Item> = query.after.map(|after| {
            let mut key = key(owner, after);
            if let Some(done) = query.done {
                key.insert(GSI1_PK.to_owned(), string(done_pk(owner, done)));
                key.insert(GSI1_SK.to_owned(), string(task_sk(after)));
            }
            key
        });
        let wanted = query.limit as usize + 1;
        let mut items = Vec::with_capacity(wanted);
        loop {
            let remaining = i32::try_from(wanted - items.len()).unwrap_or(i32::MAX);
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                .consistent_read(index.is_none())
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", pk_name)
                .expression_attribute_names("#sk", sk_name)
                .expression_attribute_values(":pk", string(pk_value.clone()))
                .expression_attribute_values(":prefix", string(TASK_PREFIX))
                .set_exclusive_start_key(start.take())
                .limit(remaining)
                .send()
                .await
                .map_err(classify)?;
            for item in output.items.unwrap_or_default() {
                items.push(decode(item)?.task);
            }
            // A short page with a LastEvaluatedKey hit the 1 MB limit: go on.
            match output.last_evaluated_key {
                Some(last) if items.len() < wanted => start = Some(last),
                _ => break,
            }
        }
        let more = items.len() > query.limit as usize;
        items.truncate(query.limit as usize);
        let next_after = if more {
            items.last().map(|t| t.id)
        } else {
            None
        };
        Ok(StoredPage { items, next_after })
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
        let (condition, values) = existing_condition(precondition);
        let mut request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(owner, id)))
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if !values.is_empty() {
            request = request
                .expression_attribute_names("#version", "version")
                .set_expression_attribute_values(Some(values));
        }
        request.send().await.map_err(|e| match e.as_service_error() {
            Some(aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(c)) => {
                condition_failed(c.item())
            }
            _ => classify(e),
        })?;
        Ok(())
    }
}
