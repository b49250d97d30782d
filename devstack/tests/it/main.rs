//! The integration tests of `devstack` (storage against dynoxide, the
//! stream delivery, the end-to-end client), one binary.

mod audit;
mod concurrency;
mod dev_env;
mod dynamo_store;
mod dynamodb_calls;
mod e2e;
mod stream;
