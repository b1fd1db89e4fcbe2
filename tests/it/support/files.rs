//! Loading projects written into temporary directories, for the loader's tests: one project
//! file, a helper to write files, and diagnostics shown relative to the directory.

use std::path::{Path, PathBuf};

use timattr::desired::{load_project, load_users};
use timattr::diag::Diagnostics;
use timattr::model::Desired;

/// A project file with three attribute names and every `users/*.yaml`.
pub const PROJECT: &str = "\
app:
  sdkappid: 1400000000
  admin: administrator
  region: singapore
attributes: [sex, city, tier]
users: [\"users/*.yaml\"]
";

/// Writes `text` to `dir/rel`, making the directories on the way.
pub fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes `project` as `dir/timattr.yaml` and loads the users files it names.
pub fn load_in(dir: &Path, project: &str) -> Result<Desired, Diagnostics> {
    let path = write(dir, "timattr.yaml", project);
    let s = load_project(&path).unwrap_or_else(|e| panic!("{e}"));
    load_users(&s)
}

/// `relative/path:line:col: message` of each diagnostic.
pub fn shown(dir: &Path, d: &Diagnostics) -> Vec<String> {
    d.0.iter()
        .map(|d| {
            let mut d = d.clone();
            d.file = d.file.strip_prefix(dir).unwrap_or(&d.file).to_path_buf();
            let dir = format!("{}/", dir.display());
            format!("{}: {}", d.location(), d.message.replace(&dir, ""))
        })
        .collect()
}
