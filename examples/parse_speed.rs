//! Load time of the users files against a bare serde_yaml parse of the same files.
//!
//! Generates ACCOUNTS accounts (3 to 5 attributes each) in FILES files in a temporary
//! directory, then times, single-threaded, `serde_yaml::from_str` into nested `BTreeMap`s
//! (the baseline of issue 6) and `timattr::desired::load_users`.
//!
//! ```text
//! cargo run --release --example parse_speed -- [ACCOUNTS [FILES [both|bare|load]]]
//! ```
//! With `bare` or `load` only that side runs, so that `/usr/bin/time -v` measures its peak RSS.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

type Bare = BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>;

/// CPU seconds (user + system) used by this process so far, from `/proc/self/stat`.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

const CITIES: [&str; 8] = [
    "Paris",
    "Shenzhen",
    "Singapore",
    "São Paulo",
    "Seoul",
    "Berlin",
    "Jakarta",
    "東京",
];
const TIERS: [&str; 4] = ["free", "silver", "gold", "platinum"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let accounts: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let files: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let mode = args.get(2).map_or("both", String::as_str);

    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("users")).expect("users dir");
    let per_file = accounts.div_ceil(files);
    let mut paths = Vec::new();
    let mut bytes = 0;
    for f in 0..files {
        let mut text = String::from("users:\n");
        for i in f * per_file..((f + 1) * per_file).min(accounts) {
            let _ = writeln!(text, "  user{i:08}:");
            let _ = writeln!(text, "    sex: {}", if i % 2 == 0 { "m" } else { "f" });
            let _ = writeln!(text, "    city: {}", CITIES[i % CITIES.len()]);
            let _ = writeln!(text, "    tier: {}", TIERS[i % TIERS.len()]);
            if i % 3 > 0 {
                let _ = writeln!(text, "    team: t{}", i % 97);
            }
            if i % 3 > 1 {
                let _ = writeln!(text, "    region: r{}", i % 13);
            }
        }
        let path = dir.path().join(format!("users/u{f:03}.yaml"));
        bytes += text.len();
        std::fs::write(&path, text).expect("write users file");
        paths.push(path);
    }
    std::fs::write(
        dir.path().join("timattr.yaml"),
        "app: {sdkappid: 1, admin: admin, endpoint: embedded}\n\
         attributes: [sex, city, tier, team, region]\nusers: [\"users/*.yaml\"]\n",
    )
    .expect("write project file");
    println!(
        "{accounts} accounts in {files} files, {:.1} MB",
        bytes as f64 / 1e6
    );

    let mut bare_secs = None;
    if mode == "both" {
        // The floor: serde_yaml's event loader alone, skipping every value.
        let start = Instant::now();
        for p in &paths {
            let text = std::fs::read_to_string(p).expect("read");
            let _: serde::de::IgnoredAny = serde_yaml::from_str(&text).expect("parse");
        }
        println!(
            "serde_yaml events only (1 thread): {:.3} s",
            start.elapsed().as_secs_f64()
        );
    }
    if mode != "load" {
        let cpu = cpu_secs();
        let start = Instant::now();
        let mut n = 0;
        for p in &paths {
            let text = std::fs::read_to_string(p).expect("read");
            let doc: Bare = serde_yaml::from_str(&text).expect("bare parse");
            n += doc.get("users").map_or(0, BTreeMap::len);
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "bare serde_yaml (1 thread): {secs:.3} s, cpu {:.2} s ({n} accounts)",
            cpu_secs() - cpu
        );
        bare_secs = Some(secs);
    }
    if mode != "bare" {
        let cpu = cpu_secs();
        let start = Instant::now();
        let settings =
            timattr::desired::load_project(&dir.path().join("timattr.yaml")).expect("project");
        let desired = timattr::desired::load_users(&settings).expect("users");
        let secs = start.elapsed().as_secs_f64();
        println!(
            "timattr load_users ({} threads): {secs:.3} s, cpu {:.2} s ({} accounts)",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_secs() - cpu,
            desired.accounts.len()
        );
        if let Some(bare) = bare_secs {
            println!("ratio: {:.2}", secs / bare);
        }
    }
}
