//! The pure three-way diff of desired `D` against last-applied `L`, and the batching of a plan
//! into requests. No I/O, no clock, deterministic order.
//!
//! Per account and attribute name (DESIGN.md §3):
//! - a name in `D` whose value differs from `L` (or is absent from `L`) is **set**;
//! - a name in `L` but not in `D` is **removed**;
//! - an account in `L` but not in `D` loses all its `L` names and leaves the store;
//! - names and accounts in neither `D` nor `L` are never touched.
//!
//! Tags follow the same rule per (account, tag) (DESIGN.md §9): a tag in `D` not in `L` is
//! added, a tag in `L` not in `D` is removed, a tag in neither is never touched.

mod batch;
pub mod compare;

use std::collections::BTreeMap;

use crate::model::{limits, Account, AccountType, Attrs, Desired, Managed, NameIdx, Names, Tags};

pub use batch::{Batch, BatchKind};

/// What happens to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Not in the store yet.
    Add,
    /// In the store and in the files, with different values.
    Change,
    /// In the store but no longer in the files: it leaves the store.
    Remove,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Change => "change",
            Action::Remove => "remove",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "add" => Some(Action::Add),
            "change" => Some(Action::Change),
            "remove" => Some(Action::Remove),
            _ => None,
        }
    }

    /// `+`, `~` or `-`, as in the text plan.
    pub fn sign(self) -> char {
        match self {
            Action::Add => '+',
            Action::Change => '~',
            Action::Remove => '-',
        }
    }
}

/// The change to one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub account: Account,
    pub action: Action,
    /// Names to set, with their new values.
    pub set: Attrs,
    /// Names to remove.
    pub remove: Vec<NameIdx>,
    /// The last-applied attributes.
    pub before: Attrs,
    /// Tags to add and to remove.
    pub tags: TagChange,
}

/// The tag side of a [`Change`]: both lists sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagChange {
    pub add: Tags,
    pub remove: Tags,
}

impl TagChange {
    /// What takes the recorded tags `before` to `want`.
    pub fn between(before: &Tags, want: &Tags) -> TagChange {
        TagChange {
            add: want.minus(before),
            remove: before.minus(want),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

impl Change {
    /// The account's managed attributes once the change is applied.
    pub fn after(&self) -> Attrs {
        let mut after = self.before.clone();
        for n in &self.remove {
            after.remove(*n);
        }
        for (n, v) in self.set.iter() {
            after.insert(n, v.into());
        }
        after
    }

    /// Attribute values this change touches (sets plus removes).
    pub fn values(&self) -> usize {
        self.set.len() + self.remove.len()
    }

    /// Whether the account loses an attribute value or a tag (for the mass-removal rule).
    pub fn loses_something(&self) -> bool {
        !self.remove.is_empty() || !self.tags.remove.is_empty()
    }
}

/// A plan: a value, built by [`diff`], rendered by `render`, run by `apply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Every name the plan mentions: declared names first, then names only `L` knew.
    pub names: Names,
    /// Attribute-name slots to configure before any value is set (slot → name), as far as the
    /// store knows the app's slots; apply re-reads the app's slots and may pick other free ones.
    pub attribute_names: BTreeMap<u8, String>,
    /// Sorted by account.
    pub changes: Vec<Change>,
    /// Accounts of `D` ∪ `L` that need nothing.
    pub unchanged: usize,
    /// Accounts in `L` (the managed accounts before this plan).
    pub managed: usize,
    /// `--target` patterns: when not empty, the plan is partial and covers only the accounts
    /// matching one of them.
    pub targets: Vec<String>,
    /// Made without a store (none existed yet): everything is new, and the views say so at
    /// their top.
    pub no_state: bool,
}

/// The mass-removal verdict of a plan (DESIGN.md §4), for the plan's views and for `apply`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Safety {
    /// Managed accounts that would lose at least one value.
    pub losing: usize,
    pub managed: usize,
    /// `losing` in percent of `managed`, rounded to one decimal.
    pub removal_percent: f64,
    pub max_removal_percent: f64,
    /// Whether every managed account would lose something (refused whatever their number).
    pub every_account: bool,
    /// Whether `apply` refuses the plan without `--allow-mass-removal`.
    pub apply_refuses: bool,
}

/// The counts of a plan, as its summary line and JSON `summary` show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub remove: usize,
    pub unchanged: usize,
    /// Attribute values set or removed.
    pub values: usize,
    /// Tags added and removed, over all accounts.
    pub tags_added: usize,
    pub tags_removed: usize,
    pub requests: usize,
    /// Accounts that lose at least one value or tag (for the mass-removal rule).
    pub accounts_losing_values: usize,
}

