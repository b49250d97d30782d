//! The integration tests of `devstack` (storage against dynoxide, the
//! stream delivery, the end-to-end client), one binary.

mod audit;
mod concurrency;
mod dev_env;
mod dynamodb_calls;
mod e2e;
mod issuer;
mod store_contract;
mod stream;
