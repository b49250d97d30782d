//! The Task API's shared library: everything the per-route Lambda functions
//! have in common, in layers. Each layer uses only the layers above it in
//! this list (`shared/tests/it/layers.rs` checks it, and that no two files
//! import each other in a circle):
//!
//! | layer | what it holds |
//! |---|---|
//! | [`domain`] | tasks, field rules, the caller, changes: no I/O, no HTTP |
//! | [`config`] | settings from the environment, checked at cold start |
//! | [`ports`] | the store traits and [`ports::StoreError`], paging |
//! | [`adapters`] | DynamoDB, the in-memory stores (tests only), stream records, bearer tokens, TLS roots |
//! | [`http`] | the edge: requests, identity, [`http::error::ApiError`], responses, CORS, logs, OpenAPI types |
//! | [`runtime`] | `App` and the Lambda bootstrap every `main.rs` calls |
//! | [`handlers`] | one module per route, and the audit function's |
//! | [`openapi`] | the OpenAPI document of the handlers, and the docs pages |

pub mod domain;

pub mod config;

pub mod ports;

pub mod adapters;

pub mod http;

pub mod runtime;

pub mod handlers;

pub mod openapi;
