//! Benchmark of the state in PostgreSQL against sled (issue 10):
//!
//! - **apply through a distant database**: a first apply of N accounts (default 30,000) at
//!   40 ms API latency, its state in PostgreSQL behind a TCP proxy that delays every byte by
//!   half the round trip each way (default 50 ms round trip); throughput against the 10,000
//!   accounts/s ceiling, and the most confirmed batches that waited for their record;
//! - **cold and no-op plan of M accounts** (default 1,000,000) read from PostgreSQL, each
//!   against the same plan with a sled store holding the same data;
//! - **whole process and round trips** (issue 22, DESIGN.md §7), on the project of the first
//!   apply through the distant database: the wall time of the whole `timattr apply` process
//!   (schema creation included: the database is new) against the API ceiling (N / 10,000 s);
//!   a no-op plan of the same N accounts against `timattr validate` of the project (the local
//!   cost); and the round trips to the database of `plan`, of `apply` (its start: before its
//!   first batch request reaches the API; its end: after the API's last answer) and of
//!   `state list`.
//!
//! Round trips are counted by the delay proxy, per connection and summed over connections: a
//! round trip is each turn where the client sends after the server last sent (or first
//! sends), however many messages or TCP chunks the turn has. Statements pipelined in one
//! flight are therefore one round trip, and so is connecting (the startup message; TLS is
//! off here). A Terminate message alone (the client closing the connection) is not one: it
//! waits for nothing. Set `BENCH_STATE_TURNS=1` to see the start of each turn's messages. The API's requests pass a second, undelayed proxy that notes when the first
//! batch request (`im_set_attr`, `im_remove_attr`, the tag commands) arrives and when the
//! last answer leaves, which splits an apply's round trips into start, middle and end.
//!
//! ```sh
//! cargo run --release --example bench_state                          # full run, ~5 min
//! cargo run --release --example bench_state -- --quick               # 3,000 / 20,000 accounts
//! cargo run --release --example bench_state -- --apply 30000 --plan 1000000 --delay-ms 50
//! cargo run --release --example bench_state -- --plan 0          # only the apply (0 skips)
//! cargo run --release --example bench_state -- --plan 0 --bin /tmp/timattr-before  # another binary
//! ```
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (role `root`, trust auth); the bench makes a database of
//! its own and drops it. Every timed command is the release binary run as a child; the
//! emulator and the proxy run in this process.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use timattr::api::Secret;

const SDKAPPID: u32 = 1_400_000_000;
const KEY_ENV: &str = "TIMATTR_BENCH_KEY";
const KEY: &str = "bench-key-0123456789abcdef";
const ADMIN_DB: &str = "host=127.0.0.1 port=5432 user=root dbname=test sslmode=disable";

struct Opts {
    apply: usize,
    plan: usize,
    delay: Duration,
    bin: Option<PathBuf>,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        apply: 30_000,
        plan: 1_000_000,
        delay: Duration::from_millis(50),
        bin: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => (o.apply, o.plan) = (3_000, 20_000),
            "--apply" => o.apply = value()?.parse().map_err(|e| format!("--apply: {e}"))?,
            "--plan" => o.plan = value()?.parse().map_err(|e| format!("--plan: {e}"))?,
            "--delay-ms" => {
                o.delay =
                    Duration::from_millis(value()?.parse().map_err(|e| format!("--delay-ms: {e}"))?)
            }
            "--bin" => o.bin = Some(value()?.into()),
            other => {
                return Err(format!(
                    "unknown argument {other:?} (see the file's doc comment)"
                ))
            }
        }
    }
    Ok(o)
}

fn main() {
    let result = parse_args().and_then(|o| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        run(&rt, &o)
    });
    if let Err(e) = result {
        eprintln!("bench_state failed: {e}");
        std::process::exit(1);
    }
}

