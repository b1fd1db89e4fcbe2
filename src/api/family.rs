//! The two API families a project can speak (DESIGN.md §12) and the nine operations both offer.
//!
//! A family is a URL path segment and a table of command names, each in its own wire module
//! ([`super::wire`] for `v4/all_member_push`, [`super::wire_timpush`] for `v4/timpush`). The
//! client, the limiter, the envelope and the OK rule are shared: callers name an [`Command`],
//! and the family says what it is called on the wire.

use std::fmt;

use super::{wire, wire_timpush};

/// Which family of REST commands a project speaks (`app.api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Family {
    /// `v4/all_member_push/im_*` (tim-api.md): the seed's family and the default.
    #[default]
    AllMemberPush,
    /// `v4/timpush/*` (timpush-api.md): the Push service's family, with account types.
    Timpush,
}

/// The nine attribute and tag operations, whatever their family calls them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    SetAttrName,
    GetAttrName,
    SetAttr,
    GetAttr,
    RemoveAttr,
    GetTag,
    AddTag,
    RemoveTag,
    /// `im_remove_all_tags` / `clear_all_tags`: served by the emulator, never sent by a
    /// command (it would remove other systems' tags too).
    RemoveAllTags,
}

impl Command {
    /// All nine, in spec order.
    pub const ALL: [Command; 9] = [
        Command::SetAttrName,
        Command::GetAttrName,
        Command::SetAttr,
        Command::GetAttr,
        Command::RemoveAttr,
        Command::GetTag,
        Command::AddTag,
        Command::RemoveTag,
        Command::RemoveAllTags,
    ];

    fn index(self) -> usize {
        Command::ALL
            .iter()
            .position(|c| *c == self)
            .unwrap_or_default()
    }
}

impl Family {
    /// Both families.
    pub const ALL: [Family; 2] = [Family::AllMemberPush, Family::Timpush];

    /// As the project file spells it (`app.api`), which is also the URL path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::AllMemberPush => "all_member_push",
            Family::Timpush => "timpush",
        }
    }

    pub fn parse(s: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// The command's name in this family (the last URL path segment).
    pub fn name(self, command: Command) -> &'static str {
        self.names()[command.index()]
    }

    /// The operation a command name of this family stands for.
    pub fn command(self, name: &str) -> Option<Command> {
        let i = self.names().iter().position(|n| *n == name)?;
        Some(Command::ALL[i])
    }

    /// The family's names, parallel to [`Command::ALL`].
    fn names(self) -> &'static [&'static str; 9] {
        match self {
            Family::AllMemberPush => &wire::command::ALL,
            Family::Timpush => &wire_timpush::command::ALL,
        }
    }

    /// `/v4/{family}/{command}`.
    pub fn path(self, command: Command) -> String {
        format!("/v4/{}/{}", self.as_str(), self.name(command))
    }

    /// Whether attribute slots carry an account type (`AttrTypes`) in this family.
    pub fn has_account_types(self) -> bool {
        self == Family::Timpush
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_names_every_command_and_reads_its_names_back() {
        assert_eq!(
            Family::AllMemberPush.path(Command::SetAttr),
            "/v4/all_member_push/im_set_attr"
        );
        assert_eq!(
            Family::Timpush.path(Command::SetAttr),
            "/v4/timpush/set_attr"
        );
        assert_eq!(
            Family::Timpush.name(Command::RemoveAllTags),
            "clear_all_tags"
        );
        for family in Family::ALL {
            for c in Command::ALL {
                assert_eq!(family.command(family.name(c)), Some(c), "{family} {c:?}");
            }
            assert_eq!(Family::parse(family.as_str()), Some(family));
        }
        // A name of the other family is not a command of this one.
        assert_eq!(Family::Timpush.command("im_set_attr"), None);
        assert_eq!(Family::AllMemberPush.command("set_attr"), None);
        assert_eq!(Family::parse("timPush"), None);
    }
}
