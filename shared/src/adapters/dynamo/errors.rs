//! SDK failures as [`StoreError`]s. Throttling, 5xx, timeouts and
//! unreachable endpoints are retryable (`Unavailable`: a 503 at the edge);
//! anything else is a bug or a misconfiguration (`Internal`: a 500). The
//! SDK's error is kept whole as the source, so the log line of a 5xx shows
//! the entire chain; clients never see it.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::CancellationReason;

use super::Item;
use crate::ports::StoreError;

/// The error codes DynamoDB answers when it sheds load.
const THROTTLING_CODES: [&str; 3] = [
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
];

/// Maps an SDK failure that no operation-specific rule explained.
pub fn classify<E, R>(operation: &'static str, error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let retryable = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => service.err().code().is_some_and(|code| {
            THROTTLING_CODES.contains(&code)
                || matches!(
                    code,
                    "InternalServerError" | "ServiceUnavailable" | "LimitExceededException"
                )
        }),
        _ => false,
    };
    if retryable {
        StoreError::unavailable(operation, error)
    } else {
        StoreError::internal(operation, error)
    }
}

/// A request the SDK would not build (a bug in an expression builder).
pub fn build_error(error: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::internal("building a DynamoDB request", error)
}

/// A failed condition on an existing task means no task (404) or a stale
/// `If-Match` (412): DynamoDB returns the old item exactly when it exists.
pub fn condition_failed(old_item: Option<&Item>) -> StoreError {
    match old_item {
        Some(_) => StoreError::PreconditionFailed,
        None => StoreError::TaskNotFound,
    }
}

pub type TransactError =
    SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>;

/// How a cancelled transaction's items fared (`None` when the error is not
/// a cancellation).
pub fn cancellation_reasons(error: &TransactError) -> Option<&[CancellationReason]> {
    match error.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(cancelled) => {
            Some(cancelled.cancellation_reasons())
        }
        _ => None,
    }
}

/// The cancellation code of the transaction's `index`-th item.
pub fn code(reasons: &[CancellationReason], index: usize) -> Option<&str> {
    reasons.get(index).and_then(CancellationReason::code)
}

pub const CONDITION_FAILED: &str = "ConditionalCheckFailed";
pub const CONFLICT: &str = "TransactionConflict";
/// Per-item throttling codes of a cancelled transaction.
const ITEM_THROTTLED: [&str; 3] = [
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "RequestLimitExceeded",
];

/// A cancelled transaction that no item-specific rule explained: `Ok` when
/// it only collided with another one in flight (retry it), else the error.
pub fn conflict_or_fail(reasons: &[CancellationReason]) -> Result<(), StoreError> {
    let any = |wanted: &[&str]| {
        reasons
            .iter()
            .filter_map(CancellationReason::code)
            .any(|c| wanted.contains(&c))
    };
    if any(&ITEM_THROTTLED) {
        return Err(StoreError::unavailable_because(format!(
            "transaction throttled: {reasons:?}"
        )));
    }
    if any(&[CONFLICT]) {
        return Ok(());
    }
    Err(StoreError::internal_because(format!(
        "transaction cancelled: {reasons:?}"
    )))
}
