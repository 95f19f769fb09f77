//! The `kiln` binary on bad input: every case must exit 1 with exactly one stderr line
//! `kiln: error: …` naming the cause, print nothing on stdout, and leave nothing at the
//! output path (no image, no temporary file) nor write or change the lock file.
//!
//! Progress lines also go to stderr, so every case runs `kiln build --quiet`. Cases that
//! resolve against a real mirror use the host's apt sources (as `kiln` does); without one
//! they print `skipped: …` (and fail under `CI=true`). Unsatisfiable dependencies cannot be
//! provoked against a real mirror: `debian::resolve`'s unit tests cover them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

const KILN: &str = env!("CARGO_BIN_EXE_kiln");
const BULLSEYE_KEYRING: &str = "/usr/share/keyrings/debian-archive-bullseye-stable.gpg";
/// The default spec's exclude list, so the reduced specs resolve the same way.
const EXCLUDE: &str = r#"exclude = ["adduser", "debconf", "dpkg", "init-system-helpers",
    "initramfs-tools", "linux-base", "perl-base", "systemd", "systemd-sysv"]"#;

/// A fresh, empty folder for one case.
fn case_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("bad-input")
        .join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `text` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `true` when the host names a Debian mirror; else the skip policy of STYLE rule 12.
fn require_mirror(case: &str) -> bool {
    if kiln_imager::debian::mirror::host_mirror().is_some() {
        return true;
    }
    let reason = format!("{case}: no Debian mirror in the host's apt sources");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("bad-input cases must run in CI but cannot: {reason}");
    }
    eprintln!("skipped: {reason}");
    false
}

/// Runs `kiln build --quiet ARGS` and asserts the failure contract: exit code 1, nothing
/// on stdout, one stderr line `kiln: error: …` containing `cause`, `out` absent or empty,
/// and `lock` exactly as it was before the run (absent stays absent). Returns the line.
/// `kiln build --spec SPEC [EXTRA…] --out OUT` fails with `cause`; the lock beside the
/// spec (`<spec>.lock`) is left as it was.
fn spec_build_fails(spec: &Path, out: &Path, extra: &[&str], cause: &str) -> String {
    let mut args = vec![OsStr::new("--spec"), spec.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    args.extend([OsStr::new("--out"), out.as_os_str()]);
    assert_fails(&args, out, &spec.with_extension("lock"), cause)
}

fn assert_fails<S: AsRef<OsStr>>(args: &[S], out: &Path, lock: &Path, cause: &str) -> String {
    let lock_before = std::fs::read(lock).ok();
    let run = Command::new(KILN)
        .arg("build")
        .arg("--quiet")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stdout, "", "stdout");
    assert!(
        stderr.ends_with('\n') && stderr.matches('\n').count() == 1,
        "stderr must be one line: {stderr:?}"
    );
    assert!(stderr.starts_with("kiln: error: "), "{stderr:?}");
    assert!(stderr.contains(cause), "{stderr:?} does not name {cause:?}");
    if out.exists() {
        let left: Vec<_> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left in {}: {left:?}", out.display());
    }
    assert_eq!(
        std::fs::read(lock).ok(),
        lock_before,
        "lock file {} written or changed",
        lock.display()
    );
    stderr.into_owned()
}

#[test]
fn unknown_spec_key_names_line_and_column() {
    let dir = case_dir("unknown-key");
    let spec = write(
        &dir,
        "spec.toml",
        "name = \"bad\"\n\n[debian]\npackages = [\"ca-certificates\"]\ncolour = \"blue\"\n",
    );
    let out = dir.join("out");
    let cause = format!("{}:5:1: unknown field `colour`", spec.display());
    spec_build_fails(&spec, &out, &[], &cause);
}

#[test]
fn missing_spec_file() {
    let dir = case_dir("missing-spec");
    let spec = dir.join("nope.toml");
    let out = dir.join("out");
    let cause = format!("read spec {}: No such file or directory", spec.display());
    spec_build_fails(&spec, &out, &[], &cause);
}

#[test]
fn mbr_layout_on_a_disk_past_2_tib() {
    let dir = case_dir("mbr-too-large");
    let spec = write(
        &dir,
        "spec.toml",
        "name = \"big\"\n[debian]\npackages = [\"ca-certificates\"]\n[disk]\nsize = \"3TiB\"\n",
    );
    let out = dir.join("out");
    let cause = "--layout: disk.size 3072GiB is too large for layout mbr (MBR addresses at most 2 TiB); use layout gpt";
    spec_build_fails(&spec, &out, &["--layout", "mbr"], cause);
}

