//! The JSON shapes of the `v4/timpush` commands (timpush-api.md §2–§7), where they differ from
//! the legacy family's ([`super::wire`]).
//!
//! The account-taking shapes (`UserAttrs`, `UserTags`, `To_Account` lists) are the same as the
//! legacy family's and are reused from there. What is new: the attribute names carry an
//! account type per slot (`AttrTypes`, 0 = UserID, 1 = RegistrationID), and any answer may carry
//! an `ErrorList` of accounts that failed (the shared [`super::wire::ErrorEntry`]). `add_tag`
//! takes an optional `Replace` that timattr never sends: `Replace: 1` would overwrite the tags
//! other systems set, so the request type has no such field at all.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Command names (the last URL path segment), in the order of [`super::wire::command::ALL`].
pub mod command {
    pub const SET_ATTR_NAME: &str = "set_attr_name";
    pub const GET_ATTR_NAME: &str = "get_attr_name";
    pub const SET_ATTR: &str = "set_attr";
    pub const GET_ATTR: &str = "get_attr";
    pub const REMOVE_ATTR: &str = "remove_attr";
    pub const GET_TAG: &str = "get_tag";
    pub const ADD_TAG: &str = "add_tag";
    pub const REMOVE_TAG: &str = "remove_tag";
    pub const CLEAR_ALL_TAGS: &str = "clear_all_tags";

    /// All nine, in spec order.
    pub const ALL: [&str; 9] = [
        SET_ATTR_NAME,
        GET_ATTR_NAME,
        SET_ATTR,
        GET_ATTR,
        REMOVE_ATTR,
        GET_TAG,
        ADD_TAG,
        REMOVE_TAG,
        CLEAR_ALL_TAGS,
    ];
}

