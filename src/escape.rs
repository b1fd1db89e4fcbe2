//! How every output shows text it did not write itself (account ids, values, names, server
//! text, source lines): the characters that could move the cursor, erase or reorder text on a
//! terminal or in a CI log (DESIGN.md §8) are written as escapes. One class and one spelling
//! for the plans, the drift reports, the diagnostics and the loader's refusal of such ids.

use std::fmt::Write as _;

/// Characters that could move the cursor, erase or reorder text on a terminal or in a CI log
/// (DESIGN.md §8): C0 and C1 controls, DEL, the bidirectional controls, and the line and
/// paragraph separators.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
                | '\u{2028}' | '\u{2029}'
        )
}

/// Writes `c` as an escape: `\x1b` below U+0080, `\u{202e}` above.
pub fn push_escape(out: &mut String, c: char) {
    if (c as u32) < 0x80 {
        let _ = write!(out, "\\x{:02x}", c as u32);
    } else {
        let _ = write!(out, "\\u{{{:x}}}", c as u32);
    }
}

/// An account id, attribute name or server text as the text views print it bare: the
/// characters of [`is_unsafe`] escaped, everything else as is.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A path as messages show it: the characters of [`is_unsafe`] escaped, and each byte that
/// is not UTF-8 (a file name may hold any) written as `\xNN`, so two different names never
/// look the same.
pub fn path(p: &std::path::Path) -> String {
    let bytes = p.as_os_str().as_encoded_bytes();
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(&escape(chunk.valid()));
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// A message of several lines (an error, a note) with [`escape`] applied to everything but
/// its line breaks and tabs, which multi-line diagnostics need and which cannot move the
/// cursor back.
pub fn escape_text(text: &str) -> String {
    text.split_inclusive(['\n', '\t'])
        .map(|piece| {
            let (body, end) = match piece.char_indices().last() {
                Some((i, c @ ('\n' | '\t'))) => (&piece[..i], Some(c)),
                _ => (piece, None),
            };
            let mut out = escape(body).into_owned();
            out.extend(end);
            out
        })
        .collect()
}
