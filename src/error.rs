//! The crate's error: what went wrong and what the user can do next.
//!
//! Each variant's Display is complete on its own, so `main` prints it once without walking
//! the source chain again (a cause is printed once, not twice).

use crate::diag::Diagnostics;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Problems in the project or users files, all of them.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// A store error of any backend: its kind and the backend's message.
    #[error(transparent)]
    Store(#[from] crate::store::StateError),
    #[error(transparent)]
    Api(#[from] crate::api::ApiError),
    /// A refusal or a configuration problem, already phrased for the user.
    #[error("{0}")]
    Message(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn msg(m: impl Into<String>) -> Self {
        Error::Message(m.into())
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<Diagnostics> for Error {
    fn from(d: Diagnostics) -> Self {
        Error::Invalid(d)
    }
}
