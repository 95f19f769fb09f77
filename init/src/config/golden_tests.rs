#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Golden tests over init/testdata/config: every `good/<case>/` directory assembles into
//! its `expected.json`; every `bad/<case>/` fails with the error listed in `BAD`.
//! `KILN_BLESS=1 cargo test -p kiln-init config::` rewrites the expected files.

use std::path::{Path, PathBuf};

use super::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/config")
}

fn sources(dir: &Path) -> Sources {
    let read = |name: &str| std::fs::read(dir.join(name)).ok();
    Sources {
        user_data: read("user-data"),
        meta_data: read("meta-data"),
        network_config: read("network-config"),
        kiln_toml: read("kiln.toml"),
        configdrive_meta: read("meta_data.json"),
        configdrive_network: read("network_data.json"),
    }
}

fn cases(kind: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn good_inputs_match_expected_json() {
    let bless = std::env::var_os("KILN_BLESS").is_some();
    let mut failures = Vec::new();
    for dir in cases("good") {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let cfg = assemble(&sources(&dir), "test")
            .unwrap_or_else(|e| panic!("{name}: {}", crate::chain::error_chain(&e)));
        let json = cfg.to_json().unwrap() + "\n";
        let expected_path = dir.join("expected.json");
        if bless {
            std::fs::write(&expected_path, &json).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if json != expected {
            failures.push(format!("{name}:\n{json}"));
        }
        assert_eq!(
            NodeConfig::from_json(json.as_bytes()).unwrap(),
            cfg,
            "{name}"
        );
    }
    assert!(
        failures.is_empty(),
        "differs from expected.json:\n{}",
        failures.join("\n")
    );
}

type Check = fn(&ConfigError) -> bool;

/// Every bad case with the exact error it must produce and a fragment of its chain.
#[rustfmt::skip]
const BAD: &[(&str, Check, &str)] = &[
    ("alias-bomb", |e| { matches!(e, ConfigError::UserData { source: UserDataError::CloudConfig { source: CloudConfigError::Doc(DocError::Budget { .. }), .. }, .. }) }, "budget"),
    ("gzip-bomb", |e| { matches!(e, ConfigError::UserData { source: UserDataError::TooLarge { limit: MAX_DECOMPRESSED }, .. }) }, "exceeds 16777216"),
    ("corrupt-gzip", |e| { matches!(e, ConfigError::UserData { source: UserDataError::Gzip(CodecError::Gzip(_)), .. }) }, "gunzip"),
    ("yaml-syntax", |e| { matches!(e, ConfigError::UserData { source: UserDataError::CloudConfig { source: CloudConfigError::Doc(DocError::Syntax { line: 5, .. }), .. }, .. }) }, "line 5 column 9"),
    ("bad-hostname", |e| { matches!(e, ConfigError::UserData { source: UserDataError::CloudConfig { source: CloudConfigError::Doc(DocError::Schema { line: 2, column: 11, .. }), .. }, .. }) }, "invalid hostname"),
    ("kiln-unknown-key", |e| { matches!(e, ConfigError::UserData { source: UserDataError::CloudConfig { source: CloudConfigError::Doc(DocError::Schema { line: 5, .. }), .. }, .. }) }, "unknown field `lb_vip`"),
    ("relative-path", |e| { matches!(e, ConfigError::UserData { source: UserDataError::CloudConfig { source: CloudConfigError::Doc(DocError::Schema { .. }), .. }, .. }) }, "invalid path \"etc/motd\""),
    ("dotdot-path", |e| { matches!(e, ConfigError::UserData { source: UserDataError::CloudConfig { source: CloudConfigError::Doc(DocError::Schema { .. }), .. }, .. }) }, "invalid path \"/etc/../shadow\""),
    ("unknown-encoding", |e| { matches!(e, ConfigError::UserData { source: UserDataError::CloudConfig { source: CloudConfigError::File(FileError::Encoding { .. }), .. }, .. }) }, "unknown encoding \"rot13\""),
    ("bad-base64-content", |e| { matches!(e, ConfigError::UserData { source: UserDataError::CloudConfig { source: CloudConfigError::File(FileError::Decode { source: CodecError::Base64(_), .. }), .. }, .. }) }, "write_files /etc/blob: decode content"),
    ("bad-mode", |e| { matches!(e, ConfigError::UserData { source: UserDataError::CloudConfig { source: CloudConfigError::Doc(DocError::Schema { .. }), .. }, .. }) }, "invalid file mode"),
    ("bad-group", |e| { matches!(e, ConfigError::UserData { source: UserDataError::CloudConfig { source: CloudConfigError::Group { .. }, .. }, .. }) }, "user bob: group"),
    ("empty-runcmd-argv", |e| { matches!(e, ConfigError::UserData { source: UserDataError::CloudConfig { source: CloudConfigError::Doc(DocError::Schema { .. }), .. }, .. }) }, "empty argv"),
    ("duplicate-user", |e| { matches!(e, ConfigError::Combined { source: DraftError::DuplicateUser(_), .. }) }, "user alice defined twice"),
    ("mime-no-boundary", |e| { matches!(e, ConfigError::UserData { source: UserDataError::Mime(MimeError::NoBoundary), .. }) }, "without a boundary"),
    ("mime-bad-base64", |e| { matches!(e, ConfigError::UserData { source: UserDataError::Mime(MimeError::Decode { index: 1, .. }), .. }) }, "decode part 1"),
    ("meta-data-hostname", |e| { matches!(e, ConfigError::MetaData { source: DocError::Schema { .. }, .. }) }, "meta-data from test: line 2"),
    ("netv1-bad-address", |e| { matches!(e, ConfigError::NetworkConfig { source: NetworkError::Value { .. }, .. }) }, "10.0.0.300/24"),
    ("netv1-bad-netmask", |e| { matches!(e, ConfigError::NetworkConfig { source: NetworkError::Value { .. }, .. }) }, "netmask 255.0.255.0"),
    ("netv2-bad-mac", |e| { matches!(e, ConfigError::NetworkConfig { source: NetworkError::Doc(DocError::Schema { line: 5, .. }), .. }) }, "invalid MAC address"),
    ("netv2-bad-prefix", |e| { matches!(e, ConfigError::NetworkConfig { source: NetworkError::Doc(DocError::Schema { .. }), .. }) }, "invalid CIDR \"10.0.0.2/40\""),
    ("netv2-mtu", |e| { matches!(e, ConfigError::NetworkConfig { source: NetworkError::Mtu(_, 20), .. }) }, "MTU 20"),
    ("net-version-3", |e| { matches!(e, ConfigError::NetworkConfig { source: NetworkError::Version(3), .. }) }, "version 3"),
    ("toml-unknown-field", |e| { matches!(e, ConfigError::KilnToml { source: KilnTomlError::Doc(DocError::Schema { line: 3, column: 1, .. }), .. }) }, "unknown field `hostnme`"),
    ("toml-unknown-kiln-field", |e| { matches!(e, ConfigError::KilnToml { source: KilnTomlError::Doc(DocError::Schema { line: 3, .. }), .. }) }, "unknown field `colour`"),
    ("toml-syntax", |e| { matches!(e, ConfigError::KilnToml { source: KilnTomlError::Doc(DocError::Syntax { line: 2, .. }), .. }) }, "kiln.toml from test: line 2"),
    ("toml-bad-role", |e| { matches!(e, ConfigError::KilnToml { source: KilnTomlError::Doc(DocError::Schema { .. }), .. }) }, "unknown variant `master`"),
    ("toml-no-address", |e| { matches!(e, ConfigError::KilnToml { source: KilnTomlError::Network(NetworkError::NoAddress(_)), .. }) }, "neither dhcp4 nor a static address"),
    ("toml-route-family", |e| { matches!(e, ConfigError::KilnToml { source: KilnTomlError::Network(NetworkError::RouteFamily(..)), .. }) }, "mixes IPv4 and IPv6"),
    ("configdrive-unknown-link", |e| { matches!(e, ConfigError::ConfigDriveNetwork { source: NetworkError::UnknownLink { .. }, .. }) }, "no link \"tap-missing\""),
    ("configdrive-bad-json", |e| { matches!(e, ConfigError::ConfigDriveMeta { source: DocError::Syntax { .. }, .. }) }, "meta_data.json from test"),
];

#[test]
fn bad_inputs_fail_with_the_listed_error() {
    let dirs = cases("bad");
    let names: Vec<String> = dirs
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in &names {
        assert!(
            BAD.iter().any(|(n, ..)| n == name),
            "bad/{name} has no entry in BAD"
        );
    }
    let mut failures = Vec::new();
    for (name, check, fragment) in BAD {
        assert!(
            names.iter().any(|n| n == name),
            "BAD lists {name} but bad/{name} is missing"
        );
        let text = match assemble(&sources(&root().join("bad").join(name)), "test") {
            Ok(_) => {
                failures.push(format!("{name}: accepted"));
                continue;
            }
            Err(err) if !check(&err) => {
                failures.push(format!("{name}: unexpected error {err:?}"));
                continue;
            }
            Err(err) => crate::chain::error_chain(&err),
        };
        if !text.contains(fragment) {
            failures.push(format!("{name}: {text:?} lacks {fragment:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
