//! Providers and their order, on fake hosts: found / nothing / broken for each, and the
//! wait for late devices on a fake clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine;

use super::cmdline::{seed, Seed};
use super::fakes::*;
use super::*;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn world(cmdline: &str) -> World {
    World {
        cmdline: cmdline.to_string(),
        ..World::default()
    }
}

fn seed_dir(w: &mut World, dir: &str) {
    w.files.put(&format!("{dir}/meta-data"), "instance-id: s\n");
    w.files.put(&format!("{dir}/user-data"), "#cloud-config\n");
}

#[test]
fn inline_config_is_kiln_toml_or_user_data_by_content() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"#cloud-config\nhostname: g\n").unwrap();
    let gz = gz.finish().unwrap();
    // (decoded payload, expect user-data)
    let cases: &[(&[u8], &[u8], bool)] = &[
        (b"hostname = \"a\"\n", b"hostname = \"a\"\n", false),
        (b"# comment\n[network]\n", b"# comment\n[network]\n", false),
        (
            b"#cloud-config\nhostname: b\n",
            b"#cloud-config\nhostname: b\n",
            true,
        ),
        (b"  #Cloud-Config\n", b"  #Cloud-Config\n", true),
        (b"#!/bin/sh\necho hi\n", b"#!/bin/sh\necho hi\n", true),
        (
            b"Content-Type: multipart/mixed\n",
            b"Content-Type: multipart/mixed\n",
            true,
        ),
        (&gz, b"#cloud-config\nhostname: g\n", true),
    ];
    for (payload, want, user) in cases {
        let w = world(&format!("quiet kiln.config={}", b64(payload)));
        let found = discover(&w.env()).unwrap();
        assert_eq!(found.origin, "cmdline");
        let (got, other) = if *user {
            (&found.sources.user_data, &found.sources.kiln_toml)
        } else {
            (&found.sources.kiln_toml, &found.sources.user_data)
        };
        assert_eq!(got.as_deref(), Some(*want), "{payload:?}");
        assert_eq!(other, &None);
    }
}

#[test]
fn bad_inline_config_is_an_error() {
    let cases = ["kiln.config=not!base64", "kiln.config=KLUv/QAA"];
    for line in cases {
        let got = discover(&world(line).env());
        assert!(
            matches!(got, Err(DiscoveryError::Inline(_))),
            "{line}: {got:?}"
        );
    }
}

#[test]
fn seed_values() {
    let dir = |p: &str| Ok(Seed::Dir(p.into()));
    let cases: &[(&str, Result<Seed, ()>)] = &[
        ("nocloud;s=file:///seed/", dir("/seed/")),
        ("NoCloud;seedfrom=file:///a", dir("/a")),
        ("nocloud;h=host;s=/abs/dir/", dir("/abs/dir/")),
        ("nocloud", Ok(Seed::Volumes)),
        ("nocloud;h=x", Ok(Seed::Volumes)),
        (
            "nocloud-net;s=http://10.0.2.2/seeds/52-54-00-00-00-01/",
            Ok(Seed::Http("http://10.0.2.2/seeds/52-54-00-00-00-01/".into())),
        ),
        (
            "nocloud-net;s=https://10.0.2.2/",
            Ok(Seed::Ignored(
                "ds=nocloud-net;s=https://10.0.2.2/: https seeds are not supported (serve seeds over http on the provisioning network)".into(),
            )),
        ),
        (
            "ec2",
            Ok(Seed::Ignored("ds=ec2: not a NoCloud datasource".into())),
        ),
        ("nocloud;s=file://relative", Err(())),
        ("nocloud;s=ftp://x/", Err(())),
        ("nocloud;s=seed", Err(())),
    ];
    for (ds, want) in cases {
        match (seed(ds), want) {
            (Ok(got), Ok(want)) => assert_eq!(&got, want, "{ds}"),
            (Err(DiscoveryError::Broken { volume, .. }), Err(())) => {
                assert_eq!(volume, "kernel command line", "{ds}");
            }
            (got, _) => panic!("{ds}: got {got:?}"),
        }
    }
}

