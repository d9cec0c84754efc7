#![forbid(unsafe_code)]
//! Input framing shared by the fuzz targets.
//!
//! A target that needs several strings reads them from one byte input split
//! at bytes that never occur in UTF-8 (0xFF, 0xFE, 0xFD), so every string a
//! target can see is reachable and the seed files stay readable text:
//!
//! - 0xFF separates the target's fields;
//! - in a field that holds an options map, 0xFE separates entries and 0xFD
//!   separates an entry's name from its value.
//!
//! Bytes that are not UTF-8 inside a field are decoded lossily (U+FFFD).

use russh::keys::ssh_key::certificate::OptionsMap;

pub const FIELD: u8 = 0xFF;
pub const ENTRY: u8 = 0xFE;
pub const NAME_VALUE: u8 = 0xFD;

/// The first `N` fields of `data`; missing ones are empty, and the last one
/// keeps any further separators (decoded as U+FFFD).
pub fn fields<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&data[..0]; N];
    let mut rest = data;
    for (index, slot) in out.iter_mut().enumerate() {
        if index + 1 == N {
            *slot = rest;
            break;
        }
        match rest.iter().position(|b| *b == FIELD) {
            Some(at) => {
                *slot = &rest[..at];
                rest = &rest[at + 1..];
            }
            None => {
                *slot = rest;
                rest = &rest[rest.len()..];
            }
        }
    }
    out
}

/// A field as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A field as an options map: `name 0xFD value` entries split at 0xFE.
/// A repeated name keeps its last value, as a decoded map would hold one.
pub fn options(bytes: &[u8]) -> OptionsMap {
    let mut map = OptionsMap::new();
    if bytes.is_empty() {
        return map;
    }
    for entry in bytes.split(|b| *b == ENTRY) {
        let (name, value) = match entry.iter().position(|b| *b == NAME_VALUE) {
            Some(at) => (&entry[..at], &entry[at + 1..]),
            None => (entry, &entry[entry.len()..]),
        };
        map.insert(text(name), text(value));
    }
    map
}
