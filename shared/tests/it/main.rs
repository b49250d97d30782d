//! The integration tests of `shared`, one binary (one link of the SDK and
//! the handlers instead of one per file): each module is one area.

// Struct literals end in `..TaskCreate::default()` so that they compile
// unchanged when a field is declared (docs/architecture.md, "Adding a field").
#![allow(clippy::needless_update)]

mod client_config;
mod deployed_template;
mod deployment;
mod doc_links;
mod docs;
mod events;
mod export;
mod fields;
mod handlers;
mod layers;
mod least_privilege;
mod observability;
mod openapi;
mod route_table;
mod support;
mod validation;
