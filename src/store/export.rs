//! `state export` / `state restore`: gzip-compressed JSON lines, a header line (which also
//! carries the history; exports made before it did have none) then one line per account, so a
//! backup can be read with `zcat | jq` and survives throwaway CI runners. One format for both
//! backends: a state moves between them with its history.
//!
//! A backup is hostile input like any other file: [`read_export`] checks all of it (sizes,
//! counts, limits of the API, the app it belongs to) before anything touches a store, reads the
//! gzip with a cap on the inflated size and on each line, so a truncated, garbled or bombed file
//! changes nothing and cannot exhaust memory.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};

use serde::{Deserialize, Serialize};

use super::{HistoryEntry, Meta, StateError};
use crate::model::limits::{MAX_ACCOUNT_BYTES, MAX_ATTRIBUTE_NAMES, MAX_ATTR_BYTES};
use crate::model::{Attrs, Managed, Names, Tags};

/// The most an export may inflate to (a million accounts take ~150 MB).
pub const MAX_EXPORT_BYTES: u64 = 4 << 30;
/// The longest line an export can legitimately hold is a few KB (ten names and values of 50
/// bytes, escaped); anything longer is not an export.
const MAX_LINE_BYTES: usize = 64 << 10;

/// The first line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportHeader {
    pub format_version: u32,
    pub sdkappid: u32,
    pub endpoint_host: String,
    pub lineage: String,
    pub serial: u64,
    /// The commit exported (absent in exports made before commit ids, which still restore).
    /// A restore never reuses it: restoring is a commit of its own, with a new id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_id: Option<String>,
    pub slots: BTreeMap<u8, String>,
    /// Non-zero account types of the slots (absent in older exports and legacy projects).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slot_types: BTreeMap<u8, u8>,
    pub accounts: u64,
    /// The store's history, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
}

/// The longest header: its history (a few hundred bytes an entry) makes it the one long line.
const MAX_HEADER_BYTES: usize = 256 << 20;

impl ExportHeader {
    /// The header of a backup of a store with `meta`, `accounts` and `history`.
    pub fn of(meta: &Meta, accounts: u64, history: Vec<HistoryEntry>) -> ExportHeader {
        ExportHeader {
            format_version: meta.format_version,
            sdkappid: meta.sdkappid,
            endpoint_host: meta.endpoint_host.clone(),
            lineage: meta.lineage.clone(),
            serial: meta.serial,
            commit_id: Some(meta.commit_id.clone()).filter(|c| !c.is_empty()),
            slots: meta.slots.clone(),
            slot_types: meta.slot_types.clone(),
            accounts,
            history,
        }
    }
}

impl ExportHeader {
    /// The metadata of a store restored from this backup, in the current format. Its commit id
    /// is left empty for the restoring commit to make: a restored state is never the exported
    /// commit.
    pub fn restored_meta(&self) -> Meta {
        Meta {
            format_version: super::FORMAT_VERSION,
            sdkappid: self.sdkappid,
            endpoint_host: self.endpoint_host.clone(),
            lineage: self.lineage.clone(),
            serial: self.serial,
            commit_id: String::new(),
            slots: self.slots.clone(),
            slot_types: self.slot_types.clone(),
        }
    }
}

/// Every following line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportLine {
    pub account: String,
    pub attrs: BTreeMap<String, String>,
    /// Managed tags, sorted; absent when there are none (and in exports made before tags).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl ExportLine {
    /// The line of `account` holding `managed`.
    pub fn new(account: &str, managed: &Managed, names: &Names) -> ExportLine {
        ExportLine {
            account: account.to_owned(),
            attrs: managed
                .attrs
                .iter()
                .map(|(n, v)| (names.get(n).to_owned(), v.to_owned()))
                .collect(),
            tags: managed.tags.iter().map(str::to_owned).collect(),
        }
    }
}

/// Writes a backup in the one format, for every backend: the header line, then one line per
/// account in account order, gzip-compressed.
pub struct Writer<W: Write> {
    gz: flate2::write::GzEncoder<W>,
    lines: u64,
}

impl<W: Write> Writer<W> {
    /// Starts a backup of a store described by `header` (see [`ExportHeader::of`]).
    pub fn new(out: W, header: &ExportHeader) -> std::io::Result<Writer<W>> {
        let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        serde_json::to_writer(&mut gz, header)?;
        gz.write_all(b"\n")?;
        Ok(Writer { gz, lines: 0 })
    }

    /// Writes one account's line.
    pub fn line(&mut self, line: &ExportLine) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.gz, line)?;
        self.gz.write_all(b"\n")?;
        self.lines += 1;
        Ok(())
    }

    /// Ends the backup; returns the number of account lines.
    pub fn finish(self) -> std::io::Result<u64> {
        self.gz.finish()?.flush()?;
        Ok(self.lines)
    }
}

