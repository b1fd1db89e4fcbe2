//! The store's integrity (issue 11): a damaged or rolled-back store is reported as damaged, never
//! read as a smaller state; read-only commands write nothing; `state restore` checks all of a
//! hostile export before anything changes; outputs are replaced atomically.

use crate::support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use support::{users, Emulator, Project, Run, SDKAPPID};

const NAMES: &[&str] = &["sex", "city", "tier"];
const ACCOUNTS: usize = 3_000;

/// A project on the embedded endpoint with `ACCOUNTS` users applied.
fn applied() -> Project {
    let p = Project::new("embedded", NAMES);
    p.write_users_map("a.yaml", &users(ACCOUNTS, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    p
}

/// Every file under `dir` (relative path) with its bytes and modification time.
type Snapshot = BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)>;

fn snapshot(dir: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(
                    rel,
                    (std::fs::read(&path).unwrap(), meta.modified().unwrap()),
                );
            }
        }
    }
    out
}

fn assert_unchanged(before: &Snapshot, dir: &Path, what: &str) {
    let after = snapshot(dir);
    let names = |s: &Snapshot| s.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(before),
        names(&after),
        "{what}: files added or removed"
    );
    for (path, (bytes, mtime)) in before {
        let (b, m) = &after[path];
        assert!(b == bytes, "{what}: {} was rewritten", path.display());
        assert_eq!(m, mtime, "{what}: {} was touched", path.display());
    }
}

