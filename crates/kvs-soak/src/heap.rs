//! The sender's live heap, counted by the global allocator (`cap`, a counting wrapper of the
//! system allocator): what a leak in the library grows. RSS also moves with the C
//! allocator's free lists and per-thread arenas (memory freed but kept for reuse), which the
//! live heap does not; the report shows both.

use std::alloc::System;

use cap::Cap;

/// The process's allocator: the system one, counted (no limit).
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Bytes allocated through Rust and not yet freed (C libraries' own `malloc`s are not seen).
pub(crate) fn live_bytes() -> usize {
    ALLOCATOR.allocated()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_allocation_counts_until_it_is_freed() {
        // Other tests allocate on their threads meanwhile: a megabyte stands well above that.
        let slack = 64 << 10;
        let before = live_bytes();
        let held = std::hint::black_box(vec![1u8; 1 << 20]);
        let during = live_bytes();
        drop(held);
        let after = live_bytes();
        assert!(during + slack >= before + (1 << 20), "{before} -> {during}");
        assert!(after + (1 << 20) <= during + slack, "{during} -> {after}");
    }
}
