//! Shared by the integration tests: a project in a temp dir, an emulator on 127.0.0.1 in this
//! process, and a way to run the real binary against them.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

pub mod files;

use timattr::api::Secret;
use timattr::emulator::{self, Running};

pub const SDKAPPID: u32 = 1_400_000_000;
pub const ADMIN: &str = "administrator";
pub const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
pub const SECRET_ENV: &str = "TIMATTR_TEST_SECRET";

/// An emulator serving on a loopback port from a runtime of its own.
pub struct Emulator {
    pub runtime: tokio::runtime::Runtime,
    pub running: Option<Running>,
}

impl Emulator {
    pub fn start(latency: Duration, fault_rate: f64) -> Emulator {
        Self::start_with(latency, fault_rate, None)
    }

    /// An emulator whose app starts with `setup` (slots with types, RegistrationIDs, missing
    /// accounts).
    pub fn start_setup(setup: emulator::Setup) -> Emulator {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut cfg = emulator::Config::local(SDKAPPID, ADMIN, Secret::new(KEY.to_owned()));
        cfg.setup = setup;
        let running = runtime.block_on(emulator::start(cfg)).unwrap();
        Emulator {
            runtime,
            running: Some(running),
        }
    }

    pub fn start_with(latency: Duration, fault_rate: f64, data: Option<PathBuf>) -> Emulator {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut cfg = emulator::Config::local(SDKAPPID, ADMIN, Secret::new(KEY.to_owned()));
        cfg.latency = latency;
        cfg.fault_rate = fault_rate;
        cfg.data = data;
        let running = runtime.block_on(emulator::start(cfg)).unwrap();
        Emulator {
            runtime,
            running: Some(running),
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub fn base_url(&self) -> String {
        self.running().base_url()
    }

    /// account → name → value, as the server holds it (accounts without attributes left out).
    pub fn attrs(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.running()
            .snapshot()
            .users
            .into_iter()
            .filter(|(_, u)| !u.attrs.is_empty())
            .map(|(a, u)| (a, u.attrs))
            .collect()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = self.runtime.block_on(r.stop());
        }
    }
}

/// A project directory with a project file and users files.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub endpoint: String,
}

impl Project {
    /// A project pointing at `endpoint` (`embedded` or a URL).
    pub fn new(endpoint: &str, attributes: &[&str]) -> Project {
        let p = Project {
            dir: tempfile::tempdir().unwrap(),
            endpoint: endpoint.to_owned(),
        };
        p.write_project(attributes, "");
        p
    }

    /// Rewrites the project file; `extra` is appended (e.g. an `apply:` section).
    pub fn write_project(&self, attributes: &[&str], extra: &str) {
        let text = format!(
            "app:\n  sdkappid: {SDKAPPID}\n  admin: {ADMIN}\n  endpoint: {}\n  secret_env: {SECRET_ENV}\nattributes: [{}]\nusers: [\"users/*.yaml\"]\n{extra}",
            self.endpoint,
            attributes.join(", ")
        );
        std::fs::write(self.path().join("timattr.yaml"), text).unwrap();
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path().join("state")
    }

    /// Writes `users/NAME` with raw YAML.
    pub fn write_users(&self, name: &str, yaml: &str) {
        let dir = self.path().join("users");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), yaml).unwrap();
    }

    /// Writes `users/NAME` from a map.
    pub fn write_users_map(&self, name: &str, users: &BTreeMap<String, BTreeMap<String, String>>) {
        // An empty map is written `users: {}`: `users:` with nothing is an error (§8).
        let mut yaml = String::from(if users.is_empty() {
            "users: {}\n"
        } else {
            "users:\n"
        });
        for (account, attrs) in users {
            yaml.push_str(&format!("  {}:", json(account)));
            if attrs.is_empty() {
                yaml.push_str(" {}\n");
                continue;
            }
            yaml.push('\n');
            for (n, v) in attrs {
                yaml.push_str(&format!("    {}: {}\n", json(n), json(v)));
            }
        }
        self.write_users(name, &yaml);
    }

    /// The binary, run in the project directory with the test secret set.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_timattr"));
        c.args(args)
            .current_dir(self.path())
            .env(SECRET_ENV, KEY)
            .env_remove("RUST_LOG")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        c
    }

    /// The binary started in the background, its output discarded.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.cmd(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.cmd(args).output().unwrap())
    }

    /// The binary run as [`Project::cmd`] would, through `sh` with `prelude` (resource limits
    /// such as `ulimit -v 1048576`, or `trap '' XFSZ; ulimit -f 8`) before `exec`; `args` is
    /// shell text, so arguments with spaces must be quoted there.
    #[cfg(unix)]
    #[allow(dead_code)] // Not every test binary uses it.
    pub fn run_limited(&self, prelude: &str, args: &str) -> Run {
        let cmd = self.cmd(&[]);
        let out = Command::new("sh")
            .args(["-c", &format!("{prelude} && exec \"$BIN\" {args}")])
            .env("BIN", env!("CARGO_BIN_EXE_timattr"))
            .current_dir(self.path())
            .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run(out)
    }
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A finished run of the binary.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Asserts the exit code, showing both streams when it differs.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code(),
            code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// Deterministic users: `n` accounts with 3 attributes each.
pub fn users(n: usize, salt: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    (0..n)
        .map(|i| {
            let attrs: BTreeMap<String, String> = [
                ("sex", if i % 2 == 0 { "m" } else { "f" }.to_owned()),
                ("city", format!("city{}{salt}", i % 7)),
                ("tier", format!("tier{}", i % 3)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            (format!("user{i:05}"), attrs)
        })
        .collect()
}

/// The accounts and values the store claims, from `state export`.
pub fn store_claims(p: &Project) -> BTreeMap<String, BTreeMap<String, String>> {
    use std::io::BufRead;
    let out = p.run(&["state", "export"]).expect(0);
    std::io::BufReader::new(flate2::read::GzDecoder::new(&out.0.stdout[..]))
        .lines()
        .skip(1)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l.unwrap()).unwrap();
            let attrs = serde_json::from_value(v["attrs"].clone()).unwrap();
            (v["account"].as_str().unwrap().to_owned(), attrs)
        })
        .collect()
}

/// Every value the store claims is on the server: it never records what the server did not
/// confirm.
pub fn assert_claims_confirmed(p: &Project, emu: &Emulator) {
    let live = emu.attrs();
    for (account, attrs) in store_claims(p) {
        for (name, value) in attrs {
            assert_eq!(
                live.get(&account).and_then(|a| a.get(&name)),
                Some(&value),
                "the store claims {account}.{name}={value:?} but the server does not have it"
            );
        }
    }
}
