//! The signaling WebSocket: presigned connect, roles, routing and lifetimes.

pub(crate) mod hub;
pub(crate) mod rate;
pub(crate) mod socket;
pub(crate) mod wire;
