//! Discovering a Debian mirror from the host's APT configuration.
//!
//! Owns reading `/etc/apt/sources.list` and `/etc/apt/sources.list.d/*.{list,sources}` and
//! picking one HTTP(S) mirror URI from them. It must not contact the network or guess a
//! mirror: when the host has none, callers must ask the user for one.

use std::path::Path;

const SOURCES_LIST: &str = "/etc/apt/sources.list";
const SOURCES_DIR: &str = "/etc/apt/sources.list.d";

/// The host's main Debian mirror, e.g. `http://host/debian`, from its APT sources.
/// `None` when no usable (non-security, HTTP(S)) `deb` entry is configured or readable.
pub fn host_mirror() -> Option<String> {
    let mut files = Vec::new();
    if let Ok(text) = std::fs::read_to_string(SOURCES_LIST) {
        files.push((SOURCES_LIST.to_string(), text));
    }
    let mut names: Vec<_> = std::fs::read_dir(SOURCES_DIR)
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    for path in names {
        if is_sources_file(&path.to_string_lossy()) {
            if let Ok(text) = std::fs::read_to_string(&path) {
                files.push((path.to_string_lossy().into_owned(), text));
            }
        }
    }
    parse_sources(&files)
}

/// Picks the first HTTP(S) URI of an enabled `deb` entry that is not a security archive,
/// scanning `(file name, content)` pairs in the given order. Names ending in `.sources` are
/// deb822 stanzas, names ending in `.list` one-line entries; other files are ignored.
/// A suite ending in `-security` or `/updates` (old layout), or a URI ending in
/// `-security`, marks a security archive. The trailing slash is stripped.
pub fn parse_sources(list_files: &[(String, String)]) -> Option<String> {
    list_files.iter().find_map(|(name, content)| {
        if name.ends_with(".sources") {
            deb822_entries(content).find_map(|e| e.pick())
        } else if name.ends_with(".list") {
            content
                .lines()
                .filter_map(one_line_entry)
                .find_map(|e| e.pick())
        } else {
            None
        }
    })
}

fn is_sources_file(name: &str) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|ext| ext == "list" || ext == "sources")
}

/// One source entry, possibly with several URIs and suites (deb822).
#[derive(Debug, Default)]
struct Source<'a> {
    types: Vec<&'a str>,
    uris: Vec<&'a str>,
    suites: Vec<&'a str>,
    enabled: bool,
}

impl Source<'_> {
    fn pick(&self) -> Option<String> {
        if !self.enabled || !self.types.contains(&"deb") {
            return None;
        }
        let security_suite = |s: &&str| s.ends_with("-security") || s.contains("/updates");
        if self.suites.is_empty() || self.suites.iter().all(security_suite) {
            return None;
        }
        self.uris
            .iter()
            .map(|u| u.trim_end_matches('/'))
            .find(|u| {
                let http = u.starts_with("http://") || u.starts_with("https://");
                http && !u.ends_with("-security")
            })
            .map(str::to_string)
    }
}

/// Parses `deb [opts] URI suite [components]`; comments start at `#`.
fn one_line_entry(line: &str) -> Option<Source<'_>> {
    let line = line.split('#').next().unwrap_or("").trim();
    let (kind, mut rest) = line.split_once(char::is_whitespace)?;
    rest = rest.trim_start();
    if let Some(after) = rest.strip_prefix('[') {
        rest = after.split_once(']')?.1.trim_start();
    }
    let mut words = rest.split_whitespace();
    let uri = words.next()?;
    let suite = words.next()?;
    Some(Source {
        types: vec![kind],
        uris: vec![uri],
        suites: vec![suite],
        enabled: true,
    })
}

/// Splits deb822 text into stanzas (blank-line separated; `#` lines are comments).
fn deb822_entries(content: &str) -> impl Iterator<Item = Source<'_>> {
    let mut stanzas: Vec<Vec<&str>> = vec![Vec::new()];
    for line in content.lines() {
        if line.trim().is_empty() {
            stanzas.push(Vec::new());
        } else if !line.starts_with('#') {
            if let Some(last) = stanzas.last_mut() {
                last.push(line);
            }
        }
    }
    stanzas.into_iter().filter(|s| !s.is_empty()).map(stanza)
}

