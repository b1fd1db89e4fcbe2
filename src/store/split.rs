//! What the planner needs from the store, and the merge that makes it, written once for every
//! backend: the desired accounts (sorted) walked beside the stored ones (in account order),
//! each backend only saying how it compares and decodes a stored account.

use crate::model::{Account, Managed};

/// What the planner needs from the store: `L` only where it can differ from `D`.
#[derive(Debug, Default)]
pub struct Split {
    /// Desired accounts whose attributes or tags differ from (or are missing in) the store.
    pub changed: Vec<(Account, Managed)>,
    /// Last-applied attributes and tags of the changed accounts and of accounts only in the
    /// store.
    pub last: Vec<(Account, Managed)>,
    /// Desired accounts the store holds exactly.
    pub unchanged: usize,
    /// Accounts in the store.
    pub managed: usize,
}

/// What a backend says about one stored account.
pub enum Stored {
    /// It holds exactly the desired account (found without decoding it).
    Same,
    /// Its last-applied attributes and tags.
    Last(Managed),
}

/// The merge of the desired accounts with the stored ones, fed in account order.
pub struct Merge<K> {
    split: Split,
    wanted: std::iter::Peekable<std::vec::IntoIter<(Account, Managed)>>,
    /// Stored accounts it refuses (outside `--target`) are only counted as managed.
    keep: K,
}

impl<K: Fn(&str) -> bool> Merge<K> {
    pub fn new(desired: Vec<(Account, Managed)>, keep: K) -> Merge<K> {
        Merge {
            split: Split::default(),
            wanted: desired.into_iter().peekable(),
            keep,
        }
    }

    /// Visits the next stored account. `read` is given the desired account of the same id, if
    /// any, and says whether the store holds exactly it or what it holds (it must decode when
    /// given `None`).
    pub fn visit<E>(
        &mut self,
        account: &str,
        read: impl FnOnce(Option<&Managed>) -> Result<Stored, E>,
    ) -> Result<(), E> {
        if !(self.keep)(account) {
            return Ok(());
        }
        while let Some(d) = self.wanted.next_if(|(a, _)| &**a < account) {
            self.split.changed.push(d);
        }
        match self.wanted.next_if(|(a, _)| &**a == account) {
            Some(d) => match read(Some(&d.1))? {
                Stored::Same => self.split.unchanged += 1,
                // Equal once decoded: stored in another spelling, still unchanged.
                Stored::Last(last) if last == d.1 => self.split.unchanged += 1,
                Stored::Last(last) => {
                    self.split.last.push((account.into(), last));
                    self.split.changed.push(d);
                }
            },
            None => {
                if let Stored::Last(last) = read(None)? {
                    self.split.last.push((account.into(), last));
                }
            }
        }
        Ok(())
    }

    /// The split, once every stored account was visited; `managed` is how many there are.
    pub fn finish(mut self, managed: usize) -> Split {
        self.split.changed.extend(self.wanted);
        self.split.managed = managed;
        self.split
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attrs;

    fn m(v: &str) -> Managed {
        let attrs: Attrs = [(0u8, v.into())].into_iter().collect();
        attrs.into()
    }

    #[test]
    fn merges_changed_unchanged_store_only_and_outside_target() {
        let desired = vec![
            ("a".into(), m("1")),
            ("b".into(), m("2")),
            ("d".into(), m("4")),
            ("f".into(), m("6")),
        ];
        let stored = [("b", m("2")), ("c", m("3")), ("d", m("x")), ("e", m("5"))];
        let mut merge = Merge::new(desired, |a: &str| a != "e");
        for (account, held) in &stored {
            merge
                .visit::<()>(account, |want| {
                    Ok(match want {
                        Some(w) if w == held => Stored::Same,
                        _ => Stored::Last(held.clone()),
                    })
                })
                .unwrap();
        }
        let split = merge.finish(stored.len());
        let names =
            |v: &Vec<(Account, Managed)>| v.iter().map(|(a, _)| a.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&split.changed), ["a", "d", "f"]);
        assert_eq!(names(&split.last), ["c", "d"]);
        assert_eq!((split.unchanged, split.managed), (1, 4));
    }
}
