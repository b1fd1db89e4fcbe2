//! The emulator's lifecycle: bind, load the data file, serve in a background task, stop
//! gracefully (requests in flight finish, then a snapshot), and the handles tests use to edit
//! data behind the client's back and to turn latency and faults while it runs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::any;
use axum::Router;

use super::faults::Faults;
use super::handler::{fail, handle};
use super::rules::Op;
use super::traffic::Traffic;
use super::{lock, persist, Config, Data, EmulatorError, Shared, Stats, Store};
use crate::api::codes::code;
use crate::api::wire;

/// A running emulator. Dropping it stops serving at once without a final snapshot (like a
/// killed process: the journal still holds every write answered OK); [`Running::stop`] is graceful.
pub struct Running {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Binds, loads the data file if any, and serves in a background task.
pub async fn start(cfg: Config) -> Result<Running, EmulatorError> {
    let read_only = cfg.read_only_data || cfg.simulate.is_active();
    let (mut data, journal) = match cfg.data.clone() {
        Some(path) if read_only => {
            let d = tokio::task::spawn_blocking(move || persist::load(&path))
                .await
                .map_err(|e| EmulatorError::Serve(e.to_string()))??;
            (d, None)
        }
        Some(path) => {
            let (d, j) = tokio::task::spawn_blocking(move || persist::open(&path))
                .await
                .map_err(|e| EmulatorError::Serve(e.to_string()))??;
            (d, Some(j))
        }
        None => (Data::default(), None),
    };
    cfg.setup.apply(&mut data);
    let bind = |source| EmulatorError::Bind {
        addr: cfg.listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    let simulate = cfg.simulate;
    simulate.fill_slots(&mut data);
    let shared = Arc::new(Shared {
        sdkappid: simulate.sdkappid(cfg.sdkappid),
        admin: cfg.admin,
        key: simulate.key(cfg.key),
        rate_limit: cfg.rate_limit,
        faults: Faults::new(cfg.latency, cfg.fault_rate),
        store: Mutex::new(Store { data, journal }),
        traffic: Mutex::new(Traffic::default()),
    });
    let app = Router::new()
        .route("/v4/all_member_push/{command}", any(handle))
        .route("/v4/timpush/{command}", any(super::timpush::handle))
        .fallback(|| async { fail(code::MALFORMED_URL, "no such API path") })
        .with_state(shared.clone())
        .layer(axum::middleware::map_response(
            move |mut r: axum::response::Response| {
                // A skewed clock shows in the `Date` header (hyper keeps one the app set).
                let date = simulate.date(std::time::SystemTime::now());
                async move {
                    if let Some(v) = date.and_then(|d| axum::http::HeaderValue::from_str(&d).ok()) {
                        r.headers_mut().insert(axum::http::header::DATE, v);
                    }
                    r
                }
            },
        ));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    tracing::debug!(%addr, "emulator listening");
    Ok(Running {
        addr,
        shared,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// Serves until Ctrl-C, then persists and returns. For `timattr emulator`.
pub async fn run_until_ctrl_c(cfg: Config) -> Result<(), EmulatorError> {
    let running = start(cfg).await?;
    crate::redact::eprintln(&running.listening());
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| EmulatorError::Serve(format!("waiting for Ctrl-C: {e}")))?;
    running.stop().await
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What `timattr emulator` says once bound: the address it really listens on, and for a
    /// wildcard address (every interface) also the URL to use from this machine.
    pub fn listening(&self) -> String {
        if self.addr.ip().is_unspecified() {
            format!(
                "listening on http://{} (every interface; from this machine: {})",
                self.addr,
                self.base_url()
            )
        } else {
            format!("listening on {}", self.base_url())
        }
    }

    /// `http://IP:PORT`, with a wildcard listen address replaced by loopback.
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            });
        }
        format!("http://{addr}")
    }

    /// Stops accepting, lets requests in flight finish, then writes the snapshot.
    pub async fn stop(mut self) -> Result<(), EmulatorError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            // Idle keep-alive connections close at once; a stuck one must not hang the stop.
            match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => return Err(EmulatorError::Serve(e.to_string())),
                Ok(Err(e)) => return Err(EmulatorError::Serve(e.to_string())),
                Err(_) => task.abort(),
            }
        }
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = lock(&shared.store);
            let Store { data, journal } = &mut *store;
            match journal {
                Some(j) => j.compact(data),
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| EmulatorError::Serve(e.to_string()))?
    }

    /// A copy of the current data.
    pub fn snapshot(&self) -> Data {
        lock(&self.shared.store).data.clone()
    }

    /// Removes tags behind the client's back (a managed tag deleted elsewhere), for drift tests.
    pub fn remove_user_tags(&self, account: &str, tags: &[&str]) {
        self.edit(Op::RemoveTag {
            users: vec![wire::UserTags {
                to_account: account.to_owned(),
                tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            }],
        });
    }

    /// Sets a value behind the client's back (another system editing the app), for drift tests.
    pub fn set_user_attr(&self, account: &str, name: &str, value: &str) {
        self.edit(Op::SetAttr {
            users: vec![wire::UserAttrs {
                to_account: account.to_owned(),
                attrs: [(name.to_owned(), value.to_owned())].into(),
            }],
        });
    }

    /// Removes a value behind the client's back, for drift tests.
    pub fn remove_user_attr(&self, account: &str, name: &str) {
        self.edit(Op::RemoveAttr {
            users: vec![wire::UserAttrNames {
                to_account: account.to_owned(),
                attrs: vec![name.to_owned()],
            }],
        });
    }

    /// Adds tags behind the client's back (another system tagging a user), for tests of
    /// tags the tool does not manage. Not checked against the API's limits.
    pub fn add_user_tags(&self, account: &str, tags: &[&str]) {
        self.edit(Op::AddTag {
            users: vec![wire::UserTags {
                to_account: account.to_owned(),
                tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            }],
        });
    }

    fn edit(&self, op: Op) {
        if let Err(e) = lock(&self.shared.store).write(&op) {
            tracing::warn!("emulator journal write failed: {e}");
        }
    }

    /// Makes `account` a missing one (timpush: 70107) from now on, as if it were deleted
    /// behind the client's back; its data stays. For drift and import tests.
    pub fn mark_missing(&self, account: &str) {
        lock(&self.shared.store)
            .data
            .missing
            .insert(account.to_owned());
    }

    pub fn set_fault_rate(&self, p: f64) {
        self.shared.faults.set_rate(p);
    }

    pub fn set_latency(&self, d: Duration) {
        self.shared.faults.set_latency(d);
    }

    pub fn stats(&self) -> Stats {
        lock(&self.shared.traffic).stats()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
