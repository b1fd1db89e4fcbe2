//! JSON Schemas of the project file and of users files (`timattr schema project|users`), so
//! editors validate and complete them through the `# yaml-language-server: $schema=...` line.
//!
//! The schemas of the JSON outputs (`timattr schema plan|drift|state-list|state-show|history|
//! doctor|codeclimate`) are the committed files `schema/<name>.schema.json`, compiled in;
//! `tests/it/output_schemas.rs` validates real outputs of each command against them.
//!
//! They mirror the loader's rules in `desired`; `tests/it/schema.rs` keeps the two in sync.

use serde_json::{json, Value};

use crate::model::limits;

/// The regions of DESIGN.md §1.
pub const REGIONS: [&str; 7] = [
    "china",
    "singapore",
    "seoul",
    "frankfurt",
    "silicon-valley",
    "jakarta",
    "tokyo",
];

/// The schema of a JSON output, as committed in `schema/` (project and users are built here).
pub fn output(kind: crate::cli::SchemaKind) -> Value {
    use crate::cli::SchemaKind;
    let text = match kind {
        SchemaKind::Project => return project(),
        SchemaKind::Users => return users(),
        SchemaKind::Plan => include_str!("../schema/plan.schema.json"),
        SchemaKind::Drift => include_str!("../schema/drift.schema.json"),
        SchemaKind::StateList => include_str!("../schema/state-list.schema.json"),
        SchemaKind::StateShow => include_str!("../schema/state-show.schema.json"),
        SchemaKind::History => include_str!("../schema/history.schema.json"),
        SchemaKind::Doctor => include_str!("../schema/doctor.schema.json"),
        SchemaKind::Codeclimate => include_str!("../schema/codeclimate.schema.json"),
    };
    // Compiled-in files: the unit test below parses every one, so this cannot fail at run time.
    serde_json::from_str(text).expect("a committed schema is valid JSON")
}

/// `{name, values}` / `{name, pattern}`: an attribute with a value policy (DESIGN.md §11).
fn attribute_entry(name: &Value) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["name"],
        "properties": {
            "name": name,
            "values": value_list(0, "the only values the attribute may hold"),
            "pattern": pattern("a regular expression the whole value must match (regex crate syntax)"),
            "account_type": {"enum": ["user_id", "registration_id"], "default": "user_id",
                "description": "which accounts the attribute's slot is for (api: timpush only): UserIDs, or the RegistrationIDs of the Push SDK; a slot's type can never change"}
        },
        "not": {"required": ["values", "pattern"]},
        "description": "an attribute with a policy (`values` or `pattern`, not both) and/or an account type"
    })
}

/// A non-empty list of distinct strings of `min..=50` bytes.
fn value_list(min: usize, what: &str) -> Value {
    json!({
        "type": "array", "minItems": 1, "uniqueItems": true,
        "items": {"type": "string", "minLength": min, "maxLength": limits::MAX_ATTR_BYTES},
        "description": what
    })
}

fn pattern(what: &str) -> Value {
    json!({"type": "string", "minLength": 1, "format": "regex", "description": what})
}

/// `attributes`: plain names and `{name, values|pattern}` entries.
fn attributes() -> Value {
    let name = json!({"type": "string", "minLength": 1, "maxLength": limits::MAX_ATTR_BYTES,
        "not": {"const": "tags"}});
    json!({
        "type": "array",
        "maxItems": limits::MAX_ATTRIBUTE_NAMES,
        "uniqueItems": true,
        "items": {"anyOf": [name.clone(), attribute_entry(&name)]},
        "description": "the app's attribute names (at most 10, each at most 50 bytes): a plain name takes any value; {name, values} or {name, pattern} says what it may hold. `tags` is not a name: in users files it is the user's list of tags"
    })
}

/// The top-level `tags` policy.
fn tags() -> Value {
    json!({
        "description": "which tags exist: {allowed: [...]} or {pattern: '...'}; validate, plan and apply refuse any other tag",
        "anyOf": [
            {"type": "null"},
            {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "allowed": value_list(1, "the tags that exist"),
                    "pattern": pattern("a regular expression every whole tag must match (regex crate syntax)")
                },
                "oneOf": [{"required": ["allowed"]}, {"required": ["pattern"]}]
            }
        ]
    })
}

