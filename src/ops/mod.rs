//! The use cases, and the only place that wires layers together:
//! settings → desired → store → plan → render | apply → store.
//!
//! - [`plan`] makes a plan (desired against the store) and owns the mass-removal rule.
//! - [`apply`] is the `apply` use case: plan or saved plan, safety rails, review, execute.
//! - [`execute`] runs a plan against the API and records each group of confirmed batches in
//!   the store; `apply` and `drift --fix` share it.
//! - [`drift`] reads live state and compares it with last-applied; [`import`] reads live state
//!   and adopts it ([`import::adopt`] is the pure rule).
//! - [`state`] opens the store and holds the `state` use cases (list, show, export, restore,
//!   history, rm); [`saved`] reads and writes saved plan files and checks they still apply.
//! - [`doctor`] is the read-only pre-flight: every check an apply needs, with the fix.
//! - [`connect`] reaches the API: client, embedded emulator, secret, runtime, signals.
//!
//! Operations take `Settings` and an options struct, never clap types; they return values
//! for `commands` to render. None of them prints except through [`crate::render`].

pub mod apply;
pub mod connect;
pub mod doctor;
pub mod drift;
pub mod execute;
pub mod import;
pub mod plan;
pub mod saved;
pub mod state;
