//! The YAML event stream of one document, with positions: the only code that calls the YAML
//! crate (saphyr-parser, a streaming parser that gives every event its span).
//!
//! The walkers of this module's siblings pull [`Ev`]s from a [`Stream`] and build their model
//! as they go, so a file is parsed once and every problem already has its `line:column`.
//! The stream also holds the document to the rules no walker should have to repeat:
//! one document per file, no tag but `!!str` (DESIGN.md §8: `!!bool "yes"` must not become
//! `"yes"`, `!!binary` must not pass as text), aliases replayed within a node budget (an alias
//! bomb ends in an error, not in memory exhaustion), and a nesting depth cap. A refused tag
//! does not end the walk: it is kept in [`Stream::take_tag_errors`] and the node is read as
//! text, so every other problem of the file is still found. A `%YAML 1.1` directive changes
//! nothing: plain scalars are resolved by one rule (`scalar.rs`) whatever the version says.

use std::borrow::Cow;
use std::rc::Rc;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, StrInput, Tag};

/// Lists and maps nested deeper than this are refused: timattr's files need 4 levels, and a
/// cap keeps hostile input (60,000 `[`) linear and the tree builder's recursion shallow.
pub(crate) const MAX_DEPTH: usize = 64;

/// A 1-based `line:column` in the file (columns count characters, as editors do).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: u32,
    pub col: u32,
}

/// How a scalar was written: plain scalars are resolved (null, bool, number), quoted and
/// block scalars, and those tagged `!!str`, are strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    Plain,
    Text,
}

/// One event of the document, as the walkers see it.
#[derive(Clone, Debug)]
pub(crate) enum Ev<'a> {
    Scalar(Cow<'a, str>, Style),
    SeqStart,
    SeqEnd,
    MapStart,
    MapEnd,
    /// The end of the (only) document.
    End,
}

/// An error that ends the walk of a file: a syntax error, a second document, a tag, a budget
/// or depth overrun.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hard {
    pub pos: Pos,
    pub message: String,
    /// A custom tag: the walker prefixes the path of the node, as users expect.
    pub tag: bool,
    /// What to do about it, when the message alone does not say (tabs, indentation).
    pub help: Option<String>,
}

impl Hard {
    pub fn new(pos: Pos, message: impl Into<String>) -> Self {
        Hard {
            pos,
            message: message.into(),
            tag: false,
            help: None,
        }
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

const TAB_HELP: &str = "YAML indents with spaces only: replace the tab with spaces";

/// The help line of a YAML syntax error whose usual cause is the indentation: the parser's
/// words describe its state, not the fix.
fn indentation_help(message: &str) -> Option<&'static str> {
    if message.contains("found a tab") {
        Some(TAB_HELP)
    } else if message.starts_with("did not find expected key") {
        Some("check the indentation: the keys of one mapping start in the same column, and a value's lines are indented deeper than its key")
    } else if message.starts_with("did not find expected '-' indicator") {
        Some("check the indentation: the items of one list start with `-` in the same column")
    } else if message.starts_with("mapping values are not allowed") {
        Some("check the indentation (this line is deeper than the key above it expects), or quote a value that holds `: `")
    } else {
        None
    }
}

/// A recorded event of an anchored node; an alias inside it is kept as a reference.
#[derive(Clone, Debug)]
enum Rec<'a> {
    Ev(Ev<'a>, Pos),
    Alias(usize, Pos),
}

/// An anchored node being recorded: its anchor id, open collections, and events so far.
struct Recording<'a> {
    anchor: usize,
    open: usize,
    events: Vec<Rec<'a>>,
}