impl Summary {
    pub fn users(&self) -> usize {
        self.add + self.change + self.remove
    }
}

/// Why no plan can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the app would need {needed} attribute names but has only 10 slots (configured: {configured}; new: {new}); attribute names can never be deleted, so drop names from `attributes` instead")]
    TooManySlots {
        needed: usize,
        configured: String,
        new: String,
    },
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.attribute_names.is_empty()
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            unchanged: self.unchanged,
            ..Summary::default()
        };
        let (mut sets, mut removes, mut losing) = (0, 0, 0);
        let (mut adds, mut drops) = (batch::TagRounds::default(), batch::TagRounds::default());
        for c in &self.changes {
            match c.action {
                Action::Add => s.add += 1,
                Action::Change => s.change += 1,
                Action::Remove => s.remove += 1,
            }
            s.values += c.values();
            s.tags_added += c.tags.add.len();
            s.tags_removed += c.tags.remove.len();
            sets += usize::from(!c.set.is_empty());
            removes += usize::from(!c.remove.is_empty());
            losing += usize::from(c.loses_something());
            adds.push(c.tags.add.chunks());
            drops.push(c.tags.remove.chunks());
        }
        s.accounts_losing_values = losing;
        // Configuring names takes two requests: `im_get_attr_name` reads the app's slots first.
        s.requests = 2 * usize::from(!self.attribute_names.is_empty())
            + sets.div_ceil(limits::MAX_BATCH)
            + removes.div_ceil(limits::MAX_BATCH)
            + adds.batches()
            + drops.batches();
        s
    }

    /// Whether the plan removes values or tags from more than `max_percent` of the managed
    /// accounts (when at least 10 accounts are managed), or from every managed account
    /// whatever their number: a small project emptied by a truncated file is wiped as surely.
    pub fn is_mass_removal(&self, max_percent: f64) -> bool {
        let losing = self.summary().accounts_losing_values;
        if self.managed == 0 {
            return false;
        }
        losing >= self.managed
            || (self.managed >= 10 && losing as f64 * 100.0 / self.managed as f64 > max_percent)
    }

    /// The mass-removal verdict against `max_percent`.
    pub fn safety(&self, max_percent: f64) -> Safety {
        let losing = self.summary().accounts_losing_values;
        let percent = if self.managed == 0 {
            0.0
        } else {
            losing as f64 * 100.0 / self.managed as f64
        };
        Safety {
            losing,
            managed: self.managed,
            removal_percent: (percent * 10.0).round() / 10.0,
            max_removal_percent: max_percent,
            every_account: self.managed > 0 && losing >= self.managed,
            apply_refuses: self.is_mass_removal(max_percent),
        }
    }

    /// Whether `--target` limited the plan to some accounts.
    pub fn is_partial(&self) -> bool {
        !self.targets.is_empty()
    }
}

/// Assigns free slots to the declared names the app does not have yet.
///
/// Existing slots keep their numbers (renaming a slot would relabel other people's values);
/// new names take the lowest free slots in declared order.
pub fn assign_slots(
    declared: &[String],
    configured: &BTreeMap<u8, String>,
) -> Result<BTreeMap<u8, String>, PlanError> {
    let new: Vec<&String> = declared
        .iter()
        .filter(|n| !configured.values().any(|c| c == *n))
        .collect();
    let free: Vec<u8> = (0..limits::MAX_ATTRIBUTE_NAMES as u8)
        .filter(|s| !configured.contains_key(s))
        .collect();
    if new.len() > free.len() {
        return Err(PlanError::TooManySlots {
            needed: configured.len() + new.len(),
            configured: join(configured.values()),
            new: join(new.iter().copied()),
        });
    }
    Ok(free.into_iter().zip(new.into_iter().cloned()).collect())
}

