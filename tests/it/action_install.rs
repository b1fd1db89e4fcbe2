//! The composite action's install script (`scripts/install-timattr.sh`) run against a local
//! directory laid out like a GitHub release: a good archive installs, a wrong checksum fails and
//! installs nothing, a runner without an archive falls back to `cargo install --locked` of that
//! exact tag (a fake cargo records the call), and a cached copy is reused only when it is right.
//! The build provenance is checked with `gh attestation verify` (a fake gh records the call and
//! passes or fails), and the install says so when gh is missing.
// The install script is bash run against fake releases; the Unix runners test it.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VERSION: &str = "0.1.0";
const LINUX_X64: &str = "x86_64-unknown-linux-musl";
const WINDOWS_X64: &str = "x86_64-pc-windows-msvc";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fake timattr: a script that reports `version`.
fn fake_binary(path: &Path, version: &str) {
    std::fs::write(path, format!("#!/bin/sh\necho \"timattr {version}\"\n")).unwrap();
    make_executable(path);
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

/// A release directory `base/vVERSION/` with one archive per target and SHA256SUMS.
struct Release {
    _tmp: tempfile::TempDir,
    base: PathBuf,
}

impl Release {
    fn new(targets: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("releases");
        let dir = base.join(format!("v{VERSION}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut sums = String::new();
        for target in targets {
            let name = format!("timattr-{VERSION}-{target}");
            let pkg = tmp.path().join("pkg");
            std::fs::create_dir_all(pkg.join(&name)).unwrap();
            let windows = target.contains("windows");
            let exe = if windows { "timattr.exe" } else { "timattr" };
            fake_binary(&pkg.join(&name).join(exe), VERSION);
            let archive = if windows {
                let file = dir.join(format!("{name}.zip"));
                run(Command::new("zip")
                    .arg("-qr")
                    .arg(&file)
                    .arg(&name)
                    .current_dir(&pkg));
                file
            } else {
                let file = dir.join(format!("{name}.tar.gz"));
                run(Command::new("tar")
                    .arg("-czf")
                    .arg(&file)
                    .arg("-C")
                    .arg(&pkg)
                    .arg(&name));
                file
            };
            let file_name = archive.file_name().unwrap().to_string_lossy().into_owned();
            sums.push_str(&format!("{}  {file_name}\n", sha256_hex(&archive)));
        }
        std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
        Release { _tmp: tmp, base }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.base.join(format!("v{VERSION}")).join(name)
    }

    fn archive(&self, target: &str) -> PathBuf {
        self.file(&format!("timattr-{VERSION}-{target}.tar.gz"))
    }
}

/// One run of the script as the action's install step would run it.
struct Runner {
    tmp: tempfile::TempDir,
    os: &'static str,
    arch: &'static str,
    env: Vec<(String, String)>,
}

impl Runner {
    fn new(os: &'static str, arch: &'static str) -> Self {
        Runner {
            tmp: tempfile::tempdir().unwrap(),
            os,
            arch,
            env: Vec::new(),
        }
    }

    fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        let value = value.as_ref().to_string_lossy().into_owned();
        self.env.push((key.to_owned(), value));
        self
    }

    fn install_dir(&self) -> PathBuf {
        self.tmp.path().join("tool")
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.tmp.path().join(name)).unwrap_or_default()
    }

    fn script(&self, command: &str, release: &Release) -> Output {
        Command::new("bash")
            .arg(root().join("scripts/install-timattr.sh"))
            .arg(command)
            .current_dir(self.tmp.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.tmp.path())
            .env("RUNNER_OS", self.os)
            .env("RUNNER_ARCH", self.arch)
            .env("TIMATTR_INSTALL_VERSION", VERSION)
            .env("TIMATTR_INSTALL_BASE", &release.base)
            .env("TIMATTR_INSTALL_DIR", self.install_dir())
            .env("TIMATTR_INSTALL_REPOSITORY", "example-org/timattr")
            .env("GITHUB_OUTPUT", self.tmp.path().join("github_output"))
            .env("GITHUB_PATH", self.tmp.path().join("github_path"))
            // No gh unless a test gives a fake one: a runner's real gh must not answer here.
            .env("TIMATTR_INSTALL_GH", self.tmp.path().join("no-gh"))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap()
    }

    fn install(&self, release: &Release) -> Output {
        self.script("install", release)
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(out.status.success(), "install failed:\n{}", stderr(out));
}

fn assert_fails_with(out: &Output, words: &str) {
    assert_eq!(out.status.code(), Some(1), "expected a failure:\n{out:?}");
    assert!(
        stderr(out).contains(words),
        "expected {words:?} in:\n{}",
        stderr(out)
    );
}

/// Runs the installed binary and returns its `--version` line.
fn installed_version(path: &Path) -> String {
    let out = Command::new(path).arg("--version").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn installs_the_archive_for_the_runner_and_reports_its_path() {
    let release = Release::new(&[LINUX_X64, "aarch64-unknown-linux-musl"]);
    let runner = Runner::new("Linux", "X64");
    let out = runner.install(&release);
    assert_ok(&out);
    let bin = runner.install_dir().join("bin/timattr");
    assert_eq!(installed_version(&bin), format!("timattr {VERSION}"));
    let expected = format!("path={}", bin.display());
    assert!(runner.file("github_output").lines().any(|l| l == expected));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&expected));
    let path_dir = runner.install_dir().join("bin").display().to_string();
    assert_eq!(runner.file("github_path").trim(), path_dir);
    // The verified archive stays beside the binary: the cache keeps it, to check it next time.
    let kept = runner
        .install_dir()
        .join(format!("timattr-{VERSION}-{LINUX_X64}.tar.gz"));
    assert_eq!(sha256_hex(&kept), sha256_hex(&release.archive(LINUX_X64)));
}

#[test]
fn a_wrong_checksum_fails_and_installs_nothing() {
    let release = Release::new(&[LINUX_X64]);
    // The archive on the server is not the one SHA256SUMS describes.
    let archive = release.archive(LINUX_X64);
    let mut bytes = std::fs::read(&archive).unwrap();
    bytes.extend_from_slice(b"tampered");
    std::fs::write(&archive, bytes).unwrap();
    let runner = Runner::new("Linux", "X64");
    let out = runner.install(&release);
    assert_fails_with(&out, "checksum mismatch");
    assert!(!runner.install_dir().join("bin/timattr").exists());
    let left: Vec<_> = std::fs::read_dir(runner.install_dir()).unwrap().collect();
    assert!(
        left.is_empty(),
        "the bad download was left behind: {left:?}"
    );
    assert!(!runner.file("github_output").contains("path="));
    assert!(runner.file("github_path").is_empty());
}

#[test]
fn a_pinned_sha256_must_match_the_release() {
    let release = Release::new(&[LINUX_X64]);
    let good = sha256_hex(&release.archive(LINUX_X64));
    let wrong = "0".repeat(64);
    let runner = Runner::new("Linux", "X64").env("TIMATTR_INSTALL_SHA256", &wrong);
    assert_fails_with(&runner.install(&release), "pinned sha256");
    assert!(!runner.install_dir().join("bin/timattr").exists());
    let runner = Runner::new("Linux", "X64").env("TIMATTR_INSTALL_SHA256", good.to_uppercase());
    assert_ok(&runner.install(&release));
    let runner = Runner::new("Linux", "X64").env("TIMATTR_INSTALL_SHA256", "abc");
    assert_fails_with(&runner.install(&release), "64 hex digits");
}

/// A fake gh that records its arguments and GH_TOKEN, and exits with `code`.
fn fake_gh(dir: &Path, code: i32) -> PathBuf {
    let gh = dir.join("fake-gh");
    let log = dir.join("gh-args");
    std::fs::write(
        &gh,
        format!(
            "#!/bin/sh
printf '%s\n' \"$@\" \"token=$GH_TOKEN\" > '{}'
exit {code}
",
            log.display()
        ),
    )
    .unwrap();
    make_executable(&gh);
    gh
}

#[test]
fn the_build_provenance_is_verified_with_gh_where_it_is_installed() {
    let release = Release::new(&[LINUX_X64]);
    let runner = Runner::new("Linux", "X64");
    let gh = fake_gh(runner.tmp.path(), 0);
    let runner = runner
        .env("TIMATTR_INSTALL_GH", &gh)
        .env("GH_TOKEN", "t0ken");
    let out = runner.install(&release);
    assert_ok(&out);
    let archive = runner
        .install_dir()
        .join(format!("timattr-{VERSION}-{LINUX_X64}.tar.gz"));
    let args: Vec<String> = runner.file("gh-args").lines().map(str::to_owned).collect();
    assert_eq!(
        args,
        [
            "attestation",
            "verify",
            &archive.display().to_string(),
            "--repo",
            "example-org/timattr",
            "--source-ref",
            &format!("refs/tags/v{VERSION}"),
            "token=t0ken",
        ]
    );
    assert!(
        stderr(&out).contains(
            "build provenance of timattr-0.1.0-x86_64-unknown-linux-musl.tar.gz is verified"
        ),
        "{}",
        stderr(&out)
    );
    // The cached archive is checked again on the next run.
    std::fs::remove_file(runner.tmp.path().join("gh-args")).unwrap();
    assert_ok(&runner.install(&release));
    assert!(runner.file("gh-args").starts_with("attestation\nverify\n"));
}

#[test]
fn an_archive_whose_attestation_fails_is_not_installed() {
    let release = Release::new(&[LINUX_X64]);
    let runner = Runner::new("Linux", "X64");
    let gh = fake_gh(runner.tmp.path(), 1);
    let runner = runner.env("TIMATTR_INSTALL_GH", &gh);
    let out = runner.install(&release);
    assert_fails_with(
        &out,
        "does not verify (example-org/timattr, tag v0.1.0); nothing installed",
    );
    assert!(!runner.install_dir().join("bin/timattr").exists());
    let left: Vec<_> = std::fs::read_dir(runner.install_dir()).unwrap().collect();
    assert!(
        left.is_empty(),
        "the unattested archive stays cached: {left:?}"
    );
    assert!(!runner.file("github_output").contains("path="));
}

#[test]
fn without_gh_the_install_says_the_provenance_is_unverified() {
    let release = Release::new(&[LINUX_X64]);
    let runner = Runner::new("Linux", "X64");
    let out = runner.install(&release);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("gh is not installed: the build provenance of timattr-0.1.0-x86_64-unknown-linux-musl.tar.gz is not verified, only its SHA-256"),
        "{}",
        stderr(&out)
    );
    let required = Runner::new("Linux", "X64").env("TIMATTR_INSTALL_ATTESTATION", "required");
    assert_fails_with(&required.install(&release), "attestation check is required");
    assert!(!required.install_dir().join("bin/timattr").exists());
    // Off: gh is not asked, even where it would fail.
    let off = Runner::new("Linux", "X64");
    let gh = fake_gh(off.tmp.path(), 1);
    let off = off
        .env("TIMATTR_INSTALL_GH", &gh)
        .env("TIMATTR_INSTALL_ATTESTATION", "off");
    let out = off.install(&release);
    assert_ok(&out);
    assert!(stderr(&out).contains("attestation check off"));
    assert!(off.file("gh-args").is_empty());
    let bad = Runner::new("Linux", "X64").env("TIMATTR_INSTALL_ATTESTATION", "yes");
    assert_fails_with(&bad.install(&release), "must be auto, required or off");
}

