//! A small YAML writer for the documents kubeadm reads: maps keep the order they are built
//! in (so output is stable and reads like the upstream examples), strings are quoted
//! whenever a YAML 1.1 or 1.2 reader could take them for anything but a string.

use std::fmt::Write;
use std::net::IpAddr;

/// One YAML value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<Node>),
    Map(Vec<(&'static str, Node)>),
}

pub(crate) fn s(v: impl Into<String>) -> Node {
    Node::Str(v.into())
}

pub(crate) fn map(entries: Vec<(&'static str, Node)>) -> Node {
    Node::Map(entries)
}

pub(crate) fn list<T, I: IntoIterator<Item = T>>(items: I, f: impl Fn(T) -> Node) -> Node {
    Node::List(items.into_iter().map(f).collect())
}

/// Documents joined by `---` lines; every document is a map.
pub(crate) fn documents(docs: &[Node]) -> String {
    let mut out = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        block(&mut out, doc, 0);
    }
    out
}

/// Writes a map or list starting on a fresh line at `indent`.
fn block(out: &mut String, node: &Node, indent: usize) {
    let pad = " ".repeat(indent);
    match node {
        Node::Map(entries) => {
            for (key, value) in entries {
                let _ = write!(out, "{pad}{key}:");
                child(out, value, indent + 2, indent);
            }
        }
        Node::List(items) => {
            for item in items {
                let _ = write!(out, "{pad}-");
                match item {
                    // A map item starts on the dash's line: `- key: value`.
                    Node::Map(entries) => {
                        for (i, (key, value)) in entries.iter().enumerate() {
                            let lead = if i == 0 {
                                " ".to_string()
                            } else {
                                " ".repeat(indent + 2)
                            };
                            let _ = write!(out, "{lead}{key}:");
                            child(out, value, indent + 4, indent + 2);
                        }
                    }
                    other => child(out, other, indent + 2, indent),
                }
            }
        }
        scalar_node => {
            out.push_str(&pad);
            out.push_str(&scalar(scalar_node));
            out.push('\n');
        }
    }
}

/// The value after `key:` or `-`: scalars on the same line, maps indented below, lists
/// at the key's own indent (Kubernetes style).
fn child(out: &mut String, node: &Node, map_indent: usize, list_indent: usize) {
    match node {
        Node::Map(e) if e.is_empty() => out.push_str(" {}\n"),
        Node::List(l) if l.is_empty() => out.push_str(" []\n"),
        Node::Map(_) => {
            out.push('\n');
            block(out, node, map_indent);
        }
        Node::List(_) => {
            out.push('\n');
            block(out, node, list_indent);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn scalar(node: &Node) -> String {
    match node {
        Node::Str(v) => string(v),
        Node::Int(v) => v.to_string(),
        Node::Bool(v) => v.to_string(),
        Node::List(_) | Node::Map(_) => String::new(),
    }
}

/// Plain when unambiguous, otherwise double-quoted with JSON-style escapes.
pub(crate) fn string(v: &str) -> String {
    if is_plain(v) {
        return v.to_string();
    }
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Letters first (or `/`), then only `[A-Za-z0-9._/:-]`, and no YAML 1.1 boolean or null
/// word. IPv4 addresses and CIDRs stay plain too: with three dots no reader takes them for
/// a number. Everything else (`0s`, `876000h0m0s`, hex keys, IPv6 with `[`) is quoted.
fn is_plain(v: &str) -> bool {
    const WORDS: [&str; 11] = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf",
    ];
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._/:-".contains(c);
    let Some(first) = v.chars().next() else {
        return false;
    };
    if !v.chars().all(allowed) {
        return false;
    }
    if first.is_ascii_alphabetic() || first == '/' {
        return !WORDS.contains(&v.to_ascii_lowercase().as_str());
    }
    let addr = v.split_once('/').map_or(v, |(a, _)| a);
    matches!(addr.parse::<IpAddr>(), Ok(IpAddr::V4(_)))
        && v.split_once('/')
            .is_none_or(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_when_a_reader_could_misread_them() {
        let cases = [
            ("abc", "abc"),
            (
                "unix:///run/containerd/containerd.sock",
                "unix:///run/containerd/containerd.sock",
            ),
            ("10.0.0.11", "10.0.0.11"),
            ("10.244.0.0/16", "10.244.0.0/16"),
            ("fd00::1", "fd00::1"),
            ("https://[fd00::1]:2379", "\"https://[fd00::1]:2379\""),
            ("0s", "\"0s\""),
            ("876000h0m0s", "\"876000h0m0s\""),
            ("0123", "\"0123\""),
            ("1.5", "\"1.5\""),
            ("10.0.0.11/", "\"10.0.0.11/\""),
            ("yes", "\"yes\""),
            ("Off", "\"Off\""),
            ("", "\"\""),
            ("a b", "\"a b\""),
            ("say \"hi\"\\", "\"say \\\"hi\\\"\\\\\""),
            ("x\n", "\"x\\n\""),
        ];
        for (input, want) in cases {
            assert_eq!(string(input), want, "{input:?}");
        }
    }

    #[test]
    fn nested_maps_and_lists_use_kubernetes_layout() {
        let doc = map(vec![
            ("kind", s("K")),
            ("n", Node::Int(6443)),
            ("b", Node::Bool(false)),
            (
                "inner",
                map(vec![("x", s("1")), ("l", list(["a", "b"], s))]),
            ),
            (
                "items",
                Node::List(vec![
                    map(vec![("name", s("a")), ("value", s("b"))]),
                    map(vec![
                        ("deep", map(vec![("k", s("v"))])),
                        ("l", list(["z"], s)),
                    ]),
                ]),
            ),
            ("empty", Node::List(vec![])),
        ]);
        let want = "kind: K\nn: 6443\nb: false\ninner:\n  x: \"1\"\n  l:\n  - a\n  - b\n\
                    items:\n- name: a\n  value: b\n- deep:\n    k: v\n  l:\n  - z\nempty: []\n";
        assert_eq!(documents(std::slice::from_ref(&doc)), want);
        assert_eq!(documents(&[doc.clone(), doc]), format!("{want}---\n{want}"));
    }
}