/// An export read and checked in full, ready to replace a store's content.
#[derive(Debug)]
pub struct Export {
    pub header: ExportHeader,
    pub(crate) names: Names,
    /// In account order, without accounts that have no values.
    pub(crate) accounts: Vec<(Box<str>, Managed)>,
}

impl Export {
    /// Every account with its values (name, value) and its tags, in account order.
    pub fn accounts(&self) -> impl Iterator<Item = (&str, Vec<(&str, &str)>, &Tags)> + '_ {
        self.accounts.iter().map(|(a, managed)| {
            let values = managed
                .attrs
                .iter()
                .map(|(n, v)| (self.names.get(n), v))
                .collect();
            (&**a, values, &managed.tags)
        })
    }
}

/// The restore guard, the same for every backend, run by [`super::State::restore_export`]
/// before the backend replaces anything (the rule: `check_restorable`). A store holds
/// something when it recorded a commit (serial > 0) or holds accounts (counted at serial 0).
pub fn guard(
    store: &dyn super::Backend,
    header: &ExportHeader,
    force: bool,
) -> Result<(), StateError> {
    let meta = store.meta();
    let has_history = meta.serial > 0 || store.account_count()? > 0;
    check_restorable(meta, has_history, header, force).map_err(StateError::restore)
}

/// The restore guard's rule: into a store that holds something (`has_history`), an export of
/// another app is refused always, and one of another lineage or an older serial unless
/// `force`. A store that recorded nothing is bound to no app.
fn check_restorable(
    meta: &Meta,
    has_history: bool,
    header: &ExportHeader,
    force: bool,
) -> Result<(), String> {
    if !has_history {
        return Ok(());
    }
    app_refusal(header, meta.sdkappid, &meta.endpoint_host)?;
    if force {
        return Ok(());
    }
    if header.lineage != meta.lineage {
        return Err(format!(
            "the export has lineage {} but the store has lineage {}: it is another store's backup (use --force to replace this store anyway)",
            header.lineage, meta.lineage
        ));
    }
    if header.serial < meta.serial {
        return Err(format!(
            "the export has serial {} but the store is at serial {}: it is older than the store (use --force to go back anyway)",
            header.serial, meta.serial
        ));
    }
    Ok(())
}

/// Refuses an export of another app or endpoint host; `--force` does not change that, because
/// a store of another app fails every later command.
pub fn check_app(header: &ExportHeader, sdkappid: u32, host: &str) -> Result<(), StateError> {
    app_refusal(header, sdkappid, host).map_err(StateError::restore)
}

fn app_refusal(header: &ExportHeader, sdkappid: u32, host: &str) -> Result<(), String> {
    if header.sdkappid != sdkappid || header.endpoint_host != host {
        return Err(format!(
            "the export belongs to sdkappid {} at {:?}, but this project to sdkappid {sdkappid} at {host:?}: restore it in that app's project (--force does not override this)",
            header.sdkappid, header.endpoint_host
        ));
    }
    Ok(())
}

fn bad(m: impl std::fmt::Display) -> StateError {
    StateError::restore(format!("the export cannot be read: {m}"))
}

/// Reads and checks a whole export (gzip JSON lines) without touching any store.
pub fn read_export(input: impl Read) -> Result<Export, StateError> {
    let mut reader = crate::files::gzip_reader_capped(input, MAX_EXPORT_BYTES, "the export");
    let mut line = Vec::new();
    if !read_line(&mut reader, &mut line, 1, MAX_HEADER_BYTES)? {
        return Err(bad("it is empty"));
    }
    let header: ExportHeader =
        serde_json::from_slice(&line).map_err(|e| bad(format!("line 1 (header): {e}")))?;
    check_header(&header).map_err(|m| bad(format!("line 1 (header): {m}")))?;
    let mut names = Names::default();
    let mut accounts: BTreeMap<Box<str>, Managed> = BTreeMap::new();
    let mut lines = 0u64;
    let mut line_no = 1usize;
    loop {
        line_no += 1;
        if !read_line(&mut reader, &mut line, line_no, MAX_LINE_BYTES)? {
            break;
        }
        if line.is_empty() {
            // An export has none; a stream of them would be read for nothing.
            return Err(bad(format!("line {line_no} is empty")));
        }
        lines += 1;
        if lines > header.accounts {
            return Err(bad(format!(
                "line {line_no}: more accounts than the {} the header announces",
                header.accounts
            )));
        }
        let (account, attrs) =
            parse_line(&line, &mut names).map_err(|m| bad(format!("line {line_no}: {m}")))?;
        if accounts.contains_key(&account) {
            return Err(bad(format!(
                "line {line_no}: account {account:?} appears twice"
            )));
        }
        if !attrs.is_empty() {
            accounts.insert(account, attrs);
        }
    }
    if lines != header.accounts {
        return Err(bad(format!(
            "the header announces {} accounts but {lines} follow (truncated?)",
            header.accounts
        )));
    }
    Ok(Export {
        header,
        names,
        accounts: accounts.into_iter().collect(),
    })
}

