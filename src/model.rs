//! The shared vocabulary: accounts, attribute names and values, the desired state.
//!
//! No I/O here. The in-memory model is kept lean because an app can have millions of users:
//! an app has at most 10 attribute names, so an account's attributes refer to names by a
//! one-byte index into [`Names`] instead of carrying a string per name.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A user account id (`To_Account`): non-empty, at most 32 bytes once validated.
pub type Account = Box<str>;

/// A user tag; derefs to its text. Shared: an app reuses a handful of tags across millions of
/// users, so every occurrence of `"vip"` read by one [`TagPool`] points at one allocation.
/// A thin pointer (the text sits behind a second one) because accounts keep their tags in a
/// slice: at 5.5 tags per user, 8 bytes a slot instead of a fat pointer's 16 halves the slice.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(Arc<Box<str>>);

impl Tag {
    /// Whether both are the same allocation (not just the same text).
    pub fn ptr_eq(a: &Tag, b: &Tag) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl Deref for Tag {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Tag {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Tag {
    fn from(text: &str) -> Self {
        Tag(Arc::new(text.into()))
    }
}

impl From<String> for Tag {
    fn from(text: String) -> Self {
        Tag(Arc::new(text.into_boxed_str()))
    }
}

impl From<Box<str>> for Tag {
    fn from(text: Box<str>) -> Self {
        Tag(Arc::new(text))
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

/// Index of an attribute name in a [`Names`] table.
pub type NameIdx = u8;

/// Limits of the API that the loader, the planner and the emulator share.
pub mod limits {
    /// Attribute names per app (slots `"0"`..`"9"`).
    pub const MAX_ATTRIBUTE_NAMES: usize = 10;
    /// Bytes in a name or a value (UTF-8).
    pub const MAX_ATTR_BYTES: usize = 50;
    /// Bytes in an account id.
    pub const MAX_ACCOUNT_BYTES: usize = 32;
    /// Accounts per request.
    pub const MAX_BATCH: usize = 100;
    /// Bytes in a tag (UTF-8).
    pub const MAX_TAG_BYTES: usize = 50;
    /// Tags a user may hold in total.
    pub const MAX_TAGS_PER_USER: usize = 100;
    /// Tags of one account in one `im_add_tag` / `im_remove_tag` entry.
    pub const MAX_TAGS_PER_ENTRY: usize = 10;
    /// Distinct tags of a whole app (timpush `add_tag`: "the deduplicated total for all
    /// users' tags"); checked on the project's own tags.
    pub const MAX_TAGS_PER_APP: usize = 1000;
}

/// The kind of account an attribute slot (or a tag) applies to (timpush `AttrTypes`): the
/// UserID a user logs in to Chat with (`0`), or the RegistrationID the Push SDK made for a
/// device (`1`). A slot's type is set with its name and can never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum AccountType {
    #[default]
    UserId,
    RegistrationId,
}

impl AccountType {
    /// The `AttrTypes` number.
    pub fn code(self) -> u8 {
        match self {
            AccountType::UserId => 0,
            AccountType::RegistrationId => 1,
        }
    }

    /// The type of an `AttrTypes` number; `None` for anything but 0 and 1.
    pub fn from_code(code: i64) -> Option<AccountType> {
        match code {
            0 => Some(AccountType::UserId),
            1 => Some(AccountType::RegistrationId),
            _ => None,
        }
    }

    /// As the project file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::UserId => "user_id",
            AccountType::RegistrationId => "registration_id",
        }
    }

    pub fn parse(s: &str) -> Option<AccountType> {
        match s {
            "user_id" => Some(AccountType::UserId),
            "registration_id" => Some(AccountType::RegistrationId),
            _ => None,
        }
    }
}

impl fmt::Display for AccountType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The attribute names a run knows: the declared names first, in declared order, then any
/// name only the store knows (a name dropped from `attributes` that still has values to remove).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    names: Vec<String>,
    declared: usize,
}

impl Names {
    pub fn new(declared: &[String]) -> Self {
        Names {
            names: declared.to_vec(),
            declared: declared.len(),
        }
    }

    pub fn declared_len(&self) -> usize {
        self.declared
    }

    pub fn is_declared(&self, idx: NameIdx) -> bool {
        (idx as usize) < self.declared
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn get(&self, idx: NameIdx) -> &str {
        &self.names[idx as usize]
    }

    pub fn index_of(&self, name: &str) -> Option<NameIdx> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| i as NameIdx)
    }

