//! `POST /tasks/events/tickets`: a ticket that lets a browser's native
//! `EventSource` (which cannot send a bearer token or any other header)
//! follow the caller's live feed.

use chrono::{DateTime, Utc};
use lambda_http::Request;
use lambda_http::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::DynamoDbAccess;
use crate::domain::task::rfc3339;
use crate::http::identity::{TICKET_LIFETIME_SECONDS, caller, new_ticket, ticket_hash};
use crate::http::response;
use crate::http::schemas::{ServiceUnavailable, Unauthorized};
use crate::ports::{Ticket, TicketStore};
use crate::runtime::{App, HandlerResult};

/// The DynamoDB action [`handle`] calls (`TicketStore::issue`), which its
/// function's policy in `template.yaml` grants: `PutItem` on the table.
pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess::table(&["dynamodb:PutItem"]);

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
    let ticket = new_ticket();
    let expires_at = Utc::now() + chrono::Duration::seconds(TICKET_LIFETIME_SECONDS);
    app.store
        .issue(&ticket_hash(&ticket), &Ticket { owner, expires_at })
        .await?;
    let body = FeedTicket {
        url: format!("{}?ticket={ticket}", app.config.events_url),
        ticket,
        expires_at,
    };
    Ok(response::json(StatusCode::CREATED, &body))
}
