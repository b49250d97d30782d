//! `POST /tasks/events/tickets`: a ticket that lets a browser's native
//! `EventSource` (which cannot send a bearer token or any other header)
//! follow the caller's live feed.

use chrono::{DateTime, Utc};
use lambda_http::Request;
use lambda_http::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::{DynamoDbAccess, LeadingKey};
use crate::adapters::dynamo::table::TICKET_KEY_PK;
use crate::domain::task::rfc3339;
use crate::domain::ticket::Ticket;
use crate::http::identity::{TICKET_LIFETIME_SECONDS, caller};
use crate::http::response;
use crate::http::schemas::{ServiceUnavailable, Unauthorized};
use crate::ports::{StoreError, TicketStore};
use crate::runtime::{App, HandlerResult};

/// The DynamoDB actions [`handle`] calls, which its function's policy in
/// `template.yaml` grants: reading the ticket key (`GetItem`), once per
/// instance, and storing it the very first time (`PutItem`,
/// `TicketStore::ticket_key`), on the key's item only. Issuing a ticket
/// stores nothing.
pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess::NONE.confined(
    &["dynamodb:GetItem", "dynamodb:PutItem"],
    &[LeadingKey::Exact(TICKET_KEY_PK)],
);

/// The body of `POST /tasks/events/tickets`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedTicket {
    /// Opens the caller's feed, and nothing else, until `expires_at`.
    #[schema(example = "q3Vx0c2T9yqvXj0h5b9Zr0y2N0l1m8Ws3gQ7fJ4pKcE")]
    pub ticket: String,
    /// The feed's URL with the ticket in its query: hand it to
    /// `new EventSource(url)`. Deployed, the feed function's own URL.
    #[schema(example = "/tasks/events?ticket=q3Vx0c2T9yqvXj0h5b9Zr0y2N0l1m8Ws3gQ7fJ4pKcE")]
    pub url: String,
    /// When the ticket stops opening the feed (and ends a stream it opened).
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
}

/// Get a ticket for the live feed
///
/// For browsers: `EventSource` cannot send an `Authorization` header, so
/// it cannot follow `GET /tasks/events` with a token. This answers a
/// ticket and the feed's URL with it; `new EventSource(url)` then follows
/// the caller's changes, reconnects included, until the ticket expires
/// (10 minutes). A ticket opens nothing but the caller's feed; a bearer
/// token never goes in a URL. An expired or forged ticket is a 401.
#[utoipa::path(
    post, path = "/tasks/events/tickets", operation_id = "create_ticket", tag = "tasks",
    responses(
        (status = 201, description = "A ticket for the caller's feed.", body = FeedTicket),
        (status = 401, response = Unauthorized),
        (status = 503, response = ServiceUnavailable),
    ),
)]
pub async fn handle<S: TicketStore>(app: &App<S>, req: Request) -> HandlerResult {
    let owner = caller(&req)?;
    // Whole seconds: what the ticket carries.
    let expires_at = DateTime::from_timestamp(Utc::now().timestamp() + TICKET_LIFETIME_SECONDS, 0)
        .unwrap_or_else(Utc::now);
    let key = app.tickets.get(&app.store).await?;
    let ticket = key
        .seal(&Ticket { owner, expires_at })
        .map_err(|e| StoreError::internal("sealing a ticket", e))?;
    let body = FeedTicket {
        url: format!("{}?ticket={ticket}", app.config.events_url),
        ticket,
        expires_at,
    };
    Ok(response::json(StatusCode::CREATED, &body))
}