/// `set_attr_name` request and `get_attr_name` response: slot → name, and slot → account type.
///
/// `AttrTypes` is optional both ways: older servers answer without it (every slot is then a
/// UserID slot, the documented default 0), and a slot missing from it is type 0 too.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct AttrNames {
    #[serde(rename = "AttrNames")]
    pub attr_names: BTreeMap<String, String>,
    #[serde(
        rename = "AttrTypes",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub attr_types: BTreeMap<String, i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::wire;

    fn json<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap()
    }

    /// The request shapes of timpush-api.md §2 and §4–§7, byte for byte.
    #[test]
    fn requests_serialize_exactly_as_the_spec() {
        let names = AttrNames {
            attr_names: [
                ("0".into(), "sex".into()),
                ("1".into(), "city".into()),
                ("2".into(), "country".into()),
            ]
            .into(),
            attr_types: [("0".into(), 0), ("1".into(), 0), ("2".into(), 1)].into(),
        };
        assert_eq!(
            json(&names),
            r#"{"AttrNames":{"0":"sex","1":"city","2":"country"},"AttrTypes":{"0":0,"1":0,"2":1}}"#
        );
        // The account-taking shapes are the legacy family's.
        let set = wire::UserAttrsList {
            user_attrs: vec![wire::UserAttrs {
                to_account: "379C2F0D-290D-47AE-94D1-919058C39C77".into(),
                attrs: [("sex".into(), "female".into())].into(),
            }],
        };
        assert_eq!(
            json(&set),
            r#"{"UserAttrs":[{"To_Account":"379C2F0D-290D-47AE-94D1-919058C39C77","Attrs":{"sex":"female"}}]}"#
        );
        let add = wire::UserTagsList {
            user_tags: vec![wire::UserTags {
                to_account: "xiaoming".into(),
                tags: vec!["GoldMember".into(), "WeekPassUser".into()],
            }],
        };
        let body = json(&add);
        assert_eq!(
            body,
            r#"{"UserTags":[{"To_Account":"xiaoming","Tags":["GoldMember","WeekPassUser"]}]}"#
        );
        // Never `Replace`: `Replace: 1` overwrites every tag other systems set.
        assert!(!body.contains("Replace"), "{body}");
        let remove = wire::UserAttrNamesList {
            user_attrs: vec![wire::UserAttrNames {
                to_account: "Mary".into(),
                attrs: vec!["sex".into(), "city".into()],
            }],
        };
        assert_eq!(
            json(&remove),
            r#"{"UserAttrs":[{"To_Account":"Mary","Attrs":["sex","city"]}]}"#
        );
    }

    /// The answers of timpush-api.md §3, §6 and §7, as the spec prints them.
    #[test]
    fn answers_read_as_the_spec_prints_them() {
        let names: AttrNames = serde_json::from_str(
            r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,
                "AttrNames":{"0":"sex","1":"city","2":"country"},
                "AttrTypes":{"0":0,"1":0,"2":1}}"#,
        )
        .unwrap();
        assert_eq!(names.attr_types["2"], 1);
        // An older server: no AttrTypes at all.
        let old: AttrNames =
            serde_json::from_str(r#"{"ActionStatus":"OK","ErrorCode":0,"AttrNames":{"0":"sex"}}"#)
                .unwrap();
        assert!(old.attr_types.is_empty());
        let attrs: wire::UserAttrsList = serde_json::from_str(
            r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,
                "UserAttrs":[{"To_Account":"xiaoming","Attrs":{"sex":"male","city":"ShenZhen"}},
                             {"To_Account":"xiaohua","Attrs":{}}],
                "ErrorList":[{"ErrorCode":70107,"To_Account":"Mary"}]}"#,
        )
        .unwrap();
        assert_eq!(attrs.user_attrs.len(), 2);
        let tags: wire::UserTagsList = serde_json::from_str(
            r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,
                "UserTags":[{"To_Account":"xiaoming","Tags":["GoldMember","WeekPassUser"]},
                            {"To_Account":"xiaohong","Tags":["PlatinumMember","MonthPassUser"]}],
                "ErrorList":[{"ErrorCode":70107,"To_Account":"Mary"}]}"#,
        )
        .unwrap();
        assert_eq!(tags.user_tags[1].tags, ["PlatinumMember", "MonthPassUser"]);
        // The partial-success samples of set_attr, remove_attr, remove_tag, clear_all_tags.
        for (sample, code, account) in [
            (
                r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"ErrorList":[{"ErrorCode":90035,"To_Account":"379C2F0D-290D-47AE-94D1-919058C39C77"}]}"#,
                90035,
                "379C2F0D-290D-47AE-94D1-919058C39C77",
            ),
            (
                r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"ErrorList":[{"ErrorCode":70107,"To_Account":"Mary"}]}"#,
                70107,
                "Mary",
            ),
            (
                r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"ErrorList":[{"ErrorCode":70107,"To_Account":"xiaohong"}]}"#,
                70107,
                "xiaohong",
            ),
        ] {
            let list: wire::ErrorList = serde_json::from_str(sample).unwrap();
            assert_eq!(list.error_list.len(), 1);
            assert_eq!(
                (
                    list.error_list[0].error_code,
                    &*list.error_list[0].to_account
                ),
                (code, account)
            );
        }
    }

    /// The account-list requests (get_attr, get_tag, clear_all_tags) and remove_tag.
    #[test]
    fn account_lists_and_remove_tag_serialize_as_the_spec() {
        let get = wire::Accounts {
            to_account: vec!["Mary".into(), "xiaoming".into(), "xiaohua".into()],
        };
        assert_eq!(
            json(&get),
            r#"{"To_Account":["Mary","xiaoming","xiaohua"]}"#
        );
        let remove = wire::UserTagsList {
            user_tags: vec![wire::UserTags {
                to_account: "xiaohong".into(),
                tags: vec!["Platinum Member".into(), "MonthPassUser".into()],
            }],
        };
        assert_eq!(
            json(&remove),
            r#"{"UserTags":[{"To_Account":"xiaohong","Tags":["Platinum Member","MonthPassUser"]}]}"#
        );
        // An empty ErrorList is left out of an answer, as the samples of a full success are.
        assert_eq!(json(&wire::ErrorList::default()), "{}");
    }
}
