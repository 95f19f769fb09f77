//! Parsing of a Debian `Packages` index (deb822 stanzas) into [`Package`] records.
//!
//! Owns the stanza scanner and the relationship-field grammar (Depends, Pre-Depends,
//! Provides). It must not verify signatures, compare versions or resolve dependencies; fields
//! other than the ones in [`Package`] are skipped without being copied.

/// A version relation operator in a dependency (`<<`, `<=`, `=`, `>=`, `>>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Relation {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl Relation {
    /// The operator as written in control files.
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Lt => "<<",
            Relation::Le => "<=",
            Relation::Eq => "=",
            Relation::Ge => ">=",
            Relation::Gt => ">>",
        }
    }
}

/// One alternative of a dependency group: `name[:arch] [(op version)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    pub name: String,
    /// Architecture qualifier without the colon (`any`, `native`, `amd64`), if present.
    pub arch: Option<String>,
    pub constraint: Option<(Relation, String)>,
}

/// One entry of `Provides`: a (virtual) name, optionally with an exact version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provide {
    pub name: String,
    pub version: Option<String>,
}

/// One binary package stanza. `priority` and `multi_arch` are empty when absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Groups are ANDed; the inner vector holds the `|` alternatives in order.
    pub depends: Vec<Vec<Dep>>,
    pub pre_depends: Vec<Vec<Dep>>,
    pub provides: Vec<Provide>,
    pub filename: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
    pub essential: bool,
    pub priority: String,
    pub multi_arch: String,
}

/// Errors from [`parse_packages`]; `line` is 1-based (the stanza start for missing fields).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackagesError {
    #[error("stanza at line {line}: missing field {field}")]
    MissingField { field: &'static str, line: usize },
    #[error("line {line}: malformed: {reason}")]
    Malformed { line: usize, reason: &'static str },
    #[error("line {line}: bad Size")]
    BadSize { line: usize },
    #[error("line {line}: bad SHA256 (want 64 hex digits)")]
    BadSha256 { line: usize },
    #[error("line {line}: bad relation in {field}: {reason}")]
    BadRelation {
        field: &'static str,
        line: usize,
        reason: &'static str,
    },
}

/// The fields we keep, in [`Stanza::fields`] index order.
const FIELDS: [&str; 12] = [
    "Package",
    "Version",
    "Architecture",
    "Depends",
    "Pre-Depends",
    "Provides",
    "Filename",
    "Size",
    "SHA256",
    "Essential",
    "Priority",
    "Multi-Arch",
];
const F_PACKAGE: usize = 0;
const F_VERSION: usize = 1;
const F_ARCH: usize = 2;
const F_DEPENDS: usize = 3;
const F_PRE_DEPENDS: usize = 4;
const F_PROVIDES: usize = 5;
const F_FILENAME: usize = 6;
const F_SIZE: usize = 7;
const F_SHA256: usize = 8;
const F_ESSENTIAL: usize = 9;
const F_PRIORITY: usize = 10;
const F_MULTI_ARCH: usize = 11;

/// Byte range of a (possibly folded) field value within the input, plus its line.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    line: usize,
}

/// The kept fields of the stanza being scanned.
#[derive(Default)]
struct Stanza {
    first_line: usize,
    fields: [Option<Span>; 12],
    /// Index of the field that continuation lines extend, if it is one we keep.
    current: Option<usize>,
    /// Whether any field line has been seen.
    open: bool,
}

/// Parses a whole `Packages` file. Stanzas are separated by blank lines; `#` comment lines
/// are not allowed in Packages files and are treated as malformed field lines.
pub fn parse_packages(text: &str) -> Result<Vec<Package>, PackagesError> {
    let mut out = Vec::with_capacity(text.len() / 900);
    let mut st = Stanza::default();
    let mut offset = 0;
    for (idx, raw) in text.split('\n').enumerate() {
        let line_no = idx + 1;
        let start = offset;
        offset += raw.len() + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let blank = line.is_empty() || (line.starts_with([' ', '\t']) && line.trim().is_empty());
        if blank {
            if st.open {
                out.push(build(text, &st)?);
            }
            st = Stanza::default();
            continue;
        }
        scan_line(&mut st, line, start, line_no)?;
    }
    if st.open {
        out.push(build(text, &st)?);
    }
    Ok(out)
}

