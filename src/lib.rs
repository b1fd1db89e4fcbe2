//! timattr: the user attributes of a Tencent Cloud Chat app, managed as code.
//!
//! Data flows one way (the modules below are listed in the order of STYLE.md's layout):
//!
//! ```text
//! load (desired files, store) → plan (pure diff) → render | apply (API, batches, limiter) → record (store)
//! ```
//!
//! - [`cli`] holds the clap definitions; [`commands`] one thin handler per subcommand: parse the
//!   arguments into an options struct, call one operation, render the result, map it to an
//!   exit code.
//! - [`settings`] is the project's typed [`settings::Settings`] and the rules of its values
//!   (regions, endpoints); it imports nothing of the loader.
//! - [`ops`] holds the use cases (make a plan, execute it, read live state, adopt, export and
//!   restore, saved plans) and is the only place that wires the layers below together.
//! - [`desired`] loads and validates the project file and the users files into `Settings` and
//!   the desired state `D` (the only module that touches the YAML crate, a streaming parser
//!   with positions); [`diag`] is its `file:line:column` diagnostics.
//! - [`model`] is the shared vocabulary: accounts, attribute names and values. No I/O.
//! - [`plan`] is the pure three-way diff of `D` against `L`, and the batching of a plan into requests.
//! - [`render`] is the output layer: plans, drift reports and apply results as text, JSON or
//!   markdown, writing to `impl Write`; one serde type per JSON format.
//! - [`api`] is the client of the API families, `v4/all_member_push` and `v4/timpush` (one
//!   wire module each behind one client): wire types, partial success (`ErrorList`), UserSig,
//!   error classes, redaction (the only module that touches reqwest).
//! - [`limiter`] paces requests (sliding one-second window, in-flight cap) and retries with backoff.
//! - [`apply`] runs a plan's batches through the limiter, sets before removes, and hands each
//!   group of confirmed batches to a sink (it does not know the store exists).
//! - [`store`] is the sled store of last-applied state `L`, its metadata and history
//!   (the only module that touches sled).
//! - [`drift`] compares live attributes with last-applied into a drift report.
//! - [`emulator`] is the server side of both API families on one data set, for offline use
//!   and tests.
//! - [`files`] replaces output files atomically and reads gzip input with a size cap.
//! - [`redact`] is the one redaction step before every output: registered secrets become `***`.
//! - [`escape`] is how every output shows control and bidirectional characters.
//! - [`provenance`] is who and what a run is (actor, commit, CI run URL), as history records it.
//! - [`runtime`] is the process's one async runtime (API client, emulator, PostgreSQL store).
//! - [`clock`] is the wall clock in Unix seconds (usersigs, history, exports).
//! - [`policy`] is what values and tags the project allows (DESIGN.md §11): checked while the
//!   users files are walked, and on live values by `import` and `drift`.
//! - [`suggest`] finds the known word a typo meant ("did you mean `city`?").
//! - [`schema`] holds the JSON Schemas of the project and users files, for editors.
//! - [`error`] is the crate's error: what went wrong and what the user can do next.
//! - [`alloc`] gives the loader's freed memory back to the OS (the crate's only unsafe code).

pub mod alloc;
pub mod api;
pub mod apply;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod desired;
pub mod diag;
pub mod drift;
pub mod emulator;
pub mod error;
pub mod escape;
pub mod files;
pub mod limiter;
pub mod model;
pub mod ops;
pub mod plan;
pub mod policy;
pub mod provenance;
pub mod redact;
pub mod render;
pub mod runtime;
pub mod schema;
pub mod settings;
pub mod store;
pub mod suggest;

pub use error::{Error, Result};
