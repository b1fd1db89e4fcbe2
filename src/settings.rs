//! The project file (`timattr.yaml`) as one typed [`Settings`].
//!
//! Parsing goes through [`crate::desired`] (the only module that touches the YAML crate);
//! this module owns the validated shape and the rules of the `app`, `apply` and `state` keys.

use std::path::PathBuf;

/// Where the API lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A real or emulated server: `base` is `scheme://host[:port]` without a trailing slash.
    Url { base: String, host: String },
    /// The built-in emulator, started in-process on a loopback port (demo key, no secret).
    Embedded,
}

impl Endpoint {
    /// The host the store is bound to (`embedded` for the built-in emulator).
    pub fn host(&self) -> &str {
        match self {
            Endpoint::Url { host, .. } => host,
            Endpoint::Embedded => "embedded",
        }
    }
}

/// The `apply` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplySettings {
    /// Requests per second, 1..=100.
    pub rate_limit: u32,
    /// Requests in flight, at least 1.
    pub concurrency: usize,
    /// Percentage of managed accounts that may lose values in one apply without
    /// `--allow-mass-removal`.
    pub max_removal_percent: f64,
}

impl Default for ApplySettings {
    fn default() -> Self {
        ApplySettings {
            rate_limit: 100,
            concurrency: 16,
            max_removal_percent: 10.0,
        }
    }
}

/// A loaded and validated project file.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The project file as given (relative paths stay relative for messages).
    pub project_file: PathBuf,
    /// The directory holding the project file; users globs and `state` are relative to it.
    pub project_dir: PathBuf,
    pub sdkappid: u32,
    pub admin: String,
    pub endpoint: Endpoint,
    /// Name of the environment variable holding the SecretKey.
    pub secret_env: String,
    /// Declared attribute names, in file order.
    pub attributes: Vec<String>,
    /// Users glob patterns as written.
    pub users: Vec<String>,
    /// The sled directory, resolved against `project_dir`.
    pub state_dir: PathBuf,
    pub apply: ApplySettings,
}

/// Loads the project file. Every problem is reported with `file:line:column`.
pub fn load(path: &std::path::Path) -> Result<Settings, crate::diag::Diagnostics> {
    crate::desired::load_project(path)
}