fn run(rt: &tokio::runtime::Runtime, o: &Opts) -> Result<(), String> {
    let bin = locate_bin(o)?;
    let db = format!("timattr_bench_{:08x}", rand::random::<u32>());
    admin(rt, &format!("CREATE DATABASE {db}"))?;
    let result = scenarios(rt, o, &bin, &db);
    let _ = admin(rt, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    let rows = result?;
    println!("\n| figure | value | reference | ratio | target |\n|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    Ok(())
}

fn scenarios(
    rt: &tokio::runtime::Runtime,
    o: &Opts,
    bin: &Path,
    db: &str,
) -> Result<Vec<String>, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    if o.apply > 0 {
        rows.extend(apply_through_proxy(rt, o, bin, db, tmp.path())?);
    }
    if o.plan > 0 {
        rows.extend(plans(o, bin, db, tmp.path())?);
    }
    Ok(rows)
}

/// The first apply of `o.apply` accounts at 40 ms latency, state behind the delay proxy, and
/// the same with a sled directory; then, on the PostgreSQL project, the no-op plan against
/// `validate` and the round trips of `plan` and `state list`.
fn apply_through_proxy(
    rt: &tokio::runtime::Runtime,
    o: &Opts,
    bin: &Path,
    db: &str,
    tmp: &Path,
) -> Result<Vec<String>, String> {
    let turns = Turns::default();
    let proxy = rt.block_on(delay_proxy(
        "127.0.0.1:5432".parse().unwrap(),
        o.delay / 2,
        turns.clone(),
    ))?;
    let url = format!("postgres://root@{proxy}/{db}?sslmode=disable");
    let ms = o.delay.as_millis();
    let mut rows = Vec::new();
    for (label, state) in [("PostgreSQL, 50 ms away", url.as_str()), ("sled", "state")] {
        let pg = state == url;
        // A fresh emulator per store: both applies configure the names and set every value
        // (and one's rate window does not spill into the other's).
        let mut cfg =
            timattr::emulator::Config::local(SDKAPPID, "administrator", Secret::new(KEY.into()));
        cfg.latency = Duration::from_millis(40);
        let emu = rt
            .block_on(timattr::emulator::start(cfg))
            .map_err(|e| e.to_string())?;
        let api = ApiTimes::default();
        let api_addr = rt.block_on(api_proxy(emu.addr(), api.clone()))?;
        let dir = tmp.join(format!(
            "apply-{}",
            label.split(',').next().unwrap_or(label)
        ));
        write_project(&dir, &format!("http://{api_addr}"), state, o.apply, "")?;
        let before = turns.count();
        let started = Instant::now();
        let out = timattr(bin, &dir, &["apply", "--auto-approve", "-v"])?;
        let wall = started.elapsed().as_secs_f64();
        let (rate, lag) = apply_figures(&out)?;
        eprintln!("bench_state: apply, {label}: {rate:.0} accounts/s, at most {lag} batches awaiting their record, whole process {wall:.2} s");
        let label = label.replace("50 ms", &format!("{ms} ms"));
        let ceiling = o.apply as f64 / 10_000.0;
        rows.push(format!(
            "| first apply of {} accounts, 40 ms API latency, state: {label} | {rate:.0} accounts/s | ceiling 10,000/s | {:.3} | ≥ 0.95 |",
            o.apply,
            rate / 10_000.0
        ));
        rows.push(format!(
            "| whole `timattr apply` process, same apply, state: {label} | {wall:.2} s | ceiling {ceiling:.2} s | {:.3} | ≥ 0.95 |",
            ceiling / wall
        ));
        rows.push(format!(
            "| most confirmed batches awaiting their record, state: {label} | {lag} | concurrency 16 | — | ≤ 16 |"
        ));
        if pg {
            let all = turns.since(before);
            let (first_batch, last_answer) = api.span()?;
            if std::env::var_os("BENCH_STATE_TURNS").is_some() {
                eprintln!(
                    "bench_state: first batch request at {:.2?}, last answer at {:.2?}",
                    first_batch - started,
                    last_answer - started
                );
            }
            let start = all.iter().filter(|t| **t < first_batch).count();
            let end = all.iter().filter(|t| **t > last_answer).count();
            eprintln!(
                "bench_state: apply round trips: {} in all, {start} before the first batch, {end} after the last answer",
                all.len()
            );
            rows.push(format!(
                "| round trips of that apply: start (before its first batch) / end (after the API's last answer) / all | {start} / {end} / {} | — | — | — |",
                all.len()
            ));
            rows.extend(reads_through_proxy(o, bin, &dir, &turns)?);
        }
        rt.block_on(emu.stop()).map_err(|e| e.to_string())?;
    }
    Ok(rows)
}

/// On the project of the first apply (state behind the delay proxy): the no-op plan against
/// `validate`, and the round trips of `plan` and `state list`.
fn reads_through_proxy(
    o: &Opts,
    bin: &Path,
    dir: &Path,
    turns: &Turns,
) -> Result<Vec<String>, String> {
    let n = o.apply;
    let ms = o.delay.as_millis();
    let validate = best_of(3, || timattr(bin, dir, &["validate"]).map(|_| ()))?;
    let noop = best_of(3, || {
        let out = timattr(bin, dir, &["plan"])?;
        if !String::from_utf8_lossy(&out.stdout).contains("No changes.") {
            return Err("the no-op plan has changes".into());
        }
        Ok(())
    })?;
    let counted = |args: &[&str]| -> Result<usize, String> {
        let before = turns.count();
        timattr(bin, dir, args)?;
        Ok(turns.count() - before)
    };
    let plan_trips = counted(&["plan"])?;
    let list_trips = counted(&["state", "list"])?;
    eprintln!("bench_state: no-op plan {noop:.2} s (validate {validate:.2} s); round trips: plan {plan_trips}, state list {list_trips}");
    Ok(vec![
        format!(
            "| no-op plan of {n} accounts, state {ms} ms away | {noop:.2} s | `validate` {validate:.2} s + 0.3 s | {:.2} s over | ≤ 0.30 s over |",
            noop - validate
        ),
        format!("| round trips of that no-op `plan` | {plan_trips} | — | — | — |"),
        format!("| round trips of `state list` | {list_trips} | — | — | — |"),
    ])
}

/// Cold (empty store) and no-op (store holding the desired data) plans of `o.plan` accounts,
/// PostgreSQL against sled on the same data. Best of three runs each.
fn plans(o: &Opts, bin: &Path, db: &str, tmp: &Path) -> Result<Vec<String>, String> {
    let url = format!("postgres://root@127.0.0.1:5432/{db}?sslmode=disable");
    let dirs = [
        (tmp.join("plan-sled"), "state".to_owned()),
        (tmp.join("plan-pg"), url),
    ];
    let mut figures = Vec::new();
    for (dir, state) in &dirs {
        write_project(dir, "http://127.0.0.1:9", state, o.plan, "")?;
        let cold = best_of(3, || {
            timattr(bin, dir, &["plan", "--format", "json"]).map(|_| ())
        })?;
        write_export(&dir.join("backup.jsonl.gz"), o.plan)?;
        let restore = best_of(1, || {
            timattr(
                bin,
                dir,
                &["state", "restore", "--force", "backup.jsonl.gz"],
            )
            .map(|_| ())
        })?;
        let noop = best_of(3, || {
            let out = timattr(bin, dir, &["plan", "--detailed-exitcode"])?;
            if !String::from_utf8_lossy(&out.stdout).contains("No changes.") {
                return Err("the no-op plan has changes".into());
            }
            Ok(())
        })?;
        eprintln!("bench_state: plan with {state}: cold {cold:.2} s, restore {restore:.2} s, no-op {noop:.2} s");
        figures.push((cold, noop, restore));
    }
    let ((sc, sn, sr), (pc, pn, pr)) = (figures[0], figures[1]);
    let n = o.plan;
    Ok(vec![
        format!("| cold plan of {n} accounts, state in PostgreSQL | {pc:.2} s | sled {sc:.2} s | {:.3} | ≤ 1.5 |", pc / sc),
        format!("| no-op plan of {n} accounts, state in PostgreSQL | {pn:.2} s | sled {sn:.2} s | {:.3} | ≤ 1.5 |", pn / sn),
        format!("| `state restore` of {n} accounts into PostgreSQL | {pr:.2} s | sled {sr:.2} s | {:.3} | — |", pr / sr),
    ])
}

fn best_of(n: usize, mut f: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let mut best = f64::MAX;
    for _ in 0..n {
        let started = Instant::now();
        f()?;
        best = best.min(started.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Accounts `u{salt}{i:07}` with three to five of six names, values from small sets.
fn account(i: usize, salt: &str) -> (String, Vec<(&'static str, String)>) {
    const NAMES: [&str; 6] = ["sex", "city", "tier", "lang", "country", "plan"];
    let k = 3 + i % 3;
    let attrs = (0..k)
        .map(|j| {
            let n = NAMES[(i + j) % 6];
            (n, format!("{n}{}", (i * 7 + j * 3) % (3 + j)))
        })
        .collect();
    (format!("u{salt}{i:07}"), attrs)
}

fn write_project(
    dir: &Path,
    endpoint: &str,
    state: &str,
    n: usize,
    salt: &str,
) -> Result<(), String> {
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    std::fs::create_dir_all(dir.join("users")).map_err(io)?;
    let project = format!(
        "app:\n  sdkappid: {SDKAPPID}\n  admin: administrator\n  endpoint: {endpoint}\n  secret_env: {KEY_ENV}\nattributes: [sex, city, tier, lang, country, plan]\nusers: [\"users/*.yaml\"]\nstate: \"{state}\"\n"
    );
    std::fs::write(dir.join("timattr.yaml"), project).map_err(io)?;
    let files = (n / 10_000).clamp(1, 100);
    let per = n.div_ceil(files);
    for f in 0..files {
        let mut yaml = String::from("users:\n");
        for i in (f * per)..((f + 1) * per).min(n) {
            let (a, attrs) = account(i, salt);
            let body: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            yaml.push_str(&format!("  {a}: {{{}}}\n", body.join(", ")));
        }
        std::fs::write(dir.join(format!("users/f{f:03}.yaml")), yaml).map_err(io)?;
    }
    Ok(())
}

/// A `state export` of exactly the desired data of [`write_project`] (salt "").
fn write_export(path: &Path, n: usize) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut gz =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
    let header = serde_json::json!({
        "format_version": 2, "sdkappid": SDKAPPID, "endpoint_host": "127.0.0.1",
        "lineage": "bench", "serial": 1, "accounts": n,
        "slots": {"0": "sex", "1": "city", "2": "tier", "3": "lang", "4": "country", "5": "plan"},
    });
    writeln!(gz, "{header}").map_err(|e| e.to_string())?;
    for i in 0..n {
        let (a, attrs) = account(i, "");
        let attrs: serde_json::Map<String, serde_json::Value> = attrs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into()))
            .collect();
        writeln!(gz, "{}", serde_json::json!({"account": a, "attrs": attrs}))
            .map_err(|e| e.to_string())?;
    }
    gz.finish()
        .and_then(|mut w| w.flush())
        .map_err(|e| e.to_string())
}

/// When the last child was started (for `BENCH_STATE_TURNS`).
static LAUNCHED: Mutex<Option<Instant>> = Mutex::new(None);

fn timattr(bin: &Path, dir: &Path, args: &[&str]) -> Result<std::process::Output, String> {
    *LAUNCHED.lock().unwrap() = Some(Instant::now());
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env(KEY_ENV, KEY)
        .env_remove("TIMATTR_STATE")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", bin.display()))?;
    match out.status.code() {
        Some(0) => Ok(out),
        _ => Err(format!(
            "timattr {} in {} failed: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// Accounts per second and the most batches awaiting their record, from apply's last line.
fn apply_figures(out: &std::process::Output) -> Result<(f64, usize), String> {
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .rev()
        .find(|l| l.contains("users/s"))
        .ok_or(format!("no summary line in {err}"))?;
    eprintln!("bench_state: {line}");
    let rate = line
        .split(" users/s")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .ok_or(format!("no rate in {line}"))?;
    let lag = line
        .split("at most ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .ok_or(format!("no lag in {line}"))?;
    Ok((rate, lag))
}

fn admin(rt: &tokio::runtime::Runtime, sql: &str) -> Result<(), String> {
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(ADMIN_DB, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("PostgreSQL at 127.0.0.1:5432: {e}"))?;
        tokio::spawn(conn);
        client.batch_execute(sql).await.map_err(|e| e.to_string())
    })
}

/// The instants of the round trips through a delay proxy, over all its connections.
#[derive(Clone, Default)]
struct Turns(Arc<Mutex<Vec<Instant>>>);

impl Turns {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The instants of the turns after the first `n`.
    fn since(&self, n: usize) -> Vec<Instant> {
        self.0.lock().unwrap()[n..].to_vec()
    }
}

/// Which side of a proxied connection sent last (see [`Turns`]).
const NOBODY: u8 = 0;
const CLIENT: u8 = 1;
const SERVER: u8 = 2;

/// A TCP proxy to `upstream` on a free loopback port that holds every chunk for `one_way`
/// in each direction (so a round trip takes twice that longer) without limiting throughput,
/// and counts round trips into `turns`: a chunk from the client after the server last sent
/// (or the connection's first) starts one.
async fn delay_proxy(
    upstream: SocketAddr,
    one_way: Duration,
    turns: Turns,
) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let turns = turns.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let last = Arc::new(AtomicU8::new(NOBODY));
                let up = Observer::Turns(turns, last.clone(), CLIENT);
                tokio::spawn(pump(cr, sw, one_way, up));
                tokio::spawn(pump(
                    sr,
                    cw,
                    one_way,
                    Observer::Turns(Turns::default(), last, SERVER),
                ));
            });
        }
    });
    Ok(addr)
}

