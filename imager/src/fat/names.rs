//! FAT directory-entry naming: path validation, 8.3 short names (exact or generated
//! `NAME~N.EXT`), VFAT long-name entries and their checksum, and the 32-byte short entry.
//! Knows nothing about clusters beyond the number it is given.

use std::collections::BTreeSet;

use super::{FatError, ATTR_LFN, DATE, MAX_NAME_UNITS};

/// UTF-16 unit offsets inside an LFN entry.
pub(super) const LFN_SLOTS: [usize; 13] = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

pub(super) fn short_entry(name: &[u8; 11], attr: u8, cluster: u32, size: u32) -> [u8; 32] {
    let mut e = [0u8; 32];
    e[..11].copy_from_slice(name);
    e[11] = attr;
    for at in [16, 18, 24] {
        e[at..at + 2].copy_from_slice(&DATE.to_le_bytes()); // created, accessed, written
    }
    e[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
    e[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
    e[28..32].copy_from_slice(&size.to_le_bytes());
    e
}

/// LFN entries for `name`, in on-disk order (highest sequence number first).
pub(super) fn lfn_entries(name: &str, checksum: u8) -> Vec<[u8; 32]> {
    let units: Vec<u16> = name.encode_utf16().collect();
    let n = units.len().div_ceil(13);
    (1..=n)
        .rev()
        .map(|seq| {
            let mut e = [0u8; 32];
            e[0] = seq as u8 | if seq == n { 0x40 } else { 0 };
            e[11] = ATTR_LFN;
            e[13] = checksum;
            for (i, at) in LFN_SLOTS.iter().enumerate() {
                let idx = (seq - 1) * 13 + i;
                let unit =
                    units
                        .get(idx)
                        .copied()
                        .unwrap_or(if idx == units.len() { 0 } else { 0xFFFF });
                e[*at..at + 2].copy_from_slice(&unit.to_le_bytes());
            }
            e
        })
        .collect()
}

pub(super) fn lfn_checksum(short: &[u8; 11]) -> u8 {
    short
        .iter()
        .fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

pub(super) fn is_short_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || "!#$%&'()-@^_`{}~".contains(c)
}

/// The 8.3 entry name when `name` already is a valid upper-case 8.3 name.
pub(super) fn exact_short(name: &str) -> Option<[u8; 11]> {
    let (base, ext) = name.split_once('.').unwrap_or((name, ""));
    let ok = |s: &str, max| s.len() <= max && s.chars().all(is_short_char);
    let dot_ok = !name.contains('.') || !ext.is_empty();
    (!base.is_empty() && ok(base, 8) && ok(ext, 3) && dot_ok)
        .then(|| pack(base.as_bytes(), ext.as_bytes()))
}

fn pack(base: &[u8], ext: &[u8]) -> [u8; 11] {
    let mut out = [b' '; 11];
    out[..base.len()].copy_from_slice(base);
    out[8..8 + ext.len()].copy_from_slice(ext);
    out
}

/// Unique short names for one directory's children: exact 8.3 names are kept, others get
/// a basis name (upper-cased, invalid characters → `_`), with a `~N` tail unless the
/// only difference was case. `None` if the tails run out.
pub(super) fn short_names(names: &[&str]) -> Option<Vec<[u8; 11]>> {
    let mut used: BTreeSet<[u8; 11]> = names.iter().filter_map(|n| exact_short(n)).collect();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if let Some(exact) = exact_short(name) {
            out.push(exact);
            continue;
        }
        if let Some(upper) = exact_short(&name.to_ascii_uppercase()) {
            if used.insert(upper) {
                out.push(upper);
                continue;
            }
        }
        let (base, ext) = basis(name);
        let short = (1..1_000_000).find_map(|n| {
            let tail = format!("~{n}");
            let keep = base.len().min(8 - tail.len());
            let candidate = pack(&[&base[..keep], tail.as_bytes()].concat(), &ext);
            used.insert(candidate).then_some(candidate)
        })?;
        out.push(short);
    }
    Some(out)
}

fn basis(name: &str) -> (Vec<u8>, Vec<u8>) {
    let (base, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i + 1..]),
        _ => (name, ""),
    };
    let clean = |s: &str, max: usize| -> Vec<u8> {
        let kept = s.chars().filter(|&c| c != ' ' && c != '.');
        let mapped =
            kept.map(|c| c.to_ascii_uppercase())
                .map(|c| if is_short_char(c) { c as u8 } else { b'_' });
        mapped.take(max).collect()
    };
    let base = clean(base, 8);
    (
        if base.is_empty() { b"_".to_vec() } else { base },
        clean(ext, 3),
    )
}

pub(super) fn split_path(path: &str) -> Result<Vec<&str>, FatError> {
    let parts: Vec<&str> = path.split('/').collect();
    for name in &parts {
        if name.is_empty() {
            return Err(FatError::EmptyComponent(path.into()));
        }
        if let Some(ch) = name
            .chars()
            .find(|&c| c < ' ' || c == '\x7f' || "\"*:<>?\\|".contains(c))
        {
            return Err(FatError::InvalidChar {
                path: path.into(),
                ch,
            });
        }
        if *name == "." || *name == ".." || name.ends_with('.') || name.ends_with(' ') {
            return Err(FatError::InvalidName(path.into()));
        }
        if name.encode_utf16().count() > MAX_NAME_UNITS {
            return Err(FatError::NameTooLong(path.into()));
        }
    }
    Ok(parts)
}
