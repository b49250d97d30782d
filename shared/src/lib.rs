//! The Task API's shared library: everything the per-route Lambda functions
//! have in common. Layout, outside in:
//!
//! - [`runtime`]: cold start (config, SDK client) and the request loop.
//! - [`handlers`]: one module per route.
//! - [`request`], [`identity`], [`validation`]: reading a request as FastAPI
//!   would, with pydantic's 422 vocabulary.
//! - [`model`]: tasks and the write models with their field rules.
//! - [`store`]: the storage port, with DynamoDB and in-memory adapters.
//! - [`error`], [`response`]: the one error type and the response shapes.
//! - [`config`], [`routes`]: settings and the route table.
//! - [`audit`]: the audit trail, from the table's change stream.
//! - [`cors`]: CORS for local runs, as API Gateway answers it deployed.
//! - [`token`]: bearer tokens checked by the function itself, for the
//!   functions served by Lambda Function URLs (no JWT authorizer there).
//! - [`openapi`]: the OpenAPI 3.1 document, derived from the handlers and models.

pub mod audit;
pub mod config;
pub mod cors;
pub mod error;
pub mod feed;
pub mod handlers;
pub mod identity;
pub mod model;
pub mod observability;
pub mod openapi;
pub mod request;
pub mod response;
pub mod routes;
pub mod runtime;
pub mod store;
pub mod streaming;
pub mod token;
pub mod validation;