/// A fake cargo that records its arguments and installs a fake binary under `--root`.
fn fake_cargo(dir: &Path, reports: &str) -> PathBuf {
    let cargo = dir.join("fake-cargo");
    let log = dir.join("cargo-args");
    std::fs::write(
        &cargo,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\nwhile [ \"$1\" != --root ]; do shift; done\n\
             mkdir -p \"$2/bin\"\nprintf '#!/bin/sh\\necho \"timattr {reports}\"\\n' > \"$2/bin/timattr\"\n\
             chmod 755 \"$2/bin/timattr\"\n",
            log.display()
        ),
    )
    .unwrap();
    make_executable(&cargo);
    cargo
}

#[test]
fn a_runner_without_an_archive_builds_that_exact_tag_with_cargo() {
    let release = Release::new(&[LINUX_X64]);
    let runner = Runner::new("Linux", "ARM64");
    let cargo = fake_cargo(runner.tmp.path(), VERSION);
    let runner = runner.env("TIMATTR_INSTALL_CARGO", &cargo);
    let out = runner.install(&release);
    assert_ok(&out);
    assert!(stderr(&out).contains("cargo install --locked"));
    let dir = runner.install_dir().display().to_string();
    let args: Vec<String> = runner
        .file("cargo-args")
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        args,
        [
            "install",
            "--locked",
            "--root",
            dir.as_str(),
            "--git",
            "https://github.com/example-org/timattr",
            "--tag",
            "v0.1.0",
            "timattr"
        ]
    );
    let bin = runner.install_dir().join("bin/timattr");
    assert!(runner
        .file("github_output")
        .contains(&format!("path={}", bin.display())));
    // An OS the releases never cover takes the same path.
    let runner = Runner::new("FreeBSD", "X64");
    let cargo = fake_cargo(runner.tmp.path(), VERSION);
    assert_ok(
        &runner
            .env("TIMATTR_INSTALL_CARGO", &cargo)
            .install(&release),
    );
}

