//! "Did you mean ...?": the closest known word to a typo, by edit distance. Pure; no I/O.

/// The candidate closest to `word`, when it is close enough to be the word meant: a
/// Jaro-Winkler similarity (case ignored) of at least 0.8, a unique best, and not `word`
/// itself. Jaro-Winkler favours a shared beginning, which is what typos of names keep
/// (`TIM_SECRT` for `TIM_SECRET_KEY`, `cty` for `city`). Its matching window is too narrow
/// for short words (`vpi` is not matched to `vip`), so a word of 3 or more characters with
/// no close match falls back to the one candidate a single edit away (a swap of neighbours,
/// an insertion, a deletion or a replacement).
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    if word.is_empty() {
        return None;
    }
    let lower: Vec<char> = word.chars().flat_map(char::to_lowercase).collect();
    let candidates: Vec<&'a str> = candidates.into_iter().collect();
    let candidates_again = &candidates;
    let mut best: Option<(&'a str, f64)> = None;
    let mut tie = false;
    for &c in &candidates {
        if c == word {
            return None;
        }
        let other: Vec<char> = c.chars().flat_map(char::to_lowercase).collect();
        let score = jaro_winkler(&lower, &other);
        if score < 0.8 {
            continue;
        }
        match best {
            Some((_, b)) if score < b => {}
            Some((prev, b)) if score == b => tie = tie || prev != c,
            _ => {
                best = Some((c, score));
                tie = false;
            }
        }
    }
    match best {
        Some((c, _)) if !tie => Some(c),
        Some(_) => None,
        None => one_edit_away(&lower, candidates_again),
    }
}

/// The only candidate of 3 or more characters one edit from `word` (itself 3 or more).
fn one_edit_away<'a>(word: &[char], candidates: &[&'a str]) -> Option<&'a str> {
    if word.len() < 3 {
        return None;
    }
    let mut found = None;
    for &c in candidates {
        let other: Vec<char> = c.chars().flat_map(char::to_lowercase).collect();
        if other.len() >= 3 && edit_distance_is_one(word, &other) {
            if found.is_some_and(|f| f != c) {
                return None;
            }
            found = Some(c);
        }
    }
    found
}

/// Whether `a` becomes `b` by exactly one swap of neighbours, insertion, deletion or replacement.
fn edit_distance_is_one(a: &[char], b: &[char]) -> bool {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a, b) = (
        &a[..a.len() - suffix.min(a.len())],
        &b[..b.len() - suffix.min(b.len())],
    );
    match (a.len(), b.len()) {
        (1, 1) | (1, 0) | (0, 1) => true,
        (2, 2) => a[0] == b[1] && a[1] == b[0],
        _ => false,
    }
}

/// Jaro similarity boosted by the common prefix (up to 4 characters), in 0..=1.
fn jaro_winkler(a: &[char], b: &[char]) -> f64 {
    let jaro = jaro(a, b);
    let prefix = a.iter().zip(b).take(4).take_while(|(x, y)| x == y).count();
    jaro + prefix as f64 * 0.1 * (1.0 - jaro)
}

fn jaro(a: &[char], b: &[char]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return if a.len() == b.len() { 1.0 } else { 0.0 };
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut b_used = vec![false; b.len()];
    let mut a_matched = Vec::with_capacity(a.len());
    for (i, ca) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        if let Some(j) = (lo..hi).find(|&j| !b_used[j] && b[j] == *ca) {
            b_used[j] = true;
            a_matched.push(*ca);
        }
    }
    let m = a_matched.len();
    if m == 0 {
        return 0.0;
    }
    let b_matched = b.iter().zip(&b_used).filter(|(_, u)| **u).map(|(c, _)| *c);
    let half_transpositions = a_matched
        .iter()
        .zip(b_matched)
        .filter(|(x, y)| **x != *y)
        .count();
    let m = m as f64;
    let t = (half_transpositions / 2) as f64;
    (m / a.len() as f64 + m / b.len() as f64 + (m - t) / m) / 3.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_word() {
        assert_eq!(did_you_mean("cty", ["sex", "city", "tier"]), Some("city"));
        assert_eq!(
            did_you_mean(
                "atributes",
                ["app", "attributes", "users", "state", "apply"]
            ),
            Some("attributes")
        );
        assert_eq!(
            did_you_mean("TIM_SECRT", ["HOME", "TIM_SECRET_KEY", "TIM_SECRET"]),
            Some("TIM_SECRET")
        );
        assert_eq!(
            did_you_mean("TIM_SECRT", ["HOME", "PATH", "TIM_SECRET_KEY"]),
            Some("TIM_SECRET_KEY")
        );
        assert_eq!(did_you_mean("Users", ["users", "defaults"]), Some("users"));
        assert_eq!(did_you_mean("stat", ["state", "apply"]), Some("state"));
        assert_eq!(did_you_mean("ciyt", ["city"]), Some("city"));
    }

    #[test]
    fn far_words_equal_words_and_ties_suggest_nothing() {
        assert_eq!(did_you_mean("zzz", ["sex", "city", "tier"]), None);
        assert_eq!(did_you_mean("city", ["city", "cty"]), None);
        assert_eq!(did_you_mean("ab", ["ax", "ay"]), None);
        assert_eq!(did_you_mean("x", []), None);
        assert_eq!(did_you_mean("", ["a"]), None);
        assert_eq!(did_you_mean("tier", ["city"]), None);
        // A single edit between short words is not a guess when no other word is as close.
        assert_eq!(did_you_mean("vpi", ["beta", "vip"]), Some("vip"));
        assert_eq!(did_you_mean("vpi", ["vip", "pvi"]), None);
        assert_eq!(did_you_mean("fre", ["free", "gold"]), Some("free"));
        assert_eq!(did_you_mean("x", ["m", "f"]), None);
    }

    #[test]
    fn one_edit() {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        for (a, b) in [
            ("vpi", "vip"),
            ("gol", "gold"),
            ("gxld", "gold"),
            ("ggold", "gold"),
        ] {
            assert!(edit_distance_is_one(&c(a), &c(b)), "{a} {b}");
        }
        for (a, b) in [
            ("gold", "gold"),
            ("glod2", "gold"),
            ("dlog", "gold"),
            ("aa", "aaaa"),
        ] {
            assert!(!edit_distance_is_one(&c(a), &c(b)), "{a} {b}");
        }
    }

    #[test]
    fn similarity_is_textbook_jaro_winkler() {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        assert!((jaro_winkler(&c("martha"), &c("marhta")) - 0.961).abs() < 0.001);
        assert!((jaro_winkler(&c("dixon"), &c("dicksonx")) - 0.813).abs() < 0.001);
        assert_eq!(jaro_winkler(&c("abc"), &c("xyz")), 0.0);
    }
}
