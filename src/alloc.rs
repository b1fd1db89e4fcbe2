//! Giving the loader's freed memory back to the OS before the plan allocates.
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
//! libmimalloc-sys declares `mi_collect` only under its `extended` feature (which adds a
//! dependency), so it is declared here. This is the crate's only unsafe code.
#![allow(unsafe_code)]

// Links mimalloc's static library into every binary of the crate, also those (tests) that
// do not make it the global allocator: the declaration below needs its symbol.
extern crate mimalloc as _;

extern "C" {
    fn mi_collect(force: bool);
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
