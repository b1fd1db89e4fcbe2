//! Saved plan files are output files and compressed inputs (DESIGN.md §8): a failed
//! `plan --out` keeps the previous file, and `apply FILE` / `show FILE` read a bomb in bounded
//! memory and refuse it.
// Each test limits the child with sh and ulimit.
#![cfg(unix)]

use crate::support;

use std::io::Write;

use support::{users, Project};

const NAMES: &[&str] = &["sex", "city", "tier"];

fn project() -> Project {
    let p = Project::new("embedded", NAMES);
    p.write_users_map("a.yaml", &users(300, ""));
    p
}

#[test]
fn a_failed_plan_out_keeps_the_previous_file() {
    let p = project();
    let out = p.path().join("plan.gz");
    std::fs::write(&out, b"previous plan").unwrap();
    // The file size limit makes the write fail half-way (SIGXFSZ ignored: write() fails).
    p.run_limited("trap '' XFSZ; ulimit -f 1", "plan --out plan.gz")
        .expect(1);
    assert_eq!(std::fs::read(&out).unwrap(), b"previous plan");
    let leftovers: Vec<_> = std::fs::read_dir(p.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // And a write that succeeds replaces it with a plan that applies.
    p.run(&["plan", "--out", "plan.gz"]).expect(0);
    p.run(&["apply", "plan.gz"]).expect(0);
}

/// gzip members of 1 MiB of `filler` each, after a JSON prefix: small on disk, huge inflated.
fn bomb(prefix: &str, filler: u8, megabytes: usize) -> Vec<u8> {
    let member = |bytes: &[u8]| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    };
    let mut out = member(prefix.as_bytes());
    let filler = member(&vec![filler; 1 << 20]);
    for _ in 0..megabytes {
        out.extend_from_slice(&filler);
    }
    out
}

#[test]
fn a_saved_plan_bomb_is_refused_in_bounded_memory() {
    let p = project();
    for (name, data) in [
        ("zeros.gz", bomb("", 0, 2048)),
        (
            "string.gz",
            bomb("{\"format_version\":1,\"x\":\"", b'a', 2048),
        ),
        ("spaces.gz", bomb("{", b' ', 2048)),
    ] {
        assert!(data.len() < 4 << 20, "{name} is {} bytes", data.len());
        std::fs::write(p.path().join(name), &data).unwrap();
        for verb in ["apply", "show"] {
            // 1 GiB of address space: inflating 2 GiB into memory would fail the test.
            let run = p.run_limited("ulimit -v 1048576", &format!("{verb} {name}"));
            let stderr = run.stderr();
            assert_eq!(run.code(), 1, "{verb} {name}: {stderr}");
            assert!(stderr.contains("inflates past"), "{verb} {name}: {stderr}");
        }
    }
    assert!(
        !p.state_dir().join("db").exists(),
        "a refused plan created a store"
    );
}