pub fn project() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://timattr.dev/schema/project.json",
        "title": "timattr project file (timattr.yaml)",
        "type": "object",
        "additionalProperties": false,
        "required": ["app", "attributes", "users"],
        // `account_type` exists only in the timpush family.
        "if": {
            "required": ["attributes"],
            "properties": {"attributes": {"type": "array", "contains": {"type": "object", "required": ["account_type"]}}}
        },
        "then": {
            "required": ["app"],
            "properties": {"app": {"required": ["api"], "properties": {"api": {"const": "timpush"}}}}
        },
        "properties": {
            "app": {
                "type": "object",
                "additionalProperties": false,
                "required": ["sdkappid", "admin"],
                "properties": {
                    "sdkappid": {"type": "integer", "minimum": 0, "maximum": u32::MAX,
                        "description": "SDKAppID of the Chat app"},
                    "admin": {"type": "string", "minLength": 1, "maxLength": limits::MAX_ACCOUNT_BYTES,
                        "description": "app admin account used as `identifier`"},
                    "region": {"enum": REGIONS, "description": "region of the app; picks the API host"},
                    "endpoint": {"type": "string",
                        "description": "overrides region: https://host[:port], http:// only for loopback, or `embedded` for the built-in emulator",
                        "anyOf": [{"const": "embedded"}, {"pattern": "^https?://"}]},
                    "secret_env": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "default": "TIM_SECRET_KEY",
                        "description": "name of the environment variable holding the SecretKey"},
                    "api": {"enum": ["all_member_push", "timpush"], "default": "all_member_push",
                        "description": "the API family: v4/all_member_push (the default) or v4/timpush (the Push service's, with account types)"}
                },
                "anyOf": [{"required": ["region"]}, {"required": ["endpoint"]}]
            },
            "attributes": attributes(),
            "tags": tags(),
            "users": {
                "type": "array", "minItems": 1,
                "items": {"type": "string", "minLength": 1},
                "description": "glob patterns of users files, relative to this file"
            },
            "state": {
                "default": "state",
                "description": "where the last-applied state lives: a sled directory relative to this file, or a PostgreSQL URL without a password (postgres://user@host:5432/db?sslmode=verify-full); TIMATTR_STATE overrides it",
                "oneOf": [
                    {"type": "string", "minLength": 1},
                    {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["url"],
                        "properties": {
                            "url": {"type": "string", "pattern": "^postgres(ql)?://",
                                "description": "the PostgreSQL URL, without a password (PGPASSWORD or TIMATTR_STATE carries it)"},
                            "name": {"type": "string", "minLength": 1,
                                "description": "this project's name in the database (default: app-<sdkappid>)"}
                        }
                    }
                ]
            },
            "apply": {
                "type": ["object", "null"],
                "additionalProperties": false,
                "properties": {
                    "rate_limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 100},
                    "concurrency": {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 16},
                    "max_removal_percent": {"type": "number", "minimum": 0, "maximum": 100, "default": 10}
                }
            }
        }
    })
}

pub fn users() -> Value {
    let tags = json!({
        "type": "array",
        "maxItems": limits::MAX_TAGS_PER_USER,
        "uniqueItems": true,
        "items": {"type": "string", "minLength": 1, "maxLength": limits::MAX_TAG_BYTES,
            "description": "a tag: a string of 1 to 50 UTF-8 bytes; quote numbers and booleans"},
        "description": "the user's tags: at most 100 distinct strings of 1 to 50 UTF-8 bytes; a user's list replaces the list in `defaults`, [] means none. The schema counts characters, not bytes: timattr refuses a tag of fewer than 50 non-ASCII characters that is longer than 50 bytes"
    });
    // At most 10 attributes (the declared names), and the `tags` list besides.
    let most = limits::MAX_ATTRIBUTE_NAMES;
    let attrs = json!({
        "type": "object",
        "propertyNames": {"minLength": 1, "maxLength": limits::MAX_ATTR_BYTES},
        "properties": {"tags": tags},
        "additionalProperties": {"type": "string", "maxLength": limits::MAX_ATTR_BYTES,
            "description": "a string of at most 50 UTF-8 bytes: quote numbers and booleans"},
        "if": {"required": ["tags"]},
        "then": {"maxProperties": most + 1},
        "else": {"maxProperties": most}
    });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://timattr.dev/schema/users.json",
        "title": "timattr users file",
        // An empty file (no users yet) is valid; `required` only applies to objects.
        "type": ["object", "null"],
        "additionalProperties": false,
        "required": ["users"],
        "properties": {
            "defaults": {"description": "merged under every user of this file; its `tags` are those of the users without a `tags` list", "anyOf": [attrs, {"type": "null"}]},
            "users": {
                "description": "account id → attributes and `tags`; a file meant to hold no users says `users: {}`",
                "type": "object",
                "propertyNames": {"minLength": 1, "maxLength": limits::MAX_ACCOUNT_BYTES},
                "additionalProperties": {"anyOf": [attrs, {"type": "null"}]}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_output_schema_is_json_schema_with_an_id() {
        for kind in crate::cli::SchemaKind::value_variants() {
            let schema = output(*kind);
            assert!(schema["$schema"].is_string(), "{kind:?}");
            assert!(schema["$id"].is_string(), "{kind:?}");
        }
    }
}