/// The events of one document, positions shifted by `line_offset` (for a chunk of a file).
pub(crate) struct Stream<'a> {
    parser: Parser<'a, StrInput<'a>>,
    line_offset: u32,
    depth: usize,
    nodes: u64,
    budget: u64,
    started: bool,
    ended: bool,
    /// Off while skipping a node: like serde's `IgnoredAny`, a skip does not follow aliases,
    /// so an alias bomb under an ignored key costs nothing.
    expand: bool,
    anchors: Vec<Option<Rc<[Rec<'a>]>>>,
    recordings: Vec<Recording<'a>>,
    replays: Vec<(Rc<[Rec<'a>]>, usize)>,
    /// Refused tags, in the order read (each a `Hard` with `tag` set).
    tag_errors: Vec<Hard>,
}

impl<'a> Stream<'a> {
    /// The stream of `text`, whose first line is line `1 + line_offset` of its file.
    pub fn new(text: &'a str, line_offset: u32) -> Self {
        // Written out, every node takes at least a byte, so more nodes than about twice the
        // size can only come from aliases expanding.
        let budget = (text.len() as u64).saturating_mul(2).saturating_add(1000);
        Stream {
            parser: Parser::new_from_str(text),
            line_offset,
            depth: 0,
            nodes: 0,
            budget,
            started: false,
            ended: false,
            expand: true,
            anchors: Vec::new(),
            recordings: Vec::new(),
            replays: Vec::new(),
            tag_errors: Vec::new(),
        }
    }

    /// The refused tags read since the last call.
    pub fn take_tag_errors(&mut self) -> Vec<Hard> {
        std::mem::take(&mut self.tag_errors)
    }

    /// The next event of the document and where it starts.
    pub fn next(&mut self) -> Result<(Ev<'a>, Pos), Hard> {
        let (ev, pos) = loop {
            if let Some(r) = self.next_replayed()? {
                break r;
            }
            if let Some(r) = self.next_parsed()? {
                break r;
            }
        };
        self.account(&ev, pos)?;
        Ok((ev, pos))
    }

    /// Skips the rest of a collection whose start event was just read (without recursion:
    /// depth only counts).
    pub fn skip_rest(&mut self) -> Result<(), Hard> {
        self.expand = false;
        let skipped = self.skip_events();
        self.expand = true;
        skipped
    }

    fn skip_events(&mut self) -> Result<(), Hard> {
        let mut open = 1usize;
        while open > 0 {
            match self.next()?.0 {
                Ev::SeqStart | Ev::MapStart => open += 1,
                Ev::SeqEnd | Ev::MapEnd => open -= 1,
                Ev::End => return Ok(()),
                Ev::Scalar(..) => {}
            }
        }
        Ok(())
    }

    /// Whether the stream is at the end of its document; reading on reports a second one.
    pub fn finish(&mut self) -> Result<(), Hard> {
        match self.next()? {
            (Ev::End, _) => Ok(()),
            (_, pos) => Err(Hard::new(pos, "unexpected content after the document")),
        }
    }

    /// Skips the node whose first event is `first`.
    pub fn skip_node(&mut self, first: &Ev) -> Result<(), Hard> {
        match first {
            Ev::SeqStart | Ev::MapStart => self.skip_rest(),
            _ => Ok(()),
        }
    }

    fn pos(&self, span: &Span) -> Pos {
        let line = u32::try_from(span.start.line()).unwrap_or(u32::MAX);
        let col = u32::try_from(span.start.col() + 1).unwrap_or(u32::MAX);
        Pos {
            line: line.saturating_add(self.line_offset),
            col,
        }
    }

    /// Counts nodes against the budget and collections against the depth cap.
    fn account(&mut self, ev: &Ev, pos: Pos) -> Result<(), Hard> {
        match ev {
            Ev::SeqStart | Ev::MapStart => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(too_deep(pos));
                }
            }
            Ev::SeqEnd | Ev::MapEnd => {
                self.depth = self.depth.saturating_sub(1);
                return Ok(());
            }
            Ev::End => return Ok(()),
            Ev::Scalar(..) => {}
        }
        self.nodes += 1;
        if self.nodes > self.budget {
            return Err(Hard::new(
                pos,
                format!(
                    "the document expands to more than {} YAML nodes (an alias bomb?); \
                     write the data out instead of repeating aliases",
                    self.budget
                ),
            ));
        }
        Ok(())
    }

    fn next_replayed(&mut self) -> Result<Option<(Ev<'a>, Pos)>, Hard> {
        while let Some((events, i)) = self.replays.last_mut() {
            let Some(rec) = events.get(*i).cloned() else {
                self.replays.pop();
                continue;
            };
            *i += 1;
            match rec {
                Rec::Ev(ev, pos) => return Ok(Some((ev, pos))),
                Rec::Alias(_, pos) if !self.expand => return Ok(Some((skipped_alias(), pos))),
                Rec::Alias(id, pos) => self.replay(id, pos)?,
            }
        }
        Ok(None)
    }

    fn replay(&mut self, id: usize, pos: Pos) -> Result<(), Hard> {
        match self.anchors.get(id).cloned().flatten() {
            Some(events) => {
                self.replays.push((events, 0));
                Ok(())
            }
            // saphyr knows the anchor but its node is not complete: it refers to itself.
            None => Err(Hard::new(
                pos,
                "an alias refers to its own anchor (a recursive alias)",
            )),
        }
    }

    /// The next event from the parser; `None` when it only changed the stream's state.
    fn next_parsed(&mut self) -> Result<Option<(Ev<'a>, Pos)>, Hard> {
        if self.ended {
            return Ok(Some((Ev::End, Pos::default())));
        }
        let (event, span) = match self.parser.next_event() {
            Some(Ok(e)) => e,
            Some(Err(e)) => return Err(self.scan_error(&e)),
            None => {
                self.ended = true;
                return Ok(Some((Ev::End, Pos::default())));
            }
        };
        let pos = self.pos(&span);
        let (ev, anchor) =
            match event {
                Event::StreamStart | Event::Nothing => return Ok(None),
                Event::DocumentStart(_) if !self.started => {
                    self.started = true;
                    return Ok(None);
                }
                Event::DocumentStart(_) => return Err(Hard::new(
                    pos,
                    "deserializing from YAML containing more than one document is not supported",
                )),
                Event::DocumentEnd => return Ok(None),
                Event::StreamEnd => {
                    self.ended = true;
                    (Ev::End, 0)
                }
                Event::Alias(id) => {
                    for r in &mut self.recordings {
                        r.events.push(Rec::Alias(id, pos));
                    }
                    if !self.expand {
                        return Ok(Some((skipped_alias(), pos)));
                    }
                    self.replay(id, pos)?;
                    return Ok(None);
                }
                Event::Scalar(text, style, anchor, tag) => {
                    let (ev, refused) = scalar(text, style, tag.as_deref(), pos);
                    self.tag_errors.extend(refused);
                    (ev, anchor)
                }
                Event::SequenceStart(anchor, tag) => {
                    self.tag_errors.extend(collection_tag(tag.as_deref(), pos));
                    (Ev::SeqStart, anchor)
                }
                Event::MappingStart(anchor, tag) => {
                    self.tag_errors.extend(collection_tag(tag.as_deref(), pos));
                    (Ev::MapStart, anchor)
                }
                Event::SequenceEnd => (Ev::SeqEnd, 0),
                Event::MappingEnd => (Ev::MapEnd, 0),
            };
        if !self.recordings.is_empty() || anchor != 0 {
            self.record(&ev, pos, anchor);
        }
        Ok(Some((ev, pos)))
    }

    /// Feeds an event to the recordings of anchored nodes, starting and finishing them.
    fn record(&mut self, ev: &Ev<'a>, pos: Pos, anchor: usize) {
        if anchor != 0 {
            self.recordings.push(Recording {
                anchor,
                open: 0,
                events: Vec::new(),
            });
        }
        let opens = matches!(ev, Ev::SeqStart | Ev::MapStart);
        let closes = matches!(ev, Ev::SeqEnd | Ev::MapEnd);
        for r in &mut self.recordings {
            r.events.push(Rec::Ev(ev.clone(), pos));
            if opens {
                r.open += 1;
            } else if closes {
                r.open = r.open.saturating_sub(1);
            }
        }
        while self.recordings.last().is_some_and(|r| r.open == 0) {
            let Some(done) = self.recordings.pop() else {
                break;
            };
            if self.anchors.len() <= done.anchor {
                self.anchors.resize(done.anchor + 1, None);
            }
            self.anchors[done.anchor] = Some(done.events.into());
        }
    }

    fn scan_error(&self, e: &ScanError) -> Hard {
        let m = e.marker();
        let pos = Pos {
            line: u32::try_from(m.line())
                .unwrap_or(u32::MAX)
                .saturating_add(self.line_offset),
            col: u32::try_from(m.col() + 1).unwrap_or(u32::MAX),
        };
        let info = e.info();
        if info == "recursion limit exceeded" {
            return too_deep(pos);
        }
        if info.ends_with("found unknown anchor") {
            return Hard::new(pos, "unknown anchor");
        }
        if info.starts_with("tabs disallowed") {
            // saphyr points after the tab; libyaml's words and place said it better.
            return Hard::new(
                Pos {
                    col: pos.col.saturating_sub(1).max(1),
                    ..pos
                },
                "found character that cannot start any token, while scanning for the next token",
            )
            .help(TAB_HELP);
        }
        // "while parsing a flow mapping, did not find expected ',' or '}'": the problem first.
        let message = match info.strip_prefix("while ").and_then(|r| r.split_once(", ")) {
            Some((context, problem)) => format!("{problem} while {context}"),
            None => info.to_owned(),
        };
        let hard = Hard::new(pos, message);
        match indentation_help(&hard.message) {
            Some(help) => hard.help(help),
            None => hard,
        }
    }
}

