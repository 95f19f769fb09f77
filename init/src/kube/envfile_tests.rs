use super::*;

fn pairs(text: &str) -> Vec<(String, String)> {
    parse_env(text).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

fn words(value: &str) -> Vec<String> {
    split_words(value).unwrap_or_else(|e| panic!("{e}: {value:?}"))
}

#[test]
fn kubeadm_flags_file_as_kubeadm_writes_it() {
    let text = "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/containerd/containerd.sock --node-ip=10.0.0.11 --pod-infra-container-image=registry.k8s.io/pause:3.10\"\n";
    let got = pairs(text);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "KUBELET_KUBEADM_ARGS");
    assert_eq!(
        words(&got[0].1),
        [
            "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
            "--node-ip=10.0.0.11",
            "--pod-infra-container-image=registry.k8s.io/pause:3.10",
        ]
    );
}

#[test]
fn good_files() {
    let cases: [(&str, &[(&str, &str)]); 12] = [
        ("", &[]),
        ("# only a comment\n\n; systemd comment\n", &[]),
        ("A=b", &[("A", "b")]),
        ("A=", &[("A", "")]),
        ("A=''", &[("A", "")]),
        (
            "export A=1 B=2 # trailing comment\n",
            &[("A", "1"), ("B", "2")],
        ),
        ("A='x \"y\" $z'", &[("A", "x \"y\" $z")]),
        (
            "A=\"q\\\"uote \\\\ \\$ \\` \\n\"",
            &[("A", "q\"uote \\ $ ` \\n")],
        ),
        ("A=one\\ word", &[("A", "one word")]),
        (
            "A=\"multi\\\nline\"\nB=2",
            &[("A", "multiline"), ("B", "2")],
        ),
        ("A=a\"b c\"'d'e", &[("A", "ab cde")]),
        ("  _X1=v\r\nexport=3", &[("_X1", "v"), ("export", "3")]),
    ];
    for (text, want) in cases {
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(pairs(text), want, "{text:?}");
    }
}

#[test]
fn bad_files_name_the_line_and_cause() {
    use EnvErrorKind::*;
    let cases = [
        ("A=\"open", 1, UnterminatedDouble),
        ("A=1\nB='open\nmore", 2, UnterminatedSingle),
        ("A=x\\", 1, TrailingBackslash),
        ("A=\"x\\", 1, UnterminatedDouble),
        ("A=$HOME", 1, Expansion('$')),
        ("A=\"${B}\"", 1, Expansion('$')),
        ("A=`id`", 1, Expansion('`')),
        ("A=b; B=c", 1, Operator(';')),
        ("A=b|c", 1, Operator('|')),
        ("A=(x)", 1, Operator('(')),
        ("\n\nA=x y", 3, NotAssignment("y".into())),
        ("just words", 1, NotAssignment("just".into())),
        ("export", 1, NotAssignment("export".into())),
        ("\"A\"=x", 1, NotAssignment("A=x".into())),
        ("1A=x", 1, BadName("1A".into())),
        ("A-B=x", 1, BadName("A-B".into())),
        ("=x", 1, BadName(String::new())),
    ];
    for (text, line, kind) in cases {
        assert_eq!(parse_env(text), Err(EnvError { line, kind }), "{text:?}");
    }
}

#[test]
fn values_split_like_the_unit_would() {
    let cases: [(&str, &[&str]); 7] = [
        ("", &[]),
        ("  --a=b   --c=d  ", &["--a=b", "--c=d"]),
        ("--a=b\n--c=d\t--e", &["--a=b", "--c=d", "--e"]),
        ("--labels='x=1 y=2' --b", &["--labels=x=1 y=2", "--b"]),
        ("--v=\"a b\"", &["--v=a b"]),
        ("--path=$X;#not-a-comment", &["--path=$X;#not-a-comment"]),
        ("--sp=a\\ b", &["--sp=a b"]),
    ];
    for (value, want) in cases {
        assert_eq!(words(value), want, "{value:?}");
    }
    for (value, kind) in [
        ("--a='x", EnvErrorKind::UnterminatedSingle),
        ("--a=\"x", EnvErrorKind::UnterminatedDouble),
        ("--a=x\\", EnvErrorKind::TrailingBackslash),
    ] {
        assert_eq!(
            split_words(value),
            Err(EnvError { line: 1, kind }),
            "{value:?}"
        );
    }
}
