//! timattr: the user attributes of a Tencent Cloud Chat app, managed as code.
//!
//! Data flows one way:
//!
//! ```text
//! load (desired files, store) → plan (pure diff) → render | apply (API, batches, limiter) → record (store)
//! ```
//!
//! - [`settings`] reads the project file (`timattr.yaml`) into one typed [`settings::Settings`].
//! - [`desired`] loads and validates the users files into the desired state `D`
//!   (the only module that touches the YAML crate, a streaming parser with positions).
//! - [`model`] is the shared vocabulary: accounts, attribute names and values. No I/O.
//! - [`store`] is the sled store of last-applied state `L`, its metadata and history
//!   (the only module that touches sled).
//! - [`plan`] is the pure three-way diff of `D` against `L`, and the batching of a plan into requests.
//! - [`render`] turns a plan (or a drift report) into text, JSON or markdown, writing to `impl Write`.
//! - [`api`] is the client of the `v4/all_member_push` API family: wire types, UserSig,
//!   error classes, redaction (the only module that touches reqwest).
//! - [`limiter`] paces requests (sliding one-second window, in-flight cap) and retries with backoff.
//! - [`apply`] runs a plan's batches through the limiter and reports each batch outcome to a sink.
//! - [`drift`] compares live attributes with last-applied.
//! - [`emulator`] is the server side of the API family, for offline use and tests.
//! - [`suggest`] finds the known word a typo meant ("did you mean `city`?").
//! - [`schema`] holds the JSON Schemas of the project and users files, for editors.
//! - [`commands`] holds one thin orchestrator per subcommand; [`cli`] the clap definitions.

pub mod api;
pub mod apply;
pub mod cli;
pub mod commands;
pub mod desired;
pub mod diag;
pub mod drift;
pub mod emulator;
pub mod error;
pub mod limiter;
pub mod model;
pub mod plan;
pub mod render;
pub mod schema;
pub mod settings;
pub mod store;
pub mod suggest;

pub use error::{Error, Result};
