//! The state checks: can the store be read (version, lineage, serial, lock holder), and could
//! an apply record in it? Asked, never tried: a sled directory's permissions with
//! `access(2)` (which also knows read-only mounts and immutable files, and root's rights),
//! PostgreSQL's with its privilege functions. Nothing is written to the store.

use std::path::{Path, PathBuf};

#[cfg(not(unix))]
use portable::Access;
#[cfg(unix)]
use rustix::fs::Access;

use super::{name, Report};
use crate::settings::{DatabaseUrl, Settings, StateLocation};
use crate::store::postgres::probe::Probe;
use crate::store::postgres::{Target, MIN_READ_VERSION, SCHEMA_VERSION};
use crate::store::sled::lock;
use crate::store::{ErrorKind, Meta};
use crate::Error;

pub(super) fn checks(r: &mut Report, s: &Settings) {
    match &s.state {
        StateLocation::Sled(dir) => {
            sled(r, s, dir);
            sled_writable(r, dir);
        }
        StateLocation::Postgres { url, name: project } => postgres(r, s, url, project.as_deref()),
    }
}

fn sled(r: &mut Report, s: &Settings, dir: &Path) {
    // Readers never wait for a writer, so the holder is asked of the lock file itself.
    let holder = lock::read_holder(dir).filter(|_| lock::is_held(dir));
    if let Some(h) = holder {
        return r.fail(
            name::STATE,
            format!(
                "state at {} is locked by {}: it is writing it now",
                dir.display(),
                h.describe()
            ),
            "wait for it to finish: an apply started now fails at once (or waits with --lock-timeout DURATION)",
        );
    }
    match crate::ops::state::open_read_only(s) {
        Ok(None) => r.pass(
            name::STATE,
            format!(
                "no state at {} yet: the first apply creates it (`timattr import` first adopts an app that already has values)",
                dir.display()
            ),
        ),
        Ok(Some(state)) => {
            let accounts = state
                .account_count()
                .map_or_else(|_| "?".to_owned(), |n| n.to_string());
            r.pass(
                name::STATE,
                format!(
                    "state at {}: {}, {accounts} accounts; no writer holds it",
                    dir.display(),
                    describe(state.meta())
                ),
            );
        }
        Err(Error::Store(e)) if e.kind() == ErrorKind::Locked => r.fail(
            name::STATE,
            format!(
                "state at {} is locked: another timattr process (apply, import, drift --fix, state restore or rm) is writing it now",
                dir.display()
            ),
            "wait for it to finish: an apply started now fails at once (or waits with --lock-timeout DURATION)",
        ),
        Err(e) => {
            let fix = match &e {
                Error::Store(e) => match e.kind() {
                    ErrorKind::NewerFormat => "upgrade timattr",
                    ErrorKind::OtherApp => "point `state` at this app's own store",
                    ErrorKind::Failed => {
                        "check that the directory and its files can be read by this user"
                    }
                    _ => "as the finding says",
                },
                _ => "as the finding says",
            };
            r.fail(name::STATE, e.to_string(), fix);
        }
    }
}

fn describe(meta: &Meta) -> String {
    format!(
        "format version {}, lineage {}, serial {}",
        meta.format_version, meta.lineage, meta.serial
    )
}

/// Whether this process may write `path` (effective ids, as an apply would run).
#[cfg(unix)]
fn access(path: &Path, mode: Access) -> Result<(), String> {
    use rustix::fs::{accessat, AtFlags, CWD};
    accessat(CWD, path, mode, AtFlags::EACCESS).map_err(|e| std::io::Error::from(e).to_string())
}

/// Elsewhere (Windows) there is no access(2): the read-only attribute answers for writing.
#[cfg(not(unix))]
fn access(path: &Path, mode: Access) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if mode.contains(Access::WRITE_OK) && meta.permissions().readonly() {
        return Err("it is read-only".to_owned());
    }
    Ok(())
}

/// The access(2) modes the checks ask for, where rustix has no `access` (Windows).
#[cfg(not(unix))]
mod portable {
    #[derive(Clone, Copy)]
    pub struct Access(u8);

    impl Access {
        pub const READ_OK: Self = Self(4);
        pub const WRITE_OK: Self = Self(2);
        pub const EXEC_OK: Self = Self(1);

        pub fn contains(self, other: Self) -> bool {
            self.0 & other.0 == other.0
        }
    }

    impl std::ops::BitOr for Access {
        type Output = Self;
        fn bitor(self, other: Self) -> Self {
            Self(self.0 | other.0)
        }
    }
}

