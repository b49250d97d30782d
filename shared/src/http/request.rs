//! Reading a request the way FastAPI does: the JSON body, the `task_id` path
//! parameter, the list query, `If-Match`. Each reader returns every failure
//! it finds as pydantic-shaped [`FieldError`]s; handlers combine them with
//! [`super::validation::zip`] so one 422 lists body, path and query together.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::http::header;
use lambda_http::{Body, Request, RequestExt};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::ApiError;
use super::headers::{IDEMPOTENCY_KEY, LAST_EVENT_ID};
use super::routes;
use super::validation::{FieldError, Validated, loc, parse_bool_str, parse_int_str, zip};
use crate::domain::change::Sequence;
use crate::domain::task::{DEFAULT_LIMIT, ListQuery, MAX_LIMIT};
use crate::ports::{HistoryQuery, Precondition};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The body as a JSON object, or the single failure FastAPI reports for it.
/// Bodies over [`MAX_BODY_BYTES`] are a 413, before any parsing.
///
/// A JSON body that is not UTF-8 is a 400, as in FastAPI. Malformed JSON is
/// an `Err` too (a 422 on its own): FastAPI raises
/// `json_invalid` while reading the body, before it validates path and
/// query, so no other failure is listed with it. The other body failures
/// are `Ok(Err(..))`, to be listed with the path's and the query's.
pub fn json_object(req: &Request) -> Result<Validated<Map<String, Value>>, ApiError> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        #[allow(unreachable_patterns)]
        _ => &[],
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    if bytes.is_empty() {
        return Ok(Err(vec![FieldError::missing(loc(&["body"]), Value::Null)]));
    }
    if !is_json_content_type(req) {
        let raw = String::from_utf8_lossy(bytes).into_owned();
        return Ok(Err(vec![FieldError::model_attributes_type(Value::String(
            raw,
        ))]));
    }
    // FastAPI decodes a JSON body as UTF-8 before parsing it, and answers a
    // body it cannot decode with a 400 rather than a validation error.
    if std::str::from_utf8(bytes).is_err() {
        return Err(ApiError::UnreadableBody);
    }
    Ok(match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(vec![FieldError::model_attributes_type(other)]),
        Err(e) => return Err(ApiError::Validation(vec![json_error(bytes, &e)])),
    })
}

/// FastAPI parses the body as JSON when the content type is absent,
/// `application/json` or `application/*+json`.
fn is_json_content_type(req: &Request) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.split_once('/') {
        Some(("application", sub)) => sub == "json" || sub.ends_with("+json"),
        _ => mime.is_empty(),
    }
}

/// `json_invalid` at the character offset Python's `json` would report:
/// the offending character, or the end of the input when it ended early.
fn json_error(bytes: &[u8], error: &serde_json::Error) -> FieldError {
    let text = String::from_utf8_lossy(bytes);
    let offset = if error.is_eof() {
        text.chars().count()
    } else {
        // serde_json counts 1-based lines and 1-based byte columns.
        let line_start: usize = text
            .split_inclusive('\n')
            .take(error.line().saturating_sub(1))
            .map(str::len)
            .sum();
        let byte = (line_start + error.column().saturating_sub(1)).min(text.len());
        text.char_indices().take_while(|(i, _)| *i < byte).count()
    };
    let message = error.to_string();
    let reason = message.split(" at line ").next().unwrap_or(&message);
    FieldError::json_invalid(offset, reason)
}

/// The `Idempotency-Key` header of `POST /tasks`: optional, 1..=255
/// visible ASCII characters (what fits a DynamoDB sort key with room to
/// spare, and what clients send: UUIDs, hashes).
pub fn idempotency_key(req: &Request) -> Validated<Option<String>> {
    const MAX: u64 = 255;
    let at = loc(&["header", "idempotency-key"]);
    let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let Ok(key) = value.to_str() else {
        let raw = String::from_utf8_lossy(value.as_bytes()).into_owned();
        return Err(vec![FieldError::value_error(
            at,
            &raw,
            "invalid idempotency key",
        )]);
    };
    let length = key.chars().count() as u64;
    if length == 0 {
        return Err(vec![FieldError::string_too_short(at, Value::from(key), 1)]);
    }
    if length > MAX {
        return Err(vec![FieldError::string_too_long(at, Value::from(key), MAX)]);
    }
    Ok(Some(key.to_owned()))
}

