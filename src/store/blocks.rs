//! Accounts are kept in blocks of consecutive accounts, one sled entry per block, keyed by the
//! block's first account (`b/<first account>`).
//!
//! A million accounts are then ~8,000 sled entries instead of a million: scanning the whole
//! store (every plan does) costs little next to parsing the desired files, and a batch of 100
//! accounts (sorted, as plans are) rewrites one or two blocks.
//!
//! Block encoding: `[version=1][count u32 LE]`, then per account
//! `[account len u8][account][attrs len u16 LE][attrs]` (attrs as `codec` encodes them).

pub const PREFIX: &[u8] = b"b/";
/// A block that grows beyond this is split.
pub const MAX_ENTRIES: usize = 256;
/// The size blocks are split (and restored) into.
pub const SPLIT_TO: usize = 128;

const VERSION: u8 = 1;

pub fn key(first: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(PREFIX.len() + first.len());
    k.extend_from_slice(PREFIX);
    k.extend_from_slice(first.as_bytes());
    k
}

/// The accounts of a block, decoded for editing.
pub type Entries = Vec<(Box<str>, Vec<u8>)>;

pub fn encode(entries: &[(Box<str>, Vec<u8>)]) -> Vec<u8> {
    let size: usize = entries.iter().map(|(a, v)| 3 + a.len() + v.len()).sum();
    let mut out = Vec::with_capacity(5 + size);
    out.push(VERSION);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (account, attrs) in entries {
        out.push(account.len() as u8);
        out.extend_from_slice(account.as_bytes());
        out.extend_from_slice(&(attrs.len() as u16).to_le_bytes());
        out.extend_from_slice(attrs);
    }
    out
}

/// The number of accounts in an encoded block.
pub fn count(bytes: &[u8]) -> Result<usize, String> {
    header(bytes).map(|(n, _)| n)
}

fn header(bytes: &[u8]) -> Result<(usize, &[u8]), String> {
    match bytes {
        [VERSION, a, b, c, d, rest @ ..] => {
            Ok((u32::from_le_bytes([*a, *b, *c, *d]) as usize, rest))
        }
        [v, ..] if *v != VERSION => Err(format!("unknown block encoding {v}")),
        _ => Err("a block is truncated".into()),
    }
}

/// Visits each `(account, encoded attrs)` of a block without copying.
pub fn for_each<'a>(
    bytes: &'a [u8],
    mut f: impl FnMut(&'a str, &'a [u8]) -> Result<(), String>,
) -> Result<usize, String> {
    let (count, mut rest) = header(bytes)?;
    let bad = || "a block is truncated".to_owned();
    for _ in 0..count {
        let (&alen, r) = rest.split_first().ok_or_else(bad)?;
        let (account, r) = split(r, alen as usize).ok_or_else(bad)?;
        let (len, r) = split(r, 2).ok_or_else(bad)?;
        let (attrs, r) = split(r, u16::from_le_bytes([len[0], len[1]]) as usize).ok_or_else(bad)?;
        let account = std::str::from_utf8(account).map_err(|_| "an account id is not UTF-8")?;
        f(account, attrs)?;
        rest = r;
    }
    Ok(count)
}

pub fn decode(bytes: &[u8]) -> Result<Entries, String> {
    let mut entries = Vec::with_capacity(count(bytes)?);
    for_each(bytes, |a, v| {
        entries.push((a.into(), v.to_vec()));
        Ok(())
    })?;
    Ok(entries)
}

fn split(b: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    (b.len() >= n).then(|| b.split_at(n))
}

/// Cuts sorted entries into blocks of at most [`MAX_ENTRIES`], as even as possible.
pub fn chunks(entries: &[(Box<str>, Vec<u8>)]) -> impl Iterator<Item = &[(Box<str>, Vec<u8>)]> {
    let parts = entries.len().div_ceil(SPLIT_TO).max(1);
    let size = entries.len().div_ceil(parts).max(1);
    entries.chunks(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let entries: Entries = vec![("a".into(), vec![1, 2]), ("b".into(), vec![])];
        let bytes = encode(&entries);
        assert_eq!(decode(&bytes).unwrap(), entries);
        assert_eq!(count(&bytes).unwrap(), 2);
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(&[9, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn chunks_stay_under_the_limit() {
        let entries: Entries = (0..1000)
            .map(|i| (format!("{i:04}").into(), vec![]))
            .collect();
        let sizes: Vec<usize> = chunks(&entries).map(|c| c.len()).collect();
        assert!(
            sizes
                .iter()
                .all(|s| *s <= MAX_ENTRIES && *s >= SPLIT_TO / 2),
            "{sizes:?}"
        );
        assert_eq!(sizes.iter().sum::<usize>(), 1000);
    }
}
