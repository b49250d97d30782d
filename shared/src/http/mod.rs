//! The HTTP edge: everything that knows a request or a response. It reads
//! requests the way FastAPI does, decides who is calling (once), turns
//! every failure into its status and body ([`error::ApiError`], built from
//! the ports' and adapters' errors), and describes itself for OpenAPI.
//!
//! - [`headers`]: the header names the API reads and writes.
//! - [`validation`]: pydantic's 422 vocabulary and lax coercions.
//! - [`body`]: JSON bodies read into the domain's write models.
//! - [`request`]: path, query and header parameters.
//! - [`identity`]: who is calling, decided once per request.
//! - [`error`], [`response`]: the one error type and the response shapes.
//! - [`schemas`]: the response bodies and the OpenAPI types of both.
//! - [`routes`]: the route table.
//! - [`cors`]: CORS for local runs, as API Gateway answers it deployed.
//! - [`logging`]: the JSON log format (Powertools for AWS Lambda's keys).
//! - [`observability`]: the per-request log line, timing header, metrics.
//! - [`streaming`], [`sse`]: streamed bodies and the live feed's events.

pub mod body;
pub mod cors;
pub mod error;
pub mod headers;
pub mod identity;
pub mod logging;
pub mod observability;
pub mod request;
pub mod response;
pub mod routes;
pub mod schemas;
pub mod sse;
pub mod streaming;
pub mod ticket;
pub mod validation;