/// The `task_id` path parameter as a UUID (any form the `uuid` crate
/// accepts: hyphenated, simple, braced, URN, any case).
///
/// `Uuid::parse_str`, not `try_parse`: same parser, but only `parse_str`
/// says what is wrong (`invalid length: found 3`), as pydantic-core does
/// with it; `try_parse` only says `failed to parse a UUID`.
pub fn task_id(req: &Request) -> Validated<Uuid> {
    let at = loc(&["path", "task_id"]);
    let Some(raw) = path_param(req, "task_id") else {
        return Err(vec![FieldError::missing(at, Value::Null)]);
    };
    Uuid::parse_str(&raw).map_err(|e| vec![FieldError::uuid_parsing(at, &raw, &e)])
}

/// A path parameter: the event's, else the one API Gateway would have
/// filled from the route table ([`routes::path_parameter`]). A router
/// that matched the request on another pattern of the same path, as
/// `cargo lambda watch` does with `PUT /tasks/events` (its static
/// `/tasks/events` route sends PUT to `replace_task`, with no parameter),
/// still gets `task_id = "events"`, as API Gateway and FastAPI give it.
fn path_param(req: &Request, name: &str) -> Option<String> {
    if let Some(value) = req.path_parameters().first(name) {
        return Some(value.to_owned());
    }
    routes::path_parameter(req.method().as_str(), req.uri().path(), name)
}

/// Path parameters as text, in the order of `names` (what a route added
/// by `make route` answers with): each one the event lacks is a `missing`
/// failure at `["path", name]`, all of them listed.
pub fn path_strings<const N: usize>(req: &Request, names: [&str; N]) -> Validated<[String; N]> {
    let mut missing = Vec::new();
    let values = names.map(|name| match path_param(req, name) {
        Some(value) => value,
        None => {
            missing.push(FieldError::missing(loc(&["path", name]), Value::Null));
            String::new()
        }
    });
    if missing.is_empty() {
        Ok(values)
    } else {
        Err(missing)
    }
}

/// The last value of a query parameter: as in Starlette, the last of
/// repeated parameters wins; unknown parameters are ignored.
fn last_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref()
        .and_then(|query| query.all(name))
        .and_then(|values| values.last().copied())
        .map(str::to_owned)
}

/// `limit`: [`DEFAULT_LIMIT`] when absent, 1..=[`MAX_LIMIT`].
fn limit_param(req: &Request) -> Validated<u32> {
    match last_param(req, "limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => parse_limit(&raw).map_err(|e| vec![e]),
    }
}

/// The documented form of a string parameter, checked as pydantic checks
/// `Query(min_length=..., max_length=..., pattern=...)`: the length (in
/// characters) first, then the pattern. The pattern's text is what the
/// document states; `matches` is the same rule in code (the tests check
/// that they agree).
pub struct StringRule {
    pub min_length: u64,
    pub max_length: u64,
    pub pattern: &'static str,
    pub matches: fn(&str) -> bool,
}

impl StringRule {
    pub fn check(&self, at: Vec<Value>, raw: &str) -> Result<(), FieldError> {
        let length = raw.chars().count() as u64;
        if length < self.min_length {
            return Err(FieldError::string_too_short(
                at,
                Value::from(raw),
                self.min_length,
            ));
        }
        if length > self.max_length {
            return Err(FieldError::string_too_long(
                at,
                Value::from(raw),
                self.max_length,
            ));
        }
        if !(self.matches)(raw) {
            return Err(FieldError::string_pattern_mismatch(at, raw, self.pattern));
        }
        Ok(())
    }
}

/// `cursor` of `GET /tasks`: base64url (no padding) of 17 bytes, the
/// version byte then a task id: 23 characters, the first two fixed by the
/// version, the last one carrying 4 bits (the decoder refuses other
/// trailing bits). Every string of this form decodes.
pub const LIST_CURSOR: StringRule = StringRule {
    min_length: 23,
    max_length: 23,
    pattern: "^A[Q-Za-f][A-Za-z0-9_-]{20}[AEIMQUYcgkosw048]$",
    matches: |raw| decode_cursor(raw).is_some(),
};

/// `cursor` of `GET /tasks/{task_id}/history`: `h` and a change id (1 to
/// 40 digits). Every string of this form decodes.
pub const HISTORY_CURSOR: StringRule = StringRule {
    min_length: 2,
    max_length: 41,
    pattern: "^h[0-9]{1,40}$",
    matches: |raw| decode_history_cursor(raw).is_some(),
};

/// A change id (`since`, `Last-Event-ID` of `GET /tasks/events`).
pub const CHANGE_ID: StringRule = StringRule {
    min_length: 1,
    max_length: 40,
    pattern: "^[0-9]{1,40}$",
    matches: |raw| Sequence::parse(raw).is_some(),
};