#[test]
fn the_fallback_fails_without_cargo_or_with_a_pinned_sha256() {
    let release = Release::new(&[LINUX_X64]);
    let runner = Runner::new("Linux", "ARM64").env("TIMATTR_INSTALL_CARGO", "/nonexistent/cargo");
    assert_fails_with(&runner.install(&release), "no cargo");
    // A pinned checksum promises a prebuilt archive: building from source instead would not
    // be what was pinned.
    let runner = Runner::new("Linux", "ARM64").env("TIMATTR_INSTALL_SHA256", "a".repeat(64));
    assert_fails_with(&runner.install(&release), "no archive for this runner");
    // A build that produces another version is refused.
    let runner = Runner::new("Linux", "ARM64");
    let cargo = fake_cargo(runner.tmp.path(), "9.9.9");
    let runner = runner.env("TIMATTR_INSTALL_CARGO", &cargo);
    assert_fails_with(&runner.install(&release), "expected 'timattr 0.1.0'");
}

#[test]
fn a_release_without_checksums_or_with_a_bad_archive_fails() {
    let release = Release::new(&[LINUX_X64]);
    std::fs::remove_file(release.file("SHA256SUMS")).unwrap();
    let runner = Runner::new("Linux", "X64");
    assert_fails_with(&runner.install(&release), "cannot fetch SHA256SUMS");
    // A listed archive that is missing on the server fails; it does not fall back to cargo.
    let release = Release::new(&[LINUX_X64]);
    std::fs::remove_file(release.archive(LINUX_X64)).unwrap();
    assert_fails_with(&runner.install(&release), "cannot download");
    // An archive whose binary reports another version is refused.
    let release = Release::new(&[LINUX_X64]);
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("timattr-{VERSION}-{LINUX_X64}");
    std::fs::create_dir_all(tmp.path().join(&name)).unwrap();
    fake_binary(&tmp.path().join(&name).join("timattr"), "0.0.9");
    let archive = release.archive(LINUX_X64);
    run(Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(tmp.path())
        .arg(&name));
    let sums = format!("{}  {name}.tar.gz\n", sha256_hex(&archive));
    std::fs::write(release.file("SHA256SUMS"), sums).unwrap();
    assert_fails_with(&runner.install(&release), "reports 'timattr 0.0.9'");
}