/// Replaces the state directory with a copy of `from`.
fn put_state(p: &Project, from: &Path) {
    let _ = std::fs::remove_dir_all(p.state_dir());
    copy_dir(from, &p.state_dir());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn export_lines(run: &Run) -> Vec<String> {
    use std::io::BufRead;
    std::io::BufReader::new(flate2::read::GzDecoder::new(&run.0.stdout[..]))
        .lines()
        .map(|l| l.unwrap())
        .collect()
}

/// No sled internals, debug formatting or panics reach the user.
fn assert_clean_stderr(run: &Run) {
    let err = run.stderr();
    for bad in [
        "panicked",
        "DiskPtr",
        "Corruption {",
        "backtrace",
        "Io(",
        "Custom {",
    ] {
        assert!(!err.contains(bad), "stderr shows {bad:?}:\n{err}");
    }
}

fn assert_damaged(run: Run, what: &str) {
    assert_eq!(
        run.code(),
        1,
        "{what}: exit code; stderr:\n{}",
        run.stderr()
    );
    let err = run.stderr();
    assert!(err.contains("is damaged"), "{what}: {err}");
    assert!(
        err.contains("state restore") && err.contains("import"),
        "{what}: {err}"
    );
    assert_clean_stderr(&run);
}

/// Runs the read commands on a damaged state: each says so, none prints accounts.
fn assert_every_reader_sees_damage(p: &Project, what: &str) {
    for args in [
        &["state", "list"][..],
        &["state", "export"],
        &["state", "history"],
        &["state", "show", "user00001"],
        &["plan", "--format", "json"],
    ] {
        let run = p.run(args);
        let out = run.stdout();
        assert!(!out.contains("user0"), "{what}: {args:?} printed accounts");
        assert_damaged(run, &format!("{what}: {args:?}"));
    }
}

#[test]
fn flipped_bytes_truncation_and_a_zeroed_tail_are_damage_never_a_smaller_state() {
    let p = applied();
    let pristine = tempfile::tempdir().unwrap();
    copy_dir(&p.state_dir(), pristine.path());
    let full = export_lines(&p.run(&["state", "export"]).expect(0));
    assert_eq!(full.len(), ACCOUNTS + 1);
    let len = std::fs::metadata(pristine.path().join("db")).unwrap().len() as usize;
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let mut damages: Vec<(String, Damage)> = Vec::new();
    for at in [
        len / 10,
        len / 3,
        len / 2,
        len * 2 / 3,
        len * 9 / 10,
        len - 2,
    ] {
        damages.push((
            format!("byte {at} flipped"),
            Box::new(move |b| b[at] ^= 0x5a),
        ));
    }
    damages.push((
        "truncated to half".into(),
        Box::new(|b| b.truncate(b.len() / 2)),
    ));
    damages.push((
        "last 4096 bytes cut".into(),
        Box::new(|b| b.truncate(b.len() - 4096)),
    ));
    damages.push((
        "last 8192 bytes zeroed".into(),
        Box::new(|b| {
            let n = b.len();
            b[n - 8192..].fill(0);
        }),
    ));
    damages.push(("emptied".into(), Box::new(|b| b.clear())));
    let mut damaged = 0;
    for (what, damage) in &damages {
        put_state(&p, pristine.path());
        let db = p.state_dir().join("db");
        let mut bytes = std::fs::read(&db).unwrap();
        damage(&mut bytes);
        std::fs::write(&db, bytes).unwrap();
        let run = p.run(&["state", "export"]);
        if run.code() == 0 {
            // Damage in a part of the file sled no longer uses changes nothing: then the whole
            // state must still be there, byte for byte.
            assert_eq!(
                export_lines(&run),
                full,
                "{what}: exit 0 with another state"
            );
            continue;
        }
        damaged += 1;
        assert_damaged(run, what);
        assert_every_reader_sees_damage(&p, what);
        // A writer refuses too, before it sends anything.
        assert_damaged(
            p.run(&["apply", "--auto-approve"]),
            &format!("{what}: apply"),
        );
    }
    assert!(
        damaged >= damages.len() - 2,
        "only {damaged} of {} damages noticed",
        damages.len()
    );
}

#[test]
fn a_database_rolled_back_to_an_older_log_is_noticed() {
    let p = applied();
    let older = tempfile::tempdir().unwrap();
    copy_dir(&p.state_dir(), older.path());
    let mut more = users(ACCOUNTS, "");
    more.extend(users(ACCOUNTS + 500, "x").into_iter().skip(ACCOUNTS));
    p.write_users_map("a.yaml", &more);
    p.run(&["apply", "--auto-approve"]).expect(0);
    // sled's files of the earlier apply, with the commit record of the later one: what sled's
    // recovery makes of a log cut at an early damaged entry.
    for name in ["db", "conf"] {
        std::fs::copy(older.path().join(name), p.state_dir().join(name)).unwrap();
    }
    let run = p.run(&["plan"]);
    assert!(
        run.stderr().contains("latest writes were lost"),
        "{}",
        run.stderr()
    );
    assert_damaged(run, "rolled back");
    assert_every_reader_sees_damage(&p, "rolled back");
}

#[test]
fn a_lost_or_foreign_commit_record_is_damage() {
    let p = applied();
    let record = p.state_dir().join("last-commit");
    let saved = std::fs::read(&record).unwrap();
    std::fs::remove_file(&record).unwrap();
    assert_damaged(p.run(&["state", "list"]), "record removed");
    std::fs::write(&record, &saved).unwrap();
    let other = applied();
    std::fs::copy(other.state_dir().join("last-commit"), &record).unwrap();
    assert_damaged(p.run(&["state", "list"]), "another store's record");
    std::fs::write(&record, b"{\"lineage\":").unwrap();
    assert_damaged(p.run(&["state", "list"]), "torn record");
    // sled's own settings file damaged: reported by the store, without sled's log lines.
    let conf = p.state_dir().join("conf");
    let good_conf = std::fs::read(&conf).unwrap();
    let mut bad_conf = good_conf.clone();
    bad_conf[5] ^= 0xff;
    std::fs::write(&conf, bad_conf).unwrap();
    assert_damaged(p.run(&["state", "list"]), "conf damaged");
    std::fs::write(&conf, good_conf).unwrap();
    // Sled's files gone, the record left: damage, not "no state yet".
    std::fs::write(&record, &saved).unwrap();
    for name in ["db", "conf"] {
        std::fs::remove_file(p.state_dir().join(name)).unwrap();
    }
    let _ = std::fs::remove_dir_all(p.state_dir().join("blobs"));
    assert_damaged(p.run(&["state", "list"]), "database removed");
    assert_damaged(p.run(&["plan"]), "database removed");
}

#[test]
fn drift_without_fix_writes_nothing_even_when_values_drifted() {
    let emu = Emulator::start(std::time::Duration::ZERO, 0.0);
    let p = Project::new(&emu.base_url(), NAMES);
    p.write_users_map("a.yaml", &users(250, ""));
    p.run(&["apply", "--auto-approve"]).expect(0);
    let before = snapshot(&p.state_dir());
    p.run(&["drift"]).expect(0);
    // Someone else changes a value: drift reports it (exit 2) and still writes nothing.
    let mut other = users(1, "");
    other
        .get_mut("user00000")
        .unwrap()
        .insert("city".into(), "elsewhere".into());
    let q = Project::new(&emu.base_url(), NAMES);
    q.write_users_map("a.yaml", &other);
    q.run(&["apply", "--auto-approve"]).expect(0);
    p.run(&["drift"]).expect(2);
    assert_unchanged(&before, &p.state_dir(), "drift without --fix");
    // With --fix it is a writer, and the repair is recorded.
    p.run(&["drift", "--fix", "--auto-approve"]).expect(0);
    p.run(&["drift"]).expect(0);
}

/// `chattr +i` on a directory and its files, undone on drop (even when the test fails).
struct Immutable(PathBuf);

impl Immutable {
    fn set(dir: &Path) -> Option<Immutable> {
        let ok = std::process::Command::new("chattr")
            .args(["-R", "+i"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        let guard = Immutable(dir.to_path_buf());
        // Root ignores permission bits but not the immutable flag: check it really holds.
        let held = ok && std::fs::write(dir.join("probe"), b"x").is_err();
        held.then_some(guard)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .args(["-R", "-i"])
            .arg(&self.0)
            .status();
    }
}

fn read_commands(p: &Project) {
    p.run(&["plan"]).expect(0);
    p.run(&["plan", "--format", "json", "--detailed-exitcode"])
        .expect(0);
    let list = p.run(&["state", "list"]).expect(0).stdout();
    assert_eq!(list.lines().count(), ACCOUNTS);
    p.run(&["state", "show", "user00007"]).expect(0);
    p.run(&["state", "history"]).expect(0);
    assert_eq!(
        export_lines(&p.run(&["state", "export"]).expect(0)).len(),
        ACCOUNTS + 1
    );
    let out = p.path().join("backup.gz");
    p.run(&["state", "export", "--out", out.to_str().unwrap()])
        .expect(0);
    assert!(std::fs::metadata(&out).unwrap().len() > 0);
}

#[test]
fn read_only_commands_write_nothing_to_the_state() {
    let p = applied();
    let before = snapshot(&p.state_dir());
    read_commands(&p);
    assert_unchanged(&before, &p.state_dir(), "read-only commands");
    // No copy is left behind in the temp directory either.
    let tmp = tempfile::tempdir().unwrap();
    let run = p
        .cmd(&["state", "list"])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(run.status.success());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn read_only_commands_work_on_an_immutable_state_directory() {
    let p = applied();
    let Some(guard) = Immutable::set(&p.state_dir()) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chattr +i does not work here, and CI=true"
        );
        eprintln!("skipped: chattr +i does not work on this file system");
        return;
    };
    read_commands(&p);
    // A writer fails cleanly.
    let mut more = users(ACCOUNTS + 1, "");
    more.remove("user00000");
    p.write_users_map("a.yaml", &more);
    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert_clean_stderr(&run);
    drop(guard);
}

/// The sled files of a format 2 store (blocks without checksums, metadata as bare JSON),
/// written with sled directly as timattr 0.1 of format 2 did.
fn write_format_2(dir: &Path, accounts: &BTreeMap<String, BTreeMap<String, String>>) {
    let db = sled::open(dir).unwrap();
    let meta = serde_json::json!({
        "format_version": 2, "sdkappid": SDKAPPID, "endpoint_host": "embedded",
        "lineage": "0123456789abcdef0123456789abcdef", "serial": 4, "slots": {},
    });
    db.insert("meta", serde_json::to_vec(&meta).unwrap())
        .unwrap();
    let all: Vec<_> = accounts.iter().collect();
    for chunk in all.chunks(100) {
        let mut block = vec![1u8];
        block.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        for (account, attrs) in chunk {
            let mut enc = vec![1u8, attrs.len() as u8];
            for (n, v) in attrs.iter() {
                enc.push(n.len() as u8);
                enc.extend_from_slice(n.as_bytes());
                enc.extend_from_slice(&(v.len() as u16).to_le_bytes());
                enc.extend_from_slice(v.as_bytes());
            }
            block.push(account.len() as u8);
            block.extend_from_slice(account.as_bytes());
            block.extend_from_slice(&(enc.len() as u16).to_le_bytes());
            block.extend_from_slice(&enc);
        }
        db.insert(format!("b/{}", chunk[0].0), block).unwrap();
    }
    db.flush().unwrap();
}

#[test]
fn a_format_2_store_is_read_as_is_and_migrated_by_the_first_writer() {
    let p = Project::new("embedded", NAMES);
    let want = users(700, "");
    p.write_users_map("a.yaml", &want);
    write_format_2(&p.state_dir(), &want);
    let before = snapshot(&p.state_dir());
    // Readers read it (migrating a private copy) and leave it as it is.
    let list = p.run(&["state", "list"]).expect(0).stdout();
    assert_eq!(list.lines().count(), 700);
    let plan = p.run(&["plan"]).expect(0);
    assert!(
        plan.stdout().contains("0 to add, 0 to change, 0 to remove"),
        "{}",
        plan.stdout()
    );
    assert_unchanged(&before, &p.state_dir(), "readers of a format 2 store");
    // The first writer migrates it in place; the lineage and serial stay.
    let mut more = want.clone();
    more.extend(users(701, "").into_iter().skip(700));
    p.write_users_map("a.yaml", &more);
    p.run(&["apply", "--auto-approve"]).expect(0);
    assert!(p.state_dir().join("last-commit").exists());
    let lines = export_lines(&p.run(&["state", "export"]).expect(0));
    assert_eq!(lines.len(), 702);
    let header: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(header["format_version"], 3);
    assert_eq!(header["lineage"], "0123456789abcdef0123456789abcdef");
    assert_eq!(header["serial"], 5);
}

#[test]
fn a_format_1_store_is_refused_with_what_to_do() {
    let p = Project::new("embedded", NAMES);
    p.write_users_map("a.yaml", &users(3, ""));
    let db = sled::open(p.state_dir()).unwrap();
    db.insert("meta", &br#"{"format_version":1,"sdkappid":1400000000,"endpoint_host":"embedded","lineage":"ab","serial":1}"#[..]).unwrap();
    db.flush().unwrap();
    drop(db);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let run = p.run(&["state", "list"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert!(
        run.stderr().contains("format version 1, older"),
        "{}",
        run.stderr()
    );
}

// ---- state restore ----

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

fn header(accounts: usize, extra: &str) -> String {
    format!(
        r#"{{"format_version":3,"sdkappid":{SDKAPPID},"endpoint_host":"embedded","lineage":"00aa","serial":7,"slots":{{"0":"sex"}},"accounts":{accounts}{extra}}}"#
    )
}

fn header_with(field: &str, value: &str) -> String {
    let mut h: serde_json::Value = serde_json::from_str(&header(1, "")).unwrap();
    h[field] = serde_json::from_str(value).unwrap();
    h.to_string()
}

fn line(account: &str, attrs: &[(&str, &str)]) -> String {
    let map: BTreeMap<&str, &str> = attrs.iter().copied().collect();
    serde_json::json!({"account": account, "attrs": map}).to_string()
}

/// Restores `bytes` with `--force`; expects exit 1 naming `because`, and no change at all.
fn refused(p: &Project, bytes: &[u8], because: &str) {
    let file = p.path().join("hostile.gz");
    std::fs::write(&file, bytes).unwrap();
    let before = p.state_dir().exists().then(|| snapshot(&p.state_dir()));
    let run = p.run(&["state", "restore", file.to_str().unwrap(), "--force"]);
    assert_eq!(run.code(), 1, "{because}: {}", run.stderr());
    assert!(
        run.stderr().contains(because),
        "wanted {because:?} in:\n{}",
        run.stderr()
    );
    assert_clean_stderr(&run);
    match before {
        Some(before) => assert_unchanged(&before, &p.state_dir(), because),
        None => assert!(!p.state_dir().exists(), "{because}: a state was created"),
    }
}

/// An export of one account line (after a header announcing one account).
fn one(account_line: &str) -> Vec<u8> {
    gzip(&format!("{}\n{account_line}\n", header(1, "")))
}

/// A valid account line after the header `h`.
fn under(h: &str) -> Vec<u8> {
    gzip(&format!("{h}\n{}\n", line("u1", &[("sex", "m")])))
}

/// Accounts, names and values past the API's limits.
fn hostile_lines() -> Vec<(Vec<u8>, &'static str)> {
    let names: Vec<String> = (0..11).map(|i| format!("n{i}")).collect();
    let eleven: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let spread: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| line(&format!("u{i:02}"), &[(n, "v")]))
        .collect();
    let ok = line("u1", &[("sex", "m")]);
    vec![
        (
            one(&line("u1", &[("sex", &"x".repeat(51))])),
            "longer than 50 bytes",
        ),
        (
            one(&line(&"a".repeat(33), &[("sex", "m")])),
            "is not 1 to 32 bytes",
        ),
        (one(&line("", &[("sex", "m")])), "is not 1 to 32 bytes"),
        (
            one(&line("u1", &[(&"n".repeat(51), "m")])),
            "is not 1 to 50 bytes",
        ),
        (one(&line("u1", &eleven)), "more than 10 attributes"),
        (
            gzip(&format!("{}\n{}\n", header(11, ""), spread.join("\n"))),
            "more than 10 distinct attribute names",
        ),
        (one("{\"account\":\"u1\""), "line 2"),
        (
            gzip(&format!("{}\n{ok}\n", header(2, ""))),
            "announces 2 accounts but 1 follow",
        ),
        (
            gzip(&format!("{}\n{ok}\n{ok}\n", header(2, ""))),
            "appears twice",
        ),
        (
            gzip(&format!("{}\n{ok}\n\n", header(1, ""))),
            "line 3 is empty",
        ),
    ]
}

/// Headers of another app, past the limits, or not exports at all.
fn hostile_headers() -> Vec<(Vec<u8>, &'static str)> {
    let valid = under(&header(1, ""));
    vec![
        (
            under(&header_with("slots", r#"{"10":"x"}"#)),
            "slot 10 does not exist",
        ),
        (
            under(&header_with("serial", "18446744073709551615")),
            "serial is at its maximum",
        ),
        (
            under(&header_with("sdkappid", "1400000001")),
            "--force does not override this",
        ),
        (
            under(&header_with("endpoint_host", r#""other.example""#)),
            "--force does not override this",
        ),
        (
            under(&header_with("lineage", r#""""#)),
            "lineage is not an id",
        ),
        (
            under(&header_with("format_version", "99")),
            "format version 99",
        ),
        (valid[..valid.len() - 9].to_vec(), "cannot be read"),
        (b"not gzip at all".to_vec(), "cannot be read"),
        (Vec::new(), "cannot be read"),
    ]
}

fn hostile_exports() -> Vec<(Vec<u8>, &'static str)> {
    let mut all = hostile_lines();
    all.extend(hostile_headers());
    all
}

#[test]
fn restore_refuses_hostile_exports_and_changes_nothing() {
    // Into no state at all: nothing is created.
    let fresh = Project::new("embedded", NAMES);
    fresh.write_users_map("a.yaml", &users(3, ""));
    for (bytes, because) in hostile_exports() {
        refused(&fresh, &bytes, because);
    }
    // Into an existing state: nothing changes, whatever --force says.
    let p = applied();
    for (bytes, because) in hostile_exports() {
        refused(&p, &bytes, because);
    }
    // A well-formed one of the same app goes in with --force (another lineage).
    let file = p.path().join("ok.gz");
    std::fs::write(
        &file,
        gzip(&format!(
            "{}\n{}\n",
            header(1, ""),
            line("u1", &[("sex", "m")])
        )),
    )
    .unwrap();
    p.run(&["state", "restore", file.to_str().unwrap()])
        .expect(1);
    p.run(&["state", "restore", file.to_str().unwrap(), "--force"])
        .expect(0);
    assert_eq!(p.run(&["state", "list"]).expect(0).stdout(), "u1\n");
}

/// `n` gzip members of 1 MB each: tiny on disk, `n` MB inflated.
#[cfg(unix)]
fn bomb(prefix: &str, filler: u8, megabytes: usize) -> Vec<u8> {
    let mut out = gzip(prefix);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![filler; 1 << 20]).unwrap();
    let member = gz.finish().unwrap();
    for _ in 0..megabytes {
        out.extend_from_slice(&member);
    }
    out
}

/// Restores under an address-space limit, so that inflating a bomb into memory would fail
/// the test instead of swapping the machine.
#[cfg(unix)] // limits the child with sh and ulimit
fn restore_limited(p: &Project, file: &Path) -> Run {
    let args = format!("state restore '{}' --force", file.display());
    p.run_limited("ulimit -v 1048576", &args)
}

#[test]
#[cfg(unix)] // limits the child with sh and ulimit
fn a_gzip_bomb_is_refused_in_bounded_memory() {
    let p = applied();
    let before = snapshot(&p.state_dir());
    for (data, because) in [
        // One endless line of zeros.
        (
            bomb(&format!("{}\n", header(1, "")), 0, 2048),
            "longer than",
        ),
        // Endless blank lines.
        (
            bomb(&format!("{}\n", header(1, "")), b'\n', 2048),
            "is empty",
        ),
        // An endless header.
        (
            bomb("{\"format_version\":3,\"x\":\"", b'a', 2048),
            "longer than",
        ),
    ] {
        assert!(data.len() < 4 << 20, "the bomb is {} bytes", data.len());
        let file = p.path().join("bomb.gz");
        std::fs::write(&file, &data).unwrap();
        let run = restore_limited(&p, &file);
        assert_eq!(run.code(), 1, "{because}: {}", run.stderr());
        assert!(
            run.stderr().contains(because),
            "{because}: {}",
            run.stderr()
        );
        assert_unchanged(&before, &p.state_dir(), because);
    }
}

#[test]
#[cfg(unix)] // limits the child with sh and ulimit
fn export_out_replaces_the_file_only_when_complete() {
    let p = applied();
    let out = p.path().join("backup.gz");
    std::fs::write(&out, b"previous backup").unwrap();
    // A write that fails half-way (file size limit; SIGXFSZ ignored so write() fails instead).
    p.run_limited("trap '' XFSZ; ulimit -f 8", "state export --out backup.gz")
        .expect(1);
    assert_eq!(std::fs::read(&out).unwrap(), b"previous backup");
    let leftovers: Vec<_> = std::fs::read_dir(p.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A damaged store: the export fails before the file is touched.
    std::fs::remove_file(p.state_dir().join("last-commit")).unwrap();
    p.run(&["state", "export", "--out", "backup.gz"]).expect(1);
    assert_eq!(std::fs::read(&out).unwrap(), b"previous backup");
}

#[test]
fn export_and_restore_round_trip_through_a_file() {
    let p = applied();
    p.run(&["state", "export", "--out", "b.gz"]).expect(0);
    let original = p.run(&["state", "list"]).expect(0).stdout();
    let q = Project::new("embedded", NAMES);
    q.write_users_map("a.yaml", &users(ACCOUNTS, ""));
    let file = p.path().join("b.gz");
    q.run(&["state", "restore", file.to_str().unwrap()])
        .expect(0);
    assert_eq!(q.run(&["state", "list"]).expect(0).stdout(), original);
    let plan = q.run(&["plan", "--detailed-exitcode"]).expect(0);
    assert!(plan.stdout().contains("No changes"), "{}", plan.stdout());
}