/// `cursor`, checked against its documented `rule` and decoded by
/// `decode`.
fn cursor_param<T>(
    req: &Request,
    rule: &StringRule,
    decode: impl Fn(&str) -> Option<T>,
) -> Validated<Option<T>> {
    let at = loc(&["query", "cursor"]);
    match last_param(req, "cursor") {
        None => Ok(None),
        Some(raw) => {
            rule.check(at.clone(), &raw).map_err(|e| vec![e])?;
            decode(&raw)
                .map(Some)
                .ok_or_else(|| vec![FieldError::value_error(at, &raw, "invalid cursor")])
        }
    }
}

/// `limit`, `done` and `cursor` of `GET /tasks`.
pub fn list_query(req: &Request) -> Validated<ListQuery> {
    let done = match last_param(req, "done") {
        None => Ok(None),
        Some(raw) => parse_bool_str(&raw).map(Some).ok_or_else(|| {
            vec![FieldError::bool_parsing(
                loc(&["query", "done"]),
                Value::from(raw),
            )]
        }),
    };
    let ((limit, done), after) = zip(
        zip(limit_param(req), done),
        cursor_param(req, &LIST_CURSOR, decode_cursor),
    )?;
    Ok(ListQuery { limit, done, after })
}

/// The export's encodings (`?format=` of `GET /tasks/export`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON task per line (`application/x-ndjson`), the default.
    Ndjson,
    /// A header row, then one task per row (`text/csv`, RFC 4180 quoting).
    Csv,
}

