//! Cutting the accounts out of `COPY ... TO STDOUT (FORMAT binary)`: the server sends one
//! message per row (the first one preceded by the file header, the trailer last), and each row
//! is read in place from its message — no allocation per row, no conversion on the server.
//! The row is `(account text, attrs text, tags text[])`.

use super::{PgError, Result, Target};

/// The signature every binary COPY starts with.
const MAGIC: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Columns of a row: account, attributes, tags.
const FIELDS: i16 = 3;

/// One stored account, borrowed from the message it came in.
#[derive(Debug, Clone, Copy)]
pub(super) struct Row<'a> {
    pub account: &'a str,
    /// The attributes as a JSON object, as `jsonb` prints it.
    pub attrs: &'a str,
    pub tags: StoredTags<'a>,
}

/// The tags of a row: a one-dimensional `text[]` in PostgreSQL's binary array format, checked
/// when the row is read (no NULL, valid UTF-8).
#[derive(Debug, Clone, Copy)]
pub(super) struct StoredTags<'a> {
    len: usize,
    /// The elements, each a big-endian i32 length and its bytes.
    elements: &'a [u8],
}

impl<'a> StoredTags<'a> {
    fn parse(b: &'a [u8]) -> Result<StoredTags<'a>, String> {
        let mut r = Reader(b);
        let (ndim, _has_nulls, _oid) = (r.i32()?, r.i32()?, r.i32()?);
        let len = match ndim {
            0 => 0,
            1 => {
                let (len, _lower) = (r.i32()?, r.i32()?);
                usize::try_from(len).map_err(|_| "a negative tag count".to_owned())?
            }
            n => return Err(format!("tags with {n} dimensions")),
        };
        let tags = StoredTags { len, elements: r.0 };
        let mut check = Reader(r.0);
        for _ in 0..len {
            let tag = check.field()?.ok_or("a NULL tag")?;
            std::str::from_utf8(tag).map_err(|e| format!("a tag: {e}"))?;
        }
        if !check.0.is_empty() {
            return Err("bytes after the last tag".into());
        }
        Ok(tags)
    }

    /// The tags in stored order (checked when the row was read).
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let mut r = Reader(self.elements);
        (0..self.len).map(move |_| {
            let bytes = r.field().ok().flatten().unwrap_or_default();
            std::str::from_utf8(bytes).unwrap_or_default()
        })
    }

    /// Whether these are exactly `tags` (sorted, unique), in the same order.
    pub fn equals(&self, tags: &crate::model::Tags) -> bool {
        self.len == tags.len() && self.iter().zip(tags.iter()).all(|(a, b)| a == b)
    }
}

/// Big-endian fields from a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("a row ends early".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn i16(&mut self) -> Result<i16, String> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length-prefixed field; `None` for NULL.
    fn field(&mut self) -> Result<Option<&'a [u8]>, String> {
        match self.i32()? {
            -1 => Ok(None),
            n => {
                let n = usize::try_from(n).map_err(|_| format!("a field of length {n}"))?;
                self.take(n).map(Some)
            }
        }
    }

    fn text(&mut self, what: &str) -> Result<&'a str, String> {
        let b = self.field()?.ok_or_else(|| format!("a NULL {what}"))?;
        std::str::from_utf8(b).map_err(|e| format!("{what}: {e}"))
    }
}

/// The state of reading one COPY: before the header, in the rows, after the trailer.
#[derive(Debug, Default)]
pub(super) struct CopyRows {
    started: bool,
    ended: bool,
}

