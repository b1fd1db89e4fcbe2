//! Output and input files that must not be half-written or unbounded: atomic replacement of a
//! file (temp file in the same directory, fsync, rename) and gzip reading with a cap on the
//! inflated size (a decompression bomb is an error, not an exhausted memory).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

/// One mebibyte, the unit of the caps' error messages.
const MB: u64 = 1024 * 1024;

/// Replaces the file at `path` with what `write` writes, all or nothing.
///
/// The content goes to a temp file in the same directory (so the rename cannot cross file
/// systems), which is flushed, fsynced and renamed over `path`; then the directory is fsynced so
/// the rename itself survives a crash. Any failure, from `write` or from the disk, leaves the
/// previous file (if any) untouched and removes the temp file. A symlink at `path` is followed:
/// its target is replaced, the link stays. An existing file's permissions are kept. Something
/// that is not a regular file (`/dev/stdout`, a FIFO, a terminal) is written to directly: it
/// cannot be replaced, and renaming over a device node would remove the device.
pub fn write_atomically<F>(path: &Path, write: F) -> io::Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let target = resolve_target(path)?;
    if std::fs::metadata(&target).is_ok_and(|m| !m.is_file()) {
        let mut out = BufWriter::new(OpenOptions::new().write(true).open(&target)?);
        write(&mut out)?;
        return out.flush();
    }
    let dir = parent_dir(&target);
    let (temp_path, file) = create_temp(&dir, &target)?;
    let result =
        fill_and_sync(file, &target, write).and_then(|()| std::fs::rename(&temp_path, &target));
    if let Err(e) = result {
        // Best effort: the temp file may already be gone (the rename half of a failure).
        let _ = std::fs::remove_file(&temp_path);
        return Err(e);
    }
    sync_dir(&dir);
    Ok(())
}

/// The file to replace: `path` itself, or the target of a symlink at `path`.
fn resolve_target(path: &Path) -> io::Result<PathBuf> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(path) {
            Ok(real) => Ok(real),
            // A dangling link: write where it points, relative to the link's directory.
            Err(_) => Ok(parent_dir(path).join(std::fs::read_link(path)?)),
        },
        Ok(m) if m.is_dir() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is a directory", path.display()),
        )),
        _ => Ok(path.to_path_buf()),
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates a fresh temp file next to `target`, never reusing an existing name.
fn create_temp(dir: &Path, target: &Path) -> io::Result<(PathBuf, File)> {
    let stem = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let mut last_err = None;
    for _ in 0..16 {
        let tag: u64 = rand::random();
        let temp = dir.join(format!(".{stem}.{}.{tag:016x}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(f) => return Ok((temp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("cannot create a temp file")))
}

/// Writes the content into the temp file, keeps the old file's permissions, and fsyncs.
fn fill_and_sync<F>(file: File, target: &Path, write: F) -> io::Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let mut out = BufWriter::with_capacity(1 << 16, file);
    write(&mut out)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    if let Ok(meta) = std::fs::metadata(target) {
        file.set_permissions(meta.permissions())?;
    }
    file.sync_all()
}

/// Makes a rename durable. Not every platform or file system can open a directory for that;
/// the rename has happened either way, so a failure here is not the caller's failure.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A reader that fails once more than `cap` bytes have come through it, so a decompressor
/// behind it cannot inflate without bound.
#[derive(Debug)]
pub struct Capped<R> {
    inner: R,
    cap: u64,
    read: u64,
    what: String,
}

impl<R: Read> Capped<R> {
    /// Caps `inner` at `cap` bytes; `what` names the input in the error.
    pub fn new(inner: R, cap: u64, what: impl Into<String>) -> Self {
        Capped {
            inner,
            cap,
            read: 0,
            what: what.into(),
        }
    }

    fn too_big(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} inflates past {} MB", self.what, self.cap.div_ceil(MB)),
        )
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.read > self.cap {
            return Err(self.too_big());
        }
        // Ask for at most one byte past the cap: enough to tell "exactly cap" from "more".
        let room = (self.cap - self.read).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.read += n as u64;
        if self.read > self.cap {
            return Err(self.too_big());
        }
        Ok(n)
    }
}

/// A buffered reader of gzip data (one or more members) that fails with "… inflates past N MB"
/// once the inflated bytes exceed `cap_bytes`. Memory stays bounded by the buffers whatever the
/// input, so callers that stream lines never hold more than one line.
pub fn gzip_reader_capped<R: Read>(
    input: R,
    cap_bytes: u64,
    what: impl Into<String>,
) -> BufReader<Capped<flate2::read::MultiGzDecoder<BufReader<R>>>> {
    let decoder = flate2::read::MultiGzDecoder::new(BufReader::new(input));
    BufReader::with_capacity(1 << 16, Capped::new(decoder, cap_bytes, what))
}

