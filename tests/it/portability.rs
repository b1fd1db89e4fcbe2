//! Every platform the release names builds from one source: no use of a Unix-only API
//! (`std::os::unix`, `libc`, `tokio::signal::unix`, `rustix`) stands outside an item, block or statement
//! under `#[cfg(unix)]` (or `#[cfg(all(unix, ...))]`, or a file under `#![cfg(unix)]`), in
//! `src/`, `tests/` and `examples/` alike: the Windows CI job compiles all three.
//!
//! The scan reads Rust's tokens as far as braces need: comments and string, char and raw string
//! literals are skipped, so a `{` in a format string does not open a block. Attributes seen since
//! the last `;`, `{`, `}` (or `,` outside parentheses and generics) apply to what follows; a `{` opened under
//! `cfg(unix)` covers everything up to its `}`. It errs on the strict side: a use it cannot place
//! is reported, never passed.

use std::path::{Path, PathBuf};

const UNIX_ONLY: [&str; 5] = [
    "std::os::unix",
    "libc::",
    "extern crate libc",
    "tokio::signal::unix",
    // A Unix-only dependency (`[target.'cfg(unix)'.dependencies]` in Cargo.toml).
    "rustix::",
];

/// Whether the text of an attribute (between `#[` and `]`) restricts to Unix.
fn is_unix_cfg(attr: &str) -> bool {
    let a: String = attr.chars().filter(|c| !c.is_whitespace()).collect();
    a == "cfg(unix)" || a.starts_with("cfg(all(unix,") || a == "cfg(target_family=\"unix\")"
}

/// The lines (1-based) of `text` that use a Unix-only API outside `cfg(unix)` code.
fn uncovered(text: &str) -> Vec<usize> {
    let code = blank_comments_and_literals(text);
    let mut stack: Vec<bool> = Vec::new(); // per open `{`: under cfg(unix)?
    let mut pending = false; // a cfg(unix) attribute waits for its item
    let mut file_wide = false;
    let mut parens = 0usize;
    let mut angles = 0usize; // `<` open since the last `{`, `}` or `;`
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &code[i..];
        if rest.starts_with("#![") || rest.starts_with("#[") {
            let inner = rest.starts_with("#![");
            let open = if inner { 3 } else { 2 };
            let end = matching(rest, open - 1).unwrap_or(rest.len() - 1);
            if is_unix_cfg(&rest[open..end]) {
                if inner && stack.is_empty() {
                    file_wide = true;
                } else {
                    pending = true;
                }
            }
            i += end + 1;
            continue;
        }
        if let Some(p) = UNIX_ONLY.iter().find(|p| rest.starts_with(*p)) {
            if !(file_wide || pending || stack.iter().any(|c| *c)) {
                out.push(code[..i].matches('\n').count() + 1);
            }
            i += p.len();
            continue;
        }
        match bytes[i] {
            b'{' => {
                stack.push(pending);
                (pending, angles) = (false, 0);
            }
            b'}' => {
                stack.pop();
                (pending, angles) = (false, 0);
            }
            b';' => (pending, angles) = (false, 0),
            b',' if parens == 0 && angles == 0 => pending = false,
            b'(' | b'[' => parens += 1,
            b')' | b']' => parens = parens.saturating_sub(1),
            // Generics (`-> Result<(), E>`), not `->` or `=>`.
            b'<' => angles += 1,
            b'>' if i > 0 && !matches!(bytes[i - 1], b'-' | b'=') => {
                angles = angles.saturating_sub(1);
            }
            _ => {}
        }
        i += 1;
    }
    out.dedup();
    out
}

