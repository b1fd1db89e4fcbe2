//! The integration tests, one crate (one link) with a module per area, as cargo and ripgrep
//! keep theirs: each module runs the real binary or library against the emulator on 127.0.0.1.

mod hostile;
#[path = "support/postgres.rs"]
mod pg;
mod support;
mod workflow_steps;

mod action_install;
mod api_client;
mod apply;
mod apply_tags;
mod cli;
mod completions;
mod conventions;
mod desired;
mod desired_inputs;
mod desired_tags;
mod doctor;
mod drift;
mod drift_tags;
mod emulator;
mod hostile_inputs;
mod hostile_server;
mod output;
mod output_schemas;
mod plan;
mod plan_tags;
mod policies;
mod portability;
mod postgres;
mod readme;
mod saved_plan_files;
mod schema;
mod sealed_plans;
mod snapshots;
mod state_integrity;
mod store_promises;
mod timpush;
mod tools;
mod users_files_unread;
mod usersig_official;
mod workflows;
