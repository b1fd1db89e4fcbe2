//! The byte encoding of one account's managed attributes and tags in the store.
//!
//! `[version][count]` then per attribute `[name len u8][name][value len u16 LE][value]`.
//! Version 1 ends there: it is what every account without tags is written as, byte for byte
//! what stores made before tags existed hold. Version 2 (an account with tags) goes on with
//! `[tag count u16 LE]` and per tag `[len u8][tag]`, tags sorted; a binary that predates tags
//! refuses it as an unknown encoding instead of reading the account without its tags.
//! Names are spelled out so the store never depends on slot numbers or on the order of
//! `attributes` in the project file.

use crate::model::{Attrs, Managed, Names, TagPool, Tags};

const ATTRS_ONLY: u8 = 1;
const WITH_TAGS: u8 = 2;

pub fn encode(managed: &Managed, names: &Names) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + managed.attrs.len() * 24 + managed.tags.len() * 12);
    encode_into(&mut out, managed, names);
    out
}

pub fn encode_into(out: &mut Vec<u8>, managed: &Managed, names: &Names) {
    let attrs = &managed.attrs;
    out.clear();
    out.push(if managed.tags.is_empty() {
        ATTRS_ONLY
    } else {
        WITH_TAGS
    });
    out.push(attrs.len() as u8);
    for (n, v) in attrs.iter() {
        let name = names.get(n).as_bytes();
        out.push(name.len().min(u8::MAX as usize) as u8);
        out.extend_from_slice(&name[..name.len().min(u8::MAX as usize)]);
        let value = v.as_bytes();
        let len = value.len().min(u16::MAX as usize);
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&value[..len]);
    }
    if managed.tags.is_empty() {
        return;
    }
    let count = managed.tags.len().min(u16::MAX as usize);
    out.extend_from_slice(&(count as u16).to_le_bytes());
    for tag in managed.tags.iter().take(count) {
        let tag = tag.as_bytes();
        let len = tag.len().min(u8::MAX as usize);
        out.push(len as u8);
        out.extend_from_slice(&tag[..len]);
    }
}

/// Whether [`encode`] can hold `tag` without cutting it.
pub fn tag_fits(tag: &str) -> bool {
    !tag.is_empty() && tag.len() <= u8::MAX as usize
}

pub fn decode(bytes: &[u8], names: &mut Names) -> Result<Managed, String> {
    decode_pooled(bytes, names, &mut TagPool::new())
}

/// [`decode`] with the tags taken from `pool`: readers of many accounts share one allocation
/// per distinct tag.
pub fn decode_pooled(
    bytes: &[u8],
    names: &mut Names,
    pool: &mut TagPool,
) -> Result<Managed, String> {
    let bad = || "an account's attributes cannot be decoded".to_owned();
    let (&version, rest) = bytes.split_first().ok_or_else(bad)?;
    if version != ATTRS_ONLY && version != WITH_TAGS {
        return Err(format!("unknown attribute encoding {version}"));
    }
    let (&count, mut rest) = rest.split_first().ok_or_else(bad)?;
    let mut attrs = Attrs::with_capacity(count as usize);
    for _ in 0..count {
        let (&nlen, r) = rest.split_first().ok_or_else(bad)?;
        let (name, r) = split(r, nlen as usize).ok_or_else(bad)?;
        let (vlen, r) = split(r, 2).ok_or_else(bad)?;
        let vlen = u16::from_le_bytes([vlen[0], vlen[1]]) as usize;
        let (value, r) = split(r, vlen).ok_or_else(bad)?;
        let name = std::str::from_utf8(name).map_err(|_| bad())?;
        let value = std::str::from_utf8(value).map_err(|_| bad())?;
        let name = names
            .intern(name)
            .ok_or("more than 255 distinct attribute names")?;
        attrs.insert(name, value.into());
        rest = r;
    }
    let tags = if version == WITH_TAGS {
        decode_tags(rest, pool).ok_or_else(|| "an account's tags cannot be decoded".to_owned())?
    } else {
        Tags::new()
    };
    Ok(Managed { attrs, tags })
}

/// The tag section, which must fill the rest exactly.
fn decode_tags(mut rest: &[u8], pool: &mut TagPool) -> Option<Tags> {
    let (count, r) = split(rest, 2)?;
    let count = u16::from_le_bytes([count[0], count[1]]) as usize;
    rest = r;
    let mut tags = Vec::with_capacity(count.min(rest.len()));
    for _ in 0..count {
        let (&len, r) = rest.split_first()?;
        let (tag, r) = split(r, len as usize)?;
        tags.push(pool.get(std::str::from_utf8(tag).ok()?));
        rest = r;
    }
    (rest.is_empty() && !tags.is_empty()).then(|| Tags::from(tags))
}

fn split(b: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    (b.len() >= n).then(|| b.split_at(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_foreign_names() {
        let mut names = Names::new(&["sex".into(), "city".into()]);
        let mut a = Attrs::new();
        a.insert(1, "深圳".into());
        a.insert(0, "".into());
        let bytes = encode(&a.clone().into(), &names);
        // Another run declares the names in another order: values keep their names.
        let mut other = Names::new(&["city".into()]);
        let b = decode(&bytes, &mut other).unwrap().attrs;
        assert_eq!(b.get(other.index_of("city").unwrap()), Some("深圳"));
        assert_eq!(b.get(other.index_of("sex").unwrap()), Some(""));
        assert!(decode(&bytes[..bytes.len() - 1], &mut names).is_err());
        assert!(decode(&[], &mut names).is_err());
    }

    #[test]
    fn accounts_without_tags_keep_the_old_bytes() {
        let names = Names::new(&["city".into()]);
        let attrs: Attrs = [(0, "x".into())].into_iter().collect();
        // What a store written before tags existed holds for {city: x}.
        assert_eq!(
            encode(&attrs.into(), &names),
            [1, 1, 4, b'c', b'i', b't', b'y', 1, 0, b'x']
        );
    }

    #[test]
    fn tags_round_trip_and_damage_is_refused() {
        let mut names = Names::new(&["city".into()]);
        let managed = Managed {
            attrs: [(0, "x".into())].into_iter().collect(),
            tags: ["vip", "标签", "beta"].into_iter().collect(),
        };
        let bytes = encode(&managed, &names);
        assert_eq!(bytes[0], WITH_TAGS);
        assert_eq!(decode(&bytes, &mut names).unwrap(), managed);
        let only_tags = Managed::new(Attrs::new(), ["a"].into_iter().collect());
        assert_eq!(
            decode(&encode(&only_tags, &names), &mut names).unwrap(),
            only_tags
        );
        for cut in 1..bytes.len() {
            assert!(decode(&bytes[..cut], &mut names).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode(&long, &mut names).is_err());
    }

    #[test]
    fn pooled_decoding_shares_the_tags_of_many_accounts() {
        let mut names = Names::new(&[]);
        let bytes = encode(
            &Managed::new(Attrs::new(), ["vip"].into_iter().collect()),
            &names,
        );
        let mut pool = TagPool::new();
        let a = decode_pooled(&bytes, &mut names, &mut pool).unwrap();
        let b = decode_pooled(&bytes, &mut names, &mut pool).unwrap();
        let (a, b) = (&a.tags.as_slice()[0], &b.tags.as_slice()[0]);
        assert!(crate::model::Tag::ptr_eq(a, b) && &**a == "vip");
    }
}
