//! The byte encoding of one account's attributes in the store.
//!
//! `[version=1][count]` then per attribute `[name len u8][name][value len u16 LE][value]`.
//! Names are spelled out so the store never depends on slot numbers or on the order of
//! `attributes` in the project file.

use crate::model::{Attrs, Names};

const VERSION: u8 = 1;

pub fn encode(attrs: &Attrs, names: &Names) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + attrs.len() * 24);
    encode_into(&mut out, attrs, names);
    out
}

pub fn encode_into(out: &mut Vec<u8>, attrs: &Attrs, names: &Names) {
    out.clear();
    out.push(VERSION);
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
}

pub fn decode(bytes: &[u8], names: &mut Names) -> Result<Attrs, String> {
    let bad = || "an account's attributes cannot be decoded".to_owned();
    let (&version, rest) = bytes.split_first().ok_or_else(bad)?;
    if version != VERSION {
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
    Ok(attrs)
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
        let bytes = encode(&a, &names);
        // Another run declares the names in another order: values keep their names.
        let mut other = Names::new(&["city".into()]);
        let b = decode(&bytes, &mut other).unwrap();
        assert_eq!(b.get(other.index_of("city").unwrap()), Some("深圳"));
        assert_eq!(b.get(other.index_of("sex").unwrap()), Some(""));
        assert!(decode(&bytes[..bytes.len() - 1], &mut names).is_err());
        assert!(decode(&[], &mut names).is_err());
    }
}
