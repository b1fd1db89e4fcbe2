//! Cutting a big users file into pieces that parse on their own, so that one file of a
//! million accounts uses every core.
//!
//! Only the common shape is cut: a block-style `users:` map at column 0 whose account keys
//! all start at the same indentation. A piece starts at a line holding exactly that
//! indentation and then a key, so it can only fall between two accounts: block scalars and
//! multi-line plain scalars need deeper lines, and a cut inside a multi-line quoted scalar or
//! flow collection leaves the piece before it unterminated, which fails to parse. The caller
//! parses each piece under a synthetic `users:` line and falls back to parsing the whole
//! file when any piece has any problem, so diagnostics never depend on where cuts fell.

/// Where a file was cut: `text[..head_end]` holds everything up to and including the
/// `users:` line; each piece is `(start, end, first_line)` and the last runs to the end of
/// the file (taking any top-level keys after the users map with it).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Split {
    pub head_end: usize,
    pub pieces: Vec<(usize, usize, u32)>,
}

/// Cuts `text` into pieces of about `piece_len` bytes, or `None` when the file does not have
/// the cuttable shape or would give a single piece.
pub(crate) fn split(text: &str, piece_len: usize) -> Option<Split> {
    let mut lines = Lines {
        text,
        at: 0,
        line: 0,
    };
    // The `users:` line, alone on its line at column 0 (a flow or anchored map is not cut).
    loop {
        let (_, l) = lines.next()?;
        let l = strip_comment(l);
        if l.trim_end() == "users:" {
            break;
        }
    }
    // The first account line sets the indentation of the keys.
    let (head_end, indent) = loop {
        let (start, l) = lines.next()?;
        if is_blank(l) {
            continue;
        }
        let indent = l.len() - l.trim_start_matches(' ').len();
        if indent == 0 || !starts_key(&l[indent..]) {
            return None;
        }
        break (start, indent);
    };
    let mut pieces = Vec::new();
    let mut piece_start = (head_end, lines.line);
    while let Some((start, l)) = lines.next() {
        if is_blank(l) {
            continue;
        }
        let indent_here = l.len() - l.trim_start_matches(' ').len();
        if indent_here < indent {
            break; // the users map ended: no cut after this line
        }
        if indent_here == indent && starts_key(&l[indent..]) && start - piece_start.0 >= piece_len {
            pieces.push((piece_start.0, start, piece_start.1));
            piece_start = (start, lines.line);
        }
    }
    if pieces.is_empty() {
        return None;
    }
    pieces.push((piece_start.0, text.len(), piece_start.1));
    Some(Split { head_end, pieces })
}

/// Lines with their byte offsets; `line` is the 1-based number of the last line returned.
struct Lines<'a> {
    text: &'a str,
    at: usize,
    line: u32,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<(usize, &'a str)> {
        if self.at >= self.text.len() {
            return None;
        }
        let start = self.at;
        let rest = &self.text[start..];
        let end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        self.at = start + end;
        self.line += 1;
        let l = rest[..end].trim_end_matches(['\n', '\r']);
        Some((start, l))
    }
}

fn is_blank(l: &str) -> bool {
    let t = l.trim_start_matches(' ');
    t.is_empty() || t.starts_with('#')
}

fn strip_comment(l: &str) -> &str {
    match l.find(" #") {
        Some(i) => &l[..i],
        None => l,
    }
}

/// A line's text after its indentation starts an implicit key: not an indicator that opens
/// a sequence entry, an explicit key, a flow collection, an anchor, alias, tag, block scalar
/// or directive, nor a tab.
fn starts_key(t: &str) -> bool {
    match t.as_bytes().first() {
        None => false,
        Some(b) => !b"-?:,[]{}#&*!|>%@`\t ".contains(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str, len: usize) -> Option<Vec<&str>> {
        let s = split(text, len)?;
        Some(s.pieces.iter().map(|&(a, b, _)| &text[a..b]).collect())
    }

    #[test]
    fn cuts_fall_between_accounts() {
        let text =
            "defaults: {tier: x}\nusers:\n  a: {city: x}\n  # note\n  b:\n    city: y\n  c: {}\n";
        let s = split(text, 1).unwrap();
        assert_eq!(&text[..s.head_end], "defaults: {tier: x}\nusers:\n");
        assert_eq!(
            pieces(text, 1).unwrap(),
            [
                "  a: {city: x}\n  # note\n",
                "  b:\n    city: y\n",
                "  c: {}\n"
            ]
        );
        let lines: Vec<u32> = s.pieces.iter().map(|p| p.2).collect();
        assert_eq!(lines, [3, 5, 7]);
    }

    #[test]
    fn no_cut_after_the_users_map() {
        let text = "users:\n  a: {}\n  b: {}\ndefaults:\n  tier:\n  city:\n";
        assert_eq!(
            pieces(text, 1).unwrap(),
            ["  a: {}\n", "  b: {}\ndefaults:\n  tier:\n  city:\n"]
        );
    }

    #[test]
    fn other_shapes_are_not_cut() {
        for text in [
            "users: {a: {}, b: {}}\n",
            "users: &u\n  a: {}\n  b: {}\n",
            "users:\n- a\n- b\n",
            "users:\n  - a\n  - b\n",
            "defaults: {}\n",
            "users:\n  a: {}\n",
        ] {
            assert_eq!(split(text, 1), None, "{text:?}");
        }
    }

    #[test]
    fn small_pieces_are_merged_up_to_the_length() {
        let mut text = String::from("users:\n");
        for i in 0..100 {
            text.push_str(&format!("  u{i:03}: {{}}\n"));
        }
        let p = pieces(&text, 100).unwrap();
        assert_eq!(p.len(), 100 * 11 / 110);
        assert_eq!(p.concat(), text["users:\n".len()..]);
    }
}