    /// The index of `name`, adding it after the known names when it is new. `None` once 255
    /// names are known: input that holds that many (a damaged store, a forged plan file) is
    /// refused by the caller instead of panicking.
    pub fn intern(&mut self, name: &str) -> Option<NameIdx> {
        if let Some(i) = self.index_of(name) {
            return Some(i);
        }
        if self.names.len() >= u8::MAX as usize {
            return None;
        }
        self.names.push(name.to_owned());
        Some((self.names.len() - 1) as NameIdx)
    }

    pub fn iter(&self) -> impl Iterator<Item = (NameIdx, &str)> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| (i as NameIdx, n.as_str()))
    }
}

/// The attributes of one account: at most one value per name, kept sorted by name index.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Attrs(Vec<(NameIdx, Box<str>)>);

impl Attrs {
    pub fn new() -> Self {
        Attrs(Vec::new())
    }

    pub fn with_capacity(n: usize) -> Self {
        Attrs(Vec::with_capacity(n))
    }

    /// Sets `name` to `value`, replacing an earlier value.
    pub fn insert(&mut self, name: NameIdx, value: Box<str>) {
        match self.0.binary_search_by_key(&name, |(n, _)| *n) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (name, value)),
        }
    }

    pub fn get(&self, name: NameIdx) -> Option<&str> {
        self.0
            .binary_search_by_key(&name, |(n, _)| *n)
            .ok()
            .map(|i| &*self.0[i].1)
    }

    pub fn remove(&mut self, name: NameIdx) -> Option<Box<str>> {
        self.0
            .binary_search_by_key(&name, |(n, _)| *n)
            .ok()
            .map(|i| self.0.remove(i).1)
    }

    pub fn contains(&self, name: NameIdx) -> bool {
        self.get(name).is_some()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (NameIdx, &str)> + '_ {
        self.0.iter().map(|(n, v)| (*n, &**v))
    }

    pub fn names(&self) -> impl Iterator<Item = NameIdx> + '_ {
        self.0.iter().map(|(n, _)| *n)
    }

    /// A debug view with the names spelled out.
    pub fn display<'a>(&'a self, names: &'a Names) -> impl fmt::Display + 'a {
        struct D<'a>(&'a Attrs, &'a Names);
        impl fmt::Display for D<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("{")?;
                for (i, (n, v)) in self.0.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}: {:?}", self.1.get(n), v)?;
                }
                f.write_str("}")
            }
        }
        D(self, names)
    }
}

impl fmt::Debug for Attrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(NameIdx, Box<str>)> for Attrs {
    fn from_iter<I: IntoIterator<Item = (NameIdx, Box<str>)>>(iter: I) -> Self {
        let mut attrs = Attrs::new();
        for (n, v) in iter {
            attrs.insert(n, v);
        }
        attrs
    }
}

/// Hands out one shared [`Tag`] per distinct text, for readers of many tags (users files,
/// the store). Local to one reader (or one parse piece): no lock, and a few copies of the
/// same tag across pieces cost nothing worth a global table.
#[derive(Default)]
pub struct TagPool(HashSet<Tag>);

impl TagPool {
    pub fn new() -> Self {
        TagPool::default()
    }

    /// The shared tag with this text.
    pub fn get(&mut self, text: &str) -> Tag {
        if let Some(tag) = self.0.get(text) {
            return tag.clone();
        }
        let tag = Tag::from(text);
        self.0.insert(tag.clone());
        tag
    }
}

/// The tags of one account (DESIGN.md §9): sorted, each once. An empty list costs no allocation,
/// so a project without tags pays 16 bytes per account for the feature.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Tags(Box<[Tag]>);

impl Tags {
    pub fn new() -> Self {
        Tags::default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, tag: &str) -> bool {
        self.0.binary_search_by(|t| (**t).cmp(tag)).is_ok()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.iter().map(|t| &**t)
    }

    pub fn as_slice(&self) -> &[Tag] {
        &self.0
    }

    /// The tags of `self` that `other` lacks, in order.
    pub fn minus(&self, other: &Tags) -> Tags {
        Tags(
            self.0
                .iter()
                .filter(|t| !other.contains(t))
                .cloned()
                .collect(),
        )
    }

