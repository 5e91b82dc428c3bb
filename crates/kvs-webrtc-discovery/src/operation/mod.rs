//! One module per operation, as in the AWS SDK: a fluent builder ending in `send()` and its
//! output.

pub mod discover;
pub mod ice_servers;
pub mod join_storage_session;
