//! The timattr benchmark (issues 4, 5, 6, 13 and 16): every figure is measured next to a reference
//! in the same run and reported as a ratio, because the machines it runs on are shared and noisy.
//!
//! ```text
//! cargo build --release --bin timattr        # the bench also runs this itself unless --bin is given
//! cargo run --release --example bench -- [--accounts N] [--files F] [--seed S] [--json OUT]
//!                                        [--scenario LIST] [--tags N] [--quick] [--bin PATH] [--keep DIR]
//! ```
//!
//! It generates deterministic synthetic projects in a temp dir, starts the API emulator
//! in-process (`timattr::emulator::start`, loopback, free port) and runs the real release binary
//! as a child process for every timed command, so wall time and peak RSS are those a user sees.
//! Peak RSS and CPU seconds come from `/usr/bin/time -f "%M %U %S"` when it exists; otherwise the bench polls
//! `/proc/PID/status` (`VmHWM`) until the child exits. `getrusage(RUSAGE_CHILDREN)` is not used:
//! the crate forbids `unsafe_code` (examples included) and it reports the maximum over all
//! children so far, not per child.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

const SDKAPPID: u32 = 1_400_000_000;
const ADMIN: &str = "administrator";
const KEY_ENV: &str = "TIMATTR_BENCH_KEY";
const KEY: &str = "bench-secret-key";
/// 100 requests/s × 100 accounts per request: the API's ceiling for set and get.
const CEILING: f64 = 10_000.0;
/// Every child process is killed after this long: no loop of the bench is unbounded.
const CHILD_TIMEOUT: Duration = Duration::from_secs(1800);

const NAMES: [&str; 6] = ["sex", "city", "tier", "lang", "country", "plan"];
/// Distinct tag names the generated users draw from (`--tags`, `apply-tags`).
const TAG_POOL: usize = 50;
/// Tags per account in the `apply-tags` scenario: 1 to this many, one `im_add_tag` entry each.
const APPLY_TAGS: usize = 10;
const VALUES: [&[&str]; 6] = [
    &["m", "f", "x"],
    &[
        "beijing", "shanghai", "shenzhen", "chengdu", "wuhan", "xian", "hangzhou", "nanjing",
    ],
    &["free", "silver", "gold", "platinum"],
    &["zh", "en", "ja", "ko", "fr", "de"],
    &["cn", "sg", "kr", "de", "us", "id", "jp"],
    &["basic", "pro", "team", "enterprise"],
];

// ---------------------------------------------------------------------------------------------
// Options

/// timattr benchmark: figures against references measured in the same run.
#[derive(Parser, Debug)]
#[command(name = "bench")]
struct Opts {
    /// Accounts of the main project [default: 1000000; --quick: 10000].
    #[arg(long, value_parser = num)]
    accounts: Option<usize>,
    /// Users files of the main project [default: 100; --quick: 10].
    #[arg(long, value_parser = num)]
    files: Option<usize>,
    /// RNG seed of the generated data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also write the figures as JSON to OUT.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
    /// Scenarios to run (comma-separated; default: all but onefile3m). plan = cold plan of the
    /// main project; onefile = the same accounts in ONE file; onefile3m = 3M accounts in one
    /// file (memory); plan30k = a 30,000-user plan's memory; noop = first apply at zero
    /// latency + no-op plan; apply = 30,000-account apply at 40 ms; drift = 100,000-account
    /// drift at 40 ms; scaling = 10k/100k/N rows; apply-tags = first apply of 30,000 users
    /// with 1 to 10 tags each (and no attributes) at 40 ms; policies = cold plan of the main
    /// project with value policies (values on sex, tier and lang, a pattern on city) against
    /// the same plan without, alternating, several rounds, medians.
    #[arg(long, value_delimiter = ',', value_enum)]
    scenario: Vec<Scenario>,
    /// Give every account of the generated projects 1 to N tags (of a pool of 50 names),
    /// written as flow lists; 0 = no `tags` keys at all (the data of the earlier runs).
    #[arg(long, default_value_t = 0, value_parser = tags_per_user)]
    tags: usize,
    /// CI-sized smoke run: 10,000 accounts, 10 files, apply 3,000, drift 10,000.
    #[arg(long)]
    quick: bool,
    /// The timattr binary to run [default: `cargo build --release --bin timattr`].
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Generate into DIR and keep it (default: a temp dir removed at the end).
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Internal: parse FILE with serde_yaml in a child (the memory reference).
    #[arg(long, hide = true, value_name = "FILE")]
    bare_parse_child: Option<PathBuf>,
    /// Added by `cargo bench`-style runners; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Parse,
    Plan,
    Onefile,
    Onefile3m,
    Plan30k,
    Noop,
    Apply,
    Drift,
    Scaling,
    ApplyTags,
    Policies,
}

impl Opts {
    fn accounts(&self) -> usize {
        self.accounts
            .unwrap_or(if self.quick { 10_000 } else { 1_000_000 })
    }

    fn files(&self) -> usize {
        self.files
            .unwrap_or(if self.quick { 10 } else { 100 })
            .max(1)
    }

    /// What the accounts of the main, one-file and scaling projects hold.
    fn shape(&self) -> Shape {
        Shape {
            attrs: true,
            tags: self.tags,
        }
    }

    /// ` with 1–N tags` in figure names when the data has tags.
    fn tagged(&self) -> String {
        match self.tags {
            0 => String::new(),
            n => format!(", 1–{n} tags each"),
        }
    }

    fn wants(&self, s: Scenario) -> bool {
        if self.scenario.is_empty() {
            s != Scenario::Onefile3m
        } else {
            self.scenario.contains(&s)
        }
    }
}

fn tags_per_user(s: &str) -> Result<usize, String> {
    let n = num(s)?;
    if n > TAG_POOL {
        return Err(format!("at most {TAG_POOL} tags per user (the pool)"));
    }
    Ok(n)
}

fn num(s: &str) -> Result<usize, String> {
    s.replace('_', "")
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))
}

// ---------------------------------------------------------------------------------------------
// Synthetic projects

struct Project {
    dir: PathBuf,
    accounts: usize,
    files: usize,
    users_files: Vec<PathBuf>,
}

/// What each generated account holds.
#[derive(Clone, Copy)]
struct Shape {
    /// 3 to 5 attributes (else none).
    attrs: bool,
    /// 1 to this many tags (0: no `tags` key).
    tags: usize,
}

