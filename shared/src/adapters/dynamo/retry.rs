//! The one retry loop of the stores: transactions that collide with
//! another in flight on the same items (`TransactionConflict`) are tried
//! again, with backoff, before the client gets a 503. (Throttling and
//! network errors are the SDK's own retries, see [`super::client`].)

use std::future::Future;
use std::time::Duration;

use uuid::Uuid;

use crate::ports::StoreError;

/// Attempts after the first.
pub const CONFLICT_RETRIES: u32 = 6;

/// Runs `attempt` until it answers `Some`, at most `1 + CONFLICT_RETRIES`
/// times, backing off in between; `None` asks for another try. An error
/// ends it at once.
pub async fn on_conflict<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, StoreError>>,
{
    for n in 0..=CONFLICT_RETRIES {
        if let Some(done) = attempt().await? {
            return Ok(done);
        }
        if n < CONFLICT_RETRIES {
            tokio::time::sleep(backoff(n)).await;
        }
    }
    Err(StoreError::unavailable_because(
        "transaction conflicts persisted",
    ))
}

/// 10, 20, 40 ms... plus up to 10 ms of jitter from a UUIDv7's random bits.
fn backoff(attempt: u32) -> Duration {
    let jitter = (Uuid::now_v7().as_u128() % 10) as u64;
    Duration::from_millis((10u64 << attempt.min(6)) + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_last_retry() {
        let mut tries = 0;
        let result: Result<(), _> = on_conflict(|| {
            tries += 1;
            async { Ok(None) }
        })
        .await;
        assert!(matches!(result, Err(StoreError::Unavailable { .. })));
        assert_eq!(tries, 1 + CONFLICT_RETRIES);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_at_the_first_answer_or_error() {
        let mut tries = 0;
        let result = on_conflict(|| {
            tries += 1;
            let answer = (tries == 3).then_some(tries);
            async move { Ok(answer) }
        })
        .await;
        assert_eq!(result.ok(), Some(3));
        let failed: Result<(), _> =
            on_conflict(|| async { Err(StoreError::PreconditionFailed) }).await;
        assert!(matches!(failed, Err(StoreError::PreconditionFailed)));
    }
}
