//! Placeholder.

/// Loads the project file.
pub fn load_project(
    path: &std::path::Path,
) -> Result<crate::settings::Settings, crate::diag::Diagnostics> {
    let _ = path;
    Err(crate::diag::Diagnostics::default())
}
