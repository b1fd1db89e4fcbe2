//! The one error of the state layer: a backend-neutral kind, and the backend's own typed error
//! as the message (its Display is what the user reads, unchanged).
//!
//! Backends keep their typed errors (sled's `StoreError`, PostgreSQL's `PgError`) and convert
//! them at the [`super::Backend`] boundary, each with a `From` impl in its own module that
//! names the kind. A new backend maps its errors onto these kinds: it needs no new variant
//! here, and callers that decide by kind (doctor, retries) work with it unchanged.

use std::fmt;

/// What kind of failure a [`StateError`] is, whatever backend raised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Another writer holds the store's lock.
    Locked,
    /// The store belongs to another app or endpoint host.
    OtherApp,
    /// The store is damaged: what it holds does not check out.
    Corrupt,
    /// The store was written by a newer timattr.
    NewerFormat,
    /// The store is older than this timattr reads.
    OlderFormat,
    /// The store cannot be reached (connection, TLS, missing database).
    Unreachable,
    /// The store changed under this writer, or cannot take the change (e.g. the serial is at
    /// its maximum).
    Conflict,
    /// A backup was refused or cannot be read.
    Restore,
    /// Anything else the backend could not do (I/O, a refused statement, a bad setting).
    Failed,
}

/// A store error of any backend: its [`ErrorKind`] and the backend's own error, whose message
/// names the store (path, or database and name) and what to do.
pub struct StateError {
    kind: ErrorKind,
    inner: Box<dyn std::error::Error + Send + Sync>,
}

impl StateError {
    /// An error of `kind` with the backend's error (or a message) as its text.
    pub fn new(
        kind: ErrorKind,
        inner: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StateError {
            kind,
            inner: inner.into(),
        }
    }

    /// A refused or unreadable backup, phrased by the core (the same for every backend).
    pub fn restore(message: impl Into<String>) -> Self {
        StateError::new(ErrorKind::Restore, message.into())
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The backend's typed error, for the few places that need more than the kind (tests).
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.inner.downcast_ref()
    }
}

impl fmt::Debug for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateError")
            .field("kind", &self.kind)
            .field("inner", &self.inner)
            .finish()
    }
}

/// The backend's message, byte for byte.
impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

/// Transparent, as the backend's error was: its cause, not itself, is the source.
impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source()
    }
}