#[test]
fn nocloud_file_seed_from_the_command_line() {
    let lines = [
        "ds=nocloud;s=file:///seed/",
        "ds=nocloud\\;s=file:///seed/",
        "\"ds=nocloud;seedfrom=/seed\"",
    ];
    for line in lines {
        let mut w = world(line);
        seed_dir(&mut w, "/seed");
        w.cidata("sr0", FsKind::Iso9660, "cidata");
        let found = discover(&w.env()).unwrap();
        assert!(found.origin.starts_with("nocloud:file:///seed"), "{line}");
        assert_eq!(
            found.sources.meta_data.as_deref(),
            Some(&b"instance-id: s\n"[..])
        );
        assert!(w.volumes.mounted.borrow().is_empty(), "{line}");
    }
    let mut w = world("ds=nocloud;s=file:///empty/");
    w.files.put("/empty/network-config", "version: 2\n");
    let got = discover(&w.env());
    assert!(matches!(got, Err(DiscoveryError::Broken { .. })), "{got:?}");
}

/// What stage 1 leaves behind after fetching `url` with `status`.
fn net_seed(w: &mut World, url: &str, status: &str, files: &[(&str, &str)]) {
    w.files.put(&format!("{FAKE_NET_SEED}/source"), url);
    w.files.put(&format!("{FAKE_NET_SEED}/status"), status);
    for (name, body) in files {
        w.files.put(&format!("{FAKE_NET_SEED}/{name}"), body);
    }
}

#[test]
fn http_seeds_come_from_what_stage_1_fetched() {
    const URL: &str = "http://10.0.2.2:8000/seeds/52-54-00-00-00-01/";
    let line = format!("ds=nocloud-net;s={URL}");
    let mut w = world(&line);
    net_seed(
        &mut w,
        URL,
        "found",
        &[
            ("meta-data", "instance-id: pxe-1\n"),
            ("user-data", "#cloud-config\nhostname: a\n"),
        ],
    );
    w.cidata("sr0", FsKind::Iso9660, "cidata");
    let found = discover(&w.env()).unwrap();
    assert_eq!(found.origin, format!("nocloud-net:{URL}"));
    assert_eq!(
        found.sources.meta_data.as_deref(),
        Some(&b"instance-id: pxe-1\n"[..])
    );
    assert!(w.volumes.mounted.borrow().is_empty());

    // 404 for this MAC: a note, and the next source wins (here the cidata volume).
    let mut w = world(&line);
    net_seed(&mut w, URL, "absent", &[]);
    w.cidata("sr0", FsKind::Iso9660, "cidata");
    let found = discover(&w.env()).unwrap();
    assert_eq!(found.origin, "nocloud:/dev/sr0");
    assert!(
        found.notes[0].contains("no NoCloud seed at"),
        "{:?}",
        found.notes
    );

    // A fetch error, a different URL, or nothing fetched at all: broken, no fallback.
    let cases: [(&str, &str, &str); 3] = [
        (URL, "error: connection refused", "connection refused"),
        (
            "http://other/",
            "found",
            "stage 1 fetched http://other/ instead",
        ),
        ("", "", "stage 1 did not fetch it"),
    ];
    for (source, status, reason_has) in cases {
        let mut w = world(&line);
        if !source.is_empty() {
            net_seed(&mut w, source, status, &[("meta-data", "instance-id: x\n")]);
        }
        w.cidata("sr0", FsKind::Iso9660, "cidata");
        match discover(&w.env()) {
            Err(DiscoveryError::Broken { volume, reason }) => {
                assert_eq!(volume, format!("nocloud-net:{URL}"));
                assert!(reason.contains(reason_has), "{reason}");
            }
            got => panic!("{source}/{status}: {got:?}"),
        }
    }
}

#[test]
fn ignored_seeds_fall_through_with_a_note() {
    let mut w = world("ds=nocloud-net;s=https://10.0.2.2:8000/");
    w.cidata("sr0", FsKind::Iso9660, "cidata");
    let found = discover(&w.env()).unwrap();
    assert_eq!(found.origin, "nocloud:/dev/sr0");
    assert!(found.notes[0].contains("https seeds are not supported"));

    let w = world(&format!("ds=nocloud kiln.config={}", b64(b"a = 1")));
    let found = discover(&w.env()).unwrap();
    assert_eq!(found.notes, ["ds=nocloud ignored: kiln.config is given"]);
}