/// Records one non-blank line into the stanza.
fn scan_line(
    st: &mut Stanza,
    line: &str,
    start: usize,
    line_no: usize,
) -> Result<(), PackagesError> {
    if line.starts_with([' ', '\t']) {
        if !st.open {
            return Err(PackagesError::Malformed {
                line: line_no,
                reason: "continuation line before any field",
            });
        }
        if let Some(span) = st.current.and_then(|f| st.fields[f].as_mut()) {
            span.end = start + line.len();
        }
        return Ok(());
    }
    let Some(colon) = line.find(':') else {
        return Err(PackagesError::Malformed {
            line: line_no,
            reason: "field line without ':'",
        });
    };
    if !st.open {
        st.open = true;
        st.first_line = line_no;
    }
    let name = &line[..colon];
    st.current = FIELDS.iter().position(|f| *f == name);
    if let Some(f) = st.current {
        st.fields[f] = Some(Span {
            start: start + colon + 1,
            end: start + line.len(),
            line: line_no,
        });
    }
    Ok(())
}

/// Builds a [`Package`] from a completed stanza.
fn build(text: &str, st: &Stanza) -> Result<Package, PackagesError> {
    let get = |f: usize| st.fields[f].map(|s| (text[s.start..s.end].trim(), s.line));
    let need = |f: usize| {
        get(f).ok_or(PackagesError::MissingField {
            field: FIELDS[f],
            line: st.first_line,
        })
    };
    let (name, _) = need(F_PACKAGE)?;
    let (version, _) = need(F_VERSION)?;
    let (arch, _) = need(F_ARCH)?;
    let (filename, _) = need(F_FILENAME)?;
    let (size, size_line) = need(F_SIZE)?;
    let (sha256, sha_line) = need(F_SHA256)?;
    let size = size
        .parse::<u64>()
        .map_err(|_| PackagesError::BadSize { line: size_line })?;
    if sha256.len() != 64 || !sha256.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(PackagesError::BadSha256 { line: sha_line });
    }
    let rel = |f: usize| match get(f) {
        Some((v, line)) => parse_relations(v, FIELDS[f], line),
        None => Ok(Vec::new()),
    };
    let provides = match get(F_PROVIDES) {
        Some((v, line)) => parse_provides(v, line)?,
        None => Vec::new(),
    };
    Ok(Package {
        name: name.to_owned(),
        version: version.to_owned(),
        arch: arch.to_owned(),
        depends: rel(F_DEPENDS)?,
        pre_depends: rel(F_PRE_DEPENDS)?,
        provides,
        filename: filename.to_owned(),
        size,
        sha256: sha256.to_ascii_lowercase(),
        essential: get(F_ESSENTIAL).is_some_and(|(v, _)| v == "yes"),
        priority: get(F_PRIORITY)
            .map(|(v, _)| v.to_owned())
            .unwrap_or_default(),
        multi_arch: get(F_MULTI_ARCH)
            .map(|(v, _)| v.to_owned())
            .unwrap_or_default(),
    })
}

/// Parses a Depends-style value: `a (>= 1) | b:any, c [amd64] <!nocheck>`.
/// Empty groups (e.g. from a trailing comma) are skipped.
pub fn parse_relations(
    value: &str,
    field: &'static str,
    line: usize,
) -> Result<Vec<Vec<Dep>>, PackagesError> {
    let mut groups = Vec::new();
    for group in value.split(',') {
        if group.trim().is_empty() {
            continue;
        }
        let alts = group
            .split('|')
            .map(|alt| parse_dep(alt, field, line))
            .collect::<Result<Vec<_>, _>>()?;
        groups.push(alts);
    }
    Ok(groups)
}

