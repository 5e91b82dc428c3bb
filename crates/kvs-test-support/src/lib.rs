//! The workspace's test harness (not published): real servers the tests start themselves on
//! 127.0.0.1, with bounded waits, and the throw-away PKI they need.
//!
//! * [`Coturn`]: the coturn TURN server (Debian package `coturn`, installed by
//!   `cargo xtask test`) with the TURN REST shared-secret scheme KVS uses, and UDP, TCP and
//!   TLS listeners.
//! * [`TestCa`]: a CA and a server certificate for `127.0.0.1` and `localhost`.
//! * [`IngestCli`]: the `kvs-ingest` binary run against an emulator the way AWS is reached.
//! * [`SimTurnServer`]: turn-server-proto's sans-IO TURN server for simulated-time tests.

mod cli;
mod coturn;
mod pki;
mod turn_sim;

pub use cli::{text, IngestCli};
pub use coturn::Coturn;
pub use pki::TestCa;
pub use turn_sim::{Sent, SimTurnServer};
