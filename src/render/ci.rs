//! File errors in the formats CI systems show on the lines of a change (DESIGN.md §2): GitHub
//! Actions workflow commands (`::error file=…,line=…,col=…::…`) and the GitLab Code Quality
//! report (`validate --format codeclimate`).

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::diag::{Diagnostic, Diagnostics};

/// Whether this run is a GitHub Actions step (`GITHUB_ACTIONS=true`).
pub fn in_github_actions() -> bool {
    std::env::var_os("GITHUB_ACTIONS").is_some_and(|v| v == "true")
}

/// One `::error …` workflow command per diagnostic, each ending with a newline.
pub fn github_annotations(diags: &Diagnostics) -> String {
    let mut out = String::new();
    for d in &diags.0 {
        let mut props = vec![format!("file={}", property(&repo_path(&d.file)))];
        if d.line > 0 {
            props.push(format!("line={}", d.line));
        }
        if d.column > 0 {
            props.push(format!("col={}", d.column));
        }
        props.push(format!("title={}", property("timattr")));
        let mut message = d.message.clone();
        if let Some(help) = &d.help {
            message.push_str("\nhelp: ");
            message.push_str(help);
        }
        // Quoted file content must not move the cursor in a log either (DESIGN.md §8).
        let message = crate::escape::escape_text(&message);
        out.push_str(&format!(
            "::error {}::{}\n",
            props.join(","),
            data(&message)
        ));
    }
    out
}

/// A workflow command's message, escaped as the runner expects (`%`, CR, LF).
fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: as [`data`], plus `:` and `,`, which end a property.
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The path as the repository knows it: relative to the working directory (the checkout in
/// CI), without `./` steps, with `/` separators.
fn repo_path(file: &Path) -> String {
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| file.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| file.to_path_buf());
    crate::files::normal(&relative)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// One issue of a GitLab Code Quality report.
#[derive(Debug, Serialize)]
struct Issue {
    description: String,
    check_name: &'static str,
    fingerprint: String,
    severity: &'static str,
    location: Location,
}

#[derive(Debug, Serialize)]
struct Location {
    path: String,
    lines: Lines,
}

#[derive(Debug, Serialize)]
struct Lines {
    begin: usize,
}

/// The GitLab Code Quality report of `diags`: a JSON array, `[]` when there are none.
pub fn codeclimate(diags: &Diagnostics) -> String {
    let issues: Vec<Issue> = diags.0.iter().map(issue).collect();
    let mut json = serde_json::to_string(&issues).expect("plain data serializes");
    json.push('\n');
    json
}

fn issue(d: &Diagnostic) -> Issue {
    let path = repo_path(&d.file);
    let description = match &d.help {
        Some(help) => format!("{} (help: {help})", d.message),
        None => d.message.clone(),
    };
    // Stable across runs for the same problem at the same place, so GitLab can tell new
    // issues from fixed ones.
    let fingerprint = hex(&Sha256::digest(
        format!("{path}\0{}\0{}\0{}", d.line, d.column, d.message).as_bytes(),
    ));
    Issue {
        description,
        check_name: "timattr",
        fingerprint,
        severity: "major",
        location: Location {
            path,
            lines: Lines {
                begin: d.line.max(1),
            },
        },
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diags() -> Diagnostics {
        Diagnostics(vec![
            Diagnostic::new(Path::new("./users/a,b.yaml"), 3, 5, "100% wrong:\nyes")
                .with_help("quote it"),
            Diagnostic::new(Path::new("timattr.yaml"), 0, 0, "whole file"),
        ])
    }

    #[test]
    fn github_commands_escape_data_and_properties() {
        assert_eq!(
            github_annotations(&diags()),
            "::error file=users/a%2Cb.yaml,line=3,col=5,title=timattr::100%25 wrong:%0Ayes%0Ahelp: quote it\n\
             ::error file=timattr.yaml,title=timattr::whole file\n"
        );
    }

    #[test]
    fn the_runners_escapes() {
        assert_eq!(data("a%b\r\nc:d,e"), "a%25b%0D%0Ac:d,e");
        assert_eq!(property("a%b\r\nc:d,e"), "a%25b%0D%0Ac%3Ad%2Ce");
    }

    #[test]
    fn the_code_quality_report_has_gitlabs_fields() {
        let v: serde_json::Value = serde_json::from_str(&codeclimate(&diags())).unwrap();
        let first = &v[0];
        assert_eq!(first["check_name"], "timattr");
        assert_eq!(first["severity"], "major");
        assert_eq!(first["location"]["path"], "users/a,b.yaml");
        assert_eq!(first["location"]["lines"]["begin"], 3);
        assert_eq!(first["description"], "100% wrong:\nyes (help: quote it)");
        assert_eq!(first["fingerprint"].as_str().unwrap().len(), 64);
        assert_eq!(v[1]["location"]["lines"]["begin"], 1);
        assert_ne!(v[0]["fingerprint"], v[1]["fingerprint"]);
        assert_eq!(codeclimate(&Diagnostics::default()), "[]\n");
    }
}