/// Could an apply write the sled directory (its files, or create it)?
fn sled_writable(r: &mut Report, dir: &Path) {
    let how = "asked with access(2); nothing written";
    if !dir.exists() {
        let Some(parent) = dir.ancestors().skip(1).find(|p| p.is_dir()) else {
            r.fail(
                name::STATE_WRITE,
                format!(
                    "{} cannot be created: no parent directory exists",
                    dir.display()
                ),
                "point `state` at a directory this user can create",
            );
            return;
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        match access(parent, Access::WRITE_OK | Access::EXEC_OK) {
            Ok(()) => r.pass(
                name::STATE_WRITE,
                format!(
                    "{} does not exist yet; the first apply creates it in {}, which is writable ({how})",
                    dir.display(),
                    parent.display()
                ),
            ),
            Err(why) => r.fail(
                name::STATE_WRITE,
                format!(
                    "an apply could not record: {} cannot be created in {} ({why})",
                    dir.display(),
                    parent.display()
                ),
                format!("create {} writable for the user that runs apply, or point `state` elsewhere", dir.display()),
            ),
        }
        return;
    }
    match unwritable(dir) {
        None => r.pass(
            name::STATE_WRITE,
            format!("{} and its files are writable ({how})", dir.display()),
        ),
        Some((path, why)) => r.fail(
            name::STATE_WRITE,
            format!("an apply could not record: {} is not writable ({why})", path.display()),
            format!(
                "make {} writable for the user that runs apply (e.g. `chmod -R u+w`, or mount it read-write), or point `state` at a writable directory",
                dir.display()
            ),
        ),
    }
}

/// The first of `dir` and its entries (one level deep, and sled's `blobs/`) an apply could
/// not write, with why.
fn unwritable(dir: &Path) -> Option<(PathBuf, String)> {
    if let Err(why) = access(dir, Access::WRITE_OK | Access::EXEC_OK) {
        return Some((dir.to_owned(), why));
    }
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        let mode = match entry.file_type() {
            Ok(t) if t.is_dir() => Access::WRITE_OK | Access::EXEC_OK,
            Ok(t) if t.is_file() => Access::READ_OK | Access::WRITE_OK,
            _ => continue,
        };
        if let Err(why) = access(&path, mode) {
            return Some((path, why));
        }
    }
    None
}

fn postgres(r: &mut Report, s: &Settings, url: &DatabaseUrl, project: Option<&str>) {
    let project = project.map_or_else(
        || crate::store::postgres::backend::default_name(s.sdkappid),
        str::to_owned,
    );
    let probed = Target::parse(url, &project).and_then(|t| t.probe().map(|p| (t, p)));
    let (target, probe) = match probed {
        Ok(v) => v,
        Err(e) => {
            r.fail(
                name::STATE,
                e.to_string(),
                "check the state URL (`state` or TIMATTR_STATE), its password (PGPASSWORD) and that the server accepts this machine",
            );
            r.skip(name::STATE_WRITE, "the state reachable (state)");
            return;
        }
    };
    postgres_state(r, s, &target, &probe);
    postgres_writable(r, &probe);
}

fn postgres_state(r: &mut Report, s: &Settings, target: &Target, p: &Probe) {
    let at = format!("{} (as role {})", target.describe(), p.role);
    match (p.schema, &p.meta) {
        (None, _) => r.pass(
            name::STATE,
            format!("{at}: reachable; no timattr tables yet: the first apply creates them"),
        ),
        (Some(v), _) if v > SCHEMA_VERSION => r.fail(
            name::STATE,
            format!("{at}: the tables have schema version {v}, newer than this timattr's ({SCHEMA_VERSION})"),
            "upgrade timattr",
        ),
        (Some(v), _) if v < MIN_READ_VERSION => r.fail(
            name::STATE,
            format!("{at}: the tables have schema version {v}, older than this timattr reads"),
            "run a writer (`timattr apply`, `import` or `state restore`) of this version once to upgrade them",
        ),
        (Some(v), None) => r.pass(
            name::STATE,
            format!("{at}: reachable, schema version {v}; no state for this project yet: the first apply creates it"),
        ),
        // The core's rule: a project that recorded nothing yet is bound to no app.
        (Some(_), Some(m)) if !m.usable_by(s.sdkappid, s.endpoint.host()) => {
            r.fail(
                name::STATE,
                format!(
                    "{at} belongs to sdkappid {} at {}, but the project is sdkappid {} at {}",
                    m.sdkappid,
                    m.endpoint_host,
                    s.sdkappid,
                    s.endpoint.host()
                ),
                "give this project its own `state.name`",
            )
        }
        (Some(v), Some(m)) => match &p.holder {
            Some(holder) => r.fail(
                name::STATE,
                format!("{at}: schema version {v}, {}; locked now by {holder}", describe(m)),
                "wait for it to finish: an apply started now fails at once (or waits with --lock-timeout DURATION)",
            ),
            None => r.pass(
                name::STATE,
                format!("{at}: schema version {v}, {}; no writer holds its lock", describe(m)),
            ),
        },
    }
}

fn postgres_writable(r: &mut Report, p: &Probe) {
    let how = "asked with has_table_privilege; nothing written";
    if p.migration_needs_owner {
        r.fail(
            name::STATE_WRITE,
            format!(
                "an apply could not record: the tables have schema version {}, and this timattr's first write upgrades them to {SCHEMA_VERSION}, which only their owner may do; role {} does not own them",
                p.schema.unwrap_or(0),
                p.role
            ),
            "run this timattr's first apply (or `timattr import`) once as the tables' owner; later ones can run as this role",
        );
        return;
    }
    if p.missing.is_empty() {
        let what = if p.schema.is_none() {
            "may create the tool's tables"
        } else {
            "may read and write the tool's tables"
        };
        r.pass(name::STATE_WRITE, format!("role {} {what} ({how})", p.role));
        return;
    }
    r.fail(
        name::STATE_WRITE,
        format!(
            "an apply could not record: role {} lacks privileges on the tool's tables ({how})",
            p.role
        ),
        format!(
            "as the tables' owner (or a superuser), run: {}",
            p.missing.join(" ")
        ),
    );
}
