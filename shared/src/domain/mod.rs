//! The domain: what the API is about, with no I/O and no HTTP. Everything
//! else in the crate depends on it; it depends on nothing else in the crate.
//!
//! - [`task`]: tasks, the write models and the list query.
//! - [`fields`]: how the task's fields are declared (once, in [`task`])
//!   and what is derived from the declaration.
//! - [`caller`]: who owns what.
//! - [`change`]: one recorded change of a task (the audit trail, the
//!   history and the live feed are all made of them).
//! - [`ticket`]: a feed ticket, sealed so it verifies itself.

pub mod caller;
pub mod change;
pub mod fields;
pub mod task;
pub mod ticket;