/// Writes `timattr.yaml` and F users files with N accounts `{prefix}{i:08}`. Deterministic for a
/// seed. Every third file has `defaults` (country, plan) that its accounts may override; every
/// account ends up with 3 to 5 attributes. One block of 1,000 accounts in five is written in
/// block style, the others in flow style (so a single big file mixes both). Tags, when the
/// shape has them, are a flow list (`tags: [tag07, tag31]`) in either style.
fn generate(
    dir: &Path,
    prefix: &str,
    accounts: usize,
    files: usize,
    seed: u64,
    endpoint: &str,
    shape: Shape,
) -> std::io::Result<Project> {
    std::fs::create_dir_all(dir.join("users"))?;
    std::fs::write(
        dir.join("timattr.yaml"),
        format!(
            "app:\n  sdkappid: {SDKAPPID}\n  admin: {ADMIN}\n  region: singapore\n  endpoint: {endpoint}\n  secret_env: {KEY_ENV}\n\
             attributes: [{}]\nusers: [\"users/*.yaml\"]\nstate: state\napply:\n  rate_limit: 100\n  concurrency: 16\n",
            NAMES.join(", ")
        ),
    )?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut users_files = Vec::with_capacity(files);
    let per_file = accounts.div_ceil(files);
    let mut next = 0usize;
    for f in 0..files {
        let path = dir.join("users").join(format!("users-{f:04}.yaml"));
        let with_defaults = f % 3 == 2 && shape.attrs;
        let mut out = String::with_capacity(per_file * 64 + 128);
        if with_defaults {
            out.push_str("defaults:\n  country: cn\n  plan: basic\n");
        }
        let end = (next + per_file).min(accounts);
        if next >= end {
            out.push_str("users: {}\n"); // more files than accounts: keep the file valid
        } else {
            out.push_str("users:\n");
        }
        while next < end {
            let block_style = (f + next / 1000) % 5 == 4;
            let tags = tag_list(&mut rng, shape.tags);
            let names = shape.attrs.then_some(with_defaults);
            write_account(
                &mut out,
                &mut rng,
                (prefix, next),
                names,
                &tags,
                block_style,
            );
            next += 1;
        }
        std::fs::write(&path, out)?;
        users_files.push(path);
    }
    Ok(Project {
        dir: dir.to_owned(),
        accounts,
        files,
        users_files,
    })
}

/// The generated project file with value policies: `values` on sex, tier and lang, a pattern
/// on city (every generated value passes), and a tags pattern when the data has tags.
fn with_policies(plain: &str, tags: bool) -> Result<String, String> {
    let list = |n: usize| VALUES[n].join(", ");
    let mut policies = format!(
        "attributes:\n  - {{name: sex, values: [{}]}}\n  - {{name: city, pattern: '[a-z]+'}}\n  - {{name: tier, values: [{}]}}\n  - {{name: lang, values: [{}]}}\n  - country\n  - plan\n",
        list(0),
        list(2),
        list(3)
    );
    if tags {
        policies.push_str("tags: {pattern: 'tag[0-9]+'}\n");
    }
    let with = plain.replace(&format!("attributes: [{}]\n", NAMES.join(", ")), &policies);
    if with == plain {
        return Err("the generated project file has no plain attributes list".into());
    }
    Ok(with)
}

/// `tag07, tag31, ...`: 1 to `most` distinct names of the pool ("" for `most` = 0). No draw
/// at all without tags, so that tag-less data stays that of the earlier runs.
fn tag_list(rng: &mut StdRng, most: usize) -> String {
    if most == 0 {
        return String::new();
    }
    let n = rng.random_range(1..=most.min(TAG_POOL));
    let mut pool: Vec<usize> = (0..TAG_POOL).collect();
    let (picked, _) = pool.partial_shuffle(rng, n);
    let names: Vec<String> = picked.iter().map(|k| format!("tag{k:02}")).collect();
    names.join(", ")
}

/// One account with 3 to 5 names in all (with defaults: 1 to 3 of its own), or no names when
/// `with_defaults` is `None`, and the tag list `tags` (none when empty).
fn write_account(
    out: &mut String,
    rng: &mut StdRng,
    (prefix, i): (&str, usize),
    with_defaults: Option<bool>,
    tags: &str,
    block_style: bool,
) {
    let mut idx = [0usize, 1, 2, 3, 4, 5];
    let names: &mut [usize] = if with_defaults.is_none() {
        &mut []
    } else if with_defaults == Some(true) {
        let own = rng.random_range(1..=3);
        idx[..4].shuffle(rng);
        if rng.random_bool(0.1) {
            idx[0] = 5; // sometimes override the default plan
        }
        &mut idx[..own]
    } else {
        let own = rng.random_range(3..=5);
        idx.shuffle(rng);
        &mut idx[..own]
    };
    names.sort_unstable();
    if block_style {
        let _ = writeln!(out, "  {prefix}{i:08}:");
        for &n in names.iter() {
            let v = VALUES[n][rng.random_range(0..VALUES[n].len())];
            let _ = writeln!(out, "    {}: {v}", NAMES[n]);
        }
        if !tags.is_empty() {
            let _ = writeln!(out, "    tags: [{tags}]");
        }
    } else {
        let _ = write!(out, "  {prefix}{i:08}: {{");
        for (k, &n) in names.iter().enumerate() {
            let v = VALUES[n][rng.random_range(0..VALUES[n].len())];
            let sep = if k == 0 { "" } else { ", " };
            let _ = write!(out, "{sep}{}: {v}", NAMES[n]);
        }
        if !tags.is_empty() {
            let sep = if names.is_empty() { "" } else { ", " };
            let _ = write!(out, "{sep}tags: [{tags}]");
        }
        out.push_str("}\n");
    }
}

// ---------------------------------------------------------------------------------------------
// The bare parse reference: what any tool reading these files must at least do.

/// A users file as plain maps: `V` is `String`, or [`BareValue`] for files with tags.
#[derive(Deserialize)]
#[serde(bound = "V: Deserialize<'de>")]
struct BareUsersFile<V> {
    #[serde(default)]
    #[allow(dead_code)]
    defaults: Option<BTreeMap<String, V>>,
    #[serde(default = "BTreeMap::new")]
    users: BTreeMap<String, BTreeMap<String, V>>,
}

