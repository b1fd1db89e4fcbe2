//! The allocator's one run-time setting: freed memory goes back to the OS at once.
//!
//! mimalloc (the global allocator, `main.rs`) keeps freed memory resident for its purge
//! delay, 1 s in the vendored v3, before returning it to the OS. The loader's big transient
//! allocations (a users file's text, the per-piece runs the merge consumes) are freed just
//! before the plan's own big allocation, so within that second they count twice: the 1M-account
//! one-file plan peaked at 377 MB instead of 294 MB, 3M accounts at 1,107 MB instead of 866 MB
//! (BENCHMARKS.md, "Issue 13: memory after the purge delay"). The default is a literal in
//! mimalloc's `options.c` (no compile-time macro, unlike `MI_DEFAULT_ARENA_EAGER_COMMIT` in
//! `.cargo/config.toml`), and libmimalloc-sys exports the setter but not this option's number,
//! so both are declared here. This is the crate's only unsafe code.
#![allow(unsafe_code)]

use std::os::raw::{c_int, c_long};

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (`include/mimalloc.h`): the
/// sixteenth option.
const PURGE_DELAY: c_int = 15;
/// Its compiled-in default in v3, milliseconds. Reading it back is the check that option 15
/// is the purge delay and that nobody chose another value (`MIMALLOC_PURGE_DELAY`).
const V3_DEFAULT_PURGE_DELAY: c_long = 1000;

extern "C" {
    fn mi_option_get(option: c_int) -> c_long;
    fn mi_option_set(option: c_int, value: c_long);
}

/// Makes mimalloc purge freed memory immediately, unless the environment chose another delay or
/// the linked mimalloc numbers its options differently. Call first in `main`, before any
/// thread exists: mimalloc's option setters are not thread-safe.
pub fn purge_at_once() {
    // SAFETY: both functions are exported by the libmimalloc-sys static library that the
    // `mimalloc` dependency links, with these C signatures (`long mi_option_get(mi_option_t)`,
    // `void mi_option_set(mi_option_t, long)`; `mi_option_t` is a C enum, an `int`). They read
    // and write one entry of mimalloc's option table; any option number is accepted (out of
    // range ones are ignored). No other thread runs yet, which is their only requirement.
    unsafe {
        if mi_option_get(PURGE_DELAY) == V3_DEFAULT_PURGE_DELAY {
            mi_option_set(PURGE_DELAY, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_set_to_zero_unless_chosen() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // the environment's value is kept: nothing to check here
        }
        // SAFETY: as in `purge_at_once`; reading an option has no other requirement.
        let before = unsafe { mi_option_get(PURGE_DELAY) };
        assert_eq!(
            before, V3_DEFAULT_PURGE_DELAY,
            "option 15 is not the v3 purge delay"
        );
        purge_at_once();
        // SAFETY: as above.
        assert_eq!(unsafe { mi_option_get(PURGE_DELAY) }, 0);
    }
}