/// The cache is shared by every run on a branch: what it holds is checked on every run, and the
/// binary is always unpacked again from an archive whose SHA-256 matched.
#[test]
fn the_cached_archive_is_verified_on_every_run() {
    let release = Release::new(&[LINUX_X64]);
    let runner = Runner::new("Linux", "X64");
    assert_ok(&runner.install(&release));
    let bin = runner.install_dir().join("bin/timattr");
    let good_binary = std::fs::read(&bin).unwrap();
    let cached = runner
        .install_dir()
        .join(format!("timattr-{VERSION}-{LINUX_X64}.tar.gz"));
    // Restored from the cache: not downloaded again (it is gone from the server), but checked.
    let archive = std::fs::read(release.archive(LINUX_X64)).unwrap();
    std::fs::remove_file(release.archive(LINUX_X64)).unwrap();
    // A poisoned cache entry: another program in place of the binary, claiming the version.
    std::fs::write(
        &bin,
        "#!/bin/sh\necho \"timattr 0.1.0\"\n# not the release\n",
    )
    .unwrap();
    let out = runner.install(&release);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("using the cached"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        good_binary,
        "not unpacked again"
    );
    // A tampered cached archive is not used: it is downloaded again and must match.
    std::fs::write(release.archive(LINUX_X64), &archive).unwrap();
    std::fs::write(&cached, b"tampered").unwrap();
    let out = runner.install(&release);
    assert_ok(&out);
    assert!(stderr(&out).contains("downloading"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&bin).unwrap(), good_binary);
    // With the archive's sha256 pinned, a cached archive needs no network at all.
    let gone = Release {
        _tmp: tempfile::tempdir().unwrap(),
        base: PathBuf::from("/nonexistent"),
    };
    let pinned = runner.env("TIMATTR_INSTALL_SHA256", sha256_hex(&cached));
    let out = pinned.install(&gone);
    assert_ok(&out);
    assert!(stderr(&out).contains("using the cached"));
    // Without a pin, SHA256SUMS is fetched every time: no release, no install.
    let runner = Runner::new("Linux", "X64");
    assert_ok(&runner.install(&release));
    assert_fails_with(&runner.install(&gone), "cannot fetch SHA256SUMS");
}