/// When the API saw its first batch request and sent its last answer.
#[derive(Clone, Default)]
struct ApiTimes(Arc<Mutex<(Option<Instant>, Option<Instant>)>>);

impl ApiTimes {
    fn span(&self) -> Result<(Instant, Instant), String> {
        match *self.0.lock().unwrap() {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err("the API proxy saw no batch request".into()),
        }
    }
}

/// An undelayed TCP proxy to the API that notes [`ApiTimes`].
async fn api_proxy(upstream: SocketAddr, times: ApiTimes) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let times = times.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(
                    cr,
                    sw,
                    Duration::ZERO,
                    Observer::Requests(times.clone()),
                ));
                tokio::spawn(pump(sr, cw, Duration::ZERO, Observer::Answers(times)));
            });
        }
    });
    Ok(addr)
}

/// The frontend's Terminate message.
const TERMINATE: &[u8] = &[b'X', 0, 0, 0, 4];

/// What a pump notes about the chunks it reads.
enum Observer {
    /// Round trips: (all turns, who sent last on this connection, this side).
    Turns(Turns, Arc<AtomicU8>, u8),
    /// The first batch request to the API.
    Requests(ApiTimes),
    /// The API's last answer.
    Answers(ApiTimes),
}

impl Observer {
    fn saw(&self, chunk: &[u8]) {
        let now = Instant::now();
        match self {
            // A Terminate message alone (closing the connection) waits for no answer.
            Observer::Turns(..) if chunk == TERMINATE => {}
            Observer::Turns(turns, last, side) => {
                if last.swap(*side, Ordering::SeqCst) != *side && *side == CLIENT {
                    turns.0.lock().unwrap().push(now);
                    if std::env::var_os("BENCH_STATE_TURNS").is_some() {
                        let head = String::from_utf8_lossy(&chunk[..chunk.len().min(120)])
                            .replace(|c: char| c.is_control(), ".");
                        let at = LAUNCHED
                            .lock()
                            .unwrap()
                            .map(|l| now - l)
                            .unwrap_or_default();
                        eprintln!("bench_state: turn at {at:.2?}: {head}");
                    }
                }
            }
            Observer::Requests(times) => {
                const BATCHES: [&str; 5] = [
                    "/im_set_attr?",
                    "/im_remove_attr?",
                    "/im_add_tag?",
                    "/im_remove_tag?",
                    "/im_remove_all_tags?",
                ];
                let head = String::from_utf8_lossy(&chunk[..chunk.len().min(512)]);
                if BATCHES.iter().any(|b| head.contains(b)) {
                    times.0.lock().unwrap().0.get_or_insert(now);
                }
            }
            Observer::Answers(times) => times.0.lock().unwrap().1 = Some(now),
        }
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read, telling `observer`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    observer: Observer,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        observer.saw(&buf[..n]);
        if tx
            .send((tokio::time::Instant::now() + delay, buf[..n].to_vec()))
            .is_err()
        {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

fn locate_bin(o: &Opts) -> Result<PathBuf, String> {
    if let Some(b) = &o.bin {
        return std::fs::canonicalize(b).map_err(|e| format!("{}: {e}", b.display()));
    }
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    eprintln!("bench_state: cargo build --release --bin timattr");
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
    std::fs::canonicalize(target.join("release").join("timattr")).map_err(|e| e.to_string())
}
