//! The signaling WebSocket: presigned connect, roles, routing and lifetimes.

pub(crate) mod rate;
pub(crate) mod socket;
