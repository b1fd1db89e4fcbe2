//! The JSON shapes of the `v4/all_member_push` commands, exactly as spec §2 writes them.
//!
//! One type per format: the client writes its requests and reads the answers with these types,
//! and the emulator reads the requests and writes its answers with the same ones. Every field
//! of a payload is required (an answer without its documented payload is not a success);
//! unknown fields are ignored (newer servers add e.g. `RequestId`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Command names (the last URL path segment).
pub mod command {
    pub const SET_ATTR_NAME: &str = "im_set_attr_name";
    pub const GET_ATTR_NAME: &str = "im_get_attr_name";
    pub const SET_ATTR: &str = "im_set_attr";
    pub const GET_ATTR: &str = "im_get_attr";
    pub const REMOVE_ATTR: &str = "im_remove_attr";
    pub const GET_TAG: &str = "im_get_tag";
    pub const ADD_TAG: &str = "im_add_tag";
    pub const REMOVE_TAG: &str = "im_remove_tag";
    pub const REMOVE_ALL_TAGS: &str = "im_remove_all_tags";

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
        REMOVE_ALL_TAGS,
    ];
}

/// One user's attribute values: `{"To_Account":"u1","Attrs":{"sex":"m"}}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct UserAttrs {
    #[serde(rename = "To_Account")]
    pub to_account: String,
    #[serde(rename = "Attrs")]
    pub attrs: BTreeMap<String, String>,
}

/// One user's attribute names to remove: `{"To_Account":"u1","Attrs":["sex"]}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct UserAttrNames {
    #[serde(rename = "To_Account")]
    pub to_account: String,
    #[serde(rename = "Attrs")]
    pub attrs: Vec<String>,
}

/// One user's tags: `{"To_Account":"u1","Tags":["a"]}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct UserTags {
    #[serde(rename = "To_Account")]
    pub to_account: String,
    #[serde(rename = "Tags")]
    pub tags: Vec<String>,
}

/// `im_set_attr_name` request and `im_get_attr_name` response: slots `"0"`..`"9"` → name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct AttrNames {
    #[serde(rename = "AttrNames")]
    pub attr_names: BTreeMap<String, String>,
}

/// `im_get_attr_name` request: `{}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Empty {}

/// `im_set_attr` request and `im_get_attr` response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct UserAttrsList {
    #[serde(rename = "UserAttrs")]
    pub user_attrs: Vec<UserAttrs>,
}

/// `im_remove_attr` request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct UserAttrNamesList {
    #[serde(rename = "UserAttrs")]
    pub user_attrs: Vec<UserAttrNames>,
}

/// `im_add_tag` / `im_remove_tag` request and `im_get_tag` response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct UserTagsList {
    #[serde(rename = "UserTags")]
    pub user_tags: Vec<UserTags>,
}

/// `im_get_attr`, `im_get_tag`, `im_remove_all_tags` request: `{"To_Account":["u1"]}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Accounts {
    #[serde(rename = "To_Account")]
    pub to_account: Vec<String>,
}

/// One account that failed in an answer that is otherwise OK (partial success, DESIGN.md §12):
/// `{"ErrorCode":70107,"To_Account":"Mary"}`. `ErrorInfo` is optional (every sample omits it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ErrorEntry {
    #[serde(rename = "ErrorCode")]
    pub error_code: i64,
    #[serde(rename = "To_Account")]
    pub to_account: String,
    #[serde(
        rename = "ErrorInfo",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub error_info: String,
}

/// The `ErrorList` of an answer; absent when empty (as the documented samples of a full
/// success are).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ErrorList {
    #[serde(rename = "ErrorList", default, skip_serializing_if = "Vec::is_empty")]
    pub error_list: Vec<ErrorEntry>,
}

/// The envelope of every response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Status {
    #[serde(rename = "ActionStatus", default)]
    pub action_status: String,
    #[serde(rename = "ErrorCode", default)]
    pub error_code: i64,
    #[serde(rename = "ErrorInfo", default)]
    pub error_info: String,
}

impl Status {
    pub fn ok() -> Self {
        Status {
            action_status: "OK".into(),
            error_code: 0,
            error_info: String::new(),
        }
    }

    pub fn fail(code: i64, info: impl Into<String>) -> Self {
        Status {
            action_status: "FAIL".into(),
            error_code: code,
            error_info: info.into(),
        }
    }

    /// Failure is `ErrorCode != 0` or `ActionStatus == "FAIL"` (spec §1).
    pub fn is_ok(&self) -> bool {
        self.error_code == 0 && self.action_status != "FAIL"
    }
}

/// A response: the envelope plus the command's fields, flattened into one object.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Response<T> {
    #[serde(flatten)]
    pub status: Status,
    #[serde(flatten)]
    pub body: T,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn requests_serialize_exactly_as_the_spec() {
        let names = AttrNames {
            attr_names: [("0".into(), "sex".into()), ("1".into(), "city".into())].into(),
        };
        assert_eq!(json(&names), r#"{"AttrNames":{"0":"sex","1":"city"}}"#);
        assert_eq!(json(&Empty {}), "{}");
        let set = UserAttrsList {
            user_attrs: vec![UserAttrs {
                to_account: "u1".into(),
                attrs: [("city".into(), "x".into()), ("sex".into(), "m".into())].into(),
            }],
        };
        assert_eq!(
            json(&set),
            r#"{"UserAttrs":[{"To_Account":"u1","Attrs":{"city":"x","sex":"m"}}]}"#
        );
        let get = Accounts {
            to_account: vec!["u1".into(), "u2".into()],
        };
        assert_eq!(json(&get), r#"{"To_Account":["u1","u2"]}"#);
        let remove = UserAttrNamesList {
            user_attrs: vec![UserAttrNames {
                to_account: "u1".into(),
                attrs: vec!["sex".into(), "city".into()],
            }],
        };
        assert_eq!(
            json(&remove),
            r#"{"UserAttrs":[{"To_Account":"u1","Attrs":["sex","city"]}]}"#
        );
        let tags = UserTagsList {
            user_tags: vec![UserTags {
                to_account: "u1".into(),
                tags: vec!["a".into(), "b".into()],
            }],
        };
        assert_eq!(
            json(&tags),
            r#"{"UserTags":[{"To_Account":"u1","Tags":["a","b"]}]}"#
        );
    }

    #[test]
    fn responses_ignore_unknown_fields_and_detect_failure() {
        let body = r#"{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","RequestId":"x",
            "UserAttrs":[{"To_Account":"u2","Attrs":{}},{"To_Account":"u1","Attrs":{"sex":"m"}}]}"#;
        let st: Status = serde_json::from_str(body).unwrap();
        assert!(st.is_ok());
        let list: UserAttrsList = serde_json::from_str(body).unwrap();
        assert_eq!(list.user_attrs[0].attrs.len(), 0);
        assert_eq!(list.user_attrs[1].attrs["sex"], "m");
        let fail: Status =
            serde_json::from_str(r#"{"ActionStatus":"FAIL","ErrorCode":90033,"ErrorInfo":"x"}"#)
                .unwrap();
        assert!(!fail.is_ok());
        let odd: Status = serde_json::from_str(r#"{"ActionStatus":"FAIL"}"#).unwrap();
        assert!(!odd.is_ok());
    }

    #[test]
    fn response_flattens_envelope_and_body() {
        let r = Response {
            status: Status::ok(),
            body: AttrNames {
                attr_names: [("0".into(), "sex".into())].into(),
            },
        };
        assert_eq!(
            json(&r),
            r#"{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","AttrNames":{"0":"sex"}}"#
        );
    }
}
