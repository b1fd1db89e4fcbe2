//! What a plain (unquoted) scalar means: null, a boolean, a number or text.
//!
//! The rules are YAML 1.2's core schema exactly as serde_yaml 0.9 applied them before this
//! loader moved to an event parser, so that files keep their meaning: `yes`, `no`, `on` and
//! `0123` are text; `true`, `~`, `0x1F`, `1.10`, `1e3` and `.inf` are not. Values must be
//! text, so the loader refuses the others and suggests quoting them as written.

/// The kind of a plain scalar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Plain {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Text,
}

impl Plain {
    /// `a number`, `null`...
    pub fn describe(self) -> &'static str {
        match self {
            Plain::Null => "null",
            Plain::Bool(_) => "a boolean",
            Plain::Int(_) | Plain::Float(_) => "a number",
            Plain::Text => "a string",
        }
    }
}

/// Resolves a plain scalar.
pub(crate) fn resolve(v: &str) -> Plain {
    // Most values are words: one look at the first byte settles them.
    match v.as_bytes().first() {
        None => return Plain::Null,
        Some(b) if !(b.is_ascii_digit() || b"+-.~nNtTfF".contains(b)) => return Plain::Text,
        _ => {}
    }
    if matches!(v, "null" | "Null" | "NULL" | "~") {
        return Plain::Null;
    }
    match v {
        "true" | "True" | "TRUE" => return Plain::Bool(true),
        "false" | "False" | "FALSE" => return Plain::Bool(false),
        _ => {}
    }
    if let Some(i) = int(v) {
        return Plain::Int(i);
    }
    if !digits_but_not_number(v) {
        if let Some(f) = float(v) {
            return Plain::Float(f);
        }
    }
    Plain::Text
}

/// Leading zeros followed by digits (`0123`, `-007`) are text in YAML 1.2.
fn digits_but_not_number(v: &str) -> bool {
    let v = v.strip_prefix(['-', '+']).unwrap_or(v);
    v.len() > 1 && v.starts_with('0') && v[1..].bytes().all(|b| b.is_ascii_digit())
}

/// `0x`, `0o` and `0b` integers (an optional `+`, or a `-`), and decimal ones.
fn int(v: &str) -> Option<i128> {
    let (negative, unsigned) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(rest) = unsigned.strip_prefix(prefix) {
            if rest.starts_with(['+', '-']) {
                return None;
            }
            if let Ok(n) = u128::from_str_radix(rest, radix) {
                return signed(negative, n);
            }
        }
    }
    if unsigned.starts_with(['+', '-']) || digits_but_not_number(v) {
        return None;
    }
    let n: u128 = unsigned.parse().ok()?;
    signed(negative, n)
}

fn signed(negative: bool, n: u128) -> Option<i128> {
    if negative {
        0i128.checked_sub_unsigned(n)
    } else {
        i128::try_from(n).ok()
    }
}

fn float(v: &str) -> Option<f64> {
    let unsigned = match v.strip_prefix('+') {
        Some(u) if u.starts_with(['+', '-']) => return None,
        Some(u) => u,
        None => v,
    };
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return Some(f64::INFINITY);
    }
    if matches!(v, "-.inf" | "-.Inf" | "-.INF") {
        return Some(f64::NEG_INFINITY);
    }
    if matches!(v, ".nan" | ".NaN" | ".NAN") {
        return Some(f64::NAN);
    }
    unsigned.parse::<f64>().ok().filter(|f| f.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_yaml 0.9 (the loader's previous parser) made of a plain scalar.
    fn serde_yaml_kind(v: &str) -> &'static str {
        let doc = format!("k: {v}\n");
        let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(&doc) else {
            return "error";
        };
        match value.get("k") {
            Some(serde_yaml::Value::Null) => "null",
            Some(serde_yaml::Value::Bool(_)) => "a boolean",
            Some(serde_yaml::Value::Number(_)) => "a number",
            Some(serde_yaml::Value::String(_)) => "a string",
            _ => "other",
        }
    }

    /// Scalars whose kind must not change: YAML 1.1 words, radix prefixes, signs, leading
    /// zeros, special floats, overflows, and ordinary words.
    const CORPUS: &[&str] = &[
        "",
        "~",
        "null",
        "Null",
        "NULL",
        "nul",
        "true",
        "True",
        "TRUE",
        "tRUE",
        "false",
        "False",
        "yes",
        "no",
        "on",
        "off",
        "y",
        "n",
        "0",
        "1",
        "-1",
        "+1",
        "++1",
        "+-1",
        "-0",
        "0123",
        "-0123",
        "+0123",
        "0x1F",
        "0X1F",
        "-0x1F",
        "+0x1F",
        "0x-1",
        "0o17",
        "0o8",
        "0b101",
        "0b2",
        "1.10",
        "1.",
        ".5",
        "1e3",
        "1E3",
        "-1.5e-3",
        "1_000",
        "1,000",
        ".inf",
        "-.inf",
        "+.inf",
        ".Inf",
        ".NaN",
        ".nan",
        "nan",
        "inf",
        "infinity",
        "NaN",
        "1e400",
        "99999999999999999999999999999999999999999",
        "340282366920938463463374607431768211456",
        "0.0.1",
        "12:30",
        "2024-01-01",
        "x1",
        "0x",
        "0o",
        "0b",
        "-",
        "+",
        ".",
        "t",
        "f",
        "Paris",
        "00",
        "08",
        "09.5",
        "0.5",
    ];

    #[test]
    fn the_rules_are_serde_yaml_09s() {
        for v in CORPUS {
            let expected = serde_yaml_kind(v);
            if expected == "error" || expected == "other" {
                continue;
            }
            assert_eq!(resolve(v).describe(), expected, "{v:?}");
        }
    }

    #[test]
    fn numbers_keep_their_value() {
        assert_eq!(resolve("0x1F"), Plain::Int(31));
        assert_eq!(resolve("-0b11"), Plain::Int(-3));
        assert_eq!(resolve("1.10"), Plain::Float(1.1));
        assert_eq!(resolve("yes"), Plain::Text);
    }
}
