//! Placeholder.

/// Loads the project file.
pub fn load_project(
    path: &std::path::Path,
) -> Result<crate::settings::Settings, crate::diag::Diagnostics> {
    let _ = path;
    Err(crate::diag::Diagnostics::default())
}

/// Loads the users files.
pub fn load_users(
    settings: &crate::settings::Settings,
) -> Result<crate::model::Desired, crate::diag::Diagnostics> {
    let _ = settings;
    Err(crate::diag::Diagnostics::default())
}
