//! Accounts are kept in blocks of consecutive accounts, one sled entry per block, keyed by the
//! block's first account (`b/<first account>`).
//!
//! A million accounts are then ~8,000 sled entries instead of a million: scanning the whole
//! store (every plan does) costs little next to parsing the desired files, and a batch of 100
//! accounts (sorted, as plans are) rewrites one or two blocks.
//!
//! Block encoding (version 2): `[version=2][count u32 LE][crc32 u32 LE]`, then per account
//! `[account len u8][account][attrs len u16 LE][attrs]` (attrs as `codec` encodes them). The
//! CRC-32 covers the block's key, its count and its entries, so a flipped byte, a cut block or a
//! block filed under another key is found on read instead of being read as other data.
//! Version 1 (format 2 stores) had no checksum; [`decode_legacy`] reads it for the migration.

pub const PREFIX: &[u8] = b"b/";
/// A block that grows beyond this is split.
pub const MAX_ENTRIES: usize = 256;
/// The size blocks are split (and restored) into.
pub const SPLIT_TO: usize = 128;

const VERSION: u8 = 2;
const LEGACY_VERSION: u8 = 1;
const HEADER: usize = 9;

pub fn key(first: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(PREFIX.len() + first.len());
    k.extend_from_slice(PREFIX);
    k.extend_from_slice(first.as_bytes());
    k
}

/// The accounts of a block, decoded for editing.
pub type Entries = Vec<(Box<str>, Vec<u8>)>;

/// Encodes sorted entries (at least one) as the block stored under `key(first account)`.
pub fn encode(entries: &[(Box<str>, Vec<u8>)]) -> Vec<u8> {
    let size: usize = entries.iter().map(|(a, v)| 3 + a.len() + v.len()).sum();
    let mut out = Vec::with_capacity(HEADER + size);
    out.push(VERSION);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    for (account, attrs) in entries {
        out.push(account.len() as u8);
        out.extend_from_slice(account.as_bytes());
        out.extend_from_slice(&(attrs.len() as u16).to_le_bytes());
        out.extend_from_slice(attrs);
    }
    let first = entries.first().map(|(a, _)| &**a).unwrap_or("");
    let sum = checksum(&key(first), &out);
    out[5..9].copy_from_slice(&sum.to_le_bytes());
    out
}

/// CRC-32 of the key, the version and count, and the entries (the checksum field left out).
fn checksum(key: &[u8], block: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(key);
    crc.update(&block[..5.min(block.len())]);
    crc.update(block.get(HEADER..).unwrap_or_default());
    crc.sum()
}

/// Checks a block read under `key`: its checksum, its structure, that its accounts are valid
/// UTF-8 in strictly ascending order and that the first one is the key's. Returns the number of
/// accounts and the last account (to check the order across blocks).
pub fn verify<'a>(key: &[u8], bytes: &'a [u8]) -> Result<(usize, &'a str), String> {
    let count = count(bytes)?;
    let stored = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
    if checksum(key, bytes) != stored {
        return Err(format!(
            "the block of {} fails its checksum",
            describe_key(key)
        ));
    }
    let mut first: Option<&str> = None;
    let mut previous: Option<&str> = None;
    for_each(bytes, |account, _| {
        if previous.is_some_and(|p| p >= account) {
            return Err(format!(
                "the block of {} is out of order",
                describe_key(key)
            ));
        }
        first.get_or_insert(account);
        previous = Some(account);
        Ok(())
    })?;
    match (first, previous) {
        (Some(first), Some(last)) if key.get(PREFIX.len()..) == Some(first.as_bytes()) => {
            Ok((count, last))
        }
        (Some(_), _) => Err(format!(
            "the block of {} is filed under another key",
            describe_key(key)
        )),
        _ => Err(format!("the block of {} is empty", describe_key(key))),
    }
}

/// A block's key for messages: its first account, escaped.
fn describe_key(key: &[u8]) -> String {
    let account = key.get(PREFIX.len()..).unwrap_or_default();
    format!("{:?}", String::from_utf8_lossy(account))
}

/// The number of accounts in an encoded block.
pub fn count(bytes: &[u8]) -> Result<usize, String> {
    header(bytes, VERSION).map(|(n, _)| n)
}

