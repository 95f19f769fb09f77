//! Effects on a temp-dir root built from YAML through `config::assemble`: accounts,
//! homes and keys, write_files, hostname and /etc/hosts, timezone, ntp.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;
use crate::config::{assemble, Sources};
use crate::testutil::TempDir;

pub(super) const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
    daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
    nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
pub(super) const GROUP: &str = "root:x:0:\nadm:x:4:\nnogroup:x:65534:\n";
pub(super) const SHADOW: &str = "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n";

/// A minimal node root: account files, /root, a writable fake procfs hostname.
pub(super) fn node(tag: &str) -> TempDir {
    let t = TempDir::new(tag);
    t.write("etc/passwd", PASSWD);
    t.write("etc/group", GROUP);
    t.write("etc/shadow", SHADOW);
    t.write("proc/sys/kernel/hostname", "kiln\n");
    fs::set_permissions(
        t.path().join("etc/shadow"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    fs::create_dir_all(t.path().join("root")).unwrap();
    t
}

/// The whole parse path: user-data YAML (and meta-data) through `assemble`.
pub(super) fn cfg(user_data: &str, instance_id: &str) -> NodeConfig {
    let src = Sources {
        user_data: Some(user_data.as_bytes().to_vec()),
        meta_data: Some(format!("instance-id: {instance_id}\n").into_bytes()),
        ..Sources::default()
    };
    assemble(&src, "test").unwrap()
}

/// Records every command; exit codes by description, 0 otherwise; `!`-prefixed
/// descriptions fail to start.
#[derive(Default)]
pub(super) struct FakeRunner {
    pub ran: Vec<(Phase, String)>,
    pub codes: HashMap<String, i32>,
}

impl Runner for FakeRunner {
    fn run(&mut self, phase: Phase, command: &Command) -> io::Result<i32> {
        let d = describe(command);
        self.ran.push((phase, d.clone()));
        if d.starts_with('!') {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok(self.codes.get(&d).copied().unwrap_or(0))
    }
}

/// Runs `apply` with a fake runner; returns the result and the encoded events.
pub(super) fn run(cfg: &NodeConfig, root: &Path, r: &mut FakeRunner) -> (Applied, Vec<String>) {
    let mut events = Vec::new();
    let done = apply(cfg, root, r, &mut |e| {
        events.push(crate::events::encode(e, std::time::Duration::ZERO))
    })
    .unwrap();
    (done, events)
}

fn read(root: &Path, rel: &str) -> String {
    fs::read_to_string(root.join(rel)).unwrap()
}

/// (mode, uid, gid)
fn meta(root: &Path, rel: &str) -> (u32, u32, u32) {
    let m = fs::symlink_metadata(root.join(rel)).unwrap();
    (m.mode() & 0o7777, m.uid(), m.gid())
}

const USERS: &str = "#cloud-config
users:
  - name: alice
    groups: [adm, docker]
    ssh_authorized_keys: [ssh-ed25519 AAAAalice alice@x]
    shell: /bin/bash
  - name: bob
    passwd: $6$salt$hash
    lock_passwd: false
    groups: docker
  - name: carol
    passwd: $6$c$h
  - name: root
    ssh_authorized_keys: [ssh-ed25519 AAAAroot2 r2]
ssh_authorized_keys:
  - ssh-ed25519 AAAAtop top
";

#[test]
fn users_groups_shadow_homes_and_keys() {
    let t = node("users");
    let root = t.path();
    let (done, events) = run(&cfg(USERS, "i-1"), root, &mut FakeRunner::default());
    assert_eq!(done.users, 4);
    let passwd = read(root, "etc/passwd");
    assert!(passwd.starts_with(PASSWD), "{passwd}");
    assert_eq!(
        &passwd[PASSWD.len()..],
        "alice:x:1001:1001::/home/alice:/bin/bash\n\
         bob:x:1002:1002::/home/bob:/bin/sh\n\
         carol:x:1003:1003::/home/carol:/bin/sh\n"
    );
    assert_eq!(
        read(root, "etc/group"),
        "root:x:0:\nadm:x:4:alice\nnogroup:x:65534:\ndocker:x:1000:alice,bob\n\
         alice:x:1001:\nbob:x:1002:\ncarol:x:1003:\n"
    );
    assert_eq!(
        read(root, "etc/shadow"),
        "root:!:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n\
         alice:!:::::::\nbob:$6$salt$hash:::::::\ncarol:!$6$c$h:::::::\n"
    );
    assert_eq!(meta(root, "etc/shadow").0, 0o640, "shadow keeps its mode");
    for (name, id) in [("alice", 1001), ("bob", 1002), ("carol", 1003)] {
        assert_eq!(
            meta(root, &format!("home/{name}")),
            (0o700, id, id),
            "{name}"
        );
    }
    assert_eq!(meta(root, "home/alice/.ssh"), (0o700, 1001, 1001));
    assert_eq!(
        meta(root, "home/alice/.ssh/authorized_keys"),
        (0o600, 1001, 1001)
    );
    assert_eq!(
        read(root, "home/alice/.ssh/authorized_keys"),
        "ssh-ed25519 AAAAalice alice@x\n"
    );
    assert!(!root.join("home/bob/.ssh").exists(), "no keys, no .ssh");
    assert_eq!(meta(root, "root/.ssh/authorized_keys"), (0o600, 0, 0));
    assert_eq!(
        read(root, "root/.ssh/authorized_keys"),
        "ssh-ed25519 AAAAroot2 r2\nssh-ed25519 AAAAtop top\n"
    );
    assert!(
        events.iter().any(|e| e.contains(r#""users":4,"files":0"#)),
        "{events:?}"
    );
}

#[test]
fn existing_keys_are_kept_and_not_duplicated() {
    let t = node("keys");
    let root = t.path();
    t.write(
        "root/.ssh/authorized_keys",
        "ssh-rsa OLD old\nssh-ed25519 AAAAtop top\n",
    );
    let c = cfg(
        "#cloud-config\nssh_authorized_keys: [ssh-ed25519 AAAAtop top]\n",
        "i-1",
    );
    run(&c, root, &mut FakeRunner::default());
    assert_eq!(
        read(root, "root/.ssh/authorized_keys"),
        "ssh-rsa OLD old\nssh-ed25519 AAAAtop top\n"
    );
}

#[test]
fn write_files_encodings_append_defer_and_owner() {
    let t = node("files");
    let root = t.path();
    t.write("etc/motd", "line1\n");
    // "hello\n" gzipped then base64.
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"gz hello\n").unwrap();
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            e.finish().unwrap(),
        )
    };
    let yaml = format!(
        "#cloud-config
users: [{{name: web}}]
write_files:
  - path: /etc/plain.conf
    content: |
      plain
  - path: /etc/b64.bin
    encoding: b64
    content: aGVsbG8K
    permissions: '0600'
  - path: /etc/gz.txt
    encoding: gz+b64
    content: {gz}
    permissions: '0755'
  - path: /etc/motd
    content: line2
    append: true
  - path: /srv/web/index.html
    content: hi
    owner: web:adm
    permissions: '0640'
    defer: true
  - path: /srv/root-only
    content: x
    owner: root
"
    );
    let (done, _) = run(&cfg(&yaml, "i-1"), root, &mut FakeRunner::default());
    assert_eq!(done.files, 6);
    let cases = [
        ("etc/plain.conf", "plain\n", (0o644, 0, 0)),
        ("etc/b64.bin", "hello\n", (0o600, 0, 0)),
        ("etc/gz.txt", "gz hello\n", (0o755, 0, 0)),
        ("etc/motd", "line1\nline2", (0o644, 0, 0)),
        ("srv/web/index.html", "hi", (0o640, 1000, 4)),
        ("srv/root-only", "x", (0o644, 0, 0)),
    ];
    for (rel, content, want) in cases {
        assert_eq!(read(root, rel), content, "{rel}");
        assert_eq!(meta(root, rel), want, "{rel}");
    }
    assert_eq!(meta(root, "srv/web").0, 0o755);
    assert!(fs::read_dir(root.join("etc")).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("kiln-tmp")));
}

#[test]
fn unknown_owner_is_an_error_without_semaphore() {
    let t = node("owner");
    let c = cfg(
        "#cloud-config\nwrite_files: [{path: /etc/x, content: x, owner: ghost}]\n",
        "i-1",
    );
    let got = apply(&c, t.path(), &mut FakeRunner::default(), &mut |_| ());
    assert!(
        matches!(&got, Err(ApplyError::UnknownOwner { name, .. }) if name == "ghost"),
        "{got:?}"
    );
    assert!(!semaphore(t.path(), "i-1").exists());
}

#[test]
fn hostname_hosts_timezone_and_ntp() {
    let cases = [
        ("manage_etc_hosts: true\n", true),
        ("manage_etc_hosts: localhost\n", true),
        ("", false),
    ];
    for (extra, hosts) in cases {
        let t = node("host");
        let root = t.path();
        t.write("usr/share/zoneinfo/Europe/Paris", "TZif");
        let yaml = format!(
            "#cloud-config\nfqdn: web.example.org\n{extra}timezone: Europe/Paris\n\
             ntp: {{servers: [10.0.0.1], pools: [pool.ntp.org]}}\n"
        );
        let (_, events) = run(&cfg(&yaml, "i-1"), root, &mut FakeRunner::default());
        assert_eq!(read(root, "proc/sys/kernel/hostname"), "web");
        assert_eq!(read(root, "etc/hostname"), "web\n");
        assert_eq!(root.join("etc/hosts").exists(), hosts, "{extra}");
        if hosts {
            let want = crate::net::render_hosts("web", Some("web.example.org"));
            assert_eq!(read(root, "etc/hosts"), want);
            assert!(want.contains("127.0.1.1\tweb.example.org web\n"));
        }
        let link = fs::read_link(root.join("etc/localtime")).unwrap();
        assert_eq!(link, Path::new("/usr/share/zoneinfo/Europe/Paris"));
        assert_eq!(read(root, "etc/timezone"), "Europe/Paris\n");
        assert_eq!(
            read(root, "etc/kiln/ntp.conf"),
            "# Generated by kiln-init from cloud-config ntp.\n\
             server 10.0.0.1 iburst\npool pool.ntp.org iburst\n"
        );
        assert!(events.contains(&r#"{"ts":0.000,"event":"unsupported","key":"ntp"}"#.into()));
        assert!(!events.iter().any(|e| e.contains(r#""key":"timezone""#)));
    }
}

#[test]
fn missing_zone_and_unsupported_keys_are_events_not_errors() {
    let t = node("tz");
    let root = t.path();
    t.write("usr/sbin/chronyd", "");
    let c = cfg(
        "#cloud-config\ntimezone: Mars/Olympus\npackages: [vim]\nntp: {servers: [a.example]}\n",
        "i-1",
    );
    let (_, events) = run(&c, root, &mut FakeRunner::default());
    assert!(!root.join("etc/localtime").exists());
    let keys: Vec<&String> = events
        .iter()
        .filter(|e| e.contains("unsupported"))
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys[0].contains(r#""key":"packages""#), "{keys:?}");
    assert!(keys[1].contains(r#""key":"timezone""#), "{keys:?}");
}

#[test]
fn instance_ids_become_safe_file_names() {
    let r = Path::new("/r");
    let cases = [
        ("i-123", "/r/var/lib/kiln/instance/i-123/done"),
        ("../../etc", "/r/var/lib/kiln/instance/_.._.._etc/done"),
        ("", "/r/var/lib/kiln/instance/_/done"),
        ("a b/c", "/r/var/lib/kiln/instance/a_b_c/done"),
    ];
    for (id, want) in cases {
        assert_eq!(semaphore(r, id), Path::new(want), "{id:?}");
    }
}
