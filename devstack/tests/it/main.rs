//! The integration tests of `devstack` (storage against dynoxide, the
//! stream delivery, the end-to-end client), one binary.

// Struct literals end in `..TaskCreate::default()` so that they compile
// unchanged when a field is declared (docs/architecture.md, "Adding a field").
#![allow(clippy::needless_update)]

mod audit;
mod concurrency;
mod dev_env;
mod dynamodb_calls;
mod e2e;
mod faults;
mod issuer;
mod log_secrets;
mod store_contract;
mod stream;
mod traces;