/// Reads one line (without its `\n`) into `buf`, refusing one longer than `max` bytes.
/// `Ok(false)` at the end of the input.
fn read_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    line_no: usize,
    max: usize,
) -> Result<bool, StateError> {
    buf.clear();
    let read = reader
        .by_ref()
        .take(max as u64 + 1)
        .read_until(b'\n', buf)
        .map_err(bad)?;
    if read == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > max {
        return Err(bad(format!("line {line_no} is longer than {max} bytes")));
    }
    Ok(true)
}

/// The header's own limits: a serial that can still be bumped, slots the API has.
fn check_header(h: &ExportHeader) -> Result<(), String> {
    if h.format_version == 0 || h.format_version > super::FORMAT_VERSION {
        return Err(format!(
            "format version {} is not one this timattr reads (1 to {}): upgrade timattr",
            h.format_version,
            super::FORMAT_VERSION
        ));
    }
    if h.serial == u64::MAX {
        return Err("the serial is at its maximum and could not be bumped".into());
    }
    let is_id = |s: &str| {
        !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !is_id(&h.lineage) {
        return Err("the lineage is not an id (1 to 64 letters, digits or '-')".into());
    }
    if h.commit_id.as_deref().is_some_and(|c| !is_id(c)) {
        return Err("the commit id is not an id (1 to 64 letters, digits or '-')".into());
    }
    if h.slots.len() > MAX_ATTRIBUTE_NAMES {
        return Err(format!(
            "more than {MAX_ATTRIBUTE_NAMES} attribute-name slots"
        ));
    }
    for (slot, name) in &h.slots {
        if usize::from(*slot) >= MAX_ATTRIBUTE_NAMES {
            return Err(format!("slot {slot} does not exist (slots are 0 to 9)"));
        }
        check_text("attribute name", name)?;
    }
    for (slot, ty) in &h.slot_types {
        if !h.slots.contains_key(slot) || *ty != 1 {
            return Err(format!(
                "slot {slot} has account type {ty}: types are recorded only for named slots, and only 1 (RegistrationID)"
            ));
        }
    }
    Ok(())
}

fn check_text(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_ATTR_BYTES {
        return Err(format!("{what} {s:?} is not 1 to {MAX_ATTR_BYTES} bytes"));
    }
    Ok(())
}

/// One account line, checked against the limits of the API.
fn parse_line(line: &[u8], names: &mut Names) -> Result<(Box<str>, Managed), String> {
    let l: ExportLine = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if l.account.is_empty() || l.account.len() > MAX_ACCOUNT_BYTES {
        return Err(format!(
            "account id {:?} is not 1 to {MAX_ACCOUNT_BYTES} bytes",
            l.account
        ));
    }
    if l.attrs.len() > MAX_ATTRIBUTE_NAMES {
        return Err(format!(
            "account {:?} has more than {MAX_ATTRIBUTE_NAMES} attributes",
            l.account
        ));
    }
    let mut attrs = Attrs::with_capacity(l.attrs.len());
    for (n, v) in &l.attrs {
        check_text("attribute name", n)?;
        if v.len() > MAX_ATTR_BYTES {
            return Err(format!(
                "the value of {n:?} for {:?} is longer than {MAX_ATTR_BYTES} bytes",
                l.account
            ));
        }
        let idx = names
            .intern(n)
            .filter(|_| names.len() <= MAX_ATTRIBUTE_NAMES)
            .ok_or_else(|| format!("more than {MAX_ATTRIBUTE_NAMES} distinct attribute names"))?;
        attrs.insert(idx, v.as_str().into());
    }
    let tags = parse_tags(&l)?;
    Ok((l.account.into_boxed_str(), Managed::new(attrs, tags)))
}

/// Tags the store may hold for one account: while an apply replaces a full set of 100, the
/// new ones are recorded before the old ones are removed, so up to twice the API's limit.
const MAX_STORED_TAGS: usize = 2 * crate::model::limits::MAX_TAGS_PER_USER;

fn parse_tags(l: &ExportLine) -> Result<Tags, String> {
    if l.tags.len() > MAX_STORED_TAGS {
        return Err(format!(
            "account {:?} has more than {MAX_STORED_TAGS} tags",
            l.account
        ));
    }
    for t in &l.tags {
        if t.is_empty() || t.len() > crate::model::limits::MAX_TAG_BYTES {
            return Err(format!(
                "tag {t:?} of {:?} is not 1 to {} bytes",
                l.account,
                crate::model::limits::MAX_TAG_BYTES
            ));
        }
    }
    let tags: Tags = l.tags.iter().map(String::as_str).collect();
    if tags.len() != l.tags.len() {
        return Err(format!("account {:?} lists a tag twice", l.account));
    }
    Ok(tags)
}