/// A value of a users file with tags: an attribute's string or the tag list, read straight
/// from serde_yaml's events (no buffering, as `#[serde(untagged)]` would).
#[allow(dead_code)]
enum BareValue {
    Text(String),
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for BareValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Value;
        impl<'de> Visitor<'de> for Value {
            type Value = BareValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E>(self, v: &str) -> Result<BareValue, E> {
                Ok(BareValue::Text(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<BareValue, E> {
                Ok(BareValue::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<BareValue, A::Error> {
                let mut list = Vec::new();
                while let Some(tag) = seq.next_element::<String>()? {
                    list.push(tag);
                }
                Ok(BareValue::List(list))
            }
        }
        d.deserialize_any(Value)
    }
}

/// The users of one file's text, parsed into plain maps.
fn bare_users(text: &str, tags: bool) -> Result<usize, serde_yaml::Error> {
    Ok(if tags {
        serde_yaml::from_str::<BareUsersFile<BareValue>>(text)?
            .users
            .len()
    } else {
        serde_yaml::from_str::<BareUsersFile<String>>(text)?
            .users
            .len()
    })
}

/// The bare parse: its wall time and the CPU time of the parsing thread.
struct Bare {
    wall: Duration,
    cpu: f64,
}

/// Single-threaded, in-process: read and parse every users file into plain maps.
fn bare_parse(files: &[PathBuf], tags: bool) -> Result<(Bare, usize), String> {
    let started = Instant::now();
    let cpu = thread_cpu();
    let mut n = 0;
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        n += bare_users(&text, tags).map_err(|e| format!("{}: {e}", f.display()))?;
    }
    let bare = Bare {
        wall: started.elapsed(),
        cpu: thread_cpu() - cpu,
    };
    Ok((bare, n))
}

/// CPU seconds (user + system) of the calling thread so far, from `/proc/thread-self/stat`
/// (clock ticks of 1/100 s); 0 when unreadable.
fn thread_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    ticks(11)
        .zip(ticks(12))
        .map_or(0.0, |(u, s)| (u + s) / 100.0)
}

/// Concatenates the users of all files into one file (for the one-file RSS reference).
fn one_file(files: &[PathBuf], out: &Path) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
    w.write_all(b"users:\n")?;
    for f in files {
        let text = std::fs::read_to_string(f)?;
        let body = text.split_once("users:\n").map_or("", |(_, b)| b);
        w.write_all(body.as_bytes())?;
    }
    w.flush()
}

/// `bench --bare-parse-child FILE`: the child side of the one-file RSS reference.
fn bare_parse_child(file: &Path, tags: bool) -> ! {
    let text = std::fs::read_to_string(file).expect("read");
    println!("{}", bare_users(&text, tags).expect("parse"));
    std::process::exit(0);
}

// ---------------------------------------------------------------------------------------------
// Child processes: wall time and peak RSS

struct Run {
    wall: Duration,
    /// Peak resident set size in bytes (0 when it could not be measured).
    rss: u64,
    /// CPU seconds, user + system (0 when it could not be measured: no GNU time).
    cpu: f64,
    code: i32,
    stderr: String,
}

fn use_gnu_time() -> bool {
    Path::new("/usr/bin/time").exists()
        && Command::new("/usr/bin/time")
            .args(["-f", "%M", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
}

/// Runs `program args` in `cwd` with stdout to /dev/null, timing it and taking its peak RSS.
fn run(program: &Path, args: &[&str], cwd: &Path, gnu_time: bool) -> Result<Run, String> {
    let rss_file = cwd.join(".bench-rss");
    let mut cmd = if gnu_time {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-f")
            .arg("%M %U %S")
            .arg("-o")
            .arg(&rss_file)
            .arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args)
        .current_dir(cwd)
        .env(KEY_ENV, KEY)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", program.display()))?;
    // Drain stderr on a thread so a chatty child never blocks on a full pipe.
    let mut err_pipe = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err_pipe, &mut s);
        s
    });
    let pid = child.id();
    let mut hwm_kb = 0u64;
    let mut cpu = 0.0;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if !gnu_time {
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                if let Some(kb) = s
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    hwm_kb = hwm_kb.max(kb);
                }
            }
        }
        if started.elapsed() > CHILD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{} {args:?} timed out", program.display()));
        }
        std::thread::sleep(Duration::from_millis(if gnu_time { 2 } else { 10 }));
    };
    let wall = started.elapsed();
    let mut stderr = reader.join().unwrap_or_default();
    if gnu_time {
        let text = std::fs::read_to_string(&rss_file).unwrap_or_default();
        let _ = std::fs::remove_file(&rss_file);
        if let Some((kb, seconds)) = gnu_time_figures(&text) {
            hwm_kb = kb;
            cpu = seconds;
        }
        if text.contains("Command terminated by signal") {
            stderr.push_str(&text);
        }
    }
    Ok(Run {
        wall,
        rss: hwm_kb * 1024,
        cpu,
        code: status.code().unwrap_or(-1),
        stderr,
    })
}

/// Peak RSS in kB and CPU seconds (user + system) from GNU time's `%M %U %S` line.
fn gnu_time_figures(text: &str) -> Option<(u64, f64)> {
    // GNU time writes "Command exited with non-zero status N" before the figures.
    let figures: Vec<f64> = text
        .lines()
        .next_back()?
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    match figures[..] {
        [kb, user, sys] => Some((kb as u64, user + sys)),
        _ => None,
    }
}

fn expect_ok(what: &str, r: &Run, allowed: &[i32]) -> Result<(), String> {
    if allowed.contains(&r.code) {
        Ok(())
    } else {
        Err(format!("{what} exited {}: {}", r.code, r.stderr.trim_end()))
    }
}

/// The numbers of apply's final line at `-v`: `... in T s (U users/s; store writes X ms per batch; ...).`
fn apply_line(stderr: &str) -> Option<(f64, f64, f64)> {
    let line = stderr.lines().rev().find(|l| l.contains("Apply "))?;
    let after = |key: &str| -> Option<f64> {
        let i = line.find(key)?;
        let head = line[..i].trim_end();
        let start = head.rfind([' ', '(']).map_or(0, |p| p + 1);
        head[start..].parse().ok()
    };
    Some((after(" s (")?, after(" users/s")?, after(" ms per batch")?))
}

// ---------------------------------------------------------------------------------------------
// Figures

#[derive(Clone)]
struct Figure {
    name: String,
    value: f64,
    unit: &'static str,
    reference: Option<(String, f64)>,
    /// value / reference (or against the ceiling), and the target it is held to.
    ratio: Option<f64>,
    target: Option<Target>,
}

#[derive(Clone, Copy)]
enum Target {
    AtMost(f64),
    AtLeast(f64),
}

