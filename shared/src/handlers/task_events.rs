//! `GET /tasks/events`: the caller's task changes, live, as Server-Sent
//! Events ([`crate::http::sse`]).

use futures::StreamExt;
use lambda_http::Request;
use lambda_http::http::{HeaderName, header};

use super::DynamoDbAccess;
use crate::http::headers::ACCEL_BUFFERING;
use crate::http::identity::identified;
use crate::http::request::feed_start;
use crate::http::schemas::{
    EventsParams, LastEventIdHeader, ServiceUnavailable, Unauthorized, ValidationFailed,
};
use crate::http::sse;
use crate::http::streaming;
use crate::ports::AuditStore;
use crate::runtime::{App, StreamedResult};

/// The DynamoDB actions [`handle`] calls (`AuditStore::latest_change` and
/// `changes`, consistent Queries of the caller's changes), which its
/// function's policy in `template.yaml` grants: `Query` on the table.
pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess::table(&["dynamodb:Query"]);

/// Follow task changes
///
/// A live feed of the caller's task changes as Server-Sent Events
/// (`EventSource`): one frame per change, in order, with
/// `id: <change id>`, `event: task.created | task.updated | task.deleted`
/// and `data:` the change as JSON (the task after it, `null` after a
/// delete, and the fields that changed, from what to what). Only the
/// caller's own changes, ever.
///
/// Without `Last-Event-ID` (or `since`) the feed starts now. With it, it
/// sends every later change exactly once, including those made while the
/// client was away. Each stream lasts a few minutes and then ends with a
/// `retry:` field, and `EventSource` reconnects with its last id; an idle
/// stream gets a `: keep-alive` comment every 15 s.
///
/// Deployed, this route is served through its function's own URL (a
/// Lambda Function URL in `RESPONSE_STREAM` mode), with the same
/// `Authorization: Bearer <JWT>`, as `GET /tasks/export`.
#[utoipa::path(
    get, path = "/tasks/events", operation_id = "task_events", tag = "tasks",
    params(EventsParams, LastEventIdHeader),
    responses(
        (status = 200, description = "The change feed, streamed as it happens.",
            content(
                (String = "text/event-stream", example = json!("id: 111300000000017845912208\nevent: task.updated\ndata: {\"id\":\"111300000000017845912208\",\"task_id\":\"0193f1d2-7c4e-7a3b-9c1d-2e3f4a5b6c7d\",\"action\":\"updated\",\"at\":\"2026-11-25T09:05:00.000000Z\",\"version\":2,\"changes\":[{\"field\":\"done\",\"from\":false,\"to\":true}],\"task\":{\"id\":\"0193f1d2-7c4e-7a3b-9c1d-2e3f4a5b6c7d\",\"title\":\"Write the README\",\"description\":\"\",\"done\":true,\"created_at\":\"2026-11-25T09:00:00.000000Z\",\"updated_at\":\"2026-11-25T09:05:00.000000Z\"}}\n\n: keep-alive\n\n")),
            )),
        (status = 401, response = Unauthorized),
        (status = 422, response = ValidationFailed),
        (status = 503, response = ServiceUnavailable),
    ),
)]
pub async fn handle<S: AuditStore + 'static>(app: &'static App<S>, req: Request) -> StreamedResult {
    let identified = identified(&req)?;
    let owner = identified.caller;
    // A stream never outlives the token that opened it.
    let mut settings = app.config.feed;
    if let Some(expires_at) = identified.expires_at {
        let left = (expires_at - chrono::Utc::now())
            .to_std()
            .unwrap_or_default();
        settings.lifetime = settings.lifetime.min(left);
    }
    let after = match feed_start(&req)? {
        Some(after) => Some(after),
        // Now: after the newest change there is.
        None => app.store.latest_change(&owner).await?,
    };
    let frames = sse::changes(&app.store, owner, after, settings);
    streaming::ok(
        &[
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            // Proxies that buffer (nginx) must not hold the frames back.
            (HeaderName::from_static(ACCEL_BUFFERING), "no"),
        ],
        streaming::from_stream(frames.map(Ok)),
    )
}
