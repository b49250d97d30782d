//! `GET /tasks/events`: the caller's task changes, live, as Server-Sent
//! Events ([`crate::http::sse`]).

use futures::StreamExt;
use lambda_http::Request;
use lambda_http::http::{HeaderName, header};

use super::{DynamoDbAccess, LeadingKey};
use crate::adapters::dynamo::table::{FEED_PREFIX, TICKET_KEY_PK};
use crate::http::headers::ACCEL_BUFFERING;
use crate::http::identity::identified;
use crate::http::request::feed_start;
use crate::http::schemas::{
    EventsParams, FeedUnauthorized, LastEventIdHeader, ServiceUnavailable, TooManyStreams,
    ValidationFailed,
};
use crate::http::sse;
use crate::http::streaming;
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use crate::domain::ticket::Sealed;
use crate::http::error::ApiError;
use crate::http::request::feed_ticket;
use crate::ports::{AuditStore, Lease, LeaseStore, TicketStore};
use crate::runtime::{App, StreamedResult};

/// The DynamoDB actions [`handle`] calls, which its function's policy in
/// `template.yaml` grants on the table: `Query` (`AuditStore::latest_change`
/// and `changes`, consistent Queries of the caller's changes) and `GetItem`
/// (the ticket key, once per instance; whether a lease still holds its
/// place); writes only to the feed's own items: `PutItem` and `DeleteItem`
/// on the leases (`FEED#<sub>`), `PutItem` on the ticket key's item (the
/// very first ticket ever checked may find none, and stores one).
pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess::table(&["dynamodb:Query", "dynamodb:GetItem"])
    .confined(
        &["dynamodb:PutItem", "dynamodb:DeleteItem"],
        &[
            LeadingKey::Prefix(FEED_PREFIX),
            LeadingKey::Exact(TICKET_KEY_PK),
        ],
    );

/// A lease outlives its stream by this much, so a stream that ends on
/// time always still holds its place.
const LEASE_MARGIN: Duration = Duration::from_secs(15);

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
        (status = 401, response = FeedUnauthorized),
        (status = 422, response = ValidationFailed),
        (status = 429, response = TooManyStreams),
        (status = 503, response = ServiceUnavailable),
    ),
)]
pub async fn handle<S>(app: &'static App<S>, req: Request) -> StreamedResult
where
    S: AuditStore + TicketStore + LeaseStore + 'static,
{
    // A ticket (a browser's EventSource) or the caller as identified.
    let (owner, expires_at) = match feed_ticket(&req) {
        Some(ticket) => {
            // Junk and expired tickets cost nothing: refused unread.
            let sealed = Sealed::parse(&ticket, Utc::now()).ok_or(ApiError::InvalidTicket)?;
            let key = app.tickets.get(&app.store).await?;
            let found = key.open(sealed).ok_or(ApiError::InvalidTicket)?;
            (found.owner, Some(found.expires_at))
        }
        None => {
            let identified = identified(&req)?;
            (identified.caller, identified.expires_at)
        }
    };
    let start = feed_start(&req)?;
    // A stream never outlives the token or ticket that opened it.
    let mut settings = app.config.feed;
    if let Some(expires_at) = expires_at {
        let left = (expires_at - Utc::now()).to_std().unwrap_or_default();
        settings.lifetime = settings.lifetime.min(left);
    }
    let after = match start {
        Some(after) => Some(after),
        // Now: after the newest change there is.
        None => app.store.latest_change(&owner).await?,
    };
    let lease = hold_a_place(app, &owner, settings.lifetime).await?;
    let frames = sse::changes(&app.store, owner, after, settings, lease.lease.clone());
    streaming::ok(
        &[
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            // Proxies that buffer (nginx) must not hold the frames back.
            (HeaderName::from_static(ACCEL_BUFFERING), "no"),
        ],
        // The lease goes with the stream: freed when it ends or is dropped.
        streaming::from_stream(frames.map(move |chunk| {
            let _held = &lease;
            Ok(chunk)
        })),
    )
}

/// One of the caller's `MAX_FEED_STREAMS_PER_CALLER` places, for a stream
/// of `lifetime`: a free one, or the oldest stream's (which then ends at
/// its next heartbeat); 429 with `Retry-After` only when the oldest was
/// opened less than `MIN_LEASE_AGE` ago (streams opened far faster than a
/// person reloads a page).
async fn hold_a_place<S: LeaseStore + 'static>(
    app: &'static App<S>,
    owner: &crate::domain::caller::Caller,
    lifetime: Duration,
) -> Result<LeaseGuard<S>, ApiError> {
    let now = Utc::now();
    let wanted = Lease {
        owner: owner.clone(),
        slot: 0,
        id: Uuid::new_v4(),
        acquired_at: now,
        expires_at: now + chrono::Duration::from_std(lifetime + LEASE_MARGIN).unwrap_or_default(),
    };
    let max = app.config.max_feed_streams;
    match app.store.acquire(&wanted, max, now).await? {
        Ok(lease) => Ok(LeaseGuard {
            store: &app.store,
            lease: Some(lease),
        }),
        Err(first_free) => Err(ApiError::TooManyStreams {
            max,
            retry_after: (first_free - now).num_seconds().max(1) as u64,
        }),
    }
}

/// Gives a stream's place back when the stream is dropped (ended, or its
/// client gone). The release runs on the runtime after the response; if
/// the instance is frozen first, the lease simply expires.
struct LeaseGuard<S: LeaseStore + 'static> {
    store: &'static S,
    lease: Option<Lease>,
}

impl<S: LeaseStore + 'static> Drop for LeaseGuard<S> {
    fn drop(&mut self) {
        let (Some(lease), Ok(runtime)) = (self.lease.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let store = self.store;
        runtime.spawn(async move {
            if let Err(error) = store.release(&lease).await {
                tracing::warn!(%error, "feed lease not released; it expires on its own");
            }
        });
    }
}