/// What a skip sees of an alias: one node, not followed.
fn skipped_alias<'a>() -> Ev<'a> {
    Ev::Scalar(Cow::Borrowed(""), Style::Text)
}

fn too_deep(pos: Pos) -> Hard {
    Hard::new(
        pos,
        format!(
            "lists and maps are nested more than {MAX_DEPTH} levels deep; timattr's files need 4"
        ),
    )
}

/// How a tag is written in a file: `!!bool`, `!custom`, `!<tag:example.com:x>`.
fn written(tag: &Tag) -> String {
    let shown = if tag.is_yaml_core_schema() {
        format!("!!{}", tag.suffix)
    } else if tag.handle == "!" {
        format!("!{}", tag.suffix)
    } else {
        format!("!<{}{}>", tag.handle, tag.suffix)
    };
    crate::escape::escape(&shown).into_owned()
}

/// A refused tag: only `!!str` (on a scalar) has a meaning here.
fn refused(tag: &Tag, pos: Pos) -> Hard {
    let shown = written(tag);
    let fix = if tag.is_yaml_core_schema() && tag.suffix == "binary" {
        "timattr values are text: decode it and write the text"
    } else {
        "remove it, and quote the value if it is text"
    };
    Hard {
        pos,
        message: format!("the YAML tag `{shown}` is not supported (only `!!str` is); {fix}"),
        tag: true,
        help: None,
    }
}