impl CopyRows {
    /// Cuts one COPY message into rows, handing each to `f`; returns how many it held.
    pub fn feed(
        &mut self,
        msg: &[u8],
        t: &Target,
        f: &mut impl FnMut(Row<'_>) -> Result<()>,
    ) -> Result<usize> {
        let corrupt = |m: String| t.corrupt(format!("reading the accounts: {m}"));
        let mut r = Reader(msg);
        if !self.started {
            let magic = r.take(MAGIC.len()).map_err(corrupt)?;
            if magic != MAGIC {
                return Err(corrupt("not a binary COPY".into()));
            }
            let (_flags, extension) = (r.i32().map_err(corrupt)?, r.i32().map_err(corrupt)?);
            let extension = usize::try_from(extension).map_err(|_| corrupt("header".into()))?;
            r.take(extension).map_err(corrupt)?;
            self.started = true;
        }
        let mut n = 0;
        while !r.0.is_empty() {
            if self.ended {
                return Err(corrupt("data after the trailer".into()));
            }
            match r.i16().map_err(corrupt)? {
                -1 => self.ended = true,
                FIELDS => {
                    let row = read_row(&mut r).map_err(corrupt)?;
                    f(row)?;
                    n += 1;
                }
                k => return Err(corrupt(format!("a row of {k} columns"))),
            }
        }
        Ok(n)
    }

    /// Checks that the COPY ended with its trailer (not cut short).
    pub fn finish(&self, t: &Target) -> Result<()> {
        if self.ended {
            Ok(())
        } else {
            Err(PgError::Database {
                target: t.describe(),
                message: "the list of accounts ended early".into(),
            })
        }
    }
}

fn read_row<'a>(r: &mut Reader<'a>) -> Result<Row<'a>, String> {
    let account = r.text("account")?;
    let attrs = r.text("attributes")?;
    let tags = r.field()?.ok_or("NULL tags")?;
    Ok(Row {
        account,
        attrs,
        tags: StoredTags::parse(tags)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&i32::try_from(b.len()).unwrap().to_be_bytes());
        out.extend_from_slice(b);
    }

    fn array(tags: &[&str]) -> Vec<u8> {
        let mut a = Vec::new();
        let ndim: i32 = if tags.is_empty() { 0 } else { 1 };
        for v in [ndim, 0, 25] {
            a.extend_from_slice(&v.to_be_bytes());
        }
        if !tags.is_empty() {
            for v in [tags.len() as i32, 1] {
                a.extend_from_slice(&v.to_be_bytes());
            }
            for t in tags {
                field(&mut a, t.as_bytes());
            }
        }
        a
    }

    fn row(account: &str, attrs: &str, tags: &[&str]) -> Vec<u8> {
        let mut m = FIELDS.to_be_bytes().to_vec();
        field(&mut m, account.as_bytes());
        field(&mut m, attrs.as_bytes());
        field(&mut m, &array(tags));
        m
    }

    fn target() -> Target {
        let url = crate::settings::DatabaseUrl::new("postgres://u@127.0.0.1/d");
        Target::parse(&url, "p").unwrap()
    }

    fn read_all(msgs: &[Vec<u8>]) -> Result<Vec<(String, String, Vec<String>)>> {
        let (t, mut reader, mut out) = (target(), CopyRows::default(), Vec::new());
        for m in msgs {
            reader.feed(m, &t, &mut |r: Row<'_>| {
                out.push((
                    r.account.to_owned(),
                    r.attrs.to_owned(),
                    r.tags.iter().map(str::to_owned).collect(),
                ));
                Ok(())
            })?;
        }
        reader.finish(&t)?;
        Ok(out)
    }

    #[test]
    fn rows_header_and_trailer_are_read_in_place() {
        let mut first = MAGIC.to_vec();
        first.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        first.extend(row("u1", "{}", &["beta", "vip"]));
        let trailer = (-1i16).to_be_bytes().to_vec();
        let rows = read_all(&[first.clone(), row("u2", "{\"a\": \"b\"}", &[]), trailer]).unwrap();
        assert_eq!(
            rows,
            [
                ("u1".into(), "{}".into(), vec!["beta".into(), "vip".into()]),
                ("u2".into(), "{\"a\": \"b\"}".into(), vec![])
            ]
        );
        let tags = array(&["a", "b"]);
        let stored = StoredTags::parse(&tags).unwrap();
        assert!(stored.equals(&["b", "a"].into_iter().collect()));
        assert!(!stored.equals(&["a"].into_iter().collect()));
        // Cut short, garbled or without its trailer: an error, never fewer accounts.
        let err = read_all(std::slice::from_ref(&first)).unwrap_err();
        assert!(err.to_string().contains("ended early"), "{err}");
        let mut cut = first.clone();
        cut.truncate(cut.len() - 3);
        assert!(read_all(&[cut]).is_err());
        let mut bad_utf8 = first;
        let at = bad_utf8.len() - 1;
        bad_utf8[at] = 0xff;
        let err = read_all(&[bad_utf8]).unwrap_err();
        assert!(err.to_string().contains("is damaged"), "{err}");
    }
}