impl Figure {
    fn new(name: impl Into<String>, value: f64, unit: &'static str) -> Figure {
        Figure {
            name: name.into(),
            value,
            unit,
            reference: None,
            ratio: None,
            target: None,
        }
    }
    fn against(mut self, name: impl Into<String>, reference: f64) -> Figure {
        self.ratio = Some(self.value / reference.max(1e-12));
        self.reference = Some((name.into(), reference));
        self
    }
    fn target(mut self, t: Target) -> Figure {
        self.target = Some(t);
        self
    }
    /// The value compared with the target: the ratio when there is one, else the value.
    fn pass(&self) -> Option<bool> {
        let x = self.ratio.unwrap_or(self.value);
        self.target.map(|t| match t {
            Target::AtMost(m) => x <= m,
            Target::AtLeast(m) => x >= m,
        })
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn fmt_value(v: f64, unit: &str) -> String {
    match unit {
        "s" => format!("{v:.2} s"),
        "MB" => format!("{v:.0} MB"),
        "accounts/s" => format!("{v:.0} accounts/s"),
        "ms" => format!("{v:.2} ms"),
        "µs/account" => format!("{v:.2} µs/account"),
        _ => format!("{v:.3} {unit}"),
    }
}

fn table(figs: &[Figure]) -> String {
    let mut rows = vec![[
        "figure".to_owned(),
        "value".to_owned(),
        "reference".to_owned(),
        "ratio".to_owned(),
        "target".to_owned(),
        "result".to_owned(),
    ]];
    for f in figs {
        rows.push([
            f.name.clone(),
            fmt_value(f.value, f.unit),
            f.reference.as_ref().map_or("—".into(), |(n, v)| {
                format!("{n} {}", fmt_value(*v, f.unit))
            }),
            f.ratio.map_or("—".into(), |r| format!("{r:.3}")),
            match f.target {
                Some(Target::AtMost(m)) => format!("≤ {m}"),
                Some(Target::AtLeast(m)) => format!("≥ {m}"),
                None => "—".into(),
            },
            match f.pass() {
                Some(true) => "pass".into(),
                Some(false) => "FAIL".into(),
                None => "—".into(),
            },
        ]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        out.push('|');
        for (w, c) in widths.iter().zip(r) {
            let pad = w - c.chars().count();
            let _ = write!(out, " {c}{} |", " ".repeat(pad));
        }
        out.push('\n');
        if i == 0 {
            out.push('|');
            for w in widths {
                let _ = write!(out, "{}|", "-".repeat(w + 2));
            }
            out.push('\n');
        }
    }
    out
}

struct ScaleRow {
    accounts: usize,
    files: usize,
    bare_parse: Duration,
    validate: Run,
    cold: Run,
    warm: Option<Run>,
}

fn scaling_table(rows: &[ScaleRow]) -> String {
    let mut out = String::from(
        "| accounts | files | bare parse | validate | validate RSS | cold plan | cold RSS | cold µs/account | warm plan | warm RSS | warm µs/account |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / r.accounts as f64;
        let (wt, wr, wp) = match &r.warm {
            Some(w) => (
                format!("{:.2} s", w.wall.as_secs_f64()),
                format!("{} MB", w.rss / 1_000_000),
                format!("{:.2}", per(w.wall)),
            ),
            None => ("—".into(), "—".into(), "—".into()),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} s | {:.2} s | {} MB | {:.2} s | {} MB | {:.2} | {wt} | {wr} | {wp} |",
            r.accounts,
            r.files,
            r.bare_parse.as_secs_f64(),
            r.validate.wall.as_secs_f64(),
            r.validate.rss / 1_000_000,
            r.cold.wall.as_secs_f64(),
            r.cold.rss / 1_000_000,
            per(r.cold.wall),
        );
    }
    out
}

fn locate_bin(opts: &Opts) -> Result<PathBuf, String> {
    if let Some(b) = &opts.bin {
        return Ok(b.clone());
    }
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    eprintln!("bench: cargo build --release --bin timattr");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "--bin", "timattr", "--manifest-path"])
        .arg(manifest_dir.join("Cargo.toml"))
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build --release --bin timattr failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir.join("target"));
    let bin = target.join("release").join("timattr");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!("{} not found after the build", bin.display()))
    }
}

// ---------------------------------------------------------------------------------------------
// Main

struct Bench {
    opts: Opts,
    bin: PathBuf,
    root: PathBuf,
    gnu_time: bool,
    endpoint: String,
    figures: Vec<Figure>,
    scaling: Vec<ScaleRow>,
    notes: Vec<String>,
}

