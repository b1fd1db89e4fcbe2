//! The process's one async runtime: the API client, the embedded emulator and the PostgreSQL
//! store all run their tasks on it, built on first use and kept until the process ends (so no
//! second runtime is ever built inside the first, and a store's connection outlives the
//! operation that opened it).

use std::sync::OnceLock;

use tokio::runtime::Runtime;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The runtime, built on first use.
pub fn get() -> std::io::Result<&'static Runtime> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let built = tokio::runtime::Builder::new_multi_thread()
        .thread_name("timattr-rt")
        .enable_all()
        .build()?;
    // Two threads racing here both build one; the loser's is dropped unused.
    Ok(RUNTIME.get_or_init(|| built))
}