/// Reads a whole gzip file into memory, refusing one that inflates past `cap_bytes`.
pub fn read_gzip_capped(path: &Path, cap_bytes: u64) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let mut reader = gzip_reader_capped(file, cap_bytes, path.display().to_string());
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Whether the buffered input starts with the gzip magic bytes (without consuming them).
pub fn looks_gzipped(input: &mut impl BufRead) -> io::Result<bool> {
    Ok(input.fill_buf()?.starts_with(&[0x1f, 0x8b]))
}

/// The kinds of document timattr writes and reads back, told apart so that one given in place
/// of the other is named ("this is a state export, not a saved plan") instead of failing with
/// a parser's message about a missing field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// `plan --out FILE` (gzip), or `plan --format json` (not compressed).
    Plan { gzipped: bool },
    /// `state export` (gzip JSON lines).
    Export,
}

impl DocKind {
    /// What the document is and what to do with it, for an error message.
    pub fn described(self) -> &'static str {
        match self {
            DocKind::Plan { gzipped: true } => {
                "a saved plan (from `timattr plan --out`): apply it with `timattr apply FILE` or print it with `timattr show FILE`"
            }
            DocKind::Plan { gzipped: false } => {
                "a JSON plan as `timattr plan --format json` prints it; save a plan to apply with `timattr plan --out FILE`"
            }
            DocKind::Export => {
                "a state export (from `timattr state export`): load it with `timattr state restore FILE`"
            }
        }
    }
}

/// The kind of the document in `path`, by the top-level fields of its first JSON value
/// (compressed or not); `None` when it is neither kind or cannot be read. Reads at most the
/// first value, inflating at most 64 MiB.
pub fn doc_kind(path: &Path) -> Option<DocKind> {
    let mut input = BufReader::new(File::open(path).ok()?);
    let gzipped = looks_gzipped(&mut input).ok()?;
    let first = if gzipped {
        first_json_object(gzip_reader_capped(
            input,
            64 * MB,
            path.display().to_string(),
        ))
    } else {
        first_json_object(input.take(64 * MB))
    }?;
    doc_kind_of(&first, gzipped)
}

fn first_json_object(input: impl Read) -> Option<serde_json::Map<String, serde_json::Value>> {
    serde_json::Deserializer::from_reader(input)
        .into_iter::<serde_json::Map<String, serde_json::Value>>()
        .next()?
        .ok()
}

/// A plan has its changes and summary at the top; an export's first line is a header naming
/// the lineage, the slots and the number of accounts.
fn doc_kind_of(
    first: &serde_json::Map<String, serde_json::Value>,
    gzipped: bool,
) -> Option<DocKind> {
    let has = |k: &str| first.contains_key(k);
    if has("changes") && has("summary") {
        Some(DocKind::Plan { gzipped })
    } else if has("lineage") && has("slots") && has("accounts") {
        Some(DocKind::Export)
    } else {
        None
    }
}

