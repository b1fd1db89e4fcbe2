//! Reaching the API: the client for the project's endpoint (and the in-process emulator behind
//! `endpoint: embedded`), the SecretKey from the environment, the async runtime, and the
//! signals that stop a run.

use std::future::Future;

use crate::api::{Client, ClientConfig, Secret};
use crate::apply::{Runner, Signal};
use crate::settings::{Endpoint, Settings};
use crate::{Error, Result};

/// A client for the project's endpoint, and the in-process emulator behind `endpoint: embedded`
/// (stop it with [`Connection::close`] so its data is saved).
pub struct Connection {
    pub client: Client,
    pub embedded: Option<crate::emulator::Running>,
}

impl Connection {
    pub async fn open(settings: &Settings) -> Result<Connection> {
        Connection::open_with(settings, false).await
    }

    /// [`Connection::open`] for a run that only reads: an embedded emulator then loads its
    /// data file without writing it (`timattr doctor`).
    pub async fn open_for_reads(settings: &Settings) -> Result<Connection> {
        Connection::open_with(settings, true).await
    }

    async fn open_with(settings: &Settings, reads_only: bool) -> Result<Connection> {
        let secret = project_secret(settings)?;
        let (base_url, embedded) = match &settings.endpoint {
            Endpoint::Embedded => {
                let running = start_embedded(settings, reads_only).await?;
                (running.base_url(), Some(running))
            }
            Endpoint::Url { base, .. } => (base.clone(), None),
        };
        let client = Client::for_family(
            ClientConfig {
                base_url,
                sdkappid: settings.sdkappid,
                identifier: settings.admin.clone(),
                secret,
                timeout: std::time::Duration::from_secs(30),
            },
            settings.api,
        )?;
        Ok(Connection { client, embedded })
    }

    /// A runner paced by the project's `apply` settings.
    pub fn runner(&self, settings: &Settings) -> Runner {
        Runner::new(
            self.client.clone(),
            settings.apply.rate_limit,
            settings.apply.concurrency,
        )
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

async fn start_embedded(
    settings: &Settings,
    read_only_data: bool,
) -> Result<crate::emulator::Running> {
    let simulate = crate::emulator::Simulate::from_env().map_err(Error::msg)?;
    if simulate.is_active() {
        // Said at once: a simulating emulator forgets every write when the run ends.
        tracing::warn!(
            "{} is set: the built-in emulator simulates a misconfigured app and does not save its data",
            crate::emulator::SIMULATE_ENV
        );
    }
    crate::emulator::start(crate::emulator::Config {
        listen: ([127, 0, 0, 1], 0).into(),
        sdkappid: settings.sdkappid,
        admin: settings.admin.clone(),
        key: Secret::new(crate::api::DEMO_SECRET_KEY.to_owned()),
        latency: std::time::Duration::ZERO,
        fault_rate: 0.0,
        data: Some(settings.state_dir.join("embedded-emulator.json")),
        rate_limit: 100,
        // The embedded emulator has no flags: its app is set up from the environment.
        setup: crate::emulator::Setup::from_env().map_err(Error::msg)?,
        simulate,
        read_only_data,
    })
    .await
    .map_err(|e| Error::msg(format!("cannot start the embedded emulator: {e}")))
}

/// The SecretKey, from the environment variable `var` (the only place it is ever read from).
pub fn secret_from_env(var: &str) -> Result<Secret> {
    match std::env::var_os(var).filter(|v| !v.is_empty()).map(|v| v.into_string()) {
        // Refused rather than trimmed: the server would answer a bare 70009 (bad UserSig) for
        // a key with a newline from `echo` or a file, and trimming silently would hide that
        // the variable holds something else than the console shows. The key is never shown.
        Some(Ok(v)) if v.trim() != v => Err(Error::msg(format!(
            "the SecretKey in {var} has leading or trailing whitespace (a newline from `echo` or a file?); set it to the key alone, e.g. `export {var}=\"$(tr -d '[:space:]' < keyfile)\"`"
        ))),
        Some(Ok(v)) => Ok(Secret::new(v)),
        Some(Err(_)) => Err(Error::msg(format!(
            "{var} is set but is not valid UTF-8; a SecretKey is plain text: copy it again from the Chat console"
        ))),
        None => {
            let set: Vec<String> = std::env::vars_os()
                .filter(|(_, v)| !v.is_empty())
                .filter_map(|(k, _)| k.into_string().ok())
                .collect();
            let hint = crate::suggest::did_you_mean(var, set.iter().map(String::as_str))
                .map(|v| format!(" (did you mean {v}? it is set)"))
                .unwrap_or_default();
            Err(Error::msg(format!(
                "the SecretKey is not set: export {var} with the app's key from the Chat console (it is read only from the environment){hint}"
            )))
        }
    }
}

/// The key the project's endpoint is signed with: the fixed demo key of `endpoint: embedded`,
/// otherwise the SecretKey from the variable the project names.
pub fn project_secret(settings: &Settings) -> Result<Secret> {
    match settings.endpoint {
        Endpoint::Embedded => Ok(Secret::new(crate::api::DEMO_SECRET_KEY.to_owned())),
        Endpoint::Url { .. } => secret_from_env(&settings.secret_env),
    }
}

/// The process's one multi-threaded runtime ([`crate::runtime`]), for operations that talk to
/// the API; the PostgreSQL store runs its connection on it too.
pub fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    crate::runtime::get().map_err(|e| Error::io("cannot start the async runtime", e))
}

/// Listens for Ctrl-C, SIGTERM and SIGHUP from the moment it is called (inside a runtime), and
/// completes with the first that arrives. A signal that cannot be watched never completes.
pub fn signals() -> impl Future<Output = Signal> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        let hangup = signal(SignalKind::hangup()).ok();
        async move {
            tokio::select! {
                () = first(interrupt) => Signal::Interrupt,
                () = first(terminate) => Signal::Terminate,
                () = first(hangup) => Signal::Hangup,
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        Signal::Interrupt
    }
}

#[cfg(unix)]
async fn first(listener: Option<tokio::signal::unix::Signal>) {
    match listener {
        Some(mut s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_misspelt_secret_variable_names_the_set_one() {
        let set = ["PATH", "TIM_SECRET_KEY", "HOME"];
        for typo in ["TIM_SECRT", "TIM_SECRET_KY", "tim_secret_key"] {
            assert_eq!(
                crate::suggest::did_you_mean(typo, set),
                Some("TIM_SECRET_KEY"),
                "{typo}"
            );
        }
        assert_eq!(crate::suggest::did_you_mean("MY_APP_TOKEN", set), None);
    }
}
