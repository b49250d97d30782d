//! The integration tests of `shared`, one binary (one link of the SDK and
//! the handlers instead of one per file): each module is one area.

mod client_config;
mod deployed_template;
mod deployment;
mod docs;
mod events;
mod export;
mod handlers;
mod layers;
mod least_privilege;
mod observability;
mod openapi;
mod route_table;
mod support;
mod validation;