    /// `self` with `add` added and `remove` taken away.
    pub fn edited<'a>(
        &self,
        add: impl IntoIterator<Item = &'a str>,
        remove: impl IntoIterator<Item = &'a str>,
    ) -> Tags {
        let mut all: Vec<Tag> = self.0.to_vec();
        all.extend(add.into_iter().map(Into::into));
        let gone: Vec<&str> = remove.into_iter().collect();
        all.retain(|t| !gone.contains(&&**t));
        Tags::from(all)
    }

    /// The `i`-th run of at most [`limits::MAX_TAGS_PER_ENTRY`] tags: what one request entry
    /// carries for this account.
    pub fn chunk(&self, i: usize) -> &[Tag] {
        let start = (i * limits::MAX_TAGS_PER_ENTRY).min(self.0.len());
        let end = (start + limits::MAX_TAGS_PER_ENTRY).min(self.0.len());
        &self.0[start..end]
    }

    /// How many entries the tags need.
    pub fn chunks(&self) -> usize {
        self.0.len().div_ceil(limits::MAX_TAGS_PER_ENTRY)
    }
}

impl From<Vec<Tag>> for Tags {
    /// Sorts and drops duplicates.
    fn from(mut v: Vec<Tag>) -> Self {
        v.sort_unstable();
        v.dedup();
        Tags(v.into_boxed_slice())
    }
}

impl<S: Into<Tag>> FromIterator<S> for Tags {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Tags::from(iter.into_iter().map(Into::into).collect::<Vec<_>>())
    }
}

impl fmt::Debug for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// What the tool manages of one account: its attribute values and its tags. Desired `D` and
/// last-applied `L` are both lists of these, per account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Managed {
    pub attrs: Attrs,
    pub tags: Tags,
}

impl Managed {
    pub fn new(attrs: Attrs, tags: Tags) -> Self {
        Managed { attrs, tags }
    }

    /// Nothing managed: such an account is not (or no longer) in the store.
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty() && self.tags.is_empty()
    }
}

impl From<Attrs> for Managed {
    fn from(attrs: Attrs) -> Self {
        Managed {
            attrs,
            tags: Tags::new(),
        }
    }
}

/// The desired state `D`: every account of the users files with its merged attributes and tags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// The declared attribute names (`attributes` of the project file).
    pub names: Names,
    /// Sorted by account, each account once.
    pub accounts: Vec<(Account, Managed)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_stay_sorted_and_unique() {
        let mut a = Attrs::new();
        a.insert(3, "c".into());
        a.insert(1, "a".into());
        a.insert(3, "d".into());
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![(1, "a"), (3, "d")]);
        assert_eq!(a.remove(1).as_deref(), Some("a"));
        assert_eq!(a.get(1), None);
    }

    #[test]
    fn tags_sort_dedup_and_chunk() {
        let t: Tags = ["b", "a", "b"].into_iter().collect();
        assert_eq!(t.iter().collect::<Vec<_>>(), vec!["a", "b"]);
        assert!(t.contains("a") && !t.contains("c"));
        let other: Tags = ["a"].into_iter().collect();
        assert_eq!(t.minus(&other).iter().collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(
            t.edited(["c"], ["a"]).iter().collect::<Vec<_>>(),
            vec!["b", "c"]
        );
        let many: Tags = (0..23).map(|i| format!("t{i:02}")).collect();
        assert_eq!(many.chunks(), 3);
        assert_eq!(many.chunk(0).len(), 10);
        assert_eq!(&*many.chunk(2)[2], "t22");
        assert!(many.chunk(3).is_empty());
        assert_eq!(Tags::new().chunks(), 0);
        assert!(Managed::default().is_empty());
    }

    #[test]
    fn a_tag_pool_hands_out_one_allocation_per_text() {
        let mut pool = TagPool::new();
        let (a, b, c) = (
            pool.get("vip"),
            pool.get(&String::from("vip")),
            pool.get("beta"),
        );
        assert!(Tag::ptr_eq(&a, &b) && &*a == "vip");
        assert!(!Tag::ptr_eq(&a, &c) && &*c == "beta");
        // Shared or not, tags compare by text.
        let t: Tags = vec![a, c].into();
        let u: Tags = ["vip", "beta"].into_iter().collect();
        assert_eq!(t, u);
    }

    #[test]
    fn names_intern_after_declared() {
        let mut n = Names::new(&["sex".into(), "city".into()]);
        assert_eq!(n.intern("city"), Some(1));
        assert_eq!(n.intern("old"), Some(2));
        for i in 3..255 {
            assert!(n.intern(&format!("n{i}")).is_some());
        }
        assert_eq!(n.intern("one too many"), None);
        assert!(!n.is_declared(2));
        assert_eq!(n.get(2), "old");
    }
}