#[test]
fn windows_gets_the_zip_archive() {
    for program in ["zip", "unzip"] {
        if Command::new(program).arg("-v").output().is_err() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{program} is missing"
            );
            println!("skipped: {program} is not installed");
            return;
        }
    }
    let release = Release::new(&[LINUX_X64, WINDOWS_X64]);
    let runner = Runner::new("Windows", "X64");
    assert_ok(&runner.install(&release));
    let bin = runner.install_dir().join("bin/timattr.exe");
    assert_eq!(installed_version(&bin), format!("timattr {VERSION}"));
    // Windows on ARM has no archive: cargo builds it.
    let runner = Runner::new("Windows", "ARM64");
    let cargo = fake_cargo(runner.tmp.path(), VERSION);
    let out = runner
        .env("TIMATTR_INSTALL_CARGO", &cargo)
        .install(&release);
    assert!(stderr(&out).contains("cargo install --locked"), "{out:?}");
}

#[test]
fn the_version_is_exact_and_may_come_from_the_project_directory() {
    let release = Release::new(&[LINUX_X64]);
    let runner = Runner::new("Linux", "X64").env("TIMATTR_INSTALL_VERSION", "latest");
    assert_fails_with(&runner.install(&release), "not an exact version");
    let runner = Runner::new("Linux", "X64").env("TIMATTR_INSTALL_VERSION", "0.1");
    assert_fails_with(&runner.install(&release), "not an exact version");
    let runner = Runner::new("Linux", "X64").env("TIMATTR_INSTALL_VERSION", "");
    assert_fails_with(&runner.install(&release), ".timattr-version");
    let project = runner.tmp.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join(".timattr-version"), "v0.1.0\n").unwrap();
    let runner = runner.env("TIMATTR_INSTALL_WORKDIR", &project);
    let out = runner.script("resolve", &release);
    assert_ok(&out);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("version=0.1.0\n"), "{said}");
    assert!(said.contains(&format!("target={LINUX_X64}\n")), "{said}");
    assert_ok(&runner.install(&release));
}

#[test]
fn the_release_repository_is_the_actions_own() {
    let release = Release::new(&[LINUX_X64]);
    let runner = Runner::new("Linux", "ARM64")
        .env("TIMATTR_INSTALL_REPOSITORY", "")
        .env("GITHUB_REPOSITORY", "someone/else")
        .env(
            "GITHUB_ACTION_PATH",
            "/home/runner/work/_actions/acme/timattr/v0.1.0",
        );
    let cargo = fake_cargo(runner.tmp.path(), VERSION);
    let runner = runner.env("TIMATTR_INSTALL_CARGO", &cargo);
    assert_ok(&runner.install(&release));
    assert!(runner
        .file("cargo-args")
        .contains("https://github.com/acme/timattr\n"));
    // On GitHub Enterprise Server the releases and the source are on that server.
    let runner = Runner::new("Linux", "ARM64").env("GITHUB_SERVER_URL", "https://ghe.example.com");
    let cargo = fake_cargo(runner.tmp.path(), VERSION);
    let runner = runner.env("TIMATTR_INSTALL_CARGO", &cargo);
    assert_ok(&runner.install(&release));
    assert!(runner
        .file("cargo-args")
        .contains("https://ghe.example.com/example-org/timattr\n"));
    // An https base is required for anything remote.
    let runner = Runner::new("Linux", "X64").env("TIMATTR_INSTALL_BASE", "http://example.com");
    let out = runner.install(&release);
    assert_fails_with(&out, "must be an https URL");
}

/// The value of a `${{ inputs.X }}` / `${{ steps.S.outputs.O }}` expression, or the literal.
fn resolve(
    value: &str,
    inputs: &[(&str, String)],
    outputs: &std::collections::HashMap<String, String>,
) -> String {
    let Some(expr) = value
        .trim()
        .strip_prefix("${{")
        .and_then(|v| v.strip_suffix("}}"))
    else {
        assert!(!value.contains("${{"), "unexpected expression: {value}");
        return value.to_owned();
    };
    let expr = expr.trim();
    if let Some(name) = expr.strip_prefix("inputs.") {
        let found = inputs.iter().find(|(k, _)| *k == name);
        return found.unwrap_or_else(|| panic!("no input {name}")).1.clone();
    }
    let key = expr.strip_prefix("steps.").expect("inputs.* or steps.*");
    outputs
        .get(key)
        .unwrap_or_else(|| panic!("no step output {key}"))
        .clone()
}

