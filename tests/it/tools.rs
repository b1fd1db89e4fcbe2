//! `timattr usersig` and `timattr emulator` as separate processes.

use std::process::Command;

use timattr::api::{usersig, Secret};
// For the emulator's Ctrl-C test, which sends the signal with kill(1).
#[cfg(unix)]
use {
    std::io::{BufRead, BufReader},
    std::process::Stdio,
    std::time::Duration,
    timattr::api::{Client, ClientConfig},
};

use crate::support;

use support::KEY;

#[test]
fn usersig_prints_a_sig_our_verifier_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_timattr"))
        .args([
            "usersig",
            "--sdkappid",
            "1400000000",
            "--identifier",
            "admin",
            "--expire",
            "3600",
        ])
        .current_dir(dir.path())
        .env("TIM_SECRET_KEY", KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sig = String::from_utf8(out.stdout).unwrap();
    let now = timattr::clock::now_unix();
    let decoded = usersig::verify(
        sig.trim(),
        1400000000,
        "admin",
        &Secret::new(KEY.into()),
        now,
    )
    .unwrap();
    assert_eq!(decoded.expire, 3600);
    // Without the key it refuses, naming the variable.
    let out = Command::new(env!("CARGO_BIN_EXE_timattr"))
        .args([
            "usersig",
            "--sdkappid",
            "1400000000",
            "--identifier",
            "admin",
        ])
        .current_dir(dir.path())
        .env_remove("TIM_SECRET_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TIM_SECRET_KEY"));
}

#[test]
#[cfg(unix)] // sends a signal with kill(1)
fn emulator_command_serves_persists_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("emu.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_timattr"))
        .args(["emulator", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("TIM_SECRET_KEY", KEY)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let base = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "emulator exited early"
        );
        if let Some(i) = line.find("http://") {
            break line[i..].trim().to_owned();
        }
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = Client::new(ClientConfig {
            base_url: base.clone(),
            sdkappid: 1400000000,
            identifier: "administrator".into(),
            secret: Secret::new(KEY.into()),
            timeout: Duration::from_secs(5),
        })
        .unwrap();
        client
            .set_attr_name(&[(0u8, "city".to_owned())].into())
            .await
            .unwrap();
        let users = vec![timattr::api::wire::UserAttrs {
            to_account: "u1".into(),
            attrs: [("city".to_owned(), "x".to_owned())].into(),
        }];
        client.set_attr(&users).await.unwrap();
    });
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&data).unwrap()).unwrap();
    assert_eq!(saved["users"]["u1"]["attrs"]["city"], "x");
}