#[test]
fn labelled_volumes_found() {
    // (device, fs, label, origin, mount type)
    let cases: &[(&str, FsKind, &str, &str, &str)] = &[
        (
            "sr0",
            FsKind::Iso9660,
            "cidata",
            "nocloud:/dev/sr0",
            "iso9660",
        ),
        ("vdb", FsKind::Vfat, "CIDATA", "nocloud:/dev/vdb", "vfat"),
        ("sda1", FsKind::Vfat, "KILN", "kiln:/dev/sda1", "vfat"),
        ("sr1", FsKind::Iso9660, "kiln", "kiln:/dev/sr1", "iso9660"),
        (
            "vdc",
            FsKind::Iso9660,
            "config-2",
            "configdrive:/dev/vdc",
            "iso9660",
        ),
        (
            "vdd",
            FsKind::Vfat,
            "CONFIG-2",
            "configdrive:/dev/vdd",
            "vfat",
        ),
    ];
    for (dev, kind, label, origin, fstype) in cases {
        let mut w = World::default();
        w.devices.add(dev, *kind, label);
        w.volumes.put(dev, "meta-data", "instance-id: m\n");
        w.volumes.put(dev, "kiln.toml", "hostname = \"k\"\n");
        w.volumes.put(dev, "openstack/latest/meta_data.json", "{}");
        let found = discover(&w.env()).unwrap();
        assert_eq!(found.origin, *origin);
        assert_eq!(*w.volumes.mounted.borrow(), [(dev.to_string(), *fstype)]);
        let s = &found.sources;
        match origin.split(':').next().unwrap() {
            "kiln" => assert!(s.kiln_toml.is_some() && s.meta_data.is_some()),
            "nocloud" => assert!(s.kiln_toml.is_none() && s.meta_data.is_some()),
            _ => assert!(s.configdrive_meta.is_some() && s.meta_data.is_none()),
        }
    }
}

#[test]
fn other_labels_and_unlabelled_devices_are_ignored() {
    let mut w = World::default();
    for (dev, label) in [
        ("vda1", "EFI"),
        ("sdb", "Cidata"),
        ("sdc", ""),
        ("sdd", "Config-2"),
    ] {
        w.devices.add(dev, FsKind::Vfat, label);
    }
    w.devices.devices.push((
        0,
        Device {
            name: "vdb".into(),
            size: 1,
            partname: None,
            fs: None,
        },
    ));
    let found = discover(&w.env()).unwrap();
    assert_eq!(
        found,
        Found::new(crate::config::Sources::default(), "defaults")
    );
    assert!(w.volumes.mounted.borrow().is_empty());
}

#[test]
fn broken_volumes_stop_discovery() {
    // (label, files on the volume, unmountable)
    let cases: &[(&str, &[&str], bool)] = &[
        ("cidata", &[], false),
        ("cidata", &["network-config"], false),
        ("KILN", &[], false),
        ("config-2", &["openstack/latest/network_data.json"], false),
        ("config-2", &["meta-data"], false),
        ("cidata", &["meta-data"], true),
    ];
    for (label, files, unmountable) in cases {
        let mut w = World::default();
        w.state_copy();
        w.devices.add("sr0", FsKind::Iso9660, label);
        for f in *files {
            w.volumes.put("sr0", f, "x");
        }
        if *unmountable {
            w.volumes.unmountable.push("sr0".into());
        }
        match discover(&w.env()) {
            Err(DiscoveryError::Broken { volume, reason }) if !unmountable => {
                assert!(volume.ends_with(":/dev/sr0"), "{volume}");
                assert!(reason.starts_with("none of "), "{reason}");
            }
            Err(DiscoveryError::Mount { device, .. }) if *unmountable => {
                assert_eq!(device, "/dev/sr0");
            }
            other => panic!("{label} {files:?}: {other:?}"),
        }
    }
}

#[test]
fn nocloud_accepts_user_data_alone_and_reads_network_config() {
    let mut w = World::default();
    w.devices.add("sr0", FsKind::Iso9660, "cidata");
    w.volumes.put("sr0", "user-data", "#cloud-config\n");
    w.volumes.put("sr0", "network-config", "version: 2\n");
    let found = discover(&w.env()).unwrap();
    assert!(found.sources.meta_data.is_none());
    assert_eq!(
        found.sources.network_config.as_deref(),
        Some(&b"version: 2\n"[..])
    );
}

