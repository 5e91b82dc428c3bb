//! Workspace-level tests. The library is empty; see `tests/tests/*.rs`. Under `cargo test` the
//! README's Rust examples compile as doctests here, so they cannot drift from the crates.

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
