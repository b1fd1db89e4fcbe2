//! What several commands share: loading settings and desired state, opening the store,
//! making a plan, saved plan files, the step summary.

use std::io::Write;
use std::path::Path;

use crate::cli::Global;
use crate::model::{Desired, Names};
use crate::plan::Plan;
use crate::render::json::StateRef;
use crate::settings::Settings;
use crate::store::Store;
use crate::{Error, Result};

/// What every command starts from.
pub struct Context {
    pub global: Global,
}

impl Context {
    pub fn new(global: Global) -> Self {
        Context { global }
    }

    pub fn settings(&self) -> Result<Settings> {
        Ok(crate::settings::load(&self.global.config)?)
    }

    /// Settings and the validated desired state.
    pub fn load(&self) -> Result<(Settings, Desired)> {
        let settings = self.settings()?;
        let desired = crate::desired::load_users(&settings)?;
        Ok((settings, desired))
    }

    /// Progress and notes on stderr, unless `--quiet`.
    pub fn note(&self, msg: impl std::fmt::Display) {
        if !self.global.quiet {
            eprintln!("{msg}");
        }
    }
}

/// The existing store of this app, if any (never creates one).
pub fn open_existing_store(settings: &Settings) -> Result<Option<Store>> {
    let store = Store::open_existing(&settings.state_dir)?;
    if let Some(store) = &store {
        store.check_belongs(settings.sdkappid, settings.endpoint.host())?;
    }
    Ok(store)
}

/// The existing store of this app for reading only (never writes to the state directory).
pub fn open_read_only_store(settings: &Settings) -> Result<Option<Store>> {
    let store = Store::open_read_only(&settings.state_dir)?;
    if let Some(store) = &store {
        store.check_belongs(settings.sdkappid, settings.endpoint.host())?;
    }
    Ok(store)
}

/// The store of this app, created when missing.
pub fn open_store(settings: &Settings) -> Result<Store> {
    Ok(Store::open(
        &settings.state_dir,
        settings.sdkappid,
        settings.endpoint.host(),
    )?)
}

/// Diffs `desired` against the store (or an empty `L` when there is none).
///
/// Most accounts of a large app are unchanged between two plans. While scanning the store,
/// an account whose desired attributes encode to exactly the stored bytes is counted as
/// unchanged without decoding anything; only the rest goes through [`crate::plan::diff`].
pub fn make_plan(
    settings: &Settings,
    desired: Desired,
    store: Option<&Store>,
) -> Result<(Plan, StateRef)> {
    let mut names = Names::new(&settings.attributes);
    let (slots, lineage, serial) = match store {
        Some(store) => (
            store.meta().slots.clone(),
            Some(store.meta().lineage.clone()),
            store.meta().serial,
        ),
        None => (Default::default(), None, 0),
    };
    let mut rest = Vec::new();
    let mut last = Vec::new();
    let mut same = 0;
    let mut managed = 0;
    if let Some(store) = store {
        let mut wanted = desired.accounts.into_iter().peekable();
        let mut scratch = Vec::with_capacity(256);
        managed = store.scan(|account, stored| {
            while let Some(d) = wanted.next_if(|(a, _)| &**a < account) {
                rest.push(d);
            }
            let decode = |names: &mut Names| {
                crate::store::decode_attrs(stored, names).map_err(|m| {
                    crate::store::StoreError::Corrupt {
                        path: store.path().to_path_buf(),
                        message: m,
                    }
                })
            };
            match wanted.next_if(|(a, _)| &**a == account) {
                Some(d) => {
                    crate::store::encode_attrs_into(&mut scratch, &d.1, &names);
                    if scratch == stored {
                        same += 1;
                    } else {
                        last.push((account.into(), decode(&mut names)?));
                        rest.push(d);
                    }
                }
                None => last.push((account.into(), decode(&mut names)?)),
            }
            Ok(())
        })?;
        rest.extend(wanted);
    } else {
        rest = desired.accounts;
    }
    let desired = Desired {
        names: desired.names,
        accounts: rest,
    };
    let mut plan =
        crate::plan::diff(desired, last, names, &slots).map_err(|e| Error::msg(e.to_string()))?;
    plan.unchanged += same;
    plan.managed = managed;
    let state = StateRef {
        lineage,
        serial,
        sdkappid: settings.sdkappid,
        endpoint_host: settings.endpoint.host().to_owned(),
        attributes: settings.attributes.clone(),
        managed,
    };
    Ok((plan, state))
}

/// The mass-removal rule of DESIGN.md §4, phrased for the user, when `plan` breaks it.
pub fn mass_removal(plan: &Plan, settings: &Settings) -> Option<String> {
    let max = settings.apply.max_removal_percent;
    plan.is_mass_removal(max).then(|| {
        let losing = plan.summary().accounts_losing_values;
        format!(
            "this plan removes attribute values from {losing} of {} managed users ({:.1}%, more than max_removal_percent {max}%): check for an emptied or mis-globbed users file; if this is intended, apply with --allow-mass-removal",
            plan.managed,
            losing as f64 * 100.0 / plan.managed.max(1) as f64,
        )
    })
}

