//! The allocator's settings at start-up, and giving the loader's freed memory back to the OS
//! before the plan allocates.
//!
//! [`configure`] runs before `main` (a constructor in `main.rs`: the Rust runtime allocates before
//! `main`, and the first allocation reserves the arena with the settings of that moment; called
//! at the top of `main` it measured no effect). Lazily committed arenas: mimalloc commits its 1 GiB
//! arena eagerly on Linux by default, and every zeroed allocation then costs real page zeroing
//! (sled's 2 MiB page-table nodes: a 30,000-user plan took 37 MB and 0.08 s of system time, 21 MB
//! and 0.01 s with lazy commit; BENCHMARKS.md, "YAML loader"). Set in code, the setting reaches
//! every build: `cargo install`, the Dockerfile and the release alike (a `CFLAGS` in
//! `.cargo/config.toml` reached only builds run inside the repository).
//!
//! mimalloc (the global allocator of the binary, `main.rs`) keeps freed memory resident for
//! its purge delay, 1 s in the vendored v3, so that it can be reused cheaply. The loader's big
//! transient allocations (a users file's text, the per-piece runs the merge consumes, the
//! worker threads' pages) are freed just before the plan makes its own big allocation, and
//! within that second they counted twice: the 3M-account one-file plan peaked anywhere from
//! 868 to 1,109 MB, 866 MB once they were released (BENCHMARKS.md, "Issue 13: memory after
//! releasing the loader's freed memory"). The delay itself has no compile-time switch, and setting it to 0 for the
//! whole run costs system time wherever memory is freed and reused (a store scan), so the
//! memory is released once, where the loader is done with it.
//!
//! libmimalloc-sys declares `mi_collect` and `mi_option_set` only under its `extended` feature
//! (which adds a dependency), so they are declared here. This is the crate's only unsafe code.
#![allow(unsafe_code)]

// Links mimalloc's static library into every binary of the crate, also those (tests) that
// do not make it the global allocator: the declaration below needs its symbol.
extern crate mimalloc as _;

use std::ffi::{c_int, c_long};

extern "C" {
    fn mi_collect(force: bool);
    fn mi_option_set(option: c_int, value: c_long);
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
}

/// `mi_option_arena_eager_commit` in mimalloc's `mi_option_t` (the same in v2 and v3): 0 commits
/// arena memory on demand, 2 (the default) eagerly where the OS overcommits (Linux).
const ARENA_EAGER_COMMIT: c_int = 4;

/// Sets mimalloc's options for this program: arena memory is committed on demand. Call it
/// before the first allocation (the binary calls it from a constructor, before `main`): the
/// setting applies to arenas reserved after it, and the first allocation reserves one. It uses
/// no Rust runtime service. (`MIMALLOC_ARENA_EAGER_COMMIT` in the environment no longer
/// overrides it.)
pub fn configure() {
    // SAFETY: `void mi_option_set(mi_option_t option, long value)` is exported by the mimalloc
    // static library that the `mimalloc` dependency links; `mi_option_t` is a C enum (an `int`)
    // and 4 is `mi_option_arena_eager_commit` (checked by the test below against its default).
    // It only stores the value in mimalloc's option table and may be called at any time.
    unsafe { mi_option_set(ARENA_EAGER_COMMIT, 0) }
}

/// Returns the memory freed so far to the OS: mimalloc frees this thread's empty pages and
/// purges every arena range that waits for its delay (program-wide). Without mimalloc as
/// the global allocator (unit tests) it only tidies mimalloc's own unused heap.
pub fn release_freed() {
    // SAFETY: `void mi_collect(bool force)` is exported by the mimalloc static library that
    // the `mimalloc` dependency links; C's `bool` and Rust's `bool` have the same ABI. It may
    // be called at any time from any thread (it collects the calling thread's heap and the
    // shared arenas under their own locks) and touches no memory of ours.
    unsafe { mi_collect(true) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn configure_turns_the_eager_arena_commit_off() {
        // SAFETY: as in `configure`; `long mi_option_get(mi_option_t)` only reads the table.
        let get = || unsafe { super::mi_option_get(super::ARENA_EAGER_COMMIT) };
        // The option's default is 2 ("eager where the OS overcommits"): the index is right.
        assert_eq!(get(), 2, "is option 4 still mi_option_arena_eager_commit?");
        super::configure();
        assert_eq!(get(), 0);
    }

    #[test]
    fn releasing_freed_memory_keeps_live_memory() {
        let live: Vec<Box<[u8]>> = (0..64u8).map(|i| vec![i; 4096].into()).collect();
        drop(vec![7u8; 8 << 20]);
        super::release_freed();
        assert!(live
            .iter()
            .enumerate()
            .all(|(i, b)| b.iter().all(|&x| usize::from(x) == i)));
    }
}