/// Parses one alternative; architecture restrictions and build profiles are skipped.
fn parse_dep(alt: &str, field: &'static str, line: usize) -> Result<Dep, PackagesError> {
    let bad = |reason| PackagesError::BadRelation {
        field,
        line,
        reason,
    };
    let s = alt.trim_start();
    let end = s
        .find(|c: char| c.is_whitespace() || matches!(c, '(' | '[' | '<' | ':'))
        .unwrap_or(s.len());
    let (name, mut rest) = s.split_at(end);
    if name.is_empty() {
        return Err(bad("empty package name"));
    }
    let mut arch = None;
    if let Some(r) = rest.strip_prefix(':') {
        let end = r
            .find(|c: char| c.is_whitespace() || matches!(c, '(' | '[' | '<'))
            .unwrap_or(r.len());
        if end == 0 {
            return Err(bad("empty architecture qualifier"));
        }
        arch = Some(r[..end].to_owned());
        rest = &r[end..];
    }
    let mut constraint = None;
    let mut rest = rest.trim_start();
    if let Some(r) = rest.strip_prefix('(') {
        let (inner, after) = r.split_once(')').ok_or(bad("unclosed '('"))?;
        constraint = Some(parse_constraint(inner).ok_or(bad("bad version constraint"))?);
        rest = after.trim_start();
    }
    skip_restrictions(rest).ok_or(bad("unexpected text"))?;
    Ok(Dep {
        name: name.to_owned(),
        arch,
        constraint,
    })
}

/// Parses `>= 1.0` (also the obsolete `<` and `>`, which dpkg reads as `<=` and `>=`).
fn parse_constraint(inner: &str) -> Option<(Relation, String)> {
    let s = inner.trim();
    let ops = [
        ("<<", Relation::Lt),
        ("<=", Relation::Le),
        (">=", Relation::Ge),
        (">>", Relation::Gt),
        ("=", Relation::Eq),
        ("<", Relation::Le),
        (">", Relation::Ge),
    ];
    let (op, rel) = ops.iter().find(|(op, _)| s.starts_with(op))?;
    let version = s[op.len()..].trim();
    if version.is_empty() || version.contains(char::is_whitespace) {
        return None;
    }
    Some((*rel, version.to_owned()))
}

/// Accepts any sequence of `[...]` and `<...>` blocks; `None` on other trailing text.
fn skip_restrictions(mut rest: &str) -> Option<()> {
    loop {
        rest = rest.trim_start();
        let close = match rest.chars().next() {
            None => return Some(()),
            Some('[') => ']',
            Some('<') => '>',
            Some(_) => return None,
        };
        let (_, after) = rest.split_once(close)?;
        rest = after;
    }
}