/// Writes a saved plan: gzip-compressed JSON.
pub fn save_plan(path: &Path, plan: &Plan, state: &StateRef) -> Result<()> {
    let ctx = || format!("cannot write plan file {}", path.display());
    let file = std::fs::File::create(path).map_err(|e| Error::io(ctx(), e))?;
    let mut gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(file),
        flate2::Compression::default(),
    );
    crate::render::json::write_plan(&mut gz, plan, Some(state)).map_err(|e| Error::io(ctx(), e))?;
    gz.finish()
        .and_then(|mut w| w.flush())
        .map_err(|e| Error::io(ctx(), e))
}

/// Reads a saved plan.
pub fn read_plan(path: &Path) -> Result<(Plan, StateRef)> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("cannot read plan file {}", path.display()), e))?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::io::BufReader::new(file))
        .read_to_end(&mut bytes)
        .map_err(|e| {
            Error::msg(format!(
                "{} is not a saved plan (gzip JSON from `timattr plan --out`): {e}",
                path.display()
            ))
        })?;
    crate::render::json::read_saved(&bytes)
        .map_err(|e| Error::msg(format!("{}: {e}", path.display())))
}

/// Appends markdown to the file named by `GITHUB_STEP_SUMMARY`, when set.
pub fn append_step_summary(markdown: &str) {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return;
    };
    let result = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(markdown.as_bytes()));
    if let Err(e) = result {
        tracing::warn!("cannot append to GITHUB_STEP_SUMMARY: {e}");
    }
}

/// Stdout, buffered and locked, for data.
pub fn stdout() -> std::io::BufWriter<std::io::StdoutLock<'static>> {
    std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock())
}

/// Maps an output error: a closed pipe (`| head`) is not a failure of the command.
pub fn output_result(r: std::io::Result<()>) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io("cannot write output", e)),
    }
}

/// A client for the project's endpoint, and the in-process emulator behind `endpoint: embedded`
/// (stop it with [`Connection::close`] so its data is saved).
pub struct Connection {
    pub client: crate::api::Client,
    pub embedded: Option<crate::emulator::Running>,
}

impl Connection {
    pub async fn open(settings: &Settings) -> Result<Connection> {
        use crate::api::{Client, ClientConfig, Secret};
        use crate::settings::Endpoint;
        let secret = project_secret(settings)?;
        let (base_url, embedded) = match &settings.endpoint {
            Endpoint::Embedded => {
                let running = crate::emulator::start(crate::emulator::Config {
                    listen: ([127, 0, 0, 1], 0).into(),
                    sdkappid: settings.sdkappid,
                    admin: settings.admin.clone(),
                    key: Secret::new(crate::api::DEMO_SECRET_KEY.to_owned()),
                    latency: std::time::Duration::ZERO,
                    fault_rate: 0.0,
                    data: Some(settings.state_dir.join("embedded-emulator.json")),
                    rate_limit: 100,
                })
                .await
                .map_err(|e| Error::msg(format!("cannot start the embedded emulator: {e}")))?;
                (running.base_url(), Some(running))
            }
            Endpoint::Url { base, .. } => (base.clone(), None),
        };
        let client = Client::new(ClientConfig {
            base_url,
            sdkappid: settings.sdkappid,
            identifier: settings.admin.clone(),
            secret,
            timeout: std::time::Duration::from_secs(30),
        })?;
        Ok(Connection { client, embedded })
    }

    /// Stops the embedded emulator, saving its data.
    pub async fn close(self) -> Result<()> {
        if let Some(running) = self.embedded {
            running.stop().await.map_err(|e| {
                Error::msg(format!(
                    "the embedded emulator could not save its data: {e}"
                ))
            })?;
        }
        Ok(())
    }
}

/// The SecretKey, from the environment variable `var` (the only place it is ever read from).
pub fn secret_from_env(var: &str) -> Result<crate::api::Secret> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(crate::api::Secret::new(v)),
        _ => Err(Error::msg(format!(
            "the SecretKey is not set: export {var} with the app's key from the Chat console (it is read only from the environment)"
        ))),
    }
}

/// The key the project's endpoint is signed with: the fixed demo key of `endpoint: embedded`,
/// otherwise the SecretKey from the variable the project names.
pub fn project_secret(settings: &Settings) -> Result<crate::api::Secret> {
    match settings.endpoint {
        crate::settings::Endpoint::Embedded => Ok(crate::api::Secret::new(
            crate::api::DEMO_SECRET_KEY.to_owned(),
        )),
        crate::settings::Endpoint::Url { .. } => secret_from_env(&settings.secret_env),
    }
}

/// A multi-threaded runtime for commands that talk to the API.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the async runtime", e))
}

/// Completes on the first Ctrl-C (never, if the signal cannot be watched).
pub async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