/// A scalar with its style: `!!str` makes it text; any other tag is refused (and the value
/// read as text, so that it causes no second error).
fn scalar<'a>(
    text: Cow<'a, str>,
    style: ScalarStyle,
    tag: Option<&Tag>,
    pos: Pos,
) -> (Ev<'a>, Option<Hard>) {
    match tag {
        Some(t) if t.is_yaml_core_schema() && t.suffix == "str" => {
            (Ev::Scalar(text, Style::Text), None)
        }
        Some(t) => (Ev::Scalar(text, Style::Text), Some(refused(t, pos))),
        None if style == ScalarStyle::Plain => (Ev::Scalar(text, Style::Plain), None),
        None => (Ev::Scalar(text, Style::Text), None),
    }
}

/// Any tag on a list or a map is refused (`!!map` and `!!seq` included: nothing needs them).
fn collection_tag(tag: Option<&Tag>, pos: Pos) -> Option<Hard> {
    tag.map(|t| refused(t, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Result<Vec<(String, u32, u32)>, Hard> {
        let mut s = Stream::new(text, 0);
        let mut out = Vec::new();
        loop {
            let (ev, pos) = s.next()?;
            let shown = match ev {
                Ev::End => return Ok(out),
                Ev::Scalar(t, Style::Plain) => t.into_owned(),
                Ev::Scalar(t, Style::Text) => format!("'{t}'"),
                Ev::SeqStart => "[".into(),
                Ev::SeqEnd => "]".into(),
                Ev::MapStart => "{".into(),
                Ev::MapEnd => "}".into(),
            };
            out.push((shown, pos.line, pos.col));
        }
    }

    fn shown(text: &str) -> String {
        let evs = all(text).unwrap_or_else(|h| panic!("{h:?}"));
        evs.into_iter()
            .map(|(s, _, _)| s)
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn positions_are_one_based_and_shifted() {
        let evs = all("a:\n  b: \"x\"\n").unwrap();
        let at: Vec<_> = evs.iter().map(|(s, l, c)| format!("{s}@{l}:{c}")).collect();
        assert_eq!(at[1..5], ["a@1:1", "{@2:3", "b@2:3", "'x'@2:6"]);
        let mut s = Stream::new("x\n", 9);
        assert_eq!(s.next().unwrap().1, Pos { line: 10, col: 1 });
    }

    #[test]
    fn aliases_are_replayed() {
        assert_eq!(
            shown("a: &x {k: v}\nb: *x\nc: &y [*x, s]\nd: *y\n"),
            "{ a { k v } b { k v } c [ { k v } s ] d [ { k v } s ] }"
        );
    }

    #[test]
    fn a_bom_is_skipped_and_str_tags_make_text() {
        assert_eq!(shown("\u{feff}a: !!str 1\n"), "{ a '1' }");
    }

    #[test]
    fn hard_errors() {
        let second = all("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(second.pos, Pos { line: 2, col: 1 });
        assert!(second.message.contains("more than one document"));
        assert_eq!(all("a: *n\n").unwrap_err().message, "unknown anchor");
        let flow = all("a: {b: 1\n").unwrap_err();
        assert!(
            flow.message.starts_with("did not find expected"),
            "{flow:?}"
        );
    }

    #[test]
    fn tags_but_str_are_refused_naming_the_tag_and_the_walk_goes_on() {
        let text = "a: !x 1\nb: !!bool \"yes\"\nc: !!binary aGk=\nd: !!map {k: v}\ne: !!str 1\nf: !<tag:e.com,1:t> q\n";
        let mut s = Stream::new(text, 0);
        let mut events = Vec::new();
        loop {
            match s.next().unwrap() {
                (Ev::End, _) => break,
                (ev, _) => events.push(ev),
            }
        }
        let errors = s.take_tag_errors();
        let shown: Vec<(u32, u32, &str)> = errors
            .iter()
            .map(|h| (h.pos.line, h.pos.col, h.message.split('`').nth(1).unwrap()))
            .collect();
        assert_eq!(
            shown,
            [
                (1, 4, "!x"),
                (2, 4, "!!bool"),
                (3, 4, "!!binary"),
                (4, 4, "!!map"),
                (6, 4, "!<tag:e.com,1:t>")
            ]
        );
        assert!(errors.iter().all(|h| h.tag));
        assert!(s.take_tag_errors().is_empty());
        // The `!!bool "yes"` is read as text, never as "yes" accepted silently.
        assert_eq!(
            shown_of(text),
            "{ a '1' b 'yes' c 'aGk=' d { k v } e '1' f 'q' }"
        );
    }

    fn shown_of(text: &str) -> String {
        shown(text)
    }

    #[test]
    fn a_yaml_1_1_directive_changes_nothing() {
        assert_eq!(
            shown("%YAML 1.1\n---\na: yes\nb: 0o17\n"),
            shown("a: yes\nb: 0o17\n")
        );
    }

    #[test]
    fn depth_is_capped_in_linear_time() {
        for text in [
            format!("{}{}", "[".repeat(60_000), "]".repeat(60_000)),
            format!("{}{}", "- ".repeat(MAX_DEPTH + 1), "x"),
            format!("a: {}1{}", "{b: ".repeat(100), "}".repeat(100)),
        ] {
            let err = all(&text).unwrap_err();
            assert!(err.message.contains("nested more than"), "{err:?}");
        }
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(all(&ok).is_ok());
    }

    #[test]
    fn alias_bombs_hit_the_budget() {
        let mut s = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        for (l, prev) in ["b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .zip("abcdefg".chars())
        {
            s.push_str(&format!(
                "{l}: &{l} [{}]\n",
                vec![format!("*{prev}"); 9].join(",")
            ));
        }
        let err = all(&s).unwrap_err();
        assert!(err.message.contains("alias bomb"), "{err:?}");
    }
}
