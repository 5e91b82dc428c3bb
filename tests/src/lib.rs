//! Workspace-level tests. The library is empty; see `tests/tests/*.rs`.