/// action.yml as the runner would run it (the cache step aside): inputs reach the script under
/// the names it reads, the resolve step's outputs feed the install step, and the action's
/// `path` output names the installed binary.
#[test]
fn the_action_wires_its_inputs_outputs_and_steps() {
    let action: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join("action.yml")).unwrap()).unwrap();
    let release = Release::new(&[LINUX_X64]);
    let runner = Runner::new("Linux", "X64");
    fake_gh(runner.tmp.path(), 0);
    let project = runner.tmp.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join(".timattr-version"), format!("{VERSION}\n")).unwrap();
    let declared: Vec<&str> = action["inputs"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    let inputs: Vec<(&str, String)> = vec![
        ("version", String::new()),
        ("working-directory", project.display().to_string()),
        ("sha256", String::new()),
        ("repository", "acme/timattr".into()),
        ("base-url", release.base.display().to_string()),
        ("cache", "true".into()),
        ("attestation", "auto".into()),
        ("github-token", "t0ken".into()),
    ];
    let mut names: Vec<&str> = inputs.iter().map(|(k, _)| *k).collect();
    names.sort();
    let mut sorted = declared.clone();
    sorted.sort();
    assert_eq!(names, sorted, "the inputs this test feeds are the action's");
    let mut outputs = std::collections::HashMap::new();
    for step in action["runs"]["steps"].as_sequence().unwrap() {
        if let Some(uses) = step["uses"].as_str() {
            assert!(uses.starts_with("actions/cache@"), "{uses}");
            let key = step["with"]["key"].as_str().unwrap();
            for part in ["steps.resolve.outputs.version", "runner.os", "runner.arch"] {
                assert!(key.contains(part), "cache key {key} lacks {part}");
            }
            continue;
        }
        run_action_step(step, &runner, &inputs, &mut outputs);
    }
    let path = resolve(
        action["outputs"]["path"]["value"].as_str().unwrap(),
        &inputs,
        &outputs,
    );
    let expected = runner
        .tmp
        .path()
        .join(format!("toolcache/timattr/{VERSION}/linux-x64/bin/timattr"));
    assert_eq!(PathBuf::from(&path), expected);
    assert_eq!(installed_version(&expected), format!("timattr {VERSION}"));
    let version = action["outputs"]["version"]["value"].as_str().unwrap();
    assert_eq!(resolve(version, &inputs, &outputs), VERSION);
    // The attestation was checked with the github-token input as gh's token.
    let gh = runner.file("gh-args");
    assert!(
        gh.starts_with("attestation\nverify\n") && gh.contains("\ntoken=t0ken\n"),
        "{gh}"
    );
}

/// Runs one `run:` step of action.yml as the runner would, recording its outputs.
fn run_action_step(
    step: &serde_yaml::Value,
    runner: &Runner,
    inputs: &[(&str, String)],
    outputs: &mut std::collections::HashMap<String, String>,
) {
    let id = step["id"].as_str().unwrap();
    let output_file = runner.tmp.path().join(format!("output-{id}"));
    let mut cmd = Command::new("bash");
    cmd.args(["--noprofile", "--norc", "-e", "-c"])
        .arg(step["run"].as_str().unwrap())
        .current_dir(runner.tmp.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", runner.tmp.path())
        .env("RUNNER_OS", "Linux")
        .env("RUNNER_ARCH", "X64")
        .env("RUNNER_TOOL_CACHE", runner.tmp.path().join("toolcache"))
        .env("GITHUB_ACTION_PATH", root())
        .env("TIMATTR_INSTALL_GH", runner.tmp.path().join("fake-gh"))
        .env("GITHUB_OUTPUT", &output_file)
        .env("GITHUB_PATH", runner.tmp.path().join("github_path"));
    for (k, v) in step["env"].as_mapping().unwrap() {
        cmd.env(
            k.as_str().unwrap(),
            resolve(v.as_str().unwrap(), inputs, outputs),
        );
    }
    let out = cmd.output().unwrap();
    assert_ok(&out);
    for line in std::fs::read_to_string(&output_file).unwrap().lines() {
        let (k, v) = line.split_once('=').unwrap();
        outputs.insert(format!("{id}.outputs.{k}"), v.to_owned());
    }
}