/// `a/./b` → `a/b`, `./a` → `a` (`..` is kept: without the file system it cannot be resolved).
pub fn normal(path: &Path) -> PathBuf {
    let out: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn writes_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        write_atomically(&path, |w| w.write_all(b"hello")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    #[cfg(unix)]
    fn replaces_an_existing_file_and_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        std::fs::write(&path, b"old content that is longer").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomically(&path, |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_failing_writer_leaves_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        std::fs::write(&path, b"previous").unwrap();
        let err = write_atomically(&path, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(std::fs::read(&path).unwrap(), b"previous");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn a_missing_directory_is_an_error_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/out.txt");
        assert!(write_atomically(&path, |w| w.write_all(b"x")).is_err());
        assert!(!dir.path().join("no").exists());
    }

    #[test]
    fn a_directory_target_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let err = write_atomically(&sub, |w| w.write_all(b"x")).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
        assert!(sub.is_dir());
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    #[cfg(unix)]
    fn a_symlink_keeps_pointing_at_the_replaced_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.txt");
        let link = dir.path().join("link.txt");
        std::fs::write(&real, b"old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomically(&link, |w| w.write_all(b"new")).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
    }

    #[test]
    fn a_device_is_written_to_not_replaced() {
        write_atomically(Path::new("/dev/null"), |w| w.write_all(b"discarded")).unwrap();
        let meta = std::fs::metadata("/dev/null").unwrap();
        assert!(!meta.is_file(), "/dev/null is still a device");
    }

    #[test]
    fn a_relative_name_without_directory_works() {
        // `Path::parent` of "name" is "", which must mean the current directory.
        assert_eq!(parent_dir(Path::new("name")), PathBuf::from("."));
        assert_eq!(parent_dir(Path::new("a/name")), PathBuf::from("a"));
    }

    #[test]
    fn gzip_within_the_cap_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gz");
        std::fs::write(&path, gzip(b"0123456789")).unwrap();
        assert_eq!(read_gzip_capped(&path, 10).unwrap(), b"0123456789");
    }

    #[test]
    fn gzip_past_the_cap_is_refused_with_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.gz");
        std::fs::write(&path, gzip(&vec![0u8; 3 * MB as usize])).unwrap();
        let err = read_gzip_capped(&path, 2 * MB).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().ends_with("inflates past 2 MB"), "{err}");
        // One byte over is already too much.
        std::fs::write(&path, gzip(&[7u8; 11])).unwrap();
        assert!(read_gzip_capped(&path, 10).is_err());
    }

    #[test]
    fn a_bomb_is_stopped_while_streaming() {
        // 64 MB of zeros compress to ~64 KB; with a 1 MB cap the reader stops long before.
        let bomb = gzip(&vec![0u8; 64 * MB as usize]);
        let mut reader = gzip_reader_capped(bomb.as_slice(), MB, "the export");
        let mut sink = [0u8; 4096];
        let mut total = 0u64;
        let err = loop {
            match reader.read(&mut sink) {
                Ok(0) => panic!("the bomb was read to the end"),
                Ok(n) => total += n as u64,
                Err(e) => break e,
            }
        };
        assert!(total <= MB, "{total}");
        assert_eq!(err.to_string(), "the export inflates past 1 MB");
    }

    #[test]
    fn concatenated_members_are_read_and_garbage_is_an_error() {
        let mut two = gzip(b"ab");
        two.extend(gzip(b"cd"));
        let mut out = String::new();
        gzip_reader_capped(two.as_slice(), 100, "x")
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "abcd");
        let mut garbled = gzip(b"some text to compress, long enough");
        let mid = garbled.len() / 2;
        garbled[mid] ^= 0xff;
        let mut sink = Vec::new();
        assert!(gzip_reader_capped(garbled.as_slice(), 100, "x")
            .read_to_end(&mut sink)
            .is_err());
    }

    #[test]
    fn a_truncated_gzip_is_an_error() {
        let full = gzip(b"some text to compress");
        let mut sink = Vec::new();
        assert!(gzip_reader_capped(&full[..full.len() - 6], 100, "x")
            .read_to_end(&mut sink)
            .is_err());
    }

    #[test]
    fn gzip_magic_is_detected_without_consuming() {
        let data = gzip(b"x");
        let mut r = BufReader::new(data.as_slice());
        assert!(looks_gzipped(&mut r).unwrap());
        assert_eq!(r.fill_buf().unwrap().len(), data.len());
        assert!(!looks_gzipped(&mut BufReader::new(&b"{\"a\":1}"[..])).unwrap());
    }

    #[test]
    fn a_plan_and_an_export_are_told_apart_by_their_top_level_fields() {
        let map = |json: &str| -> serde_json::Map<String, serde_json::Value> {
            serde_json::from_str(json).unwrap()
        };
        assert_eq!(
            doc_kind_of(
                &map(r#"{"format_version":1,"summary":{},"changes":[]}"#),
                true
            ),
            Some(DocKind::Plan { gzipped: true })
        );
        assert_eq!(
            doc_kind_of(
                &map(r#"{"format_version":1,"sdkappid":1,"lineage":"x","slots":{},"accounts":2}"#),
                true
            ),
            Some(DocKind::Export)
        );
        assert_eq!(doc_kind_of(&map(r#"{"account":"u1"}"#), true), None);
    }

    #[test]
    fn the_kind_of_a_file_is_read_from_its_first_value_compressed_or_not() {
        use flate2::write::GzEncoder;
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("e.gz");
        let mut gz = GzEncoder::new(File::create(&export).unwrap(), flate2::Compression::fast());
        gz.write_all(
            b"{\"lineage\":\"l\",\"slots\":{},\"accounts\":1}\n{\"account\":\"u\",\"attrs\":{}}\n",
        )
        .unwrap();
        gz.finish().unwrap();
        assert_eq!(doc_kind(&export), Some(DocKind::Export));
        let plan = dir.path().join("p.json");
        std::fs::write(&plan, "{\"summary\":{},\"changes\":[\n]}\n").unwrap();
        assert_eq!(doc_kind(&plan), Some(DocKind::Plan { gzipped: false }));
        let other = dir.path().join("o.yaml");
        std::fs::write(&other, "users: {}\n").unwrap();
        assert_eq!(doc_kind(&other), None);
    }
    #[test]
    fn paths_lose_their_current_directory_steps() {
        assert_eq!(normal(Path::new("././state2")), PathBuf::from("state2"));
        assert_eq!(normal(Path::new("a/./b/../c")), PathBuf::from("a/b/../c"));
        assert_eq!(normal(Path::new("./")), PathBuf::from("."));
    }
}
