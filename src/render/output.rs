//! Where output goes: stdout for data (buffered; a closed pipe is not a failure) and the
//! GitHub step summary for markdown, both through the redaction step ([`crate::redact`]); and
//! whether a stream gets colours.

use std::io::Write;

use crate::{Error, Result};

/// Whether `stream` gets colours. `--color always|never` decide; `auto` follows anstream
/// (as clap does): `NO_COLOR` set → none, else `CLICOLOR_FORCE` set → colours, else
/// `CLICOLOR=0` → none, else colours on a terminal whose `TERM` is not `dumb`.
pub fn color_on(choice: anstream::ColorChoice, stream: &impl anstream::stream::RawStream) -> bool {
    match choice {
        anstream::ColorChoice::Auto => {
            // anstream also colours a `TERM=dumb` terminal when `CI` is set; dumb means none
            // unless colours are forced.
            let env_is = |name: &str, pred: fn(&std::ffi::OsStr) -> bool| {
                std::env::var_os(name).is_some_and(|v| pred(&v))
            };
            let dumb = env_is("TERM", |v| v == "dumb");
            let forced = env_is("CLICOLOR_FORCE", |v| !v.is_empty() && v != "0");
            anstream::AutoStream::choice(stream) != anstream::ColorChoice::Never
                && (forced || !dumb)
        }
        anstream::ColorChoice::Never => false,
        anstream::ColorChoice::Always | anstream::ColorChoice::AlwaysAnsi => true,
    }
}

/// Stdout, buffered, locked and redacted.
pub type Stdout = std::io::BufWriter<crate::redact::Writer<std::io::StdoutLock<'static>>>;

/// Stdout, buffered, locked and redacted, for data.
pub fn stdout() -> Stdout {
    std::io::BufWriter::with_capacity(
        1 << 16,
        crate::redact::Writer::new(std::io::stdout().lock()),
    )
}

/// Stdout for compressed bytes (an export), which masking would corrupt: what they hold was
/// never given a secret (the store holds none).
pub fn binary_stdout() -> std::io::BufWriter<std::io::StdoutLock<'static>> {
    std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock())
}

/// Maps the outcome of writing output: a closed pipe (`| head`) is not a failure.
pub fn written(r: std::io::Result<()>) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io("cannot write output", e)),
    }
}

/// Writes to stdout with `write` and flushes.
pub fn to_stdout(write: impl FnOnce(&mut Stdout) -> std::io::Result<()>) -> Result<()> {
    let mut out = stdout();
    written(write(&mut out).and_then(|()| out.flush()))
}

/// Appends markdown to the file named by `GITHUB_STEP_SUMMARY`, when set, after a blank line
/// (a heading right after the previous section's `</details>` would render as text).
pub fn append_step_summary(markdown: &str) {
    let markdown = &*crate::redact::text(markdown);
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return;
    };
    let result = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)
        .and_then(|mut f| {
            let blank = separator(&mut f)?;
            f.write_all(blank.as_bytes())?;
            f.write_all(markdown.as_bytes())?;
            if !markdown.ends_with('\n') {
                f.write_all(b"\n")?;
            }
            Ok(())
        });
    if let Err(e) = result {
        tracing::warn!("cannot append to GITHUB_STEP_SUMMARY: {e}");
    }
}

/// What makes a blank line between the file's last section and the next one.
fn separator(f: &mut std::fs::File) -> std::io::Result<&'static str> {
    use std::io::{Read, Seek, SeekFrom};
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok("");
    }
    let mut last = [0u8; 1];
    f.seek(SeekFrom::Start(len - 1))?;
    f.read_exact(&mut last)?;
    Ok(if last[0] == b'\n' { "\n" } else { "\n\n" })
}