fn stanza<'a>(lines: Vec<&'a str>) -> Source<'a> {
    let mut source = Source {
        enabled: true,
        ..Source::default()
    };
    let mut current: Option<String> = None;
    for line in lines {
        let (field, value) = match line.strip_prefix([' ', '\t']) {
            Some(cont) => (current.clone(), cont),
            None => match line.split_once(':') {
                Some((f, v)) => (Some(f.trim().to_ascii_lowercase()), v),
                None => (None, ""),
            },
        };
        current.clone_from(&field);
        let words = value.split_whitespace();
        match field.as_deref() {
            Some("types") => source.types.extend(words),
            Some("uris") => source.uris.extend(words),
            Some("suites") => source.suites.extend(words),
            Some("enabled") => {
                let v = value.trim().to_ascii_lowercase();
                source.enabled = !matches!(v.as_str(), "no" | "false" | "0");
            }
            _ => {}
        }
    }
    source
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, c)| (n.to_string(), c.to_string()))
            .collect()
    }

    const DEB822: &str = "Types: deb\n# http://old/archive\nURIs: http://m.example/debian/\n\
        Suites: trixie trixie-updates\nComponents: main\nSigned-By: /k.gpg\n\n\
        Types: deb\nURIs: http://m.example/debian-security\nSuites: trixie-security\n";

    /// (file name, content) pairs.
    type Files<'a> = &'a [(&'a str, &'a str)];

    #[test]
    fn picks_the_main_mirror() {
        let cases: &[(&str, Files, Option<&str>)] = &[
            ("one-line", &[("sources.list", "deb http://a/debian trixie main\n")], Some("http://a/debian")),
            (
                "comments and deb-src first",
                &[("s.list", "# deb http://x/debian trixie main\ndeb-src http://s/debian trixie main\ndeb https://b/debian/ trixie main # c\n")],
                Some("https://b/debian"),
            ),
            (
                "options",
                &[("s.list", "deb [signed-by=/usr/share/k.gpg arch=amd64] http://c/debian trixie main\n")],
                Some("http://c/debian"),
            ),
            (
                "options with spaces",
                &[("s.list", "deb [ signed-by=/k.gpg ] http://d/debian trixie main\n")],
                Some("http://d/debian"),
            ),
            ("deb822", &[("debian.sources", DEB822)], Some("http://m.example/debian")),
            (
                "security first in deb822",
                &[("a.sources", "Types: deb\nURIs: http://s/debian-security\nSuites: trixie-security\n\nTypes: deb deb-src\nURIs: http://e/debian\nSuites: trixie\n")],
                Some("http://e/debian"),
            ),
            (
                "disabled stanza",
                &[("a.sources", "Enabled: no\nTypes: deb\nURIs: http://off/debian\nSuites: trixie\n\nTypes: deb\nURIs: http://on/debian\nSuites: trixie\n")],
                Some("http://on/debian"),
            ),
            (
                "continuation lines",
                &[("a.sources", "Types: deb\nURIs:\n http://f/debian\nSuites: trixie\n")],
                Some("http://f/debian"),
            ),
            (
                "only security",
                &[("s.list", "deb http://s/debian-security trixie-security main\ndeb http://s/debian buster/updates main\n")],
                None,
            ),
            (
                "security uri with plain suite",
                &[("s.list", "deb http://s/debian-security trixie main\n")],
                None,
            ),
            ("file order wins", &[("a.list", "deb http://first/debian trixie main\n"), ("b.list", "deb http://second/debian trixie main\n")], Some("http://first/debian")),
            ("non-http uri", &[("s.list", "deb cdrom:[Debian]/ trixie main\ndeb file:/srv/debian trixie main\n")], None),
            ("other file types ignored", &[("x.list.disabled", "deb http://x/debian trixie main\n")], None),
            ("empty", &[], None),
        ];
        for (name, input, want) in cases {
            assert_eq!(parse_sources(&files(input)).as_deref(), *want, "{name}");
        }
    }

    #[test]
    fn host_mirror_does_not_panic() {
        let _ = host_mirror();
    }
}