/// The index of the bracket closing the one at `open` in `s`.
fn matching(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices().skip(open) {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `text` with comments and the insides of string and char literals replaced by spaces
/// (newlines kept, so line numbers hold).
fn blank_comments_and_literals(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &[char]| {
        out.extend(s.iter().map(|&ch| if ch == '\n' { '\n' } else { ' ' }));
    };
    while i < c.len() {
        let end = if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            (i..c.len()).find(|&j| c[j] == '\n').unwrap_or(c.len())
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            block_comment_end(&c, i)
        } else if c[i] == '"' {
            string_end(&c, i + 1)
        } else if let Some(end) = raw_string_end(&c, i) {
            end
        } else if c[i] == '\'' {
            char_end(&c, i).unwrap_or(i + 1)
        } else {
            // ASCII only, so that byte offsets are char offsets in the scan.
            out.push(if c[i].is_ascii() { c[i] } else { ' ' });
            i += 1;
            continue;
        };
        blank(&mut out, &c[i..end]);
        i = end;
    }
    out
}

fn block_comment_end(c: &[char], start: usize) -> usize {
    let (mut depth, mut j) = (0usize, start);
    while j + 1 < c.len() {
        if c[j] == '/' && c[j + 1] == '*' {
            depth += 1;
            j += 2;
        } else if c[j] == '*' && c[j + 1] == '/' {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    c.len()
}

/// The end (exclusive) of a string whose text starts at `j`, escapes honoured.
fn string_end(c: &[char], mut j: usize) -> usize {
    while j < c.len() {
        match c[j] {
            '\\' => j += 2,
            '"' => return j + 1,
            _ => j += 1,
        }
    }
    c.len()
}

/// `r"..."`, `r#"..."#`, `br"..."` starting at `i` (not inside an identifier).
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    if i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_') {
        return None;
    }
    let mut j = i + usize::from(c[i] == 'b');
    if c.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = c[j..].iter().take_while(|&&ch| ch == '#').count();
    j += hashes;
    if c.get(j) != Some(&'"') {
        return None;
    }
    let close: Vec<char> = std::iter::once('"')
        .chain(std::iter::repeat_n('#', hashes))
        .collect();
    (j + 1..c.len())
        .find(|&k| c[k..].starts_with(&close))
        .map(|k| k + close.len())
        .or(Some(c.len()))
}

/// A char literal at `i` (`'x'`, `'\n'`, `'\u{7f}'`); `None` for a lifetime or label.
fn char_end(c: &[char], i: usize) -> Option<usize> {
    if c.get(i + 1) == Some(&'\\') {
        return (i + 2..c.len()).find(|&k| c[k] == '\'').map(|k| k + 1);
    }
    (c.get(i + 2) == Some(&'\'')).then_some(i + 3)
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn unix_only_apis_stand_only_in_cfg_unix_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "examples"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "{} files", files.len());
    let mut bad = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for line in uncovered(&text) {
            let shown = file.strip_prefix(root).unwrap().display();
            bad.push(format!(
                "{shown}:{line}: {}",
                text.lines().nth(line - 1).unwrap().trim()
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "Unix-only code outside #[cfg(unix)] (give it a cfg(unix) item and a fallback):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_scan_places_uses_by_their_cfg() {
    // Covered: on the fn, on a block, on a statement, on a module, file-wide.
    let covered = [
        "#[cfg(unix)]\nfn f() {\n    use std::os::unix::fs::FileExt;\n}\n",
        "fn f() {\n    #[cfg(unix)]\n    {\n        use std::os::unix::fs::FileExt;\n    }\n}\n",
        "fn f() {\n    #[cfg(unix)]\n    use std::os::unix::fs::FileExt;\n    g();\n}\n",
        "#[cfg(all(unix, test))]\nmod t {\n    fn f() { libc::getpid(); }\n}\n",
        "//! Doc.\n#![cfg(unix)]\nuse std::os::unix::fs::FileExt;\n",
        "#[cfg(unix)]\nfn f(a: u8, b: u8) -> String {\n    format!(\"{{\");\n    tokio::signal::unix::ctrl_c();\n    String::new()\n}\n",
        "#[cfg(unix)]\nfn f(p: &Path) -> Result<(), String> {\n    use rustix::fs::CWD;\n    Ok(())\n}\n",
    ];
    for text in covered {
        assert!(uncovered(text).is_empty(), "{text}");
    }
    // Uncovered: no cfg, the wrong cfg, a cfg that ended, a brace inside a string or comment,
    // the cfg on the previous match arm.
    let bare = [
        ("fn f() {\n    use std::os::unix::fs::FileExt;\n}\n", 2),
        (
            "#[cfg(not(unix))]\nfn f() {\n    use std::os::unix::fs::FileExt;\n}\n",
            3,
        ),
        (
            "#[cfg(any(unix, windows))]\nfn f() { libc::getpid(); }\n",
            2,
        ),
        (
            "#[cfg(unix)]\nfn f() {}\nfn g() {\n    std::os::unix::fs::symlink(a, b);\n}\n",
            4,
        ),
        (
            "#[cfg(unix)]\nfn f() {\n    let s = \"}\";\n}\nuse std::os::unix::fs::FileExt;\n",
            5,
        ),
        (
            "#[cfg(unix)]\nfn f() {\n    // }\n}\nuse std::os::unix::fs::FileExt;\n",
            5,
        ),
        (
            "#[cfg(unix)]\nfn f() {\n    let s = r#\"}\"#;\n}\nuse std::os::unix::fs::FileExt;\n",
            5,
        ),
        (
            "match h {\n    #[cfg(unix)]\n    A => 1,\n    B => libc::getpid(),\n}\n",
            4,
        ),
        (
            "fn f() -> char { '}' }\nuse std::os::unix::fs::FileExt;\n",
            2,
        ),
        ("/* #[cfg(unix)] */\nuse std::os::unix::fs::FileExt;\n", 2),
    ];
    for (text, line) in bare {
        assert_eq!(uncovered(text), [line], "{text}");
    }
}

/// The Unix-only crates are dependencies on Unix alone, so Windows does not build them.
#[test]
fn unix_only_crates_are_unix_only_dependencies() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let mut section = String::new();
    for line in manifest.lines() {
        if line.starts_with('[') {
            section = line.trim().to_owned();
        } else if ["rustix", "libc", "nix"]
            .iter()
            .any(|c| line.trim_start().starts_with(&format!("{c} ")))
        {
            assert_eq!(
                section, "[target.'cfg(unix)'.dependencies]",
                "Cargo.toml: {line} outside the cfg(unix) dependencies"
            );
        }
    }
}