fn main() {
    let opts = Opts::parse();
    if let Some(file) = &opts.bare_parse_child {
        bare_parse_child(file, opts.tags > 0);
    }
    if let Err(e) = real_main(opts) {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

/// Where the projects are generated: `--keep DIR`, or a temp dir removed at the end.
fn data_root(opts: &Opts) -> Result<(PathBuf, Option<tempfile::TempDir>), String> {
    match &opts.keep {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
            Ok((d.clone(), None))
        }
        None => {
            let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
            Ok((tmp.path().to_owned(), Some(tmp)))
        }
    }
}

/// One in-process emulator for every scenario: loopback, free port, the service's rate limit.
fn start_emulator(rt: &tokio::runtime::Runtime) -> Result<timattr::emulator::Running, String> {
    let cfg = timattr::emulator::Config {
        listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        sdkappid: SDKAPPID,
        admin: ADMIN.into(),
        key: timattr::api::Secret::from(KEY),
        latency: Duration::ZERO,
        fault_rate: 0.0,
        data: None,
        rate_limit: 100,
        setup: Default::default(),
        simulate: Default::default(),
        read_only_data: false,
    };
    rt.block_on(timattr::emulator::start(cfg))
        .map_err(|e| e.to_string())
}

fn real_main(opts: Opts) -> Result<(), String> {
    // Children run in the project dirs: the binary's path must not be relative.
    let bin = locate_bin(&opts)?;
    let bin = std::fs::canonicalize(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    let (root, _tmp) = data_root(&opts)?;
    let gnu_time = use_gnu_time();
    eprintln!(
        "bench: binary {}, data in {}, peak RSS via {}",
        bin.display(),
        root.display(),
        if gnu_time {
            "/usr/bin/time -f %M"
        } else {
            "/proc/PID/status VmHWM polling"
        }
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let emulator = start_emulator(&rt)?;
    let endpoint = emulator.base_url();
    eprintln!("bench: emulator at {endpoint}");
    let mut bench = Bench {
        opts,
        bin,
        root,
        gnu_time,
        endpoint,
        figures: Vec::new(),
        scaling: Vec::new(),
        notes: Vec::new(),
    };
    let result = bench.scenarios(&emulator);
    let _ = rt.block_on(emulator.stop());
    drop(rt);
    result?;
    println!("{}", bench.report());
    if let Some(path) = &bench.opts.json {
        std::fs::write(path, bench.json()).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(())
}

impl Bench {
    fn report(&self) -> String {
        let mut report = format!(
            "\ntimattr benchmark — {} accounts, {} files, seed {}\n\n{}",
            self.opts.accounts(),
            self.opts.files(),
            self.opts.seed,
            table(&self.figures)
        );
        if !self.scaling.is_empty() {
            report.push_str("\nScaling (validate and plan, cold = empty store, warm = store holding the desired data):\n\n");
            report.push_str(&scaling_table(&self.scaling));
        }
        for n in &self.notes {
            let _ = writeln!(report, "note: {n}");
        }
        report
    }

    fn sizes(&self) -> Vec<usize> {
        let n = self.opts.accounts();
        let needs_main = [Scenario::Parse, Scenario::Plan, Scenario::Noop]
            .iter()
            .any(|s| self.opts.wants(*s));
        let mut v: Vec<usize> = match (self.opts.wants(Scenario::Scaling), self.opts.quick) {
            (true, true) => vec![1_000, n],
            (true, false) => vec![10_000, 100_000, n],
            (false, _) if needs_main => vec![n],
            (false, _) => Vec::new(),
        };
        v.retain(|&s| s <= n);
        v.sort_unstable();
        v.dedup();
        v
    }

    fn drift_size(&self) -> usize {
        if self.opts.quick {
            10_000
        } else {
            100_000
        }
    }

    fn scenarios(&mut self, emulator: &timattr::emulator::Running) -> Result<(), String> {
        let mut drift_project = None;
        for size in self.sizes() {
            if let Some(p) = self.size_row(size, emulator)? {
                drift_project = Some(p);
            }
        }
        if !self.opts.wants(Scenario::Scaling) {
            self.scaling.clear();
        }
        if self.opts.wants(Scenario::Onefile) {
            self.one_file(self.opts.accounts(), "o", true)?;
        }
        if self.opts.wants(Scenario::Onefile3m) {
            let n = if self.opts.quick { 30_000 } else { 3_000_000 };
            self.one_file(n, "t", false)?;
        }
        if self.opts.wants(Scenario::Apply) || self.opts.wants(Scenario::Plan30k) {
            self.apply_30k(emulator)?;
        }
        if self.opts.wants(Scenario::Drift) {
            self.drift(emulator, drift_project)?;
        }
        if self.opts.wants(Scenario::ApplyTags) {
            self.apply_tags(emulator)?;
        }
        if self.opts.wants(Scenario::Policies) {
            self.policies()?;
        }
        Ok(())
    }

    /// Issue 24: the cold plan of the main project's accounts with value policies (`values`
    /// on sex, tier and lang, a `pattern` on city, and a tags pattern when there are tags)
    /// against the same plan without any, run back to back in alternating order, several
    /// rounds; the medians are compared.
    fn policies(&mut self) -> Result<(), String> {
        let (size, files) = (self.opts.accounts(), self.opts.files());
        eprintln!("bench: generating {size} accounts in {files} files (policies)");
        let p = generate(
            &self.root.join("policies"),
            "v",
            size,
            files,
            self.opts.seed,
            &self.endpoint,
            self.opts.shape(),
        )
        .map_err(|e| e.to_string())?;
        let project_file = p.dir.join("timattr.yaml");
        let plain = std::fs::read_to_string(&project_file).map_err(|e| e.to_string())?;
        let with = with_policies(&plain, self.opts.tags > 0)?;
        let rounds = if self.opts.quick { 3 } else { 7 };
        let (mut without_s, mut with_s) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternating order: neither side always runs on a warmer page cache.
            for policy in [round % 2 == 1, round % 2 == 0] {
                let text = if policy { &with } else { &plain };
                std::fs::write(&project_file, text).map_err(|e| e.to_string())?;
                let r = self.timattr(&p, &["plan", "--format", "json"], &[0])?;
                eprintln!(
                    "bench: cold plan {} policies {:.2} s {:.2} CPU-s",
                    if policy { "with" } else { "without" },
                    r.wall.as_secs_f64(),
                    r.cpu
                );
                if policy { &mut with_s } else { &mut without_s }.push(r);
            }
        }
        // The policies are really checked: a typo in the last file is refused.
        let last = p.users_files.last().ok_or("no users file")?;
        let text = std::fs::read_to_string(last).map_err(|e| e.to_string())?;
        std::fs::write(last, format!("{text}  vtypo: {{tier: glod}}\n"))
            .map_err(|e| e.to_string())?;
        std::fs::write(&project_file, &with).map_err(|e| e.to_string())?;
        self.timattr(&p, &["validate"], &[1])?;
        std::fs::write(last, text).map_err(|e| e.to_string())?;
        let median = |runs: &[Run], f: fn(&Run) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let wall = |r: &Run| r.wall.as_secs_f64();
        let what = format!(
            "{size} accounts, {files} file{}{}, median of {rounds}",
            plural(files),
            self.opts.tagged()
        );
        let figure = Figure::new(
            format!("cold plan WITH value policies ({what})"),
            median(&with_s, wall),
            "s",
        )
        .against("same plan without policies", median(&without_s, wall));
        // Under 100k accounts a plan takes milliseconds and process start-up is the figure.
        self.figures.push(if size >= 100_000 {
            figure.target(Target::AtMost(1.10))
        } else {
            self.notes.push(format!(
                "the policies target (≤ 1.10) is for 1M accounts; at {size} the plan takes milliseconds"
            ));
            figure
        });
        if with_s.iter().chain(&without_s).all(|r| r.cpu >= 0.05) {
            self.figures.push(
                Figure::new(
                    format!("cold plan CPU WITH value policies ({what})"),
                    median(&with_s, |r| r.cpu),
                    "s",
                )
                .against("without policies", median(&without_s, |r| r.cpu)),
            );
        }
        Ok(())
    }

    /// Validate and cold plan (and, for the scaling rows or the no-op figures, a first apply
    /// and the warm plan) of `size` accounts; the project when it can serve the drift figure.
    fn size_row(
        &mut self,
        size: usize,
        emulator: &timattr::emulator::Running,
    ) -> Result<Option<Project>, String> {
        let is_main = size == self.opts.accounts();
        let files = if is_main {
            self.opts.files()
        } else {
            100.min(size)
        };
        eprintln!("bench: generating {size} accounts in {files} files");
        let p = generate(
            &self.root.join(format!("p{size}")),
            // One account range per size: the shared emulator keeps each project's values.
            &format!("u{}k", size / 1000),
            size,
            files,
            self.opts.seed,
            &self.endpoint,
            self.opts.shape(),
        )
        .map_err(|e| e.to_string())?;
        let (bare, parsed) = bare_parse(&p.users_files, self.opts.tags > 0)?;
        if parsed != size {
            return Err(format!("generated {size} accounts but parsed {parsed}"));
        }
        eprintln!(
            "bench: bare parse {:.2} s ({:.2} CPU-s)",
            bare.wall.as_secs_f64(),
            bare.cpu
        );
        if is_main && self.opts.wants(Scenario::Parse) {
            self.bare_figures(&p, &bare)?;
        }
        let validate = self.timattr(&p, &["validate"], &[0])?;
        let cold = self.timattr(&p, &["plan", "--format", "json"], &[0])?;
        eprintln!(
            "bench: validate {:.2} s {:.2} CPU-s, cold plan {:.2} s {:.2} CPU-s {} MB",
            validate.wall.as_secs_f64(),
            validate.cpu,
            cold.wall.as_secs_f64(),
            cold.cpu,
            cold.rss / 1_000_000
        );
        if is_main && self.opts.wants(Scenario::Plan) {
            // Issue 16: with tags, the issue-13 targets plus 25 %.
            let (ratio, rss) = if self.opts.tags > 0 {
                (0.625, 500.0)
            } else {
                (0.5, 400.0)
            };
            self.cold_plan_figures(size, files, &bare, &cold, ratio, rss);
        }
        let warm = self.warm(&p, is_main, emulator, &cold)?;
        let serves_drift = size == self.drift_size() && warm.is_some();
        self.scaling.push(ScaleRow {
            accounts: size,
            files,
            bare_parse: bare.wall,
            validate,
            cold,
            warm,
        });
        Ok(serves_drift.then_some(p))
    }

    /// The bare parse figures of the main project, and the memory of a bare parse of the
    /// same accounts in ONE file (a child process, for its peak RSS).
    fn bare_figures(&mut self, p: &Project, bare: &Bare) -> Result<(), String> {
        let size = p.accounts;
        let tagged = self.opts.tagged();
        self.figures.push(Figure::new(
            format!(
                "bare parse, 1 thread, in-process ({size} accounts, {} files{tagged})",
                p.files
            ),
            bare.wall.as_secs_f64(),
            "s",
        ));
        let one = self.root.join(format!("one-{size}.yaml"));
        one_file(&p.users_files, &one).map_err(|e| e.to_string())?;
        let r = self.bare_child(&one)?;
        let _ = std::fs::remove_file(&one);
        self.figures.push(Figure::new(
            format!("bare parse as ONE file, child: peak RSS ({size} accounts)"),
            r.rss as f64 / 1e6,
            "MB",
        ));
        self.figures.push(Figure::new(
            format!("bare parse as ONE file, child: wall ({size} accounts)"),
            r.wall.as_secs_f64(),
            "s",
        ));
        Ok(())
    }

    fn bare_child(&self, file: &Path) -> Result<Run, String> {
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let file = file.to_str().unwrap_or_default();
        let tags = self.opts.tags.to_string();
        let r = run(
            &me,
            &["--bare-parse-child", file, "--tags", &tags],
            &self.root,
            self.gnu_time,
        )?;
        expect_ok("bare parse child", &r, &[0])?;
        Ok(r)
    }

    /// Cold plan time against the bare parse, and its peak RSS against `rss_1m` MB (the
    /// target stated for 1M accounts, pro rata below that).
    fn cold_plan_figures(
        &mut self,
        size: usize,
        files: usize,
        bare: &Bare,
        cold: &Run,
        ratio: f64,
        rss_1m: f64,
    ) {
        let what = format!(
            "{size} accounts, {files} file{}{}",
            plural(files),
            self.opts.tagged()
        );
        self.figures.push(
            Figure::new(format!("cold plan ({what})"), cold.wall.as_secs_f64(), "s")
                .against("bare parse", bare.wall.as_secs_f64())
                .target(Target::AtMost(ratio)),
        );
        if cold.cpu > 0.0 {
            // Informative: CPU seconds are what a loaded machine does not inflate.
            self.figures.push(
                Figure::new(format!("cold plan CPU, user+sys ({what})"), cold.cpu, "s")
                    .against("bare parse CPU", bare.cpu),
            );
        }
        let limit = rss_1m * (size as f64 / 1e6).clamp(0.05, 1.0);
        if size < 1_000_000 {
            self.notes.push(format!(
                "RSS target {rss_1m} MB is for 1M accounts; at {size} it is shown against {limit:.0} MB (pro rata)"
            ));
        }
        self.figures.push(
            Figure::new(
                format!("cold plan peak RSS ({what})"),
                cold.rss as f64 / 1e6,
                "MB",
            )
            .target(Target::AtMost(limit)),
        );
    }

    /// First apply at zero latency, then the no-op plan and the store scan, when the scaling
    /// rows, the no-op figures or the drift figure need a filled store.
    fn warm(
        &mut self,
        p: &Project,
        is_main: bool,
        emulator: &timattr::emulator::Running,
        cold: &Run,
    ) -> Result<Option<Run>, String> {
        let size = p.accounts;
        let noop = is_main && self.opts.wants(Scenario::Noop);
        let fill = self.opts.wants(Scenario::Scaling)
            || noop
            || (size == self.drift_size() && self.opts.wants(Scenario::Drift));
        // The full-size first apply is ~N/10,000 s: skipped in --quick only when it is big.
        if !fill || (self.opts.quick && size > 100_000) {
            if noop {
                self.notes.push(format!(
                    "no-op plan at {size} skipped in --quick (needs a {size}-account apply)"
                ));
            }
            return Ok(None);
        }
        emulator.set_latency(Duration::ZERO);
        eprintln!("bench: first apply of {size} accounts (zero latency)");
        let a = self.timattr(p, &["apply", "--auto-approve", "-v"], &[0])?;
        let w = self.timattr(p, &["plan", "--format", "json"], &[0])?;
        let scan = self.timattr(p, &["state", "list"], &[0])?;
        eprintln!(
            "bench: no-op plan {:.2} s {} MB, state list {:.2} s",
            w.wall.as_secs_f64(),
            w.rss / 1_000_000,
            scan.wall.as_secs_f64()
        );
        if noop {
            self.noop_figures(size, &a, &w, &scan, cold);
        }
        Ok(Some(w))
    }

    fn noop_figures(&mut self, size: usize, a: &Run, w: &Run, scan: &Run, cold: &Run) {
        let (secs, rate, ms) = apply_line(&a.stderr).unwrap_or((a.wall.as_secs_f64(), 0.0, 0.0));
        let name = |what: &str| format!("{what} ({size} accounts)");
        self.figures.extend([
            Figure::new(name("first apply, zero latency: apply time"), secs, "s"),
            Figure::new(
                name("first apply, zero latency: throughput"),
                rate,
                "accounts/s",
            )
            .against("ceiling", CEILING),
            Figure::new(name("first apply: store writes per batch"), ms, "ms"),
            Figure::new(name("no-op plan"), w.wall.as_secs_f64(), "s")
                .against("cold plan", cold.wall.as_secs_f64())
                .target(Target::AtMost(1.2)),
            Figure::new(name("no-op plan"), w.wall.as_secs_f64(), "s")
                .against("store scan (state list)", scan.wall.as_secs_f64()),
            Figure::new(name("no-op plan peak RSS"), w.rss as f64 / 1e6, "MB"),
        ]);
    }

    /// `n` accounts in ONE users file: the cold plan against a bare single-thread serde_yaml
    /// parse of the same file (in-process), and its peak RSS. With `reference` false (3M
    /// accounts: the bare parse would need ~6 GB) only the memory figure is taken.
    fn one_file(&mut self, n: usize, prefix: &str, reference: bool) -> Result<(), String> {
        eprintln!("bench: generating {n} accounts in ONE file");
        let p = generate(
            &self.root.join(format!("one{n}")),
            prefix,
            n,
            1,
            self.opts.seed,
            &self.endpoint,
            self.opts.shape(),
        )
        .map_err(|e| e.to_string())?;
        let mb = std::fs::metadata(&p.users_files[0]).map_or(0, |m| m.len()) / 1_000_000;
        let cold = self.timattr(&p, &["plan", "--format", "json"], &[0])?;
        eprintln!(
            "bench: one file of {mb} MB: cold plan {:.2} s {:.2} CPU-s {} MB",
            cold.wall.as_secs_f64(),
            cold.cpu,
            cold.rss / 1_000_000
        );
        if reference {
            let (bare, parsed) = bare_parse(&p.users_files, self.opts.tags > 0)?;
            if parsed != n {
                return Err(format!("generated {n} accounts but parsed {parsed}"));
            }
            eprintln!(
                "bench: bare parse of the one file {:.2} s ({:.2} CPU-s)",
                bare.wall.as_secs_f64(),
                bare.cpu
            );
            let (ratio, rss) = if self.opts.tags > 0 {
                (0.625, 625.0)
            } else {
                (0.5, 500.0)
            };
            self.cold_plan_figures(n, 1, &bare, &cold, ratio, rss);
        } else {
            let limit = 1200.0 * (n as f64 / 3e6).clamp(0.05, 1.0);
            self.figures.push(
                Figure::new(
                    format!("cold plan peak RSS ({n} accounts, ONE file of {mb} MB)"),
                    cold.rss as f64 / 1e6,
                    "MB",
                )
                .target(Target::AtMost(limit)),
            );
            self.figures.push(Figure::new(
                format!("cold plan ({n} accounts, ONE file of {mb} MB)"),
                cold.wall.as_secs_f64(),
                "s",
            ));
        }
        Ok(())
    }

    /// The 30,000-account project: its cold plan's memory, then its first apply at 40 ms
    /// latency, as the apply's own figure and as the whole process (start to exit).
    fn apply_30k(&mut self, emulator: &timattr::emulator::Running) -> Result<(), String> {
        let m = if self.opts.quick { 3_000 } else { 30_000 };
        let p = generate(
            &self.root.join("apply"),
            "a",
            m,
            100.min(m),
            self.opts.seed,
            &self.endpoint,
            self.opts.shape(),
        )
        .map_err(|e| e.to_string())?;
        if self.opts.wants(Scenario::Plan30k) {
            let plan = self.timattr(&p, &["plan", "--format", "json"], &[0])?;
            let limit = 40.0 * (m as f64 / 30_000.0).max(1.0);
            self.figures.push(
                Figure::new(
                    format!("plan peak RSS ({m} accounts, 100 files)"),
                    plan.rss as f64 / 1e6,
                    "MB",
                )
                .target(Target::AtMost(limit)),
            );
            self.figures.push(Figure::new(
                format!("plan wall ({m} accounts, 100 files)"),
                plan.wall.as_secs_f64(),
                "s",
            ));
        }
        if !self.opts.wants(Scenario::Apply) {
            return Ok(());
        }
        emulator.set_latency(Duration::from_millis(40));
        eprintln!("bench: first apply of {m} accounts at 40 ms latency");
        let a = self.timattr(&p, &["apply", "--auto-approve", "-v"], &[0]);
        emulator.set_latency(Duration::ZERO);
        let a = a?;
        let (secs, rate, _) =
            apply_line(&a.stderr).ok_or_else(|| format!("no final apply line in: {}", a.stderr))?;
        eprintln!("bench: apply {secs:.2} s, {rate:.0} accounts/s");
        self.apply_figures(m, rate, &a);
        Ok(())
    }

    fn apply_figures(&mut self, m: usize, rate: f64, a: &Run) {
        // The emulator (like the service) limits 100 requests per sliding second, so the
        // first 100 requests go at once: R requests need at least ceil(R/100)-1 s + latency.
        let requests = m.div_ceil(100);
        let window_secs = (requests.div_ceil(100) - 1) as f64 + 0.040;
        let name = format!("apply throughput, 40 ms latency ({m} accounts)");
        self.figures.extend([
            Figure::new(name.clone(), rate, "accounts/s")
                .against("ceiling", CEILING)
                .target(Target::AtLeast(0.95)),
            Figure::new(name, rate, "accounts/s")
                .against("sliding-window ceiling", m as f64 / window_secs),
            Figure::new(
                format!("apply throughput, whole process (start to exit), 40 ms ({m} accounts)"),
                m as f64 / a.wall.as_secs_f64(),
                "accounts/s",
            )
            .against("ceiling", CEILING)
            .target(Target::AtLeast(0.95)),
            Figure::new(
                format!("apply process peak RSS ({m} accounts)"),
                a.rss as f64 / 1e6,
                "MB",
            ),
        ]);
    }

    /// Issue 16: the first apply of 30,000 users that have 1 to 10 tags each and no attributes
    /// (one `im_add_tag` entry per account, 100 accounts per request) at 40 ms latency, for the
    /// whole process against the 10,000 accounts/s ceiling; checked against the emulator.
    fn apply_tags(&mut self, emulator: &timattr::emulator::Running) -> Result<(), String> {
        let m = if self.opts.quick { 3_000 } else { 30_000 };
        let most = match self.opts.tags {
            0 => APPLY_TAGS,
            n => n.min(APPLY_TAGS),
        };
        let shape = Shape {
            attrs: false,
            tags: most,
        };
        let prefix = "g";
        let p = generate(
            &self.root.join("apply-tags"),
            prefix,
            m,
            100.min(m),
            self.opts.seed,
            &self.endpoint,
            shape,
        )
        .map_err(|e| e.to_string())?;
        emulator.set_latency(Duration::from_millis(40));
        eprintln!("bench: first apply of {m} accounts with 1–{most} tags at 40 ms latency");
        let a = self.timattr(&p, &["apply", "--auto-approve", "-v"], &[0]);
        emulator.set_latency(Duration::ZERO);
        let a = a?;
        let tagged = emulator
            .snapshot()
            .users
            .iter()
            .filter(|(id, u)| id.starts_with(prefix) && !u.tags.is_empty())
            .count();
        if tagged != m {
            return Err(format!(
                "{tagged} of {m} accounts have tags after the apply"
            ));
        }
        let secs = apply_line(&a.stderr).map_or(a.wall.as_secs_f64(), |(secs, _, _)| secs);
        let whole = m as f64 / a.wall.as_secs_f64();
        eprintln!(
            "bench: tag apply {secs:.2} s, whole process {:.2} s ({whole:.0} accounts/s), {:.2} CPU-s",
            a.wall.as_secs_f64(),
            a.cpu
        );
        let what = format!("{m} accounts, 1–{most} new tags each, no attributes");
        self.figures.extend([
            Figure::new(
                format!("tag apply throughput, whole process (start to exit), 40 ms ({what})"),
                whole,
                "accounts/s",
            )
            .against("ceiling", CEILING)
            .target(Target::AtLeast(0.95)),
            Figure::new(
                format!("tag apply throughput, the apply's own time, 40 ms ({what})"),
                m as f64 / secs,
                "accounts/s",
            )
            .against("ceiling", CEILING),
            Figure::new(
                format!("tag apply process CPU, user+sys ({m} accounts)"),
                a.cpu,
                "s",
            ),
            Figure::new(
                format!("tag apply process peak RSS ({m} accounts)"),
                a.rss as f64 / 1e6,
                "MB",
            ),
        ]);
        Ok(())
    }

    fn drift(
        &mut self,
        emulator: &timattr::emulator::Running,
        project: Option<Project>,
    ) -> Result<(), String> {
        let drift_n = self.drift_size();
        let p = match project {
            Some(p) => p,
            None => {
                let p = generate(
                    &self.root.join("drift"),
                    "d",
                    drift_n,
                    100,
                    self.opts.seed,
                    &self.endpoint,
                    self.opts.shape(),
                )
                .map_err(|e| e.to_string())?;
                emulator.set_latency(Duration::ZERO);
                eprintln!("bench: first apply of {drift_n} accounts for drift");
                self.timattr(&p, &["apply", "--auto-approve", "-v"], &[0])?;
                p
            }
        };
        emulator.set_latency(Duration::from_millis(40));
        eprintln!("bench: drift over {} accounts at 40 ms latency", p.accounts);
        let d = self.timattr(&p, &["drift", "--format", "json"], &[0, 1, 2]);
        emulator.set_latency(Duration::ZERO);
        let d = d?;
        if d.code == 1 {
            let msg = d.stderr.trim().lines().last().unwrap_or("").to_owned();
            eprintln!("bench: drift skipped: {msg}");
            self.notes.push(format!(
                "drift throughput skipped: `timattr drift` failed in this build ({msg})"
            ));
            return Ok(());
        }
        let rate = p.accounts as f64 / d.wall.as_secs_f64();
        eprintln!(
            "bench: drift {:.2} s, {rate:.0} accounts/s",
            d.wall.as_secs_f64()
        );
        let requests = p.accounts.div_ceil(100);
        let window_secs = (requests.div_ceil(100) - 1) as f64 + 0.040;
        let name = format!(
            "drift throughput, 40 ms latency, wall of the process ({} accounts)",
            p.accounts
        );
        self.figures.extend([
            Figure::new(name.clone(), rate, "accounts/s")
                .against("ceiling", CEILING)
                .target(Target::AtLeast(0.95)),
            Figure::new(name, rate, "accounts/s")
                .against("sliding-window ceiling", p.accounts as f64 / window_secs),
        ]);
        Ok(())
    }

    fn timattr(&self, p: &Project, args: &[&str], allowed: &[i32]) -> Result<Run, String> {
        let r = run(&self.bin, args, &p.dir, self.gnu_time)?;
        expect_ok(
            &format!(
                "timattr {} ({} accounts, {} files)",
                args.join(" "),
                p.accounts,
                p.files
            ),
            &r,
            allowed,
        )?;
        Ok(r)
    }

    fn json(&self) -> String {
        let figures: Vec<serde_json::Value> = self
            .figures
            .iter()
            .map(|f| {
                serde_json::json!({
                    "figure": f.name,
                    "value": f.value,
                    "unit": f.unit,
                    "reference": f.reference.as_ref().map(|(n, v)| serde_json::json!({"name": n, "value": v})),
                    "ratio": f.ratio,
                    "target": f.target.map(|t| match t {
                        Target::AtMost(m) => serde_json::json!({"at_most": m}),
                        Target::AtLeast(m) => serde_json::json!({"at_least": m}),
                    }),
                    "pass": f.pass(),
                })
            })
            .collect();
        let scaling: Vec<serde_json::Value> = self
            .scaling
            .iter()
            .map(|r| {
                serde_json::json!({
                    "accounts": r.accounts,
                    "files": r.files,
                    "bare_parse_s": r.bare_parse.as_secs_f64(),
                    "validate_s": r.validate.wall.as_secs_f64(),
                    "validate_rss_bytes": r.validate.rss,
                    "cold_plan_s": r.cold.wall.as_secs_f64(),
                    "cold_plan_rss_bytes": r.cold.rss,
                    "warm_plan_s": r.warm.as_ref().map(|w| w.wall.as_secs_f64()),
                    "warm_plan_rss_bytes": r.warm.as_ref().map(|w| w.rss),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "accounts": self.opts.accounts(),
            "files": self.opts.files(),
            "seed": self.opts.seed,
            "tags": self.opts.tags,
            "quick": self.opts.quick,
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "figures": figures,
            "scaling": scaling,
            "notes": self.notes,
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
    }
}
