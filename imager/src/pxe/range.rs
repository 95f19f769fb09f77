//! The `Range` request header (RFC 9110 §14), reduced to what a boot server needs: one
//! byte range, answered with 206. A list of several ranges is valid but answered with the
//! whole file (200): iPXE, curl and cloud-init never ask for more than one, and a
//! `multipart/byteranges` body is not worth its code here.

/// Why a `Range` header does not select one byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Not a `bytes=` range the grammar allows: the server ignores the header (200).
    #[error("malformed Range header")]
    Malformed,
    /// Well formed, but no byte of the file is selected: 416.
    #[error("range not satisfiable")]
    Unsatisfiable,
}

/// One range spec: `a-b`, `a-` or `-n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    From(u64, Option<u64>),
    Suffix(u64),
}

/// The inclusive byte range `(first, last)` a `Range` header selects in a file of `len`
/// bytes. `Ok(None)`: several ranges, at least one satisfiable; serve the whole file.
pub fn parse_range(header: &str, len: u64) -> Result<Option<(u64, u64)>, RangeError> {
    let (unit, set) = header.trim().split_once('=').ok_or(RangeError::Malformed)?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return Err(RangeError::Malformed);
    }
    // The list rule allows empty elements (`0-1,,5-6`); at least one must be present.
    let specs = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_spec)
        .collect::<Result<Vec<_>, _>>()?;
    let selected: Vec<_> = specs.iter().map(|s| select(*s, len)).collect();
    match selected.as_slice() {
        [] => Err(RangeError::Malformed),
        [one] => one.map(Some).ok_or(RangeError::Unsatisfiable),
        many if many.iter().all(Option::is_none) => Err(RangeError::Unsatisfiable),
        _ => Ok(None),
    }
}

fn parse_spec(s: &str) -> Result<Spec, RangeError> {
    let (first, last) = s.split_once('-').ok_or(RangeError::Malformed)?;
    match (first.is_empty(), last.is_empty()) {
        (true, true) => Err(RangeError::Malformed),
        (true, false) => Ok(Spec::Suffix(digits(last)?)),
        (false, true) => Ok(Spec::From(digits(first)?, None)),
        (false, false) => {
            let (a, b) = (digits(first)?, digits(last)?);
            if b < a {
                return Err(RangeError::Malformed);
            }
            Ok(Spec::From(a, Some(b)))
        }
    }
}

/// A decimal number; one too large for u64 saturates (it lies past any file either way).
fn digits(s: &str) -> Result<u64, RangeError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RangeError::Malformed);
    }
    Ok(s.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

fn select(spec: Spec, len: u64) -> Option<(u64, u64)> {
    let end = len.checked_sub(1)?;
    match spec {
        Spec::From(a, _) if a > end => None,
        Spec::From(a, b) => Some((a, b.map_or(end, |b| b.min(end)))),
        Spec::Suffix(0) => None,
        Spec::Suffix(n) => Some((len.saturating_sub(n), end)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: &str = "99999999999999999999999";
    type Parsed = Result<Option<(u64, u64)>, RangeError>;

    #[test]
    fn ranges_in_a_file_of_1000_bytes() {
        let t = RangeError::Unsatisfiable;
        let m = RangeError::Malformed;
        let max_from = format!("bytes={MAX}-");
        let max_suffix = format!("bytes=-{MAX}");
        let max_last = format!("bytes=10-{MAX}");
        let cases: &[(&str, Parsed)] = &[
            ("bytes=0-9", Ok(Some((0, 9)))),
            ("bytes=0-0", Ok(Some((0, 0)))),
            ("bytes=500-", Ok(Some((500, 999)))),
            ("bytes=-1", Ok(Some((999, 999)))),
            ("bytes=-100", Ok(Some((900, 999)))),
            ("bytes=-5000", Ok(Some((0, 999)))),
            ("bytes=999-999", Ok(Some((999, 999)))),
            ("bytes=990-5000", Ok(Some((990, 999)))),
            ("BYTES=1-2", Ok(Some((1, 2)))),
            (" bytes= 1-2 ", Ok(Some((1, 2)))),
            ("bytes=1-2,", Ok(Some((1, 2)))),
            (&max_suffix, Ok(Some((0, 999)))),
            (&max_last, Ok(Some((10, 999)))),
            ("bytes=0-1,5-6", Ok(None)),
            ("bytes=0-1, 2000-", Ok(None)),
            ("bytes=1000-", Err(t)),
            ("bytes=1000-1001", Err(t)),
            ("bytes=-0", Err(t)),
            ("bytes=1000-,2000-", Err(t)),
            (&max_from, Err(t)),
            ("bytes=5-4", Err(m)),
            ("bytes=-", Err(m)),
            ("bytes=", Err(m)),
            ("bytes=,", Err(m)),
            ("bytes=a-b", Err(m)),
            ("bytes=+1-2", Err(m)),
            ("bytes=1-2-3", Err(m)),
            ("bytes=0-1,x", Err(m)),
            ("bytes 0-9", Err(m)),
            ("items=0-9", Err(m)),
            ("", Err(m)),
        ];
        for (header, want) in cases {
            assert_eq!(parse_range(header, 1000), *want, "{header:?}");
        }
    }

    #[test]
    fn an_empty_file_satisfies_no_range() {
        for header in ["bytes=0-", "bytes=0-0", "bytes=-1", "bytes=-0"] {
            assert_eq!(
                parse_range(header, 0),
                Err(RangeError::Unsatisfiable),
                "{header}"
            );
        }
    }
}
