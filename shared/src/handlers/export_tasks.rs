//! `GET /tasks/export`: every task of the caller, streamed page by page.

use bytes::Bytes;
use futures::Stream;
use lambda_http::Request;
use lambda_http::http::header;
use uuid::Uuid;

use super::DynamoDbAccess;
use crate::domain::caller::Caller;
use crate::domain::task::format_time;
use crate::domain::task::{FIELDS, ListQuery, Task};
use crate::http::error::ApiError;
use crate::http::identity::caller;
use crate::http::request::{Format, export_format};
use crate::http::schemas::{ExportParams, ServiceUnavailable, Unauthorized, ValidationFailed};
use crate::http::streaming;
use crate::ports::{RateLimiter, StoredPage, TaskStore};
use crate::runtime::{App, StreamedResult};
use serde_json::Value;

/// The DynamoDB actions [`handle`] calls (`DynamoStore::list`, page after
/// page, after one conditional `UpdateItem` of the caller's export count,
/// [`super::within_share`]), which its function's policy in
/// `template.yaml` grants: `Query` and `UpdateItem` on the table.
pub const DYNAMODB: DynamoDbAccess =
    DynamoDbAccess::table(&["dynamodb:Query", "dynamodb:UpdateItem"]);

/// Tasks read (and held) at a time: the function's memory holds one page
/// and its encoding, whatever the caller's total.
pub const EXPORT_PAGE: u32 = 100;

/// How each [`Format`] is sent.
impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    fn disposition(self) -> &'static str {
        match self {
            Format::Ndjson => "attachment; filename=\"tasks.ndjson\"",
            Format::Csv => "attachment; filename=\"tasks.csv\"",
        }
    }

    /// One page of tasks, encoded (with the CSV header row first when
    /// `first`).
    fn encode(self, tasks: &[Task], first: bool) -> Result<Bytes, ApiError> {
        let failed = |e: csv::Error| ApiError::internal(e);
        match self {
            Format::Ndjson => {
                let mut out = Vec::with_capacity(tasks.len() * 256);
                for task in tasks {
                    serde_json::to_writer(&mut out, task).map_err(ApiError::internal)?;
                    out.push(b'\n');
                }
                Ok(Bytes::from(out))
            }
            Format::Csv => {
                let mut writer = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(Vec::with_capacity(tasks.len() * 256));
                if first {
                    writer.write_record(csv_columns()).map_err(failed)?;
                }
                for task in tasks {
                    writer.write_record(csv_row(task)?).map_err(failed)?;
                }
                writer
                    .into_inner()
                    .map(Bytes::from)
                    .map_err(|e| ApiError::internal(e.to_string()))
            }
        }
    }
}

/// A caller's text as a CSV cell that no spreadsheet runs as a formula
/// (OWASP's CSV injection advice): a value starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return gets a leading `'`. NDJSON carries
/// values unchanged.
pub fn csv_cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// The CSV header row: [`Task`]'s fields as a response shows them, in
/// order (`id`, the declared fields, the times).
pub fn csv_columns() -> Vec<&'static str> {
    let mut columns = vec!["id"];
    columns.extend(FIELDS.iter().map(|field| field.name));
    columns.extend(["created_at", "updated_at"]);
    columns
}

/// A task as a CSV row, in [`csv_columns`]' order: text as its cell
/// ([`csv_cell`]), booleans `true`/`false`, numbers as JSON writes them.
fn csv_row(task: &Task) -> Result<Vec<String>, ApiError> {
    let Value::Object(mut fields) = serde_json::to_value(task).map_err(ApiError::internal)? else {
        return Err(ApiError::internal("a task is not a JSON object"));
    };
    let cell = |value: Option<Value>| match value {
        Some(Value::String(text)) => csv_cell(&text).into_owned(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let mut row = vec![task.id.hyphenated().to_string()];
    row.extend(FIELDS.iter().map(|field| cell(fields.remove(field.name))));
    row.extend([format_time(&task.created_at), format_time(&task.updated_at)]);
    Ok(row)
}

/// Export tasks
///
/// Every task of the caller, oldest first, as NDJSON (one JSON task per
/// line, the default) or CSV (`?format=csv`, with a header row). The body
/// is streamed as the tasks are read, a page at a time, so an export of any
/// size starts at once and costs the function the same memory.
///
/// Deployed, this route is served through the export function's own URL
/// (a Lambda Function URL in `RESPONSE_STREAM` mode; API Gateway HTTP APIs
/// buffer responses): call it with the same `Authorization: Bearer <JWT>`,
/// which the function checks itself. A failure after the first bytes ends
/// the transfer abnormally rather than with a truncated but well-formed
/// body.
#[utoipa::path(
    get, path = "/tasks/export", operation_id = "export_tasks", tag = "tasks",
    params(ExportParams),
    responses(
        (status = 200, description = "All of the caller's tasks, streamed.",
            content(
                (String = "application/x-ndjson", example = json!("{\"id\":\"0193f1d2-7c4e-7a3b-9c1d-2e3f4a5b6c7d\",\"title\":\"Write the README\",\"description\":\"\",\"done\":false,\"created_at\":\"2026-11-25T09:00:00.000000Z\",\"updated_at\":\"2026-11-25T09:00:00.000000Z\"}\n")),
                (String = "text/csv; charset=utf-8", example = json!("id,title,description,done,created_at,updated_at\n0193f1d2-7c4e-7a3b-9c1d-2e3f4a5b6c7d,Write the README,,false,2026-11-25T09:00:00.000000Z,2026-11-25T09:00:00.000000Z\n")),
            )),
        (status = 401, response = Unauthorized),
        (status = 422, response = ValidationFailed),
        (status = 429, response = crate::http::schemas::TooManyExports),
        (status = 503, response = ServiceUnavailable),
    ),
)]
pub async fn handle<S: TaskStore + RateLimiter + 'static>(
    app: &'static App<S>,
    req: Request,
) -> StreamedResult {
    let owner = caller(&req)?;
    super::within_share(app, &owner, super::Share::Exports).await?;
    let format = export_format(&req)?;
    // The first page is read before the head is sent, so a DynamoDB that
    // is down now is a clean 503, not a broken 200.
    let first = app.store.list(&owner, &page_after(None)).await?;
    streaming::ok(
        &[
            (header::CONTENT_TYPE, format.content_type()),
            (header::CONTENT_DISPOSITION, format.disposition()),
        ],
        streaming::from_stream(pages(app, owner, first, format)),
    )
}

fn page_after(after: Option<Uuid>) -> ListQuery {
    ListQuery {
        limit: EXPORT_PAGE,
        done: None,
        after,
    }
}

/// Where the export stands between two chunks.
enum Next {
    /// The first page, already read.
    First(StoredPage),
    /// The page after this task, still to read.
    After(Uuid),
}

/// The encoded pages, one chunk each, the next page read only when the
/// previous chunk has been taken (the stream is pulled by the client).
fn pages<S: TaskStore + 'static>(
    app: &'static App<S>,
    owner: Caller,
    first: StoredPage,
    format: Format,
) -> impl Stream<Item = Result<Bytes, ApiError>> + Send + 'static {
    futures::stream::try_unfold(Some(Next::First(first)), move |next| {
        let owner = owner.clone();
        async move {
            let (page, is_first) = match next {
                None => return Ok(None),
                Some(Next::First(page)) => (page, true),
                Some(Next::After(after)) => (
                    app.store.list(&owner, &page_after(Some(after))).await?,
                    false,
                ),
            };
            let chunk = format.encode(&page.items, is_first)?;
            Ok(Some((chunk, page.next_after.map(Next::After))))
        }
    })
}