/// Checks each declared attribute's account type against the slot it is configured in
/// (`names`/`types`: the app's slots as the store recorded them, or as the API answered;
/// `found` says which, for the message). A slot's type can never change (DESIGN.md §12), so a
/// difference is an error naming every attribute concerned, before anything is sent.
pub fn check_slot_types(
    declared: &[(String, AccountType)],
    names: &BTreeMap<u8, String>,
    types: &BTreeMap<u8, AccountType>,
    found: &str,
) -> Result<(), String> {
    let mut lines = Vec::new();
    for (name, want) in declared {
        let Some((slot, _)) = names.iter().find(|(_, n)| *n == name) else {
            continue;
        };
        let have = types.get(slot).copied().unwrap_or_default();
        if have != *want {
            lines.push(format!(
                "attribute {} is declared `account_type: {want}`, but its slot {slot} is configured for {have} accounts {found}; a slot's account type can never change: declare `account_type: {have}`, or put the {want} values under a new attribute name",
                crate::render::quote(name)
            ));
        }
    }
    if lines.is_empty() {
        Ok(())
    } else {
        Err(lines.join("\n"))
    }
}

fn join<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(|s| s.as_str()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The plan that takes `L` (`last`, sorted by account) to `D`.
///
/// `names` must be the table `last` was decoded with (the declared names first, so indices of
/// `desired` are valid in it). `slots` are the attribute-name slots the store knows.
pub fn diff(
    desired: Desired,
    last: Vec<(Account, Managed)>,
    names: Names,
    slots: &BTreeMap<u8, String>,
) -> Result<Plan, PlanError> {
    debug_assert!(desired.accounts.windows(2).all(|w| w[0].0 < w[1].0));
    debug_assert!(last.windows(2).all(|w| w[0].0 < w[1].0));
    let declared: Vec<String> = (0..names.declared_len())
        .map(|i| names.get(i as NameIdx).to_owned())
        .collect();
    let attribute_names = assign_slots(&declared, slots)?;
    let managed = last.len();
    // At most one change per account of `D` ∪ `L`, reserved at once: a vector grown by
    // doubling leaves its old buffers (~the final size again at a million accounts) resident
    // until the allocator purges them, which is the plan's peak memory. Unused capacity is
    // never touched, so it costs address space, not memory.
    let mut changes = Vec::with_capacity(desired.accounts.len() + last.len());
    let mut unchanged = 0;
    let mut d = desired.accounts.into_iter().peekable();
    let mut l = last.into_iter().peekable();
    loop {
        let order = match (d.peek(), l.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((da, _)), Some((la, _))) => da.cmp(la),
        };
        let change = match order {
            std::cmp::Ordering::Less => {
                let (account, want) = d.next().expect("peeked");
                added(account, want)
            }
            std::cmp::Ordering::Greater => {
                let (account, before) = l.next().expect("peeked");
                Some(removed(account, before))
            }
            std::cmp::Ordering::Equal => {
                let (account, want) = d.next().expect("peeked");
                let (_, before) = l.next().expect("peeked");
                changed(account, want, before)
            }
        };
        match change {
            Some(c) => changes.push(c),
            None => unchanged += 1,
        }
    }
    Ok(Plan {
        names,
        attribute_names,
        changes,
        unchanged,
        managed,
        targets: Vec::new(),
        no_state: false,
    })
}

/// An account of `D` that `L` lacks; `None` when it wants nothing.
fn added(account: Account, want: Managed) -> Option<Change> {
    (!want.is_empty()).then(|| Change {
        account,
        action: Action::Add,
        set: want.attrs,
        remove: Vec::new(),
        before: Attrs::new(),
        tags: TagChange {
            add: want.tags,
            remove: Tags::new(),
        },
    })
}

/// An account of `L` that `D` lacks: it loses everything recorded.
fn removed(account: Account, before: Managed) -> Change {
    Change {
        account,
        action: Action::Remove,
        set: Attrs::new(),
        remove: before.attrs.names().collect(),
        before: before.attrs,
        tags: TagChange {
            add: Tags::new(),
            remove: before.tags,
        },
    }
}

/// An account in both; `None` when they agree.
fn changed(account: Account, want: Managed, before: Managed) -> Option<Change> {
    let set: Attrs = want
        .attrs
        .iter()
        .filter(|(n, v)| before.attrs.get(*n) != Some(*v))
        .map(|(n, v)| (n, v.into()))
        .collect();
    let remove: Vec<NameIdx> = before
        .attrs
        .names()
        .filter(|n| !want.attrs.contains(*n))
        .collect();
    let tags = TagChange::between(&before.tags, &want.tags);
    if set.is_empty() && remove.is_empty() && tags.is_empty() {
        return None;
    }
    Some(Change {
        account,
        action: Action::Change,
        set,
        remove,
        before: before.attrs,
        tags,
    })
}

#[cfg(test)]
mod tests;
