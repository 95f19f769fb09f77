//! Commands, scripts and the per-instance semaphore, with the fake runner and once with
//! the real `SysRunner` (/bin/sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::tests::{cfg, node, run, FakeRunner};
use super::*;

const CMDS: &str = "#cloud-config
bootcmd: [echo boot]
runcmd:
  - [touch, /tmp/x]
  - exit 3
  - '!missing'
  - echo after
write_files: [{path: /etc/once, content: '1', append: true}]
";

#[test]
fn per_instance_runs_once_per_instance_id_and_bootcmd_every_boot() {
    let t = node("instance");
    let root = t.path();
    let mut r = FakeRunner::default();
    r.codes.insert("exit 3".into(), 3);

    let (first, events) = run(&cfg(CMDS, "i-1"), root, &mut r);
    assert!(first.per_instance);
    assert_eq!((first.files, first.commands, first.failed), (1, 5, 2));
    let ran: Vec<&str> = r.ran.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(
        ran,
        [
            "echo boot",
            "touch /tmp/x",
            "exit 3",
            "!missing",
            "echo after"
        ]
    );
    assert_eq!(r.ran[0].0, Phase::Bootcmd);
    assert_eq!(r.ran[1].0, Phase::Runcmd);
    let failed: Vec<&String> = events
        .iter()
        .filter(|e| e.contains("command_failed"))
        .collect();
    assert_eq!(
        failed,
        [
            r#"{"ts":0.000,"event":"command_failed","phase":"runcmd","command":"exit 3","code":3}"#,
            r#"{"ts":0.000,"event":"command_failed","phase":"runcmd","command":"!missing","code":127,"error":"entity not found"}"#,
        ]
    );
    assert_eq!(
        events.last().unwrap(),
        r#"{"ts":0.000,"event":"config_applied","instance_id":"i-1","users":0,"files":1,"commands":5}"#
    );
    assert_eq!(fs::read_to_string(semaphore(root, "i-1")).unwrap(), "i-1\n");

    // Reboot, same instance: bootcmd only, write_files not appended again.
    r.ran.clear();
    let (second, events) = run(&cfg(CMDS, "i-1"), root, &mut r);
    assert!(!second.per_instance);
    assert_eq!(r.ran, [(Phase::Bootcmd, "echo boot".to_string())]);
    assert!(events.contains(&r#"{"ts":0.000,"event":"config_skipped","instance_id":"i-1"}"#.into()));
    assert_eq!(fs::read_to_string(root.join("etc/once")).unwrap(), "1");

    // New instance-id: everything again.
    r.ran.clear();
    let (third, _) = run(&cfg(CMDS, "i-2"), root, &mut r);
    assert!(third.per_instance);
    assert_eq!(r.ran.len(), 5);
    assert_eq!(fs::read_to_string(root.join("etc/once")).unwrap(), "11");
}

const SCRIPTS: &str = "Content-Type: multipart/mixed; boundary=\"B\"
MIME-Version: 1.0

--B
Content-Type: text/x-shellscript; charset=\"us-ascii\"
Content-Disposition: attachment; filename=\"inst.sh\"

#!/bin/sh
echo instance
--B
Content-Type: text/x-shellscript-per-boot
Content-Disposition: attachment; filename=\"boot.sh\"

#!/bin/sh
echo boot
--B
Content-Type: text/x-shellscript-per-once
Content-Disposition: attachment; filename=\"once.sh\"

#!/bin/sh
echo once
--B
Content-Type: text/cloud-config

#cloud-config
runcmd: [echo run]
--B--
";

#[test]
fn scripts_are_written_0700_and_run_by_frequency() {
    let t = node("scripts");
    let root = t.path();
    let c = cfg(SCRIPTS, "i-1");
    assert_eq!(c.scripts.len(), 3, "{c:?}");
    let dir = root.join("var/lib/kiln/scripts");
    let path = |n: &str| dir.join(n).to_string_lossy().into_owned();
    let mut r = FakeRunner::default();
    run(&c, root, &mut r);
    let ran: Vec<String> = r.ran.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(
        ran,
        [
            "echo run".to_string(),
            path("inst.sh"),
            path("boot.sh"),
            path("once.sh")
        ]
    );
    let m = fs::metadata(dir.join("inst.sh")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o700);
    assert_eq!(
        fs::read_to_string(dir.join("once.sh")).unwrap(),
        "#!/bin/sh\necho once"
    );

    r.ran.clear();
    run(&c, root, &mut r);
    let ran: Vec<String> = r.ran.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(ran, [path("boot.sh")], "second boot: per-boot only");
}

#[test]
fn real_runner_uses_sh_logs_output_and_reports_codes() {
    let t = node("sysrunner");
    let root = t.path();
    let out = root.join("out");
    let yaml = format!(
        "#cloud-config
bootcmd: ['echo \"$PATH\" > {o}; pwd >> {o}']
runcmd:
  - [sh, -c, 'echo to-stdout; echo to-stderr >&2; exit 7']
  - [/nonexistent/binary]
  - kill -TERM $$
",
        o = out.display()
    );
    let log = root.join("var/log/kiln/cloud-config.log");
    let mut r = SysRunner::new(log.clone());
    let mut events = Vec::new();
    let done = apply(&cfg(&yaml, "i-1"), root, &mut r, &mut |e| {
        events.push(crate::events::encode(e, std::time::Duration::ZERO))
    })
    .unwrap();
    assert_eq!((done.commands, done.failed), (4, 3));
    assert_eq!(fs::read_to_string(&out).unwrap(), format!("{PATH}\n/\n"));
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("== runcmd: sh -c"), "{text}");
    assert!(text.contains("to-stdout\nto-stderr\n== exit 7\n"), "{text}");
    let codes: Vec<&String> = events
        .iter()
        .filter(|e| e.contains("command_failed"))
        .collect();
    assert!(codes[0].ends_with(r#""code":7}"#), "{codes:?}");
    assert!(codes[1].contains(r#""code":127,"error":"#), "{codes:?}");
    assert!(codes[2].ends_with(r#""code":143}"#), "{codes:?}");
    assert_eq!(
        fs::metadata(&log).unwrap().permissions().mode() & 0o7777,
        0o640
    );
}