/// Parses a Provides value: `foo, bar (= 1.0)`. Only `=` is allowed.
pub fn parse_provides(value: &str, line: usize) -> Result<Vec<Provide>, PackagesError> {
    let mut out = Vec::new();
    for group in parse_relations(value, "Provides", line)? {
        let [dep] = <[Dep; 1]>::try_from(group).map_err(|_| PackagesError::BadRelation {
            field: "Provides",
            line,
            reason: "alternatives in Provides",
        })?;
        let version = match dep.constraint {
            None => None,
            Some((Relation::Eq, v)) => Some(v),
            Some(_) => {
                return Err(PackagesError::BadRelation {
                    field: "Provides",
                    line,
                    reason: "Provides version must use '='",
                })
            }
        };
        out.push(Provide {
            name: dep.name,
            version,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const SAMPLE: &str = include_str!("../../testdata/debian/Packages.sample");
    const SHA: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn dep(name: &str, arch: Option<&str>, c: Option<(Relation, &str)>) -> Dep {
        let arch = arch.map(str::to_owned);
        let constraint = c.map(|(r, v)| (r, v.to_owned()));
        let name = name.to_owned();
        Dep {
            name,
            arch,
            constraint,
        }
    }

    #[test]
    fn parses_sample() {
        let pkgs = parse_packages(SAMPLE).unwrap();
        assert_eq!(pkgs.len(), 2);
        let libc = &pkgs[0];
        assert_eq!(
            (libc.name.as_str(), libc.version.as_str()),
            ("libc6", "2.41-12")
        );
        assert_eq!(libc.depends, vec![vec![dep("libgcc-s1", None, None)]]);
        assert_eq!((libc.size, libc.multi_arch.as_str()), (2851408, "same"));
        assert_eq!(libc.sha256, "a".repeat(64));
        let c = &pkgs[1];
        let want = vec![
            vec![dep("libc6", None, Some((Relation::Ge, "2.34")))],
            vec![dep("runc", None, Some((Relation::Ge, "1.0.0~rc2~")))],
            vec![
                dep("libseccomp2", Some("any"), Some((Relation::Ge, "2.5.0"))),
                dep("libseccomp-dev", None, None),
            ],
            vec![dep("adduser", Some("native"), None)],
        ];
        assert_eq!(c.depends, want);
        let pre = vec![vec![dep(
            "init-system-helpers",
            None,
            Some((Relation::Ge, "1.54~")),
        )]];
        assert_eq!(c.pre_depends, pre);
        let prov: Vec<_> = c
            .provides
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_deref()))
            .collect();
        assert_eq!(
            prov,
            [
                ("cri-runtime", None),
                ("containerd-api", Some("1.7")),
                ("oci", Some("2"))
            ]
        );
        assert!(c.essential && !libc.essential);
        assert_eq!(
            (c.priority.as_str(), c.sha256.as_str()),
            ("important", &*"b".repeat(64))
        );
    }

    fn mal(line: usize, reason: &'static str) -> PackagesError {
        PackagesError::Malformed { line, reason }
    }

    fn rel(field: &'static str, line: usize, reason: &'static str) -> PackagesError {
        PackagesError::BadRelation {
            field,
            line,
            reason,
        }
    }

    #[test]
    fn bad_stanzas() {
        let full = format!(
            "Package: p\nVersion: 1\nArchitecture: all\nFilename: f\nSize: 1\nSHA256: {SHA}\n"
        );
        let drop = |f: &str| {
            let kept: Vec<_> = full.lines().filter(|l| !l.starts_with(f)).collect();
            format!("\n\n{}", kept.join("\n"))
        };
        let add = |extra: &str| format!("{full}{extra}\n");
        let missing = |field| PackagesError::MissingField { field, line: 3 };
        let cases = [
            (drop("Package:"), missing("Package")),
            (drop("Version:"), missing("Version")),
            (drop("Architecture:"), missing("Architecture")),
            (drop("Filename:"), missing("Filename")),
            (drop("SHA256:"), missing("SHA256")),
            (drop("Size:"), missing("Size")),
            (
                full.replace("Size: 1", "Size: -1"),
                PackagesError::BadSize { line: 5 },
            ),
            (
                full.replace(SHA, "abc"),
                PackagesError::BadSha256 { line: 6 },
            ),
            (
                format!(" c\n{full}"),
                mal(1, "continuation line before any field"),
            ),
            (add("junk"), mal(7, "field line without ':'")),
            (add("Depends: a (>= 1"), rel("Depends", 7, "unclosed '('")),
            (
                add("Depends: a (~ 1)"),
                rel("Depends", 7, "bad version constraint"),
            ),
            (
                add("Depends: a:"),
                rel("Depends", 7, "empty architecture qualifier"),
            ),
            (
                add("Pre-Depends: a | | b"),
                rel("Pre-Depends", 7, "empty package name"),
            ),
            (add("Depends: a b"), rel("Depends", 7, "unexpected text")),
            (
                add("Provides: a (>= 1)"),
                rel("Provides", 7, "Provides version must use '='"),
            ),
            (
                add("Provides: a | b"),
                rel("Provides", 7, "alternatives in Provides"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_packages(&text).unwrap_err(), want, "input:\n{text}");
        }
        assert_eq!(parse_packages(&full).unwrap().len(), 1);
        let two = format!("{full} \t\n{}", full.replace('\n', "\r\n"));
        assert_eq!(parse_packages(&two).unwrap().len(), 2);
        assert_eq!(parse_packages("\n\n").unwrap(), vec![]);
    }

    #[test]
    fn real_packages_file() {
        let Ok(text) = std::fs::read_to_string("/tmp/trixie-Packages") else {
            println!("skipped: /tmp/trixie-Packages absent");
            return;
        };
        let t = std::time::Instant::now();
        let pkgs = parse_packages(&text).unwrap();
        println!("parsed {} stanzas in {:?}", pkgs.len(), t.elapsed());
        assert!(pkgs.len() > 50_000);
        assert!(pkgs
            .iter()
            .any(|p| p.name == "libc6" && p.multi_arch == "same"));
    }
}