#[test]
fn output_path_not_writable() {
    let out = Path::new("/proc/kiln-test");
    assert_fails(
        &["--out", "/proc/kiln-test"],
        out,
        &out.join("kiln.lock"),
        "create output folder /proc/kiln-test: ",
    );
    assert!(!out.exists());
}

#[test]
fn mirror_unreachable() {
    let dir = case_dir("unreachable");
    let spec = write(
        &dir,
        "spec.toml",
        "name = \"bad\"\n[debian]\npackages = [\"ca-certificates\"]\n",
    );
    let out = dir.join("out");
    spec_build_fails(
        &spec,
        &out,
        &["--mirror", "http://127.0.0.1:9/debian"],
        "mirror unreachable: http://127.0.0.1:9/debian/dists/trixie/InRelease",
    );
}

#[test]
fn index_signed_by_no_key_in_the_keyring() {
    if !require_mirror("bad signature") {
        return;
    }
    assert!(
        Path::new(BULLSEYE_KEYRING).is_file(),
        "{BULLSEYE_KEYRING} missing: install debian-archive-keyring (.ci/setup-host)"
    );
    let dir = case_dir("bad-signature");
    let spec = write(
        &dir,
        "spec.toml",
        &format!(
            "name = \"bad\"\n[debian]\nkeyring = \"{BULLSEYE_KEYRING}\"\npackages = [\"ca-certificates\"]\n"
        ),
    );
    let out = dir.join("out");
    spec_build_fails(&spec, &out, &[], "is not signed by any key in the keyring");
}

#[test]
fn missing_package() {
    if !require_mirror("missing package") {
        return;
    }
    let dir = case_dir("missing-package");
    let spec = write(
        &dir,
        "spec.toml",
        "name = \"bad\"\n[debian]\npackages = [\"no-such-package-kiln\"]\n",
    );
    let out = dir.join("out");
    spec_build_fails(
        &spec,
        &out,
        &[],
        "root package no-such-package-kiln not found in the index",
    );
}

#[test]
fn locked_without_a_lock_file() {
    if !require_mirror("--locked without lock") {
        return;
    }
    let dir = case_dir("locked-no-lock");
    let spec = write(
        &dir,
        "spec.toml",
        "name = \"bad\"\n[debian]\npackages = [\"ca-certificates\"]\n",
    );
    let out = dir.join("out");
    let lock = dir.join("spec.lock");
    let cause = format!(
        "--locked: read lock file {}: No such file or directory",
        lock.display()
    );
    spec_build_fails(&spec, &out, &["--locked"], &cause);
}

#[test]
fn locked_with_a_lock_the_mirror_does_not_resolve_to() {
    if !require_mirror("--locked with a doctored lock") {
        return;
    }
    let dir = case_dir("locked-differs");
    let spec = write(
        &dir,
        "spec.toml",
        "name = \"bad\"\n[debian]\npackages = [\"ca-certificates\"]\n",
    );
    let lock = write(
        &dir,
        "spec.lock",
        r#"version = 1
suite = "trixie"
arch = "amd64"

[[package]]
name = "ca-certificates"
version = "0-kiln-doctored"
arch = "all"
filename = "pool/main/c/ca-certificates/ca-certificates_0-kiln-doctored_all.deb"
size = 1
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
"#,
    );
    let out = dir.join("out");
    let cause = format!(
        "resolution differs from the lock file {}: -ca-certificates 0-kiln-doctored, +ca-certificates ",
        lock.display()
    );
    spec_build_fails(&spec, &out, &["--locked"], &cause);
}

/// The one case that downloads and extracts packages (a kernel and systemd-boot, ~10 s
/// with a warm cache): the root squashfs cannot fit an 8 MiB partition.
#[test]
fn root_larger_than_its_partition() {
    if !require_mirror("root too large") {
        return;
    }
    let dir = case_dir("root-too-large");
    let spec = write(
        &dir,
        "spec.toml",
        &format!(
            "name = \"bad\"\n[debian]\npackages = [\"linux-image-amd64\", \"systemd-boot-efi\"]\n{EXCLUDE}\n\n[disk]\nroot_size = \"8MiB\"\n"
        ),
    );
    let out = dir.join("out");
    let line = spec_build_fails(&spec, &out, &[], "kiln: error: the root squashfs is ");
    assert!(
        line.contains(" but partition KILN-ROOT-A holds 8MiB"),
        "{line:?}"
    );
}