#[test]
fn first_volume_by_name_wins_with_a_note() {
    let mut w = World::default();
    w.cidata("vdc", FsKind::Vfat, "CIDATA");
    w.cidata("sr0", FsKind::Iso9660, "cidata");
    let found = discover(&w.env()).unwrap();
    assert_eq!(found.origin, "nocloud:/dev/sr0");
    assert_eq!(
        found.notes,
        ["nocloud seed on /dev/sr0 used; also labelled cidata: vdc"]
    );
}

#[test]
fn precedence_cmdline_kiln_cidata_configdrive_state_defaults() {
    let order = [
        "cmdline",
        "kiln:/dev/sdb1",
        "nocloud:/dev/sr0",
        "configdrive:/dev/vdb",
        "state",
        "defaults",
    ];
    for skip in 0..order.len() {
        let mut w = World::default();
        if skip == 0 {
            w.cmdline = format!("kiln.config={}", b64(b"a = 1"));
        }
        if skip <= 1 {
            w.devices.add("sdb1", FsKind::Vfat, "KILN");
            w.volumes.put("sdb1", "kiln.toml", "a = 1");
        }
        if skip <= 2 {
            w.cidata("sr0", FsKind::Iso9660, "cidata");
        }
        if skip <= 3 {
            w.config_drive("vdb");
        }
        if skip <= 4 {
            w.state_copy();
        }
        let found = discover(&w.env()).unwrap();
        assert_eq!(
            found.origin,
            order[skip],
            "with sources {:?}",
            &order[skip..]
        );
    }
}

#[test]
fn broken_state_copy_matters_only_without_a_higher_source() {
    let mut w = World::default();
    w.files
        .put(&format!("{FAKE_STATE}/user-data"), "#cloud-config\n");
    let got = discover(&w.env());
    assert!(
        matches!(got, Err(DiscoveryError::Broken { ref reason, .. }) if reason == "no origin file"),
        "{got:?}"
    );
    w.cidata("sr0", FsKind::Iso9660, "cidata");
    assert_eq!(discover(&w.env()).unwrap().origin, "nocloud:/dev/sr0");
}

#[test]
fn listing_failure_is_an_error() {
    let mut w = World::default();
    w.devices.fail = true;
    let got = discover(&w.env());
    assert!(
        matches!(got, Err(DiscoveryError::ListDevices(_))),
        "{got:?}"
    );
}

fn waiting_world(appears_at: Option<u32>, state: bool) -> World {
    let mut w = World {
        wait: WaitPolicy {
            total: Duration::from_secs(2),
            with_state_copy: Duration::from_millis(300),
            step: Duration::from_millis(100),
        },
        ..World::default()
    };
    if let Some(n) = appears_at {
        w.devices.add_late(n, "sdb", FsKind::Vfat, "CIDATA");
        w.volumes.put("sdb", "meta-data", "instance-id: late\n");
    }
    if state {
        w.state_copy();
    }
    w
}

#[test]
fn waits_for_late_devices_on_the_clock() {
    // (appears at listing n, state copy, origin, sleeps, listings)
    let cases: &[(Option<u32>, bool, &str, u32, u32)] = &[
        (Some(0), false, "nocloud:/dev/sdb", 0, 1),
        (Some(3), false, "nocloud:/dev/sdb", 3, 4),
        (None, false, "defaults", 20, 21),
        (Some(15), true, "state", 3, 4),
        (Some(2), true, "nocloud:/dev/sdb", 2, 3),
    ];
    for (at, state, origin, sleeps, listings) in cases {
        let w = waiting_world(*at, *state);
        let found = discover(&w.env()).unwrap();
        let case = format!("appears at {at:?}, state {state}");
        assert_eq!(found.origin, *origin, "{case}");
        assert_eq!(w.clock.sleeps.get(), *sleeps, "{case}");
        assert_eq!(w.devices.listings.get(), *listings, "{case}");
        let noted = found
            .notes
            .iter()
            .any(|n| n.starts_with("no seed volume after"));
        assert_eq!(noted, ["defaults", "state"].contains(origin), "{case}");
    }
}

#[test]
fn no_wait_when_the_policy_says_so() {
    let w = World::default();
    let found = discover(&w.env()).unwrap();
    assert_eq!(found.origin, "defaults");
    assert!(found.notes.is_empty());
    assert_eq!((w.clock.sleeps.get(), w.devices.listings.get()), (0, 1));
}
