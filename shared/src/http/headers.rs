//! The header names the API reads and writes beyond the standard ones
//! (`lambda_http::http::header`), declared once.

/// The header that names the caller in local header mode.
pub const USER_HEADER: &str = "x-user-id";
/// The timing header of the seed's middleware (seconds).
pub const PROCESS_TIME_HEADER: &str = "x-process-time";
/// Makes a create safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// What `EventSource` sends when it reconnects.
pub const LAST_EVENT_ID: &str = "last-event-id";
/// Tells proxies (nginx and alike) not to buffer a stream.
pub const ACCEL_BUFFERING: &str = "x-accel-buffering";
