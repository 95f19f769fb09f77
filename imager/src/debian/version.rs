//! dpkg version ordering: `[epoch:]upstream[-revision]` compared the way dpkg does.
//!
//! Owns only the comparison of version strings and relation checks. It must not parse
//! package indices or know about dependency resolution.

use std::cmp::Ordering;

use crate::debian::packages::Relation;

/// Compares two Debian version strings like `dpkg --compare-versions`.
///
/// Epochs are compared numerically (missing means 0), then the upstream part, then the
/// revision (missing means empty, which sorts like "0"). Within a part, non-digit runs compare
/// character by character with `~` before everything (even the end of the string) and letters
/// before other characters; digit runs compare numerically. Malformed input never panics:
/// it is compared with the same rules.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    verrevcmp(ea, eb)
        .then_with(|| verrevcmp(ua, ub))
        .then_with(|| verrevcmp(ra, rb))
}

/// Whether `version` stands in relation `rel` to `want` (e.g. `version >= want`).
pub fn satisfies(version: &str, rel: Relation, want: &str) -> bool {
    let ord = compare(version, want);
    match rel {
        Relation::Lt => ord == Ordering::Less,
        Relation::Le => ord != Ordering::Greater,
        Relation::Eq => ord == Ordering::Equal,
        Relation::Ge => ord != Ordering::Less,
        Relation::Gt => ord == Ordering::Greater,
    }
}

/// Splits into (epoch, upstream, revision); absent parts are empty strings.
fn split(v: &str) -> (&str, &str, &str) {
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) => (e, r),
        None => ("", v),
    };
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((u, r)) => (u, r),
        None => (rest, ""),
    };
    (epoch, upstream, revision)
}

/// Sort weight of one non-digit character (`None` = end of the run).
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp` over one version part.
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        loop {
            let ca = a.first().copied().filter(|c| !c.is_ascii_digit());
            let cb = b.first().copied().filter(|c| !c.is_ascii_digit());
            if ca.is_none() && cb.is_none() {
                break;
            }
            let diff = order(ca).cmp(&order(cb));
            if diff != Ordering::Equal {
                return diff;
            }
            a = &a[usize::from(ca.is_some())..];
            b = &b[usize::from(cb.is_some())..];
        }
        let (na, ra) = take_digits(a);
        let (nb, rb) = take_digits(b);
        let diff = cmp_numeric(na, nb);
        if diff != Ordering::Equal {
            return diff;
        }
        a = ra;
        b = rb;
    }
    Ordering::Equal
}

/// Splits a leading run of ASCII digits off `s`.
fn take_digits(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
    s.split_at(n)
}

/// Compares digit strings numerically without overflow (leading zeros ignored).
fn cmp_numeric(a: &[u8], b: &[u8]) -> Ordering {
    let strip = |s: &'_ [u8]| -> usize { s.iter().take_while(|&&c| c == b'0').count() };
    let (a, b) = (&a[strip(a)..], &b[strip(b)..]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use Ordering::{Equal, Greater, Less};

    #[test]
    fn compare_table() {
        let cases: &[(&str, &str, Ordering)] = &[
            ("1.0~rc1", "1.0", Less),
            ("1:0.1", "2.0", Greater),
            ("1.0-1", "1.0-1.1", Less),
            ("2.30", "2.4", Greater),
            ("1.0a", "1.0b", Less),
            ("1.0", "1.0+b1", Less),
            ("1.0~", "1.0", Less),
            ("~~", "~~a", Less),
            ("~~a", "~", Less),
            ("~", "", Less),
            ("1.0", "1.0", Equal),
            ("0:1.0", "1.0", Equal),
            ("1.0-0", "1.0", Equal),
            ("1.0", "1.0-", Equal),
            ("001.02", "1.2", Equal),
            ("1.2.3", "1.2.3.0", Less),
            ("1.0a", "1.0", Greater),
            ("1.0.", "1.0a", Greater),
            ("1.0+", "1.0a", Greater),
            ("1.0-1~bpo1", "1.0-1", Less),
            ("2:1.0", "1:9.9", Greater),
            ("10:1", "9:1", Greater),
            ("1.0-2", "1.0-10", Less),
            ("1.7.24~ds1-6+deb13u1", "1.7.24~ds1-6", Greater),
            ("257.13-1~deb13u1", "257.13-1", Less),
            ("1.0-a-1", "1.0-a-2", Less),
            (
                "99999999999999999999999",
                "99999999999999999999998",
                Greater,
            ),
            ("a", "B", Greater),
            ("1:1.4.8-2", "1.4.9", Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), *want, "compare({a:?}, {b:?})");
            assert_eq!(compare(b, a), want.reverse(), "compare({b:?}, {a:?})");
        }
    }

    #[test]
    fn satisfies_table() {
        let cases: &[(&str, Relation, &str, bool)] = &[
            ("2.41-1", Relation::Ge, "2.38", true),
            ("2.36", Relation::Ge, "2.38", false),
            ("1.0", Relation::Lt, "1.0", false),
            ("0.9", Relation::Lt, "1.0", true),
            ("1.0", Relation::Le, "1.0", true),
            ("1.0", Relation::Eq, "0:1.0", true),
            ("1.0-1", Relation::Eq, "1.0", false),
            ("1.1", Relation::Gt, "1.0", true),
            ("1.0", Relation::Gt, "1.0", false),
            ("1.0~rc1", Relation::Ge, "1.0", false),
        ];
        for (v, rel, want, ok) in cases {
            assert_eq!(satisfies(v, *rel, want), *ok, "{v} {rel:?} {want}");
        }
    }
}
