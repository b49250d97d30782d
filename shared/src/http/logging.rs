//! The JSON log line format of every function: the keys of Powertools for
//! AWS Lambda's Logger, with the same meanings, so the queries written for
//! Powertools (and docs/operations.md's Logs Insights queries) work on
//! these logs unchanged; then the event's own fields, as before.
//!
//! ```json
//! {"level":"INFO","location":"shared/src/http/observability.rs:97",
//!  "message":"request","timestamp":"2026-12-06T00:41:07.412Z",
//!  "service":"task-api","cold_start":true,"function_name":"stack-GetTask-x",
//!  "function_memory_size":128,"function_arn":"arn:aws:lambda:...",
//!  "function_request_id":"8f1b...","xray_trace_id":"1-6752...-...",
//!  "request_id":"c6af...","route":"GET /tasks/{task_id}", ...}
//! ```
//!
//! The invocation's keys (`cold_start`, `function_*`, `xray_trace_id`) come
//! from the Lambda context of the invocation being served, which the
//! runtime puts in scope for it ([`Invocation::scope`]); a line written
//! outside any invocation (the cold start's) has the function's name and
//! memory from Lambda's environment and no request keys.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The `service` key when `POWERTOOLS_SERVICE_NAME` is not set (Powertools'
/// own default is `service_undefined`).
pub const DEFAULT_SERVICE: &str = "task-api";

/// The Lambda invocation a log line belongs to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Invocation {
    /// Lambda's request id (`function_request_id`), not API Gateway's.
    pub request_id: String,
    pub function_arn: String,
    pub function_name: String,
    pub memory_mb: i32,
    /// The whole `X-Amzn-Trace-Id` Lambda gave the invocation
    /// (`Root=1-...;Parent=...;Sampled=1`), if any.
    pub trace_header: Option<String>,
    /// The first invocation of this execution environment.
    pub cold_start: bool,
}

tokio::task_local! {
    static CURRENT: Arc<Invocation>;
}

impl Invocation {
    /// The invocation of a Lambda context.
    pub fn of(context: &lambda_runtime::Context, cold_start: bool) -> Self {
        Invocation {
            request_id: context.request_id.clone(),
            function_arn: context.invoked_function_arn.clone(),
            function_name: context.env_config.function_name.clone(),
            memory_mb: context.env_config.memory,
            trace_header: context.xray_trace_id.clone(),
            cold_start,
        }
    }

    /// Runs `future` as this invocation: every line it logs carries its keys.
    pub fn scope<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(Arc::new(self), future)
    }

    /// Runs `f` as `invocation` (a [`Invocation::current`] one), synchronously.
    pub fn sync_in<R>(invocation: Option<Arc<Invocation>>, f: impl FnOnce() -> R) -> R {
        match invocation {
            Some(invocation) => CURRENT.sync_scope(invocation, f),
            None => f(),
        }
    }

    /// The invocation being served by the current task, if any.
    pub fn current() -> Option<Arc<Invocation>> {
        CURRENT.try_with(Arc::clone).ok()
    }

    /// The trace id (`Root=`) of the trace header: what Powertools logs as
    /// `xray_trace_id`.
    pub fn trace_id(&self) -> Option<&str> {
        self.trace_header.as_deref().and_then(trace_root)
    }
}

/// The `Root=` part of an `X-Amzn-Trace-Id` header, or the header itself
/// when it is a bare trace id.
pub fn trace_root(header: &str) -> Option<&str> {
    header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
        .or_else(|| (!header.contains('=')).then_some(header))
        .filter(|root| !root.is_empty())
}

/// The Powertools-shaped JSON format ([`tracing_subscriber::fmt::FormatEvent`]).
#[derive(Debug, Clone)]
pub struct PowertoolsJson {
    service: String,
    /// Outside an invocation: the function's name and memory from Lambda's
    /// environment (`AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`).
    function_name: Option<String>,
    memory_mb: Option<i64>,
}

impl PowertoolsJson {
    /// The format with its settings from the environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        PowertoolsJson {
            service: lookup("POWERTOOLS_SERVICE_NAME")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_SERVICE.to_owned()),
            function_name: lookup("AWS_LAMBDA_FUNCTION_NAME"),
            memory_mb: lookup("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").and_then(|m| m.parse().ok()),
        }
    }

    /// One log line (without its newline) for an event with these fields.
    fn line(
        &self,
        level: &tracing::Level,
        location: Option<String>,
        fields: Map<String, Value>,
    ) -> String {
        let mut line = Map::new();
        line.insert("level".into(), Value::from(level.as_str()));
        if let Some(location) = location {
            line.insert("location".into(), Value::from(location));
        }
        let mut fields = fields;
        line.insert(
            "message".into(),
            fields.remove("message").unwrap_or(Value::from("")),
        );
        line.insert("timestamp".into(), Value::from(timestamp()));
        line.insert("service".into(), Value::from(self.service.as_str()));
        match Invocation::current() {
            Some(invocation) => {
                line.insert("cold_start".into(), Value::from(invocation.cold_start));
                line.insert(
                    "function_name".into(),
                    Value::from(invocation.function_name.as_str()),
                );
                line.insert(
                    "function_memory_size".into(),
                    Value::from(invocation.memory_mb),
                );
                line.insert(
                    "function_arn".into(),
                    Value::from(invocation.function_arn.as_str()),
                );
                line.insert(
                    "function_request_id".into(),
                    Value::from(invocation.request_id.as_str()),
                );
                if let Some(trace_id) = invocation.trace_id() {
                    line.insert("xray_trace_id".into(), Value::from(trace_id));
                }
            }
            None => {
                if let Some(name) = &self.function_name {
                    line.insert("function_name".into(), Value::from(name.as_str()));
                }
                if let Some(memory) = self.memory_mb {
                    line.insert("function_memory_size".into(), Value::from(memory));
                }
            }
        }
        // The event's own fields after Powertools' keys; none replaces one.
        for (key, value) in fields {
            line.entry(key).or_insert(value);
        }
        Value::Object(line).to_string()
    }
}

/// ISO 8601 in UTC with milliseconds, as Powertools for TypeScript, Java
/// and .NET write it.
fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl<S, N> FormatEvent<S, N> for PowertoolsJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut fields = JsonFields(Map::new());
        event.record(&mut fields);
        let location = metadata
            .file()
            .map(|file| format!("{file}:{}", metadata.line().unwrap_or(0)));
        writer.write_str(&self.line(metadata.level(), location, fields.0))?;
        writer.write_char('\n')
    }
}

/// An event's fields as JSON values (numbers and booleans stay so).
struct JsonFields(Map<String, Value>);

impl Visit for JsonFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().into(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_id_is_the_root_of_the_header() {
        assert_eq!(
            trace_root(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
            ),
            Some("1-5759e988-bd862e3fe1be46a994272793")
        );
        assert_eq!(trace_root("1-5759e988-bd86"), Some("1-5759e988-bd86"));
        assert_eq!(trace_root("Parent=1;Sampled=0"), None);
        assert_eq!(trace_root(""), None);
    }
}
