//! The wall clock in Unix seconds: one definition for usersig lifetimes, history entries and
//! exports. Nothing else here: callers that need time-zone or formatting logic do it themselves.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in Unix seconds (0 if the clock is before 1970).
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
