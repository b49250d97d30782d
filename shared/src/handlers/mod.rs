//! One module per route, each with `handle(app, request)`. The functions in
//! `functions/` only hand these to [`crate::runtime::start`]; the handler
//! tests call them with an in-memory store.
//!
//! Order inside a handler follows FastAPI: the caller first (401 before any
//! validation), then every input together (one 422 listing all failures),
//! then the store.

pub mod create_task;
pub mod delete_task;
pub mod docs;
pub mod fallback;
pub mod get_task;
pub mod health;
pub mod list_tasks;
pub mod me;
pub mod replace_task;
pub mod update_task;
