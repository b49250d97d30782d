//! The adapters: the outside world behind the ports and the edge.
//!
//! - [`dynamo`]: the DynamoDB stores (split by concern) and the table layout.
//! - [`memory`]: in-memory stores with DynamoDB's semantics, for tests only
//!   (feature `test-support`; never in a production build).
//! - [`stream_record`]: a DynamoDB stream record read as a [`crate::domain::change::Change`].
//! - [`token`]: bearer tokens checked against the issuer's keys (JWKS).
//! - [`tls`]: the compiled-in roots of trust.
//! - [`xray`]: X-Ray subsegments of DynamoDB calls and the JWKS fetch.

pub mod dynamo;
#[cfg(any(test, feature = "test-support"))]
pub mod memory;
pub mod stream_record;
pub mod tls;
pub mod token;
pub mod xray;