impl Format {
    pub const NAMES: [&str; 2] = ["ndjson", "csv"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ndjson" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// `format` of `GET /tasks/export`: `ndjson` (the default) or `csv`.
pub fn export_format(req: &Request) -> Validated<Format> {
    match last_param(req, "format") {
        None => Ok(Format::Ndjson),
        Some(raw) => Format::parse(&raw).ok_or_else(|| {
            vec![FieldError::literal_error(
                loc(&["query", "format"]),
                &raw,
                &Format::NAMES,
            )]
        }),
    }
}

/// Where `GET /tasks/events` starts: after the change id in
/// `Last-Event-ID` (what `EventSource` sends when it reconnects), else
/// after `?since=`, else `None` (now).
pub fn feed_start(req: &Request) -> Validated<Option<Sequence>> {
    // FastAPI validates every parameter, query before header, whichever
    // is used: `since` is checked even when `Last-Event-ID` wins.
    let change_id = |raw: Option<String>, at: Vec<Value>| -> Validated<Option<Sequence>> {
        let Some(raw) = raw else { return Ok(None) };
        CHANGE_ID.check(at.clone(), &raw).map_err(|e| vec![e])?;
        Sequence::parse(&raw)
            .map(Some)
            .ok_or_else(|| vec![FieldError::value_error(at, &raw, "invalid change id")])
    };
    let header = req
        .headers()
        .get(LAST_EVENT_ID)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned());
    let (since, header) = zip(
        change_id(last_param(req, "since"), loc(&["query", "since"])),
        change_id(header, loc(&["header", "last-event-id"])),
    )?;
    Ok(header.or(since))
}

/// `ticket` of `GET /tasks/events`, if any: what a browser's `EventSource`
/// sends instead of a token (see `POST /tasks/events/tickets`).
pub fn feed_ticket(req: &Request) -> Option<String> {
    last_param(req, "ticket").filter(|t| !t.is_empty())
}

/// `limit` and `cursor` of `GET /tasks/{task_id}/history`.
pub fn history_query(req: &Request) -> Validated<HistoryQuery> {
    let (limit, before) = zip(
        limit_param(req),
        cursor_param(req, &HISTORY_CURSOR, decode_history_cursor),
    )?;
    Ok(HistoryQuery { limit, before })
}

fn parse_limit(raw: &str) -> Result<u32, FieldError> {
    let at = loc(&["query", "limit"]);
    let value = parse_int_str(raw).ok_or_else(|| FieldError::int_parsing(at.clone(), raw))?;
    if value < 1 {
        return Err(FieldError::greater_than_equal(at, raw, 1));
    }
    if value > i64::from(MAX_LIMIT) {
        return Err(FieldError::less_than_equal(at, raw, i64::from(MAX_LIMIT)));
    }
    u32::try_from(value).map_err(|_| FieldError::less_than_equal(at, raw, i64::from(MAX_LIMIT)))
}

/// The cursor's format version: bumped if the encoding ever changes, so an
/// old cursor is rejected as invalid instead of being misread.
const CURSOR_VERSION: u8 = 1;

/// Encodes "after this task" as an opaque token. The owner and the filter
/// are not in it: they come from the request, so a cursor cannot reach
/// another caller's tasks.
pub fn encode_cursor(after: Uuid) -> String {
    let mut bytes = Vec::with_capacity(17);
    bytes.push(CURSOR_VERSION);
    bytes.extend_from_slice(after.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn decode_cursor(token: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    match bytes.split_first() {
        Some((&CURSOR_VERSION, id)) => Uuid::from_slice(id).ok(),
        _ => None,
    }
}

/// The history's cursors: `h` and the change id to list before, so a
/// listing's cursor is invalid here and the other way round. (Version 1
/// was base64 of a version byte and the digits, whose exact form no
/// pattern can state: [`HISTORY_CURSOR`].)
const HISTORY_CURSOR_PREFIX: char = 'h';

/// Encodes "older than this change" as an opaque token.
pub fn encode_history_cursor(before: &Sequence) -> String {
    format!("{HISTORY_CURSOR_PREFIX}{}", before.id())
}

pub fn decode_history_cursor(token: &str) -> Option<Sequence> {
    Sequence::parse(token.strip_prefix(HISTORY_CURSOR_PREFIX)?)
}

/// Most entity tags one `If-Match` may list: each becomes a value of the
/// write's `IN (...)` condition, which DynamoDB caps at 100 (a local
/// emulator does not): the contract's 20 leaves room, and no client needs
/// more than a few.
pub const MAX_IF_MATCH_TAGS: usize = 20;

/// What `If-Match` may be: `*`, or 1 to [`MAX_IF_MATCH_TAGS`] entity tags
/// (RFC 9110: `"opaque"` or weak `W/"opaque"`, the opaque part visible
/// ASCII but `"`) separated by commas, with optional spaces or tabs
/// around them. [`if_match`] accepts exactly what this matches (the tests
/// check it), and refuses the rest with a 400.
pub const IF_MATCH_PATTERN: &str =
    "^(\\*|(W/)?\"[!#-~]*\"([ \\t]*,[ \\t]*(W/)?\"[!#-~]*\"){0,19})$";

/// The entity tags of an `If-Match` value as `(weak, opaque)`, or `None`
/// if it is not a list of them (`*` included). No limit on their number.
pub fn entity_tags(value: &str) -> Option<Vec<(bool, &str)>> {
    let is_ows = |c: char| c == ' ' || c == '\t';
    let mut tags = Vec::new();
    let mut rest = value;
    loop {
        let (weak, after) = match rest.strip_prefix("W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let inner = after.strip_prefix('"')?;
        let end = inner.find('"')?;
        let opaque = &inner[..end];
        if !opaque
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b))
        {
            return None;
        }
        tags.push((weak, opaque));
        rest = inner[end + 1..].trim_start_matches(is_ows);
        if rest.is_empty() {
            return Some(tags);
        }
        rest = rest.strip_prefix(',')?.trim_start_matches(is_ows);
    }
}

/// `If-Match`: absent → no condition, `*` → any existing task, otherwise a
/// list of entity tags ([`IF_MATCH_PATTERN`]). A tag that is no version of
/// ours (or weak: If-Match compares strongly) never matches, so it fails
/// the precondition as a stale one would (412). A value that is not `*` or
/// such a list is a 400, as is a list of more than [`MAX_IF_MATCH_TAGS`]
/// tags.
pub fn if_match(req: &Request) -> Result<Precondition, ApiError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(Precondition::None);
    };
    let value = value.to_str().map_err(|_| ApiError::MalformedIfMatch)?;
    if value == "*" {
        return Ok(Precondition::Exists);
    }
    let tags = entity_tags(value).ok_or(ApiError::MalformedIfMatch)?;
    if tags.len() > MAX_IF_MATCH_TAGS {
        return Err(ApiError::TooManyEntityTags {
            max: MAX_IF_MATCH_TAGS,
        });
    }
    // A list of ETags matches if any does; ours are all strong.
    let versions: Vec<u64> = tags
        .iter()
        .filter(|(weak, _)| !weak)
        .filter_map(|(_, opaque)| opaque.parse().ok())
        .collect();
    Ok(match versions.as_slice() {
        [] => Precondition::Never,
        _ => Precondition::VersionIn(versions),
    })
}

/// The id a client can quote: API Gateway's request id when there is one,
/// else the Lambda invocation's.
pub fn request_id(req: &Request) -> String {
    use lambda_http::request::RequestContext;
    let from_gateway = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    from_gateway
        .or_else(|| req.lambda_context_ref().map(|c| c.request_id.clone()))
        .unwrap_or_default()
}