fn header(bytes: &[u8], version: u8) -> Result<(usize, &[u8]), String> {
    let len = if version == VERSION { HEADER } else { 5 };
    match bytes {
        [v, a, b, c, d, ..] if *v == version && bytes.len() >= len => {
            Ok((u32::from_le_bytes([*a, *b, *c, *d]) as usize, &bytes[len..]))
        }
        [v, ..] if *v != version => Err(format!("unknown block encoding {v}")),
        _ => Err("a block is truncated".into()),
    }
}

/// Visits each `(account, encoded attrs)` of a block without copying.
pub fn for_each<'a>(
    bytes: &'a [u8],
    f: impl FnMut(&'a str, &'a [u8]) -> Result<(), String>,
) -> Result<usize, String> {
    let (count, rest) = header(bytes, VERSION)?;
    entries(count, rest, f)
}

fn entries<'a>(
    count: usize,
    mut rest: &'a [u8],
    mut f: impl FnMut(&'a str, &'a [u8]) -> Result<(), String>,
) -> Result<usize, String> {
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
    if !rest.is_empty() {
        return Err("a block has bytes after its last account".into());
    }
    Ok(count)
}

pub fn decode(bytes: &[u8]) -> Result<Entries, String> {
    let mut entries = Vec::with_capacity(count(bytes)?.min(MAX_ENTRIES * 2));
    for_each(bytes, |a, v| {
        entries.push((a.into(), v.to_vec()));
        Ok(())
    })?;
    Ok(entries)
}

/// Decodes a version 1 block (format 2 stores), for the migration.
pub fn decode_legacy(bytes: &[u8]) -> Result<Entries, String> {
    let (count, rest) = header(bytes, LEGACY_VERSION)?;
    let mut out = Vec::with_capacity(count.min(MAX_ENTRIES * 2));
    entries(count, rest, |a, v| {
        out.push((a.into(), v.to_vec()));
        Ok(())
    })?;
    Ok(out)
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

    fn sample() -> Entries {
        vec![("a".into(), vec![1, 2]), ("b".into(), vec![])]
    }

    #[test]
    fn round_trip_and_truncation() {
        let entries = sample();
        let bytes = encode(&entries);
        assert_eq!(decode(&bytes).unwrap(), entries);
        assert_eq!(count(&bytes).unwrap(), 2);
        assert_eq!(verify(&key("a"), &bytes).unwrap(), (2, "b"));
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(&[9, 0, 0, 0, 0]).is_err());
        assert!(verify(&key("a"), &bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_found() {
        let entries: Entries = (0..20)
            .map(|i| {
                (
                    format!("user{i:03}").into(),
                    vec![1, 1, 3, b'c', b'i', b't'],
                )
            })
            .collect();
        let bytes = encode(&entries);
        let k = key("user000");
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[i] ^= bit;
                assert!(verify(&k, &damaged).is_err(), "byte {i} ^ {bit:#x}");
            }
            assert!(verify(&k, &bytes[..i]).is_err(), "cut at {i}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(verify(&k, &longer).is_err());
    }

    #[test]
    fn a_block_under_another_key_or_out_of_order_is_refused() {
        let bytes = encode(&sample());
        let err = verify(&key("0"), &bytes).unwrap_err();
        assert!(err.contains("checksum"), "{err}");
        let unordered: Entries = vec![("b".into(), vec![]), ("a".into(), vec![])];
        let err = verify(&key("b"), &encode(&unordered)).unwrap_err();
        assert!(err.contains("out of order"), "{err}");
        let twice: Entries = vec![("a".into(), vec![]), ("a".into(), vec![])];
        assert!(verify(&key("a"), &encode(&twice)).is_err());
        assert!(verify(&key(""), &encode(&[])).is_err());
    }

    #[test]
    fn legacy_blocks_decode_for_the_migration() {
        let mut legacy = vec![1, 1, 0, 0, 0, 2, b'u', b'1', 1, 0, 7];
        assert_eq!(
            decode_legacy(&legacy).unwrap(),
            vec![("u1".into(), vec![7])]
        );
        // The current decoder does not take them for current blocks.
        assert!(decode(&legacy).is_err());
        legacy.pop();
        assert!(decode_legacy(&legacy).is_err());
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
