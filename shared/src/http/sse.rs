//! The live feed of a caller's task changes (`GET /tasks/events`) as
//! Server-Sent Events, read from the changes the audit function stores
//! ([`crate::domain::change`], through [`AuditStore`]).
//!
//! - **Order and resumption.** A frame's `id` is the change id: the stream
//!   sequence number, which grows with every change of the caller's tasks
//!   (they share one partition key, hence one stream shard, whose records
//!   the audit stores in order). A client that reconnects with
//!   `Last-Event-ID` is sent every later change once, and nothing earlier:
//!   the feed is a consistent Query of the changes after that id.
//! - **Serverless shape.** An invocation serves one stream for a bounded
//!   [`FeedSettings::lifetime`], then ends it with a `retry:` hint, and
//!   `EventSource` reconnects with its last id. While nothing happens it
//!   reads once per [`FeedSettings::poll`] (one Query; at most one more per
//!   page of 100 changes when catching up) and sends a `: keep-alive`
//!   comment every [`FeedSettings::heartbeat`]. It holds at most one page
//!   of changes: memory does not grow with the time it runs.
//! - **Faults.** If DynamoDB fails mid-stream, the stream ends as at the
//!   end of its lifetime: the client reconnects from its last id, and
//!   nothing is lost.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::time::Instant;

use super::schemas::ChangeView;
use crate::config::FeedSettings;
use crate::domain::caller::Caller;
use crate::domain::change::{Action, Change, Sequence};
use crate::ports::{AuditStore, Lease, LeaseStore};

/// Changes read per Query.
pub const FEED_PAGE: u32 = 100;

/// The SSE `event` name of a change.
pub fn event_name(action: Action) -> &'static str {
    match action {
        Action::Created => "task.created",
        Action::Updated => "task.updated",
        Action::Deleted => "task.deleted",
    }
}

/// One SSE frame: `id`, `event` and the change as one `data` line (JSON
/// has no raw newline, so one line is always enough).
pub fn frame(change: &Change) -> String {
    let data = serde_json::to_string(&ChangeView::from(change))
        .unwrap_or_else(|_| format!("{{\"id\":\"{}\"}}", change.sequence.id()));
    format!(
        "id: {}\nevent: {}\ndata: {data}\n\n",
        change.sequence.id(),
        event_name(change.action)
    )
}

/// The first block of a stream: the reconnection delay, and the position
/// the stream starts from as an `id` without data. `EventSource` takes the
/// id as its last event id without dispatching anything, so a client whose
/// stream ends before any change reconnects from where it started, not
/// from "now", and misses nothing written in between.
pub fn opening(after: Option<&Sequence>, retry: Duration) -> String {
    let id = after.map_or("0", Sequence::id);
    format!("retry: {}\nid: {id}\n\n", retry.as_millis())
}

/// The comment that keeps an idle connection open.
pub const KEEP_ALIVE: &str = ": keep-alive\n\n";

/// The last frame: when to reconnect. `EventSource` then sends the last
/// id it got (of a change, or the opening one) as `Last-Event-ID`.
pub fn closing(retry: Duration) -> String {
    format!(
        ": stream lifetime reached; reconnect with Last-Event-ID\nretry: {}\n\n",
        retry.as_millis()
    )
}

/// What the feed has read and sent, logged when it ends: the read cost of
/// an open stream.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct FeedCost {
    pub queries: u64,
    pub read_capacity: f64,
    pub frames: u64,
}

struct Feed<S: 'static> {
    store: &'static S,
    owner: Caller,
    /// The stream's place among the caller's; checked at every heartbeat,
    /// the stream ends once a newer stream has taken it.
    lease: Option<Lease>,
    /// When the lease is checked next.
    next_check: Instant,
    settings: FeedSettings,
    /// The last change sent (or the starting point).
    after: Option<Sequence>,
    deadline: Instant,
    /// When the next read may happen.
    next_read: Instant,
    last_sent: Instant,
    pending: VecDeque<Bytes>,
    cost: FeedCost,
    done: bool,
}

/// The frames of the owner's changes after `after`, as they happen, for
/// `settings.lifetime`; then the closing `retry:` frame.
pub fn changes<S: AuditStore + LeaseStore + 'static>(
    store: &'static S,
    owner: Caller,
    after: Option<Sequence>,
    settings: FeedSettings,
    lease: Option<Lease>,
) -> impl Stream<Item = Bytes> + Send + 'static {
    let now = Instant::now();
    let mut pending = VecDeque::new();
    pending.push_back(Bytes::from(opening(after.as_ref(), settings.retry)));
    let feed = Feed {
        store,
        owner,
        lease,
        next_check: now + settings.heartbeat,
        settings,
        after,
        deadline: now + settings.lifetime,
        next_read: now,
        last_sent: now,
        pending,
        cost: FeedCost::default(),
        done: false,
    };
    futures::stream::unfold(feed, |mut feed| async move {
        let chunk = feed.next_chunk().await?;
        Some((chunk, feed))
    })
}

impl<S: AuditStore + LeaseStore + 'static> Feed<S> {
    /// The next chunk to send, waiting for one if need be; `None` once the
    /// closing frame has been sent.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                self.last_sent = Instant::now();
                return Some(chunk);
            }
            if self.done {
                return None;
            }
            let now = Instant::now();
            if now >= self.deadline {
                return Some(self.close("lifetime reached"));
            }
            if now >= self.next_check {
                self.next_check = now + self.settings.heartbeat;
                if let Some(lease) = &self.lease {
                    match self.store.holds(lease).await {
                        Ok(true) => {}
                        Ok(false) => return Some(self.close("replaced by a newer stream")),
                        // A read that failed says nothing of the place:
                        // keep streaming, check again at the next beat.
                        Err(error) => tracing::warn!(%error, "feed lease check failed"),
                    }
                }
            }
            if now < self.next_read {
                let heartbeat_due = self.last_sent + self.settings.heartbeat;
                let wake = self
                    .next_read
                    .min(heartbeat_due)
                    .min(self.next_check)
                    .min(self.deadline);
                tokio::time::sleep_until(wake).await;
                let now = Instant::now();
                if now >= heartbeat_due && now < self.deadline {
                    self.pending
                        .push_back(Bytes::from_static(KEEP_ALIVE.as_bytes()));
                }
                continue;
            }
            let read = self
                .store
                .changes(&self.owner, self.after.as_ref(), FEED_PAGE)
                .await;
            self.cost.queries += 1;
            let batch = match read {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, "change feed read failed; ending the stream");
                    return Some(self.close("read failed"));
                }
            };
            self.cost.read_capacity += batch.read_capacity;
            // A full page: more may be waiting, read on at once.
            let full = batch.items.len() >= FEED_PAGE as usize;
            self.next_read = if full { now } else { now + self.settings.poll };
            if let Some(last) = batch.items.last() {
                self.after = Some(last.sequence.clone());
                let frames: String = batch.items.iter().map(frame).collect();
                self.cost.frames += batch.items.len() as u64;
                self.pending.push_back(Bytes::from(frames));
            }
        }
    }

    fn close(&mut self, why: &str) -> Bytes {
        self.done = true;
        tracing::info!(
            why,
            queries = self.cost.queries,
            read_capacity = self.cost.read_capacity,
            frames = self.cost.frames,
            "change feed closed"
        );
        Bytes::from(closing(self.settings.retry))
    }
}
